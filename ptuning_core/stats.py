"""Uncertainty for the numbers the tool shows: Wilson intervals for accuracies, the exact
McNemar test for two prompts scored on the same examples, and the plain-words verdicts that go
beside them. Pure Python; no model, no torch."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

ALPHA = 0.05
Z95 = 1.959963984540054


def wilson(correct: int, n: int, z: float = Z95) -> tuple:
    """95% Wilson score interval for ``correct`` successes out of ``n`` (``(0.0, 1.0)`` when
    ``n`` is 0: nothing is known)."""
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= correct <= n:
        raise ValueError(f"correct={correct} is not between 0 and n={n}")
    p = correct / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def ci95(accuracy: float, n: int) -> list:
    """``[lo, hi]`` (rounded to 4 places) for an accuracy measured on ``n`` examples."""
    lo, hi = wilson(round(accuracy * n), n)
    return [round(lo, 4), round(hi, 4)]


def binom_two_sided(k: int, n: int) -> float:
    """Exact two-sided binomial test of ``k`` successes in ``n`` trials against p = 1/2."""
    if n == 0:
        return 1.0
    k = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class Paired:
    """Two prompts on the same examples: who was right where the other was wrong."""
    n: int
    only_a_right: int
    only_b_right: int
    mcnemar_p: float

    @property
    def significant(self) -> bool:
        return self.mcnemar_p < ALPHA


def mcnemar(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> Paired:
    """Exact (binomial) McNemar test on paired right/wrong outcomes."""
    if len(a_correct) != len(b_correct):
        raise ValueError("paired outcomes must cover the same examples")
    only_a = sum(1 for a, b in zip(a_correct, b_correct) if a and not b)
    only_b = sum(1 for a, b in zip(a_correct, b_correct) if b and not a)
    return Paired(len(a_correct), only_a, only_b, binom_two_sided(only_a, only_a + only_b))


def pair_predictions(preds_a: list, preds_b: list) -> Optional[Paired]:
    """McNemar on two per-example prediction lists (``{"index", "correct"}`` dicts), matched by
    example index; None when they share no example."""
    a = {p["index"]: bool(p["correct"]) for p in preds_a}
    b = {p["index"]: bool(p["correct"]) for p in preds_b}
    common = sorted(set(a) & set(b))
    if not common:
        return None
    return mcnemar([a[i] for i in common], [b[i] for i in common])


def interval(block: dict) -> list:
    """The stored ``ci95`` of an accuracy block (``{"accuracy", "n", ...}``), or computed for
    results stored before intervals were kept."""
    return block.get("ci95") or ci95(block["accuracy"], block.get("n") or 0)


def result_verdict(result: dict) -> Optional[str]:
    """The discrete-vs-continuous sentence for a run's result, or None when not paired."""
    pr = result.get("paired")
    d, c = result.get("discrete"), result.get("continuous")
    if not pr or not d or not c:
        return None
    p = Paired(pr["n"], pr["only_discrete_right"], pr["only_continuous_right"], pr["mcnemar_p"])
    return verdict("the discrete prompt", d["accuracy"], "the continuous prompt", c["accuracy"], p)


def seed_note(result: dict, seed) -> Optional[str]:
    """For a run trained with one seed: that seeds vary, and where to see by how much."""
    if not result.get("continuous") or not result.get("discrete") or seed is None:
        return None
    return (f"This is one seed ({seed}). Another seed samples other training examples and starts "
            f"the prompt elsewhere, and can land several points away: run the same settings "
            f"over 5 seeds (Few-shot page, or `ptuning fewshot`) to see the spread.")


def fmt_pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def fmt_acc(accuracy: float, ci: Sequence[float]) -> str:
    """``71.3% [66.0, 76.1]``."""
    return f"{fmt_pct(accuracy)} [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def verdict(name_a: str, acc_a: float, name_b: str, acc_b: float, paired: Paired) -> str:
    """One plain sentence on a paired comparison, computed from the numbers."""
    diff = 100 * (acc_b - acc_a)
    where = (f"{name_b} was right on {paired.only_b_right} examples where {name_a} was wrong, "
             f"and the reverse on {paired.only_a_right}")
    if not paired.significant:
        return (f"No significant difference between {name_a} and {name_b} "
                f"({diff:+.1f} points, McNemar p = {paired.mcnemar_p:.2g} ≥ 0.05; {where}): "
                f"on these {paired.n} examples the gap may be noise.")
    better, worse = (name_b, name_a) if paired.only_b_right > paired.only_a_right else \
        (name_a, name_b)
    lead = diff if better == name_b else -diff  # the better one's lead: the sign reads right
    return (f"{better} is significantly better than {worse} ({lead:+.1f} points, McNemar "
            f"p = {paired.mcnemar_p:.2g} < 0.05; {where}).")


def round_p(p: float) -> float:
    """A p-value kept to three significant digits (a tiny p stays tiny, never 0)."""
    return float(f"{p:.3g}")


def paired_dict(p: Optional[Paired], a: str = "discrete", b: str = "continuous") -> Optional[dict]:
    if p is None:
        return None
    return {"mcnemar_p": round_p(p.mcnemar_p), f"only_{a}_right": p.only_a_right,
            f"only_{b}_right": p.only_b_right, "n": p.n, "significant": p.significant}


def by_tag(predictions: list, tags: dict) -> dict:
    """Accuracy with its interval per tag. ``tags`` maps example index -> tag."""
    groups: dict = {}
    for p in predictions:
        t = tags.get(p["index"])
        if t is None or t == "":
            continue
        g = groups.setdefault(str(t), [0, 0])
        g[0] += bool(p["correct"])
        g[1] += 1
    return {t: {"accuracy": round(c / n, 4), "n": n, "ci95": ci95(c / n, n)}
            for t, (c, n) in sorted(groups.items())}


def mean_std(values: Sequence[float]) -> tuple:
    """Mean and sample standard deviation (0 for a single value)."""
    vals = list(values)
    if not vals:
        return (0.0, 0.0)
    m = sum(vals) / len(vals)
    if len(vals) < 2:
        return (m, 0.0)
    return (m, math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)))
