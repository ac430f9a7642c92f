"""Precision: auto resolves by hardware; the bf16 path trains with the encoder in fp32."""
import pytest
import torch

from ptuning_core.lm import precision as P
from ptuning_core.engine.evaluate import evaluate
from ptuning_core.engine.experiment import RunSpec
from ptuning_core.engine.learned import run_precision
from ptuning_core.lm.model import PromptModel
from ptuning_core.engine.train import ConfigError, TrainConfig, train
from ptuning_core.lm.verbalizer import Verbalizer
from tiny import tiny_causal, tiny_masked

V2 = Verbalizer.parse({"0": ["terrible"], "1": ["great"]})
EX = [{"sentence": s, "label": l} for s, l in [
    ("the movie was good", "1"), ("the film was bad", "0"), ("i loved the story", "1"),
    ("the plot was boring", "0"), ("really fun", "1"), ("i hated the acting", "0"),
    ("a nice film", "1"), ("the movie was not good , really awful", "0")]]


def _flags(monkeypatch, flags):
    monkeypatch.delenv("PTUNING_CPU_BF16", raising=False)
    monkeypatch.setattr(P, "_cpu_flags", lambda: frozenset(flags))


def test_auto_is_fp32_on_a_cpu_without_bf16(monkeypatch):
    _flags(monkeypatch, {"avx2", "avx512f", "fma"})
    assert not P.cpu_has_bf16()
    assert P.resolve_precision("auto", "cpu") == "fp32"
    assert P.resolve_precision("bf16", "cpu") == "bf16"  # an explicit choice is kept
    assert P.resolve_precision("fp32", "cpu") == "fp32"


@pytest.mark.parametrize("flag", ["avx512_bf16", "amx_bf16"])
def test_auto_is_bf16_on_a_cpu_with_avx512_bf16_or_amx(monkeypatch, flag):
    _flags(monkeypatch, {"avx512f", flag})
    assert P.cpu_has_bf16()
    assert P.resolve_precision("auto", "cpu") == "bf16"
    assert P.resolve_precision("fp32", "cpu") == "fp32"


def test_the_environment_overrides_detection(monkeypatch):
    monkeypatch.setattr(P, "_cpu_flags", lambda: frozenset({"amx_bf16"}))
    monkeypatch.setenv("PTUNING_CPU_BF16", "0")
    assert P.resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(P, "_cpu_flags", lambda: frozenset())
    monkeypatch.setenv("PTUNING_CPU_BF16", "1")
    assert P.resolve_precision("auto", "cpu") == "bf16"


def test_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="fp8").validate()
    with pytest.raises(ValueError):
        P.resolve_precision("half", "cpu")


def test_runs_stored_with_amp_read_back():
    assert TrainConfig.from_dict({"steps": 3, "amp": False}).precision == "fp32"
    assert TrainConfig.from_dict({"steps": 3, "amp": True}).precision == "auto"
    spec = RunSpec.from_dict({"template": "[P] {sentence}", "train": "a", "eval": "b",
                              "train_cfg": {"steps": 2, "amp": False}})
    assert spec.train_cfg.precision == "fp32" and spec.train_cfg.steps == 2
    assert run_precision({"amp": False}) == "fp32" and run_precision({}) == "auto"
    assert run_precision({"precision": "bf16"}) == "bf16"


@pytest.mark.parametrize("factory,tpl", [
    (tiny_causal, "{sentence} [P*3] it was [MASK]"),  # fast path (prefix cache)
    (tiny_causal, "[P*3] {sentence} it was [MASK]"),  # plain path
    (tiny_masked, "{sentence} [P*3] it was [MASK] ."),
])
def test_bf16_training_runs_loss_falls_and_the_encoder_stays_fp32(factory, tpl):
    bb = factory()
    pm = PromptModel(bb, tpl, V2, "lstm", seed=1)
    ones = [{"sentence": e["sentence"], "label": "1"} for e in EX]
    target = "0" if evaluate(pm, ones)["accuracy"] >= 0.5 else "1"
    data = [{"sentence": e["sentence"], "label": target} for e in EX]
    events = []
    r = train(pm, data, TrainConfig(steps=30, lr=5e-2, batch_size=4, precision="bf16"),
              callback=events.append)
    assert events[0]["precision"] == "bf16" and pm.precision == "bf16"
    assert r.losses[-1] < 0.5 * r.losses[0]
    assert all(p.dtype == torch.float32 for p in pm.encoder.parameters())
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in pm.encoder.parameters())
    assert pm.prompt_embeddings().dtype == torch.float32
    # the frozen LM ran from a bf16 copy; the backbone's own weights are untouched fp32
    assert bb.lowp is not None and bb.lowp.dtype == torch.bfloat16
    assert bb.model.dtype == torch.float32
    assert evaluate(pm, data)["accuracy"] == 1.0


def test_bf16_scores_are_close_to_fp32_and_fp32_is_exact():
    bb = tiny_causal()
    pm = PromptModel(bb, "{sentence} [P*3] it was [MASK]", V2, "lstm", seed=1)
    b = pm.collate(pm.encode(EX))
    with torch.no_grad():
        pm.set_precision("fp32")
        with pm.autocast():
            s32 = pm.scores(b)[0]
        pm.set_precision("bf16")
        with pm.autocast():
            s16 = pm.scores(b)[0]
        pm.set_precision("fp32")
        with pm.autocast():
            again = pm.scores(b)[0]
    assert torch.equal(s32, again)
    assert not torch.equal(s32, s16.float())  # bf16 did run
    assert torch.allclose(s32, s16.float(), atol=0.1, rtol=0.05)
