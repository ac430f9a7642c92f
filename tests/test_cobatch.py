"""Co-batched runs (one LM forward for several runs) match their solo runs."""
import pytest
import torch
import torch.nn.functional as F

from ptuning_core.lm.cobatch import CoRun, can_cobatch, cobatched_losses, cobatched_step
from ptuning_core.lm.model import PromptModel
from ptuning_core.lm.verbalizer import Verbalizer
from tiny import tiny_causal

V2 = Verbalizer.parse({"0": ["terrible"], "1": ["great"]})
V3 = Verbalizer.parse({"neg": ["bad"], "mid": ["fine"], "pos": ["good"]})
EX = [{"sentence": s, "label": l} for s, l in [
    ("the movie was good", "1"), ("the film was bad", "0"), ("i loved the story", "1"),
    ("the plot was boring", "0"), ("really fun", "1"), ("i hated the acting", "0"),
    ("a nice film", "1"), ("the movie was not good , really awful", "0")]]
EX3 = [{"sentence": e["sentence"], "label": ["neg", "mid", "pos"][i % 3]}
       for i, e in enumerate(EX)]
# different templates (fast path with prefixes of different widths, pseudo tokens first = no
# prefix), verbalizers, encoders and batch sizes
RUNS = [("{sentence} [P*3] it was [MASK]", V2, EX, "lstm", 4, 1),
        ("[P*2] {sentence} it was [MASK]", V2, EX, "mlp", 3, 2),
        ("the story : {sentence} . [P] [P] really [MASK] !", V3, EX3, "lstm", 5, 3),
        ("[P] it was {sentence} [P*2] [MASK]", V3, EX3, "none", 2, 4)]


def _make(bb, fast=True):
    out = []
    for tpl, verb, data, enc, bs, seed in RUNS:
        pm = PromptModel(bb, tpl, verb, enc, seed=seed)
        pm.set_precision("fp32")
        encs = pm.encode(data)
        gold = torch.tensor(pm.gold_ids([e["label"] for e in data]))
        rows = torch.arange(seed % 3, seed % 3 + bs) % len(encs)
        prefix = pm.build_prefix_cache(encs) if fast and pm.fast_path_possible(encs) else None
        opt = torch.optim.AdamW([p for p in pm.encoder.parameters()], lr=5e-2)
        out.append(CoRun(pm, [encs[int(i)] for i in rows], gold[rows], prefix, rows, opt, 1.0))
    return out


def _solo_loss(r: CoRun):
    if r.prefix is not None:
        sc, _ = r.pm.fast_scores(r.encs, r.prefix, r.rows)
    else:
        sc, _ = r.pm.scores(r.pm.collate(r.encs))
    return F.cross_entropy(sc.float(), r.gold)


def _grads(pm):
    return torch.cat([p.grad.flatten() for p in pm.encoder.parameters()])


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_cobatched_losses_and_gradients_equal_each_solo_run(arch, fast):
    bb = tiny_causal(arch)
    co, solo = _make(bb, fast), _make(bb, fast)
    assert any(r.prefix is not None for r in co) == fast
    assert all(can_cobatch(r.pm) for r in co)
    losses = cobatched_losses(co)
    torch.stack(losses).sum().backward()
    for rc, rs in zip(co, solo):
        ls = _solo_loss(rs)
        ls.backward()
        assert abs(float(ls) - float(losses[co.index(rc)])) < 1e-5
        gc, gs = _grads(rc.pm), _grads(rs.pm)
        assert gs.abs().max() > 0
        assert (gc - gs).abs().max() < 1e-5


def test_cobatched_steps_follow_the_solo_trajectories():
    bb = tiny_causal()
    co, solo = _make(bb), _make(bb)
    for _ in range(3):
        got = cobatched_step(co)
        want = []
        for r in solo:
            loss = _solo_loss(r)
            r.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(r.pm.encoder.parameters()), r.clip)
            r.optimizer.step()
            want.append(float(loss))
        assert max(abs(a - b) for a, b in zip(got, want)) < 1e-5
    for rc, rs in zip(co, solo):
        assert torch.allclose(rc.pm.prompt_embeddings(), rs.pm.prompt_embeddings(), atol=1e-5)


def test_runs_that_cannot_be_cobatched_are_refused():
    bb = tiny_causal()
    multi = Verbalizer.parse({"0": ["not good"], "1": ["great"]})  # a two-token label word
    pm = PromptModel(bb, "{sentence} [P] it was [MASK]", multi, "lstm")
    assert not can_cobatch(pm)
    assert not can_cobatch(PromptModel(bb, "{sentence} [P] it was [MASK]", V2), aux_weight=0.5)
    ok = PromptModel(bb, "{sentence} [P] it was [MASK]", V2)
    gold = torch.tensor([0])
    with pytest.raises(ValueError, match="co-batched"):
        cobatched_losses([CoRun(ok, ok.encode(EX[:1]), gold),
                          CoRun(pm, pm.encode(EX[:1]), gold)])
