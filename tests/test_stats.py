"""Intervals and paired tests: checked against values computed independently."""
import math

import pytest

from ptuning_core import stats


def test_wilson_matches_the_textbook_values():
    # 81 of 263: the usual worked example; 0 of n: the upper bound is z^2 / (n + z^2)
    lo, hi = stats.wilson(81, 263)
    assert lo == pytest.approx(0.2553, abs=1e-4) and hi == pytest.approx(0.3662, abs=1e-4)
    lo, hi = stats.wilson(0, 20)
    assert lo == 0.0 and hi == pytest.approx(0.1611, abs=1e-4)
    lo, hi = stats.wilson(20, 20)
    assert hi == 1.0 and lo == pytest.approx(0.8389, abs=1e-4)
    assert stats.wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        stats.wilson(5, 3)


def test_interval_narrows_with_n_and_contains_the_estimate():
    a = stats.ci95(0.7, 20)
    b = stats.ci95(0.7, 2000)
    assert a[0] < b[0] <= 0.7 <= b[1] < a[1]


def test_exact_mcnemar():
    # only the discordant pairs matter: 10 vs 2 -> two-sided binomial p = 0.0386
    p = stats.mcnemar([True] * 10 + [False] * 2 + [True] * 50,
                      [False] * 10 + [True] * 2 + [True] * 50)
    assert (p.only_a_right, p.only_b_right, p.n) == (10, 2, 62)
    assert p.mcnemar_p == pytest.approx(0.03857, abs=1e-4) and p.significant
    same = stats.mcnemar([True, False, True], [True, False, True])
    assert same.mcnemar_p == 1.0 and not same.significant
    assert stats.binom_two_sided(3, 10) == pytest.approx(0.34375)
    # symmetric
    assert stats.binom_two_sided(7, 10) == stats.binom_two_sided(3, 10)


def test_pairing_by_example_index():
    a = [{"index": 0, "correct": True}, {"index": 1, "correct": False}, {"index": 5, "correct": True}]
    b = [{"index": 1, "correct": True}, {"index": 0, "correct": True}, {"index": 7, "correct": True}]
    p = stats.pair_predictions(a, b)
    assert (p.n, p.only_a_right, p.only_b_right) == (2, 0, 1)
    assert stats.pair_predictions(a, [{"index": 9, "correct": True}]) is None


def test_verdict_says_no_significant_difference_when_there_is_none():
    p = stats.mcnemar([True] * 5 + [False] * 3, [False] * 5 + [True] * 3)
    s = stats.verdict("discrete", 0.60, "continuous", 0.58, p)
    assert s.startswith("No significant difference") and "p = " in s
    p = stats.mcnemar([False] * 30 + [True] * 10, [True] * 30 + [True] * 10)
    s = stats.verdict("discrete", 0.25, "continuous", 1.0, p)
    assert s.startswith("continuous is significantly better than discrete")
    p = stats.mcnemar([True] * 30, [False] * 30)
    assert stats.verdict("A", 1.0, "B", 0.0, p).startswith("A is significantly better than B")


def test_by_tag_and_mean_std():
    preds = [{"index": i, "correct": i % 2 == 0} for i in range(6)]
    out = stats.by_tag(preds, {0: "negation", 1: "negation", 2: "plain", 4: "plain"})
    assert out["negation"]["n"] == 2 and out["negation"]["accuracy"] == 0.5
    assert out["plain"]["accuracy"] == 1.0 and out["plain"]["ci95"][1] == 1.0
    assert 5 not in out and "" not in out
    m, s = stats.mean_std([0.5, 0.7])
    assert m == pytest.approx(0.6) and s == pytest.approx(math.sqrt(0.02))


def test_a_sweep_reports_the_sample_sd_like_experiments():
    """One sd convention (issue 23): Few-shot's summary and Experiments both use the sample sd
    (n - 1), so the same seeds give the same spread on both pages."""
    from ptuning_core.engine.fewshot import summarize
    rows = [{"method": "ptuning", "k": 4, "seed": s, "accuracy": a}
            for s, a in ((13, 0.5), (21, 0.7))]
    (cell,) = summarize(rows)
    assert cell["mean"] == pytest.approx(0.6)
    assert cell["std"] == pytest.approx(0.1414, abs=1e-4)  # the population sd would be 0.1
    assert cell["std"] == pytest.approx(stats.mean_std([0.5, 0.7])[1])
