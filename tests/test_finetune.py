"""Fine-tuning baselines (LoRA, full) on tiny models: they learn, they change only their own copy,
and a P-tuning run in the same process afterwards sees the very same frozen backbone."""
import pytest
import torch

from ptuning_core.lm import registry
from ptuning_core.engine.compare import run_comparison
from ptuning_core.engine.experiment import RunSpec, run_experiment
from ptuning_core.engine.fewshot import SweepSpec, run_sweep
from ptuning_core.engine.finetune import attention_targets, finetune
from ptuning_core.store.runs import RunStore
from ptuning_core.template import to_discrete
from ptuning_core.engine.train import TrainConfig
from ptuning_core.lm.verbalizer import Verbalizer
from tiny import tiny_causal, tiny_masked

VERB = {"negative": ["terrible"], "positive": ["great"]}
ROWS = [{"sentence": s, "label": l} for s, l in [
    ("the movie was great", "positive"), ("bad plot", "negative"), ("i loved it", "positive"),
    ("awful acting", "negative"), ("really fun", "positive"), ("boring story", "negative")]]


def snapshot(bb):
    return {k: v.detach().clone() for k, v in bb.model.state_dict().items()}


def same(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("build,arch", [(tiny_causal, "llama"), (tiny_causal, "gpt2"),
                                        (tiny_masked, "bert")])
@pytest.mark.parametrize("method", ["lora", "full"])
def test_finetuning_learns_on_a_copy_only(build, arch, method):
    bb = build(arch)
    before = snapshot(bb)
    flags = {k: p.requires_grad for k, p in bb.model.named_parameters()}
    tpl = "{sentence} It was [MASK]" + (" ." if bb.kind == "masked" else "")
    cfg = TrainConfig(steps=15, batch_size=6, seed=3, lora_lr=5e-2, full_lr=1e-2)
    pm, tr = finetune(bb, tpl, Verbalizer.parse(VERB), ["sentence"], ROWS, cfg, method)
    assert sum(tr.losses[-3:]) < sum(tr.losses[:3])  # it learns (full batch)
    trained = pm.backbone.model.state_dict()
    if method == "lora":
        assert attention_targets(bb.model)
        assert any("lora_A" in k for k in trained)
        assert tr.trainable_parameters < sum(p.numel() for p in bb.model.parameters()) / 2
    else:
        assert tr.trainable_parameters == sum(p.numel() for p in bb.model.parameters())
        assert any(not torch.equal(trained[k], before[k]) for k in before)
    # the shared backbone: same weights, same modules (no adapter), still frozen
    assert same(snapshot(bb), before)
    assert not any("lora" in n for n, _ in bb.model.named_modules())
    assert {k: p.requires_grad for k, p in bb.model.named_parameters()} == flags


def test_ptuning_after_finetuning_sees_the_same_backbone():
    bb = tiny_causal()
    bb.name = "tiny-finetune-shared"
    registry.put(bb)
    try:
        spec = RunSpec(template="{sentence} [P*2] It was [MASK]", train="sentiment:train",
                       eval="sentiment:test", verbalizer=VERB, model=bb.name, shots=4,
                       max_eval=20, device="cpu",
                       train_cfg=TrainConfig(steps=4, batch_size=4, lr=0.05, snapshot_every=0))
        first = run_experiment(spec)
        before = snapshot(bb)
        # both baselines, as Compare variants, in the same process
        store = RunStore()
        summary = run_comparison(spec, ["LoRA fine-tuning", "full fine-tuning"], store)
        got = {v["variant"]: store.get(v["run_id"])["result"] for v in summary["variants"]}
        assert {name: res["method"] for name, res in got.items()} == {
            "LoRA fine-tuning": "lora", "full fine-tuning": "full"}
        for name, res in got.items():
            assert res["continuous"]["n"] == 20
            # scored through the discrete template, named by the baseline it is
            shown = {"lora": "LoRA fine-tuned", "full": "fully fine-tuned"}[res["method"]]
            assert res["continuous"]["template"] == f"{to_discrete(spec.template)} ({shown})"
        n_all = sum(p.numel() for p in bb.model.parameters())
        assert got["full fine-tuning"]["train"]["trainable_parameters"] == n_all
        assert 0 < got["LoRA fine-tuning"]["train"]["trainable_parameters"] < n_all / 2
        rows = run_sweep(SweepSpec(dataset="sentiment", model=bb.name, ks=[2], seeds=[1],
                                   methods=["lora", "full-finetune"], steps=2, max_eval=10,
                                   device="cpu", template=spec.template, keep_correct=True))
        assert [r["method"] for r in rows] == ["lora", "full-finetune"]
        assert all(len(r["correct"]) == 10 for r in rows)
        assert same(snapshot(bb), before)
        again = run_experiment(spec)
        assert again["train"]["losses"] == first["train"]["losses"]
        assert again["continuous"] == first["continuous"]
    finally:
        registry.unload(bb.name, "cpu")
