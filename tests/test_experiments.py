"""Experiments E1-E6: the computed sentence follows made-up numbers (shown, not significant,
reversed), and each experiment runs end to end on a tiny model with a tiny preset."""
import json

import pytest

from ptuning_core import cli

from ptuning_core.lm import registry
from ptuning_core.engine import experiments as X
from ptuning_core.stats import fmt_acc, wilson
from ptuning_core.store.runs import RunStore
from ptuning_core.engine.train import ConfigError
from tiny import tiny_causal

N = 100


def outcomes(right: int, n: int = N, offset: int = 0) -> list:
    """``right`` correct answers out of ``n``, starting at ``offset`` (wrapping)."""
    out = [False] * n
    for i in range(right):
        out[(offset + i) % n] = True
    return out


def cell(arm, k, seed, correct, **kw):
    return {"arm": arm, "k": k, "seed": seed, "accuracy": sum(correct) / len(correct),
            "n": len(correct), "correct": correct, **kw}


def two_arm(exp_id, base_right, claim_right, ks=(16,), seeds=(1, 2)):
    exp = X.get(exp_id)
    cells = []
    for k in ks:
        for s in seeds:
            br = base_right(k) if callable(base_right) else base_right
            cr = claim_right(k) if callable(claim_right) else claim_right
            # the claimed arm right where the baseline is, plus more (or fewer)
            cells.append(cell(exp.baseline, k, s, outcomes(br)))
            cells.append(cell(exp.claimed, k, s, outcomes(cr)))
    return {"experiment": exp_id, "settings": {"dataset": "sentiment"}, "cells": cells}


def test_conclude_shown_not_significant_and_reversed():
    shown = X.conclude("E1", two_arm("E1", 60, 80))
    assert "P-tuning is significantly better than discrete template (20.0 points" in shown
    assert "the claim is shown here" in shown and "60.0% [" in shown and "80.0% [" in shown
    assert "2 seeds × 100 test examples" in shown
    flat = X.conclude("E1", two_arm("E1", 70, 72))
    assert "no significant difference" in flat and "not shown here" in flat
    assert "significantly better" not in flat
    rev = X.conclude("E4", two_arm("E4", 80, 55))
    assert "task loss only is significantly better than with auxiliary loss" in rev
    assert "reverse of the claim" in rev


def test_conclude_uses_the_paired_test_not_the_gap():
    # same accuracies, but in E1-flat the two arms disagree on many examples (not significant);
    # here they disagree only where the claimed arm is right: 8 of 8 discordant pairs per seed
    r = two_arm("E1", 60, 68, seeds=(1,))
    assert "significantly better" in X.conclude("E1", r)
    r["cells"][1]["correct"] = outcomes(68, offset=50)  # now many discordant pairs both ways
    assert "no significant difference" in X.conclude("E1", r)


def test_conclude_e2_reports_steps_to_90_percent():
    r = two_arm("E2", 60, 85)
    for c in r["cells"]:
        c["dev"] = [[5, 0.5], [10, 0.85], [15, 0.9]] if c["arm"] == "BiLSTM+MLP" else \
            [[5, 0.5], [10, 0.6], [15, 0.8]]
        c["steps_to_90"] = X.steps_to_fraction(c["dev"])
    s = X.conclude("E2", r)
    assert "steps to 90% of the final dev accuracy: BiLSTM+MLP 10, none (prompt tuning) 15" in s
    assert "BiLSTM+MLP faster than none (prompt tuning)" in s
    assert X.steps_to_fraction([[5, 0.5], [10, 0.8], [15, 0.9]]) == 15  # 0.8 < 0.9 * 0.9
    assert X.steps_to_fraction([]) is None


def test_conclude_e5_follows_k():
    words_then_learned = two_arm("E5", lambda k: 80 if k == 4 else 60,
                                 lambda k: 60 if k == 4 else 80, ks=(4, 64))
    s = X.conclude("E5", words_then_learned)
    assert "k=4:" in s and "k=64:" in s
    assert "label words is significantly better than learned label tokens" in s
    assert "the claim is shown here" in s
    half = two_arm("E5", lambda k: 80 if k == 4 else 70, lambda k: 60 if k == 4 else 71,
                   ks=(4, 64))
    assert "partly shown" in X.conclude("E5", half)
    none = two_arm("E5", 70, 71, ks=(4, 64))
    assert "not shown here (no significant difference at either end)" in X.conclude("E5", none)
    rev = two_arm("E5", lambda k: 50, lambda k: 80, ks=(4, 64))
    assert "reverse of the claim" in X.conclude("E5", rev)


def test_conclude_e6_match():
    def e6(pt, lora, full):
        cells = []
        for s in (1, 2):
            for k in (4, 16):
                cells += [cell("P-tuning", k, s, outcomes(pt)), cell("LoRA", k, s, outcomes(lora)),
                          cell("full fine-tuning", k, s, outcomes(full))]
        return {"experiment": "E6", "settings": {"dataset": "sentiment"}, "cells": cells}
    held = X.conclude("E6", e6(75, 76, 74))
    assert "no significant difference" in held and "the claim holds here" in held
    lost = X.conclude("E6", e6(60, 85, 62))
    assert "not shown here" in lost and "significantly worse than LoRA" in lost
    more = X.conclude("E6", e6(90, 60, 60))
    assert "shown here, and more" in more


def test_summary_and_csv_carry_intervals():
    r = two_arm("E1", 60, 80)
    r["cells"][3]["correct"] = outcomes(80, offset=3)  # P-tuning's seeds differ, discrete's not
    rows = X.summarize(r)
    pt = next(x for x in rows if x["arm"] == "P-tuning")
    assert pt["accuracy"] == 0.8 and pt["n"] == 200 and pt["seeds"] == 2
    assert pt["ci95"][0] < 0.8 < pt["ci95"][1]
    # the discrete prompt is the same for every seed: its test examples count once
    d = next(x for x in rows if x["arm"] == "discrete template")
    assert d["n"] == 100 and d["accuracy"] == 0.6
    text = X.to_csv(r)
    lines = text.strip().splitlines()
    assert lines[0].startswith("experiment,arm,k,seed,accuracy,ci95_lo,ci95_hi")
    assert len(lines) == 1 + 2 + 4


def test_names_presets_and_checks():
    assert X.get("e5").id == "E5" and X.get("vs-finetuning").id == "E6"
    with pytest.raises(ConfigError, match="unknown experiment"):
        X.get("E9")
    p = X.plan(X.ExperimentRequest("E1"))
    assert p.settings.ks == (16,) and len(p.settings.seeds) == 2 and p.settings.max_eval == 100
    assert X.plan(X.ExperimentRequest("E6", preset="full")).settings.max_eval is None
    with pytest.raises(Exception, match="too large"):
        X.plan(X.ExperimentRequest("E1", ks=[500]))
    with pytest.raises(ConfigError, match="preset"):
        X.plan(X.ExperimentRequest("E1", preset="huge"))
    with pytest.raises(ConfigError, match="seeds"):
        X.plan(X.ExperimentRequest("E1", seeds=[]))
    assert {e["id"] for e in X.listing()} == {f"E{i}" for i in range(1, 7)}


@pytest.fixture(scope="module")
def tiny_model():
    import tiny
    words = tiny.WORDS
    tiny.WORDS = words + ["Yes", "No"]  # the pairs dataset's label words (E3)
    try:
        bb = tiny_causal()
    finally:
        tiny.WORDS = words
    bb.name = "tiny-experiments"
    registry.put(bb)
    yield bb
    registry.unload(bb.name, "cpu")


@pytest.mark.parametrize("name", ["E1", "E2", "E3", "E4", "E5", "E6"])
def test_each_experiment_runs_end_to_end(tiny_model, name):
    req = X.ExperimentRequest(name, model=tiny_model.name, device="cpu", seeds=[1, 2], ks=[2],
                              steps=2, max_eval=12, eval_every=1 if name == "E2" else None)
    p = X.plan(req)
    events = []
    res = X.run(p, callback=events.append)
    exp = X.get(name)
    assert res["status"] == "finished"
    assert len(res["cells"]) == p.n_cells == 2 * len(exp.arms)
    assert {c["arm"] for c in res["cells"]} == set(exp.arm_names())
    assert all(len(c["correct"]) == 12 for c in res["cells"])
    assert [e for e in events if e["type"] == "cell"][-1]["done"] == p.n_cells
    if name == "E2":  # a dev evaluation after each of the 2 steps; the first step at 90%
        for c in res["cells"]:
            assert [s for s, _ in c["dev"]] == [1, 2]
            final = c["dev"][-1][1]
            assert c["steps_to_90"] == next(s for s, a in c["dev"] if a >= 0.9 * final)
    sentence = X.conclude(exp, res)
    assert sentence.startswith(f"{name} on {exp.dataset} (2 seeds × 12 test examples, "
                               f"k = 2 per class): ")
    for arm in exp.arm_names():  # each arm's pooled accuracy and interval, from the cells
        cs = [c["correct"] for c in res["cells"] if c["arm"] == arm]
        if all(x == cs[0] for x in cs):  # nothing trained (discrete): its examples once
            cs = cs[:1]
        right, n = sum(map(sum, cs)), sum(map(len, cs))
        lo, hi = wilson(right, n)
        assert f"{arm} {fmt_acc(round(right / n, 4), [round(lo, 4), round(hi, 4)])}" in \
            sentence, (arm, sentence)
    store = RunStore()
    rid = X.record(store, "me", req, res)
    back = X.load(store, rid)
    assert back["cells"] == res["cells"] and back["sentence"] == sentence
    assert X.conclude(exp, back) == sentence  # re-opened: the same sentence from the numbers
    assert store.get(rid)["kind"] == "experiment"


def test_cli_experiment(tiny_model, capsys):
    assert cli.main(["experiment", "--list"]) == 0
    out = capsys.readouterr().out
    assert "E1" in out and "E6" in out
    code = cli.main(["experiment", "E1", "--model", tiny_model.name, "--device", "cpu",
                     "--seeds", "1", "--k", "2", "--steps", "2", "--max-eval", "8", "--json"])
    o = capsys.readouterr()
    assert code == 0, o.err
    res = json.loads(o.out.strip().splitlines()[-1])
    assert res["experiment"] == "E1" and res["sentence"].startswith("E1 on sentiment")
    assert RunStore().get(res["id"])["kind"] == "experiment"
    assert cli.main(["experiment", "E9"]) == 2
    assert "unknown experiment" in capsys.readouterr().err


def test_stop_keeps_the_finished_cells(tiny_model):
    import threading
    stop = threading.Event()
    p = X.plan(X.ExperimentRequest("E2", model=tiny_model.name, device="cpu", seeds=[1, 2],
                                   ks=[2], steps=2, max_eval=8))

    def on_event(e):  # stop once the second run has started
        if e["type"] == "cell" and e.get("arm") and e["done"] == 1:
            stop.set()
    res = X.run(p, callback=on_event, stop=stop)
    assert res["status"] == "stopped"
    assert len(res["cells"]) == 1  # the run cut short is left out
    assert X.conclude("E2", {**res, "cells": []}).endswith("nothing can be concluded.")
