"""The one definition of every default and limit: the training settings (``TrainConfig``
and ``LIMITS``), the user-facing ranges, the starting values of the pages' inputs, the few-shot
k list and seeds, the number of test examples, the template of an uploaded dataset.

The door (``service``) validates with these, the pages draw their inputs from them and clamp or
refuse link values with one line naming the range, the CLI takes its flag defaults from them and
checks its flags with them, the benchmarks start from them. tests/test_config.py fails when a
page or the CLI restates one. This module imports nothing of ptuning_core: every layer may use
it (``train`` re-exports ``TrainConfig``, ``LIMITS`` and ``ConfigError``)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

PRECISIONS = ("auto", "fp32", "bf16")  # precision.py resolves them

LIMITS = {"steps": (1, 100000), "lr": (1e-6, 1.0), "batch_size": (1, 512),
          "aux_weight": (0.0, 10.0), "eval_every": (0, 100000), "patience": (0, 1000),
          "clip": (0.0, 1000.0), "snapshot_every": (0, 100000), "lora_rank": (1, 256),
          "lora_lr": (1e-7, 1.0), "full_lr": (1e-8, 1.0)}
ENCODERS = ("lstm", "mlp", "none")  # the paper's BiLSTM+MLP, an MLP, none (prompt tuning)
LABEL_TOKENS = ("words", "learned")
LABEL_INITS = ("word", "random")
FINETUNE = ("", "lora", "full")


class ConfigError(ValueError):
    """A setting out of its range or unknown; the message is one line for the user."""


@dataclass
class TrainConfig:
    # The one place that holds the defaults (CLI, Train page, Compare, Few-shot, benchmarks).
    # Chosen by bench/sweep_defaults.py on the bundled sets' dev splits, k=16, 3 seeds
    # (bench/results/sweep_defaults.json): lr 1e-3 and batch 16 gave lower means, the auxiliary
    # loss at 0.5 a lower mean and twice the spread, so it stays off by default.
    steps: int = 60
    lr: float = 3e-3
    batch_size: int = 8
    seed: int = 13
    encoder: str = "lstm"
    aux_weight: float = 0.0
    eval_every: int = 0  # 0: no dev evaluation during training
    patience: int = 0  # evaluations without improvement before stopping early (0: never)
    clip: float = 1.0
    weight_decay: float = 0.0
    fast: bool = True  # prefix cache for causal LMs
    prefix_cache_mb: int = 1024
    # The frozen LM's forward: fp32, bf16, or auto = bf16 where the hardware does it natively
    # (a CUDA GPU with bf16, a CPU with AVX-512 BF16 / AMX); the encoder always trains in fp32.
    # fp32 by measurement (bench/results/cpu_2core_perf.json): bf16 steps are 1.85x faster on
    # the default template here, but cost accuracy (sentiment seed 21: 0.505 vs 0.805).
    precision: str = "fp32"
    snapshot_every: int = 2  # store pseudo embeddings every N steps (0: never): the replay slider
    # words: each class is scored by its label words; learned: by a trainable vector per class
    # (label_tokens.py), started at its first label word ("word") or at random ("random")
    label_tokens: str = "words"
    label_init: str = "word"
    # fine-tuning baselines (finetune.py) instead of a prompt: "" (P-tuning), "lora" or "full"
    finetune: str = ""
    lora_rank: int = 8
    lora_lr: float = 5e-4
    full_lr: float = 2e-5

    def validate(self) -> "TrainConfig":
        for name, (lo, hi) in LIMITS.items():
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or math.isnan(v) \
                    or not lo <= v <= hi:
                raise ConfigError(f"{name} must be between {lo} and {hi}, got {v}")
        if self.encoder not in ENCODERS:
            raise ConfigError(f"encoder must be lstm, mlp or none, got '{self.encoder}'")
        if self.label_tokens not in LABEL_TOKENS:
            raise ConfigError(f"label tokens must be words or learned, got '{self.label_tokens}'")
        if self.finetune not in FINETUNE:
            raise ConfigError(f"fine-tuning must be lora or full, got '{self.finetune}'")
        if self.label_init not in LABEL_INITS:
            raise ConfigError(f"label init must be word or random, got '{self.label_init}'")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be {', '.join(PRECISIONS)}, got "
                              f"'{self.precision}'")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """From ``to_dict``, also of runs stored before ``precision`` replaced ``amp`` (bf16
        autocast on CUDA only): amp off reads as fp32, on as auto."""
        d = dict(d)
        if "amp" in d:
            amp = d.pop("amp")
            d.setdefault("precision", "auto" if amp else "fp32")
        return cls(**d)


# Defaults that TrainConfig does not hold (a run's data, the sweeps, the evaluations).
SEEDS = (13, 21, 42, 87, 100)  # the seeds sweeps and experiments take, in this order
N_SEEDS = 3  # a few-shot sweep's seeds by default (SEEDS[:3]); 5 for a full study
FEWSHOT_KS = (4, 8, 16)  # k per class of a few-shot sweep: Few-shot page, SweepSpec, the CLI
SHOTS = 16  # k-shot (examples per class) of a run: Train and Compare pages
MAX_EVAL = 200  # test examples of a run, a comparison, a sweep cell, a retest
MAX_CLASSES = 50  # classes of a dataset the user brings (an upload, a Hugging Face dataset)
NEAREST = 5  # nearest vocabulary tokens shown per pseudo token (Embeddings page)
# Starting values of the pages' inputs that TrainConfig does not hold (eval_every: TrainConfig's).
UI_DEFAULTS = {"shots": SHOTS, "max_eval": MAX_EVAL, "n_seeds": N_SEEDS}

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
    "n_seeds": (1, len(SEEDS), True, "seeds"),
    "nearest": (1, 15, True, "nearest tokens per pseudo token"),
    "template_chars": (1, 2000, True, "template length (characters)"),
    "text_chars": (1, 20000, True, "text length (characters)"),
}

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


def upload_templates(text_fields: list) -> dict:
    """The starting templates of a dataset the user brings (an upload, a Hugging Face
    dataset): every text field, then "It was [MASK]"; the P-tuning one puts four pseudo tokens
    after the input, on the sweep's sets the position that was good on every set and stable
    over seeds (bench/results/sweep_defaults.json). ``templates`` and ``ptuning_templates`` of
    the data context, per model kind."""
    tpl = " ".join("{" + f + "}" for f in text_fields) + " It was [MASK]"
    ptpl = tpl.replace(" It was", " [P*4] It was")
    return {"templates": {"causal": tpl, "masked": tpl + " ."},
            "ptuning_templates": {"causal": ptpl, "masked": ptpl + " ."}}


# ---- the Compare and Few-shot pages (issue 24) ---------------------------------------------
# Their fields are drawn from these ranges and a link's values are read with them (the same
# parse / clamp / one line as Train); steps and seed use the ranges above, k the "k" range.
RANGES.update({
    "compare_max_eval": (10, 5000, True, "test examples"),
    "sweep_max_eval": (10, 2000, True, "test examples per run"),
})
# starting values: the one definition above (steps and seed: TrainConfig's; seeds: SEEDS)
COMPARE_DEFAULTS = {"shots": SHOTS, "max_eval": MAX_EVAL}
FEWSHOT_DEFAULTS = {"ks": FEWSHOT_KS, "n_seeds": N_SEEDS, "max_eval": MAX_EVAL}
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
