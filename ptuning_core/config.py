"""The one definition of every user-facing range and the UI's starting values.

The door (``service``) validates with these, the pages draw their number inputs from them and
clamp or refuse link values with one line naming the range, the CLI checks its flags with them.
Training hyper-parameter ranges stay in ``train.LIMITS`` (TrainConfig validates with them); this
module reads them from there (train.py imports nothing from here: no cycle)."""
from __future__ import annotations

import math
from typing import Optional

from .train import LIMITS, ConfigError

# name: (lowest, highest, whole number?, what the user reads)
RANGES = {
    "steps": (*LIMITS["steps"], True, "steps"),
    "lr": (*LIMITS["lr"], False, "learning rate"),
    "batch_size": (*LIMITS["batch_size"], True, "batch size"),
    "aux_weight": (*LIMITS["aux_weight"], False, "auxiliary loss weight"),
    "eval_every": (*LIMITS["eval_every"], True, "dev evaluation every N steps"),
    "seed": (0, 2**32 - 1, True, "seed"),
    "shots": (0, 1000, True, "k-shot (per class, 0 = all)"),
    "k": (1, 1000, True, "k (examples per class)"),
    "max_eval": (1, 100000, True, "test examples"),
    "n_seeds": (1, 5, True, "seeds"),
    "template_chars": (1, 2000, True, "template length (characters)"),
    "text_chars": (1, 20000, True, "text length (characters)"),
}

# Starting values of the pages' inputs that TrainConfig does not hold.
UI_DEFAULTS = {"shots": 16, "max_eval": 200, "eval_every": 10, "n_seeds": 3}
FEWSHOT_KS = (4, 8, 16)  # Few-shot page, SweepSpec and the CLI
MAX_TEMPLATE_CHARS = RANGES["template_chars"][1]
MAX_TEXT_CHARS = RANGES["text_chars"][1]


def bounds(name: str) -> tuple:
    lo, hi, _, _ = RANGES[name]
    return lo, hi


def range_text(name: str, hi: Optional[float] = None) -> str:
    lo, top, whole, what = RANGES[name]
    top = top if hi is None else min(top, hi)
    show = (lambda x: str(int(x))) if whole else (lambda x: f"{x:g}")
    return f"{what} must be between {show(lo)} and {show(top)}"


def check(name: str, v, hi: Optional[float] = None):
    """``v`` if it is in range (``hi`` a lower, per-server maximum), else ConfigError naming
    the range. Whole-number ranges refuse fractions."""
    lo, top, whole, _ = RANGES[name]
    top = top if hi is None else min(top, hi)
    bad = isinstance(v, bool) or not isinstance(v, (int, float)) or \
        (isinstance(v, float) and (math.isnan(v) or math.isinf(v))) or \
        (whole and isinstance(v, float) and not v.is_integer())
    if bad or not lo <= v <= top:
        raise ConfigError(f"{range_text(name, top)}, got {v!r}")
    return int(v) if whole else float(v)


def check_seed(v) -> int:
    """The one seed check (every page, the door, the CLI): 0 <= seed < 2**32."""
    return check("seed", v)


def parse(name: str, raw, hi: Optional[float] = None):
    """A value typed or from a link (text): (value, None) when it parses and is in range, else
    (None, one line naming the range). Never raises."""
    lo, top, whole, what = RANGES[name]
    try:
        s = str(raw).strip()
        if len(s) > 40:
            raise ValueError
        v = float(s)
        if whole:
            if not v.is_integer():
                raise ValueError
            v = int(s) if s.lstrip("+-").isdigit() else int(v)
    except (ValueError, OverflowError):
        return None, f"{range_text(name, hi)}; '{str(raw)[:40]}' is not a number"
    try:
        return check(name, v, hi), None
    except ConfigError as e:
        return None, str(e)


def clamp(name: str, v, hi: Optional[float] = None):
    """``v`` moved into the range (a widget's starting value never raises)."""
    lo, top, whole, _ = RANGES[name]
    top = top if hi is None else min(top, hi)
    v = min(max(v, lo), top)
    return int(v) if whole else float(v)


def parse_list(name: str, text: str, most: Optional[int] = None) -> list:
    """Comma-separated whole numbers (k values, seeds), each checked against its range; a
    ConfigError with one line (never Python's own message) otherwise."""
    what = RANGES[name][3]
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise ConfigError(f"give at least one {what} value, e.g. {FEWSHOT_KS[0]},{FEWSHOT_KS[1]}")
    if most is not None and len(parts) > most:
        raise ConfigError(f"give at most {most} {what} values")
    out = []
    for p in parts:
        v, err = parse(name, p)
        if err:
            raise ConfigError(err)
        out.append(v)
    return out


# ---- the Compare and Few-shot pages (issue 24) ---------------------------------------------
# Their fields are drawn from these ranges and a link's values are read with them (the same
# parse / clamp / one line as Train); steps and seed use the ranges above, k the "k" range.
RANGES.update({
    "compare_max_eval": (10, 5000, True, "test examples"),
    "sweep_max_eval": (10, 2000, True, "test examples per run"),
})
# starting values (steps and seed: TrainConfig's; seeds of a sweep: data.DEFAULT_SEEDS)
COMPARE_DEFAULTS = {"shots": 16, "max_eval": 200}
FEWSHOT_DEFAULTS = {"ks": (2, 4, 8, 16, 32), "n_seeds": 3, "max_eval": 100}
FEWSHOT_MAX_KS = 12  # k values in one sweep (the page and a link)


def parse_names(what: str, raw, allowed) -> tuple:
    """Comma-separated names from a link (Compare's variants, Few-shot's methods): (list, None)
    when every name is one of ``allowed``, else (None, one line naming the choices)."""
    s = str(raw)
    names = [n.strip() for n in s.split(",") if n.strip()]
    bad = [n for n in names if n not in allowed]
    if bad or len(s) > 40 * max(1, len(allowed)):
        shown = (bad[0] if bad else s)[:40]
        return None, f"unknown {what} '{shown}'; choose from {', '.join(allowed)}"
    return list(dict.fromkeys(names)), None
