"""The method's claims as reproducible experiments (E1-E6): what each compares, on which data,
with which settings (a ``small`` preset for a few CPU minutes, a ``full`` one for a GPU); a
runner that executes the cells with the existing machinery (``experiment.run_experiment`` over
Compare's variants, ``fewshot.run_sweep`` over methods), and ``conclude``: one sentence computed
from the numbers, never written in advance.

Statistics: every accuracy is the pooled accuracy of an arm over its seeds (each seed its own
k-shot sample, all on the same test examples) with a 95% Wilson interval on the pooled
predictions; the seeds' spread is reported beside it. Two arms are compared with the exact
McNemar test on their paired predictions (same seed, same test example)."""
from __future__ import annotations

import csv
import io
import threading
from dataclasses import asdict, dataclass, replace
from typing import Callable, Optional

from ptuning_core.data import bundled as D
from ptuning_core.stats import ALPHA, fmt_acc, mcnemar, mean_std, round_p, wilson
from ptuning_core import config as C
from ptuning_core.engine.train import ConfigError, TrainConfig

__all__ = ["ConfigError", "EXPERIMENTS", "Experiment", "ExperimentRequest", "ExperimentResult",
           "Plan", "Preset", "conclude", "get", "listing", "load", "plan", "record", "run",
           "summarize", "to_csv"]

STORE_KIND = "experiment"
MAX_SEEDS = 10
MAX_CELLS = 400


@dataclass(frozen=True)
class Preset:
    ks: tuple  # examples per class
    seeds: tuple
    steps: int
    max_eval: Optional[int]  # test examples (None: the whole test split)
    eval_every: int = 0  # dev evaluation every N steps (E2: convergence speed)


@dataclass(frozen=True)
class Experiment:
    id: str  # E1..E6
    short: str
    title: str
    claim: str  # the method notes' claim, in words
    dataset: str
    runner: str  # "runs": Compare variants via run_experiment; "sweep": few-shot methods
    arms: tuple  # (arm name, Compare variant or few-shot method; "discrete": the discrete prompt)
    claimed: str  # the arm the claim is about
    baseline: str  # the arm(s) it is compared with (first: the main one)
    shape: str  # "better": claimed > baseline; "crossover": baseline wins at small k, claimed
    #              at large k; "match": claimed is not worse than each other arm
    presets: dict

    def arm_names(self) -> list:
        return [a for a, _ in self.arms]


_SMALL = dict(seeds=C.SEEDS[:2], steps=30, max_eval=100)
_FULL = dict(seeds=C.SEEDS, steps=150, max_eval=None)
EXPERIMENTS = {e.id: e for e in (
    Experiment("E1", "ptuning-vs-discrete", "P-tuning vs the discrete template",
               "A learned prompt beats the hand-written discrete one on the same frozen model.",
               "sentiment", "runs", (("discrete template", "discrete"),
                                     ("P-tuning", "P-tuning (lstm)")),
               "P-tuning", "discrete template", "better",
               {"small": Preset(ks=(16,), **_SMALL), "full": Preset(ks=(32,), **_FULL)}),
    Experiment("E2", "encoder", "Prompt encoder: BiLSTM+MLP vs MLP vs none",
               "The LSTM+MLP encoder converges faster and ends better than learning the vectors "
               "directly.", "sentiment", "runs",
               (("none (prompt tuning)", "prompt tuning (none)"), ("MLP", "MLP encoder"),
                ("BiLSTM+MLP", "P-tuning (lstm)")),
               "BiLSTM+MLP", "none (prompt tuning)", "better",
               {"small": Preset(ks=(16,), eval_every=5, **_SMALL),
                "full": Preset(ks=(32,), eval_every=10, **_FULL)}),
    Experiment("E3", "anchors", "Anchors kept vs anchors turned into pseudo tokens",
               "Anchors (task words kept discrete) help the optimisation.", "pairs", "runs",
               (("anchors as pseudo tokens", "lstm, anchors as pseudo"),
                ("anchors kept", "P-tuning (lstm)")),
               "anchors kept", "anchors as pseudo tokens", "better",
               {"small": Preset(ks=(16,), **_SMALL), "full": Preset(ks=(32,), **_FULL)}),
    Experiment("E4", "aux-loss", "The auxiliary reconstruction objective on vs off",
               "Also reconstructing the text (the auxiliary loss) improves on the task loss "
               "alone.", "sentiment", "runs",
               (("task loss only", "P-tuning (lstm)"),
                ("with auxiliary loss", "lstm + auxiliary loss")),
               "with auxiliary loss", "task loss only", "better",
               {"small": Preset(ks=(16,), **_SMALL), "full": Preset(ks=(32,), **_FULL)}),
    Experiment("E5", "label-tokens", "Label words vs learned label tokens as k grows",
               "Hand-picked label words win with little data; learned label tokens win with "
               "more.", "sentiment", "sweep",
               (("label words", "ptuning"), ("learned label tokens", "ptuning-learned-labels")),
               "learned label tokens", "label words", "crossover",
               {"small": Preset(ks=(4, 16), **_SMALL),
                "full": Preset(ks=(4, 16, 64), **_FULL)}),
    Experiment("E6", "vs-finetuning", "P-tuning vs LoRA vs full fine-tuning as k grows",
               "Prompt-based training can match fine-tuning the model.", "sentiment", "sweep",
               (("P-tuning", "ptuning"), ("LoRA", "lora"), ("full fine-tuning", "full-finetune")),
               "P-tuning", "LoRA", "match",
               # fine-tuning the whole model costs ~2.5x a P-tuning step on a CPU: fewer steps
               {"small": Preset(ks=(4, 16), **{**_SMALL, "steps": 20}),
                "full": Preset(ks=(4, 16, 64), **_FULL)}),
)}


def get(name: str) -> Experiment:
    """An experiment by id (E1, e1) or short name; ConfigError (one line) otherwise."""
    key = (name or "").strip()
    for e in EXPERIMENTS.values():
        if key.upper() == e.id or key.lower() == e.short:
            return e
    raise ConfigError(f"unknown experiment '{name}': use "
                      + ", ".join(f"{e.id} ({e.short})" for e in EXPERIMENTS.values()))


@dataclass
class ExperimentRequest:
    """What to run: an experiment, a preset, and optional overrides of the preset."""
    name: str
    preset: str = "small"
    model: str = "default"
    device: str = "auto"
    dataset: Optional[str] = None  # None: the experiment's default
    seeds: Optional[list] = None
    ks: Optional[list] = None
    steps: Optional[int] = None
    max_eval: Optional[int] = None
    eval_every: Optional[int] = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    """A checked request: the experiment and the settings its cells run with."""
    experiment: Experiment
    preset_name: str
    dataset: str
    settings: Preset
    model: str
    device: str

    @property
    def n_cells(self) -> int:
        return len(self.settings.ks) * len(self.settings.seeds) * len(self.experiment.arms)

    def settings_dict(self) -> dict:
        s = asdict(self.settings)
        s.update(ks=list(s["ks"]), seeds=list(s["seeds"]), dataset=self.dataset,
                 preset=self.preset_name, model=self.model)
        return s


def plan(req: ExperimentRequest) -> Plan:
    """Check a request (user errors raise here, before anything runs) and resolve its
    settings."""
    exp = get(req.name)
    if req.preset not in exp.presets:
        raise ConfigError(f"unknown preset '{req.preset}': use {', '.join(exp.presets)}")
    p = exp.presets[req.preset]
    over = {k: v for k, v in (("steps", req.steps), ("max_eval", req.max_eval),
                              ("eval_every", req.eval_every)) if v is not None}
    if req.seeds is not None:
        over["seeds"] = tuple(int(s) for s in req.seeds)
    if req.ks is not None:
        over["ks"] = tuple(sorted({int(k) for k in req.ks}))
    p = replace(p, **over)
    if not p.seeds or len(p.seeds) > MAX_SEEDS or len(set(p.seeds)) != len(p.seeds):
        raise ConfigError(f"give 1 to {MAX_SEEDS} different seeds")
    for s in p.seeds:
        C.check_seed(s)
    if not p.ks or min(p.ks) < 1:
        raise ConfigError("k (examples per class) must be at least 1")
    if p.max_eval is not None and p.max_eval < 1:
        raise ConfigError("evaluate on at least 1 test example")
    TrainConfig(steps=p.steps, eval_every=p.eval_every).validate()
    ds = req.dataset or exp.dataset
    info = D.dataset_info(ds)  # an unknown dataset raises DataError
    if info.get("label_space") != "classes":
        raise D.DataError(f"experiments need a classification dataset; {ds} is not one")
    train = D.load_ref(f"{ds}:train").rows
    per_class: dict = {}
    for r in train:
        per_class[str(r[info["label_field"]])] = per_class.get(str(r[info["label_field"]]), 0) + 1
    most = min(per_class.values()) // 2
    if max(p.ks) > most:
        raise D.DataError(f"k={max(p.ks)} is too large for {ds}: it has enough examples for "
                          f"k up to {most} per class (train + dev)")
    out = Plan(exp, req.preset, ds, p, req.model, req.device)
    if out.n_cells > MAX_CELLS:
        raise ConfigError(f"{out.n_cells} runs is too many for one experiment (at most "
                          f"{MAX_CELLS}); use fewer seeds or k values")
    return out


# ---- running ---------------------------------------------------------------------------------
def steps_to_fraction(dev: list, fraction: float = 0.9) -> Optional[int]:
    """The first evaluated step whose dev accuracy reaches ``fraction`` of the final one."""
    if not dev:
        return None
    final = dev[-1][1]
    return next(int(s) for s, a in dev if a >= fraction * final)


def _cell(arm: str, k: int, seed: int, res: dict) -> dict:
    correct = [bool(p["correct"]) for p in res["predictions"]]
    return {"arm": arm, "k": k, "seed": seed, "accuracy": res["accuracy"], "n": len(correct),
            "correct": correct}


def run(p: Plan, callback: Optional[Callable[[dict], None]] = None,
        stop: Optional[threading.Event] = None, pool=None) -> dict:
    """Run every cell of a plan. Events: ``cell`` (one arm, k, seed starting: done/total) and
    the training/evaluation events of the runs. Returns the results (``cells``, ``status``);
    a stop keeps the cells finished so far. ``pool``: a Ray pool (``raybackend.RayPool``: its
    ``run_specs`` and ``run_sweep``) that runs the cells in parallel (the same cells, in the
    same order, as here)."""
    emit = callback or (lambda e: None)
    cells: list = []
    if pool is not None:
        runner = _run_variants_on if p.experiment.runner == "runs" else _run_sweep
        runner(p, cells, emit, stop, pool)
    else:
        runner = _run_variants if p.experiment.runner == "runs" else _run_sweep
        runner(p, cells, emit, stop)
    stopped = stop is not None and stop.is_set()
    out = {"experiment": p.experiment.id, "settings": p.settings_dict(), "cells": cells,
           "status": "stopped" if stopped else "finished"}
    if pool is not None:
        out["backend"], out["workers"] = "ray", pool.size
    return out


def _base_spec(p: Plan, k: int, seed: int):
    from ptuning_core.engine.experiment import RunSpec
    from ptuning_core.lm.registry import get_backbone
    info = D.dataset_info(p.dataset)
    kind = get_backbone(p.model, p.device).kind
    s = p.settings
    return RunSpec(template=info["ptuning_templates"][kind], train=f"{p.dataset}:train",
                   eval=f"{p.dataset}:test", verbalizer=info["verbalizer"], model=p.model,
                   label_field=info["label_field"], shots=k, device=p.device,
                   name=f"{p.experiment.id} k={k} seed={seed}", max_eval=s.max_eval,
                   train_cfg=TrainConfig(steps=s.steps, seed=seed, eval_every=s.eval_every,
                                         snapshot_every=0))


def variant_plan(p: Plan, k: int, seed: int) -> list:
    """[(arm, RunSpec or None)] of a 'runs' experiment for one k and seed (None: the discrete
    prompt, which every run evaluates anyway). ConfigError when a variant does not apply
    (anchors as pseudo tokens on a template without anchors)."""
    from ptuning_core.engine.compare import variant_specs
    base = _base_spec(p, k, seed)
    out = []
    for arm, variant in p.experiment.arms:
        if variant == "discrete":
            out.append((arm, None))
            continue
        specs = variant_specs(base, [variant])
        if not specs:
            raise ConfigError(f"'{variant}' does not apply to {p.dataset}'s template "
                              f"({base.template}): it has no anchors")
        spec = specs[0][1]
        spec.name = f"{p.experiment.id} · {arm} · k={k} seed={seed}"
        out.append((arm, spec))
    return out


def _trained_cell(arm: str, k: int, seed: int, res: dict) -> dict:
    det = res["details"]
    c = _cell(arm, k, seed, det.get("continuous") or det["discrete"])
    if res.get("train"):
        c["dev"] = [list(x) for x in res["train"]["dev"]]
        c["steps_to_90"] = steps_to_fraction(res["train"]["dev"])
        c["losses"] = res["train"]["losses"]
    return c


def _run_variants_on(p: Plan, cells: list, emit, stop, pool) -> None:
    """``_run_variants`` with every trained arm a task on the Ray pool, all at once; the cells
    come back in the local order."""
    order, specs = [], []  # (arm, k, seed, index into specs or None)
    for k in p.settings.ks:
        for seed in p.settings.seeds:
            for arm, spec in sorted(variant_plan(p, k, seed), key=lambda x: x[1] is None):
                order.append((arm, k, seed, None if spec is None else len(specs)))
                if spec is not None:
                    specs.append(spec)
    total = p.n_cells
    emit({"type": "cell", "done": 0, "total": total})
    got: dict = {}
    for i, res in pool.run_specs(specs, stop=stop, keep_details=True,
                                 callback=lambda i, e: emit(e)):
        if isinstance(res, BaseException):
            raise res
        got[i] = res
        arm, k, seed, _ = next(o for o in order if o[3] == i)
        emit({"type": "cell", "arm": arm, "k": k, "seed": seed, "done": len(got),
              "total": total})
    if stop is not None and stop.is_set():
        return  # runs cut short are not measurements
    disc = None
    for arm, k, seed, i in order:
        if i is None:
            cells.append(_cell(arm, k, seed, disc))
        else:
            cells.append(_trained_cell(arm, k, seed, got[i]))
            disc = got[i]["details"]["discrete"]
    emit({"type": "cell", "done": total, "total": total})


def _run_variants(p: Plan, cells: list, emit, stop) -> None:
    from ptuning_core.engine.experiment import run_experiment
    total, done = p.n_cells, 0
    for k in p.settings.ks:
        for seed in p.settings.seeds:
            arms = variant_plan(p, k, seed)
            disc = None
            # the trained arms first; the discrete prompt's arm reuses their evaluation of it
            for arm, spec in sorted(arms, key=lambda x: x[1] is None):
                if stop is not None and stop.is_set():
                    return
                emit({"type": "cell", "arm": arm, "k": k, "seed": seed, "done": done,
                      "total": total})
                if spec is None:
                    cells.append(_cell(arm, k, seed, disc))
                else:
                    res = run_experiment(spec, callback=emit, stop=stop, keep_details=True)
                    if stop is not None and stop.is_set():
                        return  # a run cut short is not a measurement: it is left out
                    cells.append(_trained_cell(arm, k, seed, res))
                    disc = disc or res["details"]["discrete"]
                done += 1
    emit({"type": "cell", "done": done, "total": total})


def _run_sweep(p: Plan, cells: list, emit, stop, pool=None) -> None:
    from ptuning_core.engine.fewshot import SweepSpec, run_sweep
    arm_of = {m: a for a, m in p.experiment.arms}
    s = p.settings
    spec = SweepSpec(dataset=p.dataset, model=p.model, ks=list(s.ks), seeds=list(s.seeds),
                     methods=[m for _, m in p.experiment.arms], steps=s.steps,
                     max_eval=s.max_eval, device=p.device, keep_correct=True)
    total = p.n_cells
    emit({"type": "cell", "done": 0, "total": total})

    finished = set()  # cells that ended before any stop (a run cut short is left out)

    def on_event(e):
        if e.get("type") == "cell":  # a sweep cell finished: ours, with its arm's name
            r = e
            if stop is not None and stop.is_set():
                return
            finished.add((r["method"], r["k"], r["seed"]))
            emit({"type": "cell", "arm": arm_of[r["method"]], "k": r["k"], "seed": r["seed"],
                  "done": r["done"], "total": total})
        else:
            emit(e)
    if pool is None:
        rows = run_sweep(spec, callback=on_event, stop=stop)
    else:  # cells end in any order on the pool; the rows come back in the sweep's order
        rows = pool.run_sweep(spec, callback=on_event, stop=stop)
    cells += [{"arm": arm_of[r["method"]], "k": r["k"], "seed": r["seed"],
               "accuracy": r["accuracy"], "n": r["n_test"], "correct": list(r["correct"])}
              for r in rows if (r["method"], r["k"], r["seed"]) in finished]


# ---- numbers ---------------------------------------------------------------------------------
def _pooled(cells: list) -> tuple:
    """(right, n) over an arm's seeds. An arm whose predictions are the same for every seed
    (the discrete prompt: nothing is trained) counts its test examples once."""
    if len(cells) > 1 and all(c["correct"] == cells[0]["correct"] for c in cells):
        cells = cells[:1]
    right = sum(sum(c["correct"]) for c in cells)
    n = sum(len(c["correct"]) for c in cells)
    return right, n


def summarize(results: dict) -> list:
    """Per arm and k: pooled accuracy with its 95% interval, the seeds' mean and spread, and
    (E2) the mean steps to 90% of the final dev accuracy."""
    exp = get(results["experiment"])
    out = []
    ks = sorted({c["k"] for c in results["cells"]})
    for k in ks:
        for arm in exp.arm_names():
            cs = [c for c in results["cells"] if c["arm"] == arm and c["k"] == k]
            if not cs:
                continue
            right, n = _pooled(cs)
            lo, hi = wilson(right, n)
            m, sd = mean_std([c["accuracy"] for c in cs])
            row = {"experiment": exp.id, "arm": arm, "k": k, "seeds": len(cs),
                   "accuracy": round(right / n, 4) if n else 0.0,
                   "ci95": [round(lo, 4), round(hi, 4)], "n": n,
                   "seed_mean": round(m, 4), "seed_std": round(sd, 4)}
            steps = [c["steps_to_90"] for c in cs if c.get("steps_to_90") is not None]
            if steps:
                row["steps_to_90"] = round(sum(steps) / len(steps), 1)
            out.append(row)
    return out


def paired(results: dict, a: str, b: str, k: int):
    """Exact McNemar between arms ``a`` and ``b`` at ``k`` over their common seeds (each seed's
    predictions on the same test examples); None when they share no seed."""
    by = {(c["arm"], c["seed"]): c["correct"] for c in results["cells"] if c["k"] == k}
    seeds = sorted({s for (arm, s) in by if arm == a} & {s for (arm, s) in by if arm == b})
    if not seeds:
        return None
    xa, xb = [], []
    for s in seeds:
        n = min(len(by[(a, s)]), len(by[(b, s)]))
        xa += by[(a, s)][:n]
        xb += by[(b, s)][:n]
    return mcnemar(xa, xb)


def _acc(summary: list, arm: str, k: int) -> Optional[dict]:
    return next((r for r in summary if r["arm"] == arm and r["k"] == k), None)


def _side(a: str, b: str, pr) -> str:
    """Which of two arms is significantly better: a, b, or '' (no significant difference)."""
    if pr is None or pr.mcnemar_p >= ALPHA:
        return ""
    return b if pr.only_b_right > pr.only_a_right else a


def _clause(summary: list, a: str, b: str, k: int, pr) -> str:
    ra, rb = _acc(summary, a, k), _acc(summary, b, k)
    diff = 100 * (rb["accuracy"] - ra["accuracy"])
    p = "" if pr is None else f", McNemar p = {round_p(pr.mcnemar_p):.2g} on {pr.n} paired " \
                              f"predictions"
    win = _side(a, b, pr)
    if not win:
        return f"no significant difference between {b} and {a} ({diff:+.1f} points{p})"
    lose = a if win == b else b
    return f"{win} is significantly better than {lose} ({abs(diff):.1f} points{p})"


def _scores(summary: list, arms: list, k: int) -> str:
    parts = []
    for arm in arms:
        r = _acc(summary, arm, k)
        if r is not None:
            parts.append(f"{arm} {fmt_acc(r['accuracy'], r['ci95'])}")
    return ", ".join(parts)


def conclude(exp, results: dict) -> str:
    """One sentence on what this run of the experiment showed, computed from its numbers:
    accuracies with 95% intervals, the paired test, and whether the claim is shown, not shown
    (no significant difference) or contradicted (the reverse is significant)."""
    exp = get(exp) if isinstance(exp, str) else exp
    summary = summarize(results)
    if not summary:
        return f"{exp.id}: no cell finished, so nothing can be concluded."
    ks = sorted({r["k"] for r in summary})
    seeds = max(r["seeds"] for r in summary)
    n_test = len(results["cells"][0]["correct"])
    ds = (results.get("settings") or {}).get("dataset") or exp.dataset
    head = (f"{exp.id} on {ds} ({seeds} seed{'s' if seeds != 1 else ''} × {n_test} test "
            f"examples, k = {', '.join(map(str, ks))} per class)")
    a, b = exp.baseline, exp.claimed
    if exp.shape == "better":
        parts = []
        sides = []
        for k in ks:
            pr = paired(results, a, b, k)
            sides.append(_side(a, b, pr))
            parts.append(f"{'k=' + str(k) + ': ' if len(ks) > 1 else ''}"
                         f"{_scores(summary, exp.arm_names()[::-1], k)}; "
                         f"{_clause(summary, a, b, k, pr)}")
        if all(s == b for s in sides):
            verdict = "the claim is shown here"
        elif any(s == a for s in sides):
            verdict = f"here the reverse of the claim: {a} did better"
        else:
            verdict = "the claim is not shown here (no significant difference)"
        extra = _convergence(summary, exp, ks[-1]) if exp.id == "E2" else ""
        return f"{head}: " + "; ".join(parts) + f"{extra} — {verdict}."
    if exp.shape == "crossover":
        parts, sides = [], []
        for k in ks:
            pr = paired(results, a, b, k)
            sides.append(_side(a, b, pr))
            parts.append(f"k={k}: {_scores(summary, [a, b], k)}, {_clause(summary, a, b, k, pr)}")
        small, large = sides[0], sides[-1]
        if small == b or (large == a and len(ks) > 1):
            verdict = "here the reverse of the claim"
        elif small == a and large == b and len(ks) > 1:
            verdict = f"the claim is shown here: {a} win at the smallest k, {b} at the largest"
        elif small == a or large == b:
            half = f"{a} win at the smallest k" if small == a else f"{b} win at the largest k"
            verdict = f"the claim is partly shown here: {half}, the other end shows no " \
                      f"significant difference"
        else:
            verdict = "the claim is not shown here (no significant difference at either end)"
        return f"{head}: " + "; ".join(parts) + f" — {verdict}."
    # match: the claimed arm against each other arm
    others = [x for x in exp.arm_names() if x != b]
    parts = []
    for k in ks:
        cl = [f"vs {o}: {_clause(summary, o, b, k, paired(results, o, b, k))}" for o in others]
        parts.append(f"k={k}: {_scores(summary, [b] + others, k)}; " + "; ".join(cl))
    k = ks[-1]
    worse = [o for o in others if _side(o, b, paired(results, o, b, k)) == o]
    better = [o for o in others if _side(o, b, paired(results, o, b, k)) == b]
    if worse:
        verdict = (f"the claim is not shown here: at k={k} {b} is significantly worse than "
                   f"{' and '.join(worse)}")
    elif len(better) == len(others):
        verdict = f"the claim is shown here, and more: at k={k} {b} is significantly better " \
                  f"than {' and '.join(better)}"
    else:
        verdict = (f"the claim holds here: at k={k} {b} is not significantly worse than "
                   f"{' or '.join(others)} (no significant difference is not proof of equality "
                   f"on {n_test} test examples)")
    return f"{head}: " + "; ".join(parts) + f" — {verdict}."


def _convergence(summary: list, exp: Experiment, k: int) -> str:
    steps = {r["arm"]: r.get("steps_to_90") for r in summary if r["k"] == k}
    if not any(v is not None for v in steps.values()):
        return ""
    txt = ", ".join(f"{arm} {steps[arm]:g}" for arm in exp.arm_names()[::-1]
                    if steps.get(arm) is not None)
    a, b = steps.get(exp.baseline), steps.get(exp.claimed)
    how = ""
    if a is not None and b is not None:
        speed = "faster than" if b < a else "slower than" if b > a else "as fast as"
        how = f" ({exp.claimed} {speed} {exp.baseline}; a mean over seeds, not a test)"
    return f"; steps to 90% of the final dev accuracy: {txt}{how}"


# ---- storing and exporting -------------------------------------------------------------------
def headline(exp: Experiment, summary: list) -> tuple:
    """(baseline, claimed) accuracy blocks at the largest k, shaped like a run's
    ``discrete``/``continuous`` so lists and the class board show an experiment like a run."""
    if not summary:
        return None, None
    k = max(r["k"] for r in summary)
    out = []
    for arm in (exp.baseline, exp.claimed):
        r = _acc(summary, arm, k)
        out.append(None if r is None else {"template": f"{arm} (k={k})", "accuracy":
                                           r["accuracy"], "ci95": r["ci95"], "n": r["n"]})
    return tuple(out)


def record(store, owner: str, req: ExperimentRequest, results: dict) -> str:
    """Store a finished (or stopped) experiment as a run of kind 'experiment'; its id."""
    exp = get(results["experiment"])
    summary = summarize(results)
    base, claimed = headline(exp, summary)
    cfg = {"experiment": exp.id, "request": req.to_dict(), "template": exp.title,
           "train": (results.get("settings") or {}).get("dataset") or exp.dataset,
           "model": req.model}
    rid = store.create(f"{exp.id} {exp.title}", cfg, owner, kind=STORE_KIND, status="running")
    result = {"experiment": exp.id, "title": exp.title, "claim": exp.claim,
              "settings": results.get("settings"), "summary": summary,
              "sentence": conclude(exp, results), "discrete": base, "continuous": claimed,
              "details": {"cells": results["cells"]}}
    store.finish(rid, results.get("status", "finished"), result)
    return rid


@dataclass(frozen=True)
class ExperimentResult:
    """A stored experiment as the pages see it."""
    id: str
    experiment: str  # E1..E6
    title: str
    claim: str
    status: str
    settings: dict
    summary: list  # per arm and k: accuracy, ci95, n, seeds' mean and spread (steps_to_90)
    sentence: str  # computed from the numbers
    cells: list  # per arm, k and seed (with right/wrong per test example)
    owner: str = ""
    shared: bool = False
    created: float = 0.0

    def results(self) -> dict:
        return {"experiment": self.experiment, "settings": self.settings, "cells": self.cells,
                "status": self.status}

    def csv(self) -> str:
        return to_csv(self.results())

    @classmethod
    def from_store(cls, store, rid: str) -> Optional["ExperimentResult"]:
        d = load(store, rid)
        if d is None:
            return None
        exp = get(d["experiment"])
        return cls(rid, exp.id, exp.title, exp.claim, d["status"], d.get("settings") or {},
                   d.get("summary") or summarize(d), d.get("sentence") or conclude(exp, d),
                   d["cells"], d.get("owner") or "", bool(d.get("shared")), d["created"])


def load(store, rid: str) -> Optional[dict]:
    """A stored experiment's results (``experiment``, ``settings``, ``cells``, ``status``) and
    what was computed from them (``summary``, ``sentence``)."""
    run = store.get(rid)
    if run is None or run.get("kind") != STORE_KIND or not run.get("result"):
        return None
    res = run["result"]
    return {"id": rid, "experiment": res["experiment"], "settings": res.get("settings"),
            "cells": (res.get("details") or {}).get("cells", []), "status": run["status"],
            "summary": res.get("summary"), "sentence": res.get("sentence"),
            "owner": run.get("owner"), "shared": run.get("shared"), "created": run["created"]}


CSV_COLUMNS = ("experiment", "arm", "k", "seed", "accuracy", "ci95_lo", "ci95_hi", "n",
               "seed_mean", "seed_std", "steps_to_90")


def to_csv(results: dict) -> str:
    """The summary (one row per arm and k, seed empty) and every cell (one row per arm, k and
    seed), each accuracy with its 95% interval."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_COLUMNS, extrasaction="ignore")
    w.writeheader()
    for r in summarize(results):
        w.writerow({**r, "seed": "", "ci95_lo": r["ci95"][0], "ci95_hi": r["ci95"][1]})
    for c in results["cells"]:
        lo, hi = wilson(sum(c["correct"]), len(c["correct"]))
        w.writerow({"experiment": results["experiment"], **c, "ci95_lo": round(lo, 4),
                    "ci95_hi": round(hi, 4)})
    return buf.getvalue()


def listing() -> list:
    """Each experiment's id, short name, title, claim, dataset and presets (for --list)."""
    return [{"id": e.id, "short": e.short, "title": e.title, "claim": e.claim,
             "dataset": e.dataset, "arms": e.arm_names(),
             "presets": {k: {**asdict(v), "ks": list(v.ks), "seeds": list(v.seeds)}
                         for k, v in e.presets.items()}} for e in EXPERIMENTS.values()]
