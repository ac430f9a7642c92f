"""The frozen part once (issue 21): the discrete baseline cached on disk, the examples' own
text through the frozen LM once per process, and where a run's time goes."""
import pytest
import torch

from ptuning_core.store import evalcache

from ptuning_core import profiling
from ptuning_core.engine.evaluate import evaluate, predict_scores
from ptuning_core.engine.experiment import RunSpec, run_experiment
from ptuning_core.lm.kvcache import SHARED
from ptuning_core.lm.model import PromptModel
from ptuning_core.store.runs import RunStore
from ptuning_core.engine.train import TrainConfig
from ptuning_core.lm.verbalizer import Verbalizer
from tiny import tiny_causal, tiny_masked

V2 = Verbalizer.parse({"0": ["terrible"], "1": ["great"]})
VMULTI = Verbalizer.parse({"0": ["not good"], "1": ["very good", "great"]})  # several pieces
EX = [{"sentence": s, "label": l} for s, l in [
    ("the movie was good", "1"), ("the film was bad", "0"), ("i loved the story", "1"),
    ("the plot was boring", "0"), ("really fun", "1"), ("i hated the acting", "0"),
    ("a nice film", "1"), ("the movie was not good , really awful", "0"),
    ("it was great", "1"), ("a very boring plot , the acting was awful", "0")]]


@pytest.fixture(params=["llama", "gpt2"])
def causal(request):
    return tiny_causal(request.param)


@pytest.mark.parametrize("tpl", ["{sentence} it was [MASK]", "{sentence} [P*3] it was [MASK]",
                                 "{sentence} . [P:it] [P:was] [MASK]"])
@pytest.mark.parametrize("verb", [V2, VMULTI])
def test_shared_prefix_scores_equal_the_plain_path(causal, tpl, verb):
    pm = PromptModel(causal, tpl, verb, "lstm" if "[P" in tpl else "none", 3)
    encs = pm.encode(EX)
    assert pm.frozen_prefix_lengths(encs) is not None
    SHARED.clear()
    plain = predict_scores(pm, encs, batch_size=4, reuse=False)
    shared = predict_scores(pm, encs, batch_size=4)
    again = predict_scores(pm, encs, batch_size=3)  # other batches: assembled from the entries
    assert SHARED.hits >= len(EX)
    for a, b, c in zip(plain, shared, again):
        assert torch.allclose(a, b, atol=1e-5), (a, b)
        assert torch.allclose(a, c, atol=1e-5), (a, c)


def test_frozen_prefix_is_the_examples_own_text(causal):
    pm = PromptModel(causal, "{sentence} [P*2] it was [MASK]", V2)
    e = pm.encode(EX[:1])[0]
    n, = pm.frozen_prefix_lengths([e])
    assert n == e.first_pseudo and set(e.roles[:n]) <= {"special", "field"}
    # nothing to share: pseudo tokens first, or a masked LM (it reads both ways)
    first = PromptModel(causal, "[P*2] {sentence} it was [MASK]", V2)
    assert first.frozen_prefix_lengths(first.encode(EX[:1])) is None
    mpm = PromptModel(tiny_masked(), "{sentence} [P*2] it was [MASK] .", V2)
    assert mpm.frozen_prefix_lengths(mpm.encode(EX[:2])) is None


def test_a_prefix_of_another_model_object_is_not_reused():
    a, b = tiny_causal("llama", seed=0), tiny_causal("llama", seed=1)
    SHARED.clear()
    pa = PromptModel(a, "{sentence} it was [MASK]", V2, "none")
    pb = PromptModel(b, "{sentence} it was [MASK]", V2, "none")
    sa = predict_scores(pa, pa.encode(EX))
    sb = predict_scores(pb, pb.encode(EX))
    ref = predict_scores(pb, pb.encode(EX), reuse=False)
    assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(sb, ref))
    assert not all(torch.allclose(x, y, atol=1e-3) for x, y in zip(sa, sb))


def test_discrete_baseline_is_computed_once_and_keyed_by_everything(causal, tmp_path):
    evalcache.use(tmp_path / "ec")
    try:
        cache = evalcache.current()
        pm = PromptModel(causal, "{sentence} it was [MASK]", V2, "none")
        first = evaluate(pm, EX)
        assert (cache.hits, cache.misses) == (0, 1)
        second = evaluate(pm, EX)
        assert cache.hits == 1
        assert second["predictions"] == first["predictions"]  # the paired test still has them
        assert second["accuracy"] == first["accuracy"] and second["ci95"] == first["ci95"]
        # each part of the key misses when it changes
        evaluate(PromptModel(causal, "{sentence} it is [MASK]", V2, "none"), EX)  # template
        evaluate(PromptModel(causal, "{sentence} it was [MASK]",
                             Verbalizer.parse({"0": ["bad"], "1": ["great"]}), "none"), EX)
        evaluate(pm, EX[:-1])  # data
        evaluate(PromptModel(tiny_causal("llama", seed=5), "{sentence} it was [MASK]", V2,
                             "none"), EX)  # another model
        assert cache.hits == 1 and cache.misses == 5
        # a prompt with pseudo tokens is never taken from it
        cpm = PromptModel(causal, "{sentence} [P*2] it was [MASK]", V2, "lstm")
        evaluate(cpm, EX)
        assert cache.hits == 1 and cache.misses == 5
        assert evaluate(pm, EX, reuse=False)["predictions"] == first["predictions"]
        assert cache.hits == 1
    finally:
        evalcache.use(None)


def test_eval_cache_is_bounded(tmp_path):
    c = evalcache.EvalCache(tmp_path, max_mb=1)
    big = {"accuracy": 0.5, "ci95": [0, 1], "blob": "x" * 400_000}
    for i in range(5):
        c.put(f"k{i}", big)
    files = list(tmp_path.glob("*.json"))
    assert 1 <= len(files) <= 2
    assert c.get("k4") is not None and c.get("k0") is None


def test_a_second_run_of_the_same_setting_skips_the_discrete_evaluation(tmp_path, monkeypatch):
    bb = tiny_causal("llama")
    from ptuning_core.engine import experiment
    from ptuning_core.data import bundled as D
    monkeypatch.setattr(experiment, "get_backbone", lambda *a, **k: bb)
    f = tmp_path / "d.jsonl"
    import json
    f.write_text("\n".join(json.dumps(r) for r in EX))
    store = RunStore(tmp_path / "runs")
    evalcache.use(store.root / "evalcache")
    try:
        spec = RunSpec(template="{sentence} [P:it] [P:was] [MASK]", train=str(f), eval=str(f),
                       verbalizer={"0": ["terrible"], "1": ["great"]},
                       train_cfg=TrainConfig(steps=3, batch_size=4, snapshot_every=0))
        profiling.start()
        r1 = run_experiment(spec, store=store, run_id=store.create("a", spec.to_dict(), "s1"))
        p1 = profiling.stop()
        profiling.start()
        r2 = run_experiment(spec, store=store, run_id=store.create("b", spec.to_dict(), "s2"))
        p2 = profiling.stop()
    finally:
        evalcache.use(None)
    assert r1["discrete"] == r2["discrete"] and r1["paired"]["n"] == r2["paired"]["n"] == len(EX)
    assert len(list((store.root / "evalcache").glob("*.json"))) == 1
    for p in (p1, p2):
        assert {"step forward", "step backward", "step optimizer", "discrete evaluation",
                "continuous evaluation", "store writes"} <= set(p)
        assert p["step forward"]["calls"] == 3
    assert r1["train"]["path"] == "fast"


def test_profiling_is_off_by_default():
    with profiling.section("x"):
        pass
    assert profiling.stop() == {}
