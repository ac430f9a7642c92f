"""Discrete vs continuous on the same split: several prompt variants, one table."""
from __future__ import annotations

import copy
import threading
from typing import Callable, Optional

from ptuning_core.engine.experiment import RunSpec, prepare, run_recorded
from ptuning_core.store.runs import RunStore
from ptuning_core.engine.train import ConfigError
from ptuning_core.template import anchors_to_pseudo, parse, to_discrete

VARIANTS = {
    "P-tuning (lstm)": {"encoder": "lstm"},
    "MLP encoder": {"encoder": "mlp"},
    "prompt tuning (none)": {"encoder": "none"},
    "lstm + auxiliary loss": {"encoder": "lstm", "aux_weight": 0.5},
    "lstm, anchors as pseudo": {"encoder": "lstm", "no_anchors": True},
    "lstm, learned label tokens": {"encoder": "lstm", "label_tokens": "learned"},
    # baselines: the discrete template, the model itself trained (a copy; finetune.py)
    "LoRA fine-tuning": {"encoder": "lstm", "finetune": "lora"},
    "full fine-tuning": {"encoder": "lstm", "finetune": "full"},
}


def variant_specs(base: RunSpec, names: list) -> list:
    out = []
    for n in names:
        if n not in VARIANTS:
            raise ConfigError(f"unknown variant '{n}': use one of {', '.join(VARIANTS)}")
        v = VARIANTS[n]
        s = copy.deepcopy(base)
        s.name = f"{base.name or 'compare'} · {n}"
        s.train_cfg.encoder = v["encoder"]
        s.train_cfg.aux_weight = v.get("aux_weight", base.train_cfg.aux_weight)
        s.train_cfg.label_tokens = v.get("label_tokens", base.train_cfg.label_tokens)
        s.train_cfg.finetune = v.get("finetune", "")
        if v.get("no_anchors"):
            if not any(seg.role == "anchor" for seg in parse(base.template).segments):
                continue
            s.template = anchors_to_pseudo(base.template)
            s.discrete_template = base.discrete_template or to_discrete(base.template)
        out.append((n, s))
    return out


def run_comparison(base: RunSpec, names: list, store: RunStore, owner: str = "",
                   callback: Optional[Callable[[dict], None]] = None,
                   stop: Optional[threading.Event] = None, runner=run_recorded) -> dict:
    """``runner``: how each variant's run is run and stored (``run_recorded``, or the Ray
    backend's)."""
    emit = callback or (lambda e: None)
    specs = variant_specs(base, names)
    for _, s in specs:
        prepare(s)  # every user error surfaces before anything runs
    results = []
    for i, (n, s) in enumerate(specs):
        if stop is not None and stop.is_set():
            break
        emit({"type": "variant", "name": n, "index": i, "total": len(specs)})
        rid = store.create(s.name, s.to_dict(), owner, status="running")
        runner(s, store, rid, callback=emit, stop=stop)
        results.append({"variant": n, "run_id": rid})
    summary = {"base": base.to_dict(), "variants": results}
    cid = store.create(base.name or "comparison", base.to_dict(), owner, kind="compare",
                       status="running")
    store.finish(cid, "finished", summary)
    summary["id"] = cid
    return summary


def changed_predictions(disc: dict, cont: dict) -> list:
    """Examples whose prediction differs between two evaluations (same eval rows)."""
    by = {p["index"]: p for p in disc["predictions"]}
    out = []
    for p in cont["predictions"]:
        q = by.get(p["index"])
        if q is not None and q["pred"] != p["pred"]:
            out.append({"text": p["text"], "gold": p["gold"], "discrete": q["pred"],
                        "continuous": p["pred"], "discrete probs": q.get("probs"),
                        "continuous probs": p.get("probs"),
                        "fixed": p["correct"] and not q["correct"]})
    return out


def scored(res: dict) -> tuple:
    """(accuracy block, per-example predictions) of a variant's prompt: the learned one, or the
    discrete one when the variant has no pseudo token."""
    key = "continuous" if res.get("continuous") else "discrete"
    return res[key], res["details"][key]["predictions"]


def comparison_rows(variants: list) -> list:
    """The Compare table: the discrete prompt, then each variant, each accuracy with its 95%
    interval and an exact McNemar test against the discrete prompt on the same examples.
    ``variants``: [(name, stored run result with details)]."""
    from ptuning_core.stats import fmt_acc, interval, pair_predictions, round_p, verdict
    first = variants[0][1]
    d = first["discrete"]
    d_preds = first["details"]["discrete"]["predictions"]
    rows = [{"prompt": "discrete", "template": d["template"], "accuracy": d["accuracy"],
             "95% CI": fmt_acc(d["accuracy"], interval(d)), "n": d["n"], "Δ vs discrete": 0.0,
             "p (McNemar)": None, "verdict": ""}]
    for name, res in variants:
        c, preds = scored(res)
        p = pair_predictions(d_preds, preds)
        rows.append({"prompt": name, "template": c["template"], "accuracy": c["accuracy"],
                     "95% CI": fmt_acc(c["accuracy"], interval(c)), "n": c["n"],
                     "Δ vs discrete": c["accuracy"] - d["accuracy"],
                     "p (McNemar)": None if p is None else round_p(p.mcnemar_p),
                     "verdict": "" if p is None else verdict("discrete", d["accuracy"], name,
                                                             c["accuracy"], p)})
    return rows


def pairwise_tests(variants: list) -> list:
    """Exact McNemar between every two variants (same examples), with the verdict in words."""
    from ptuning_core.stats import pair_predictions, round_p, verdict
    out = []
    for i, (na, ra) in enumerate(variants):
        for nb, rb in variants[i + 1:]:
            (ca, pa), (cb, pb) = scored(ra), scored(rb)
            p = pair_predictions(pa, pb)
            if p is None:
                continue
            out.append({"A": na, "B": nb, "A right, B wrong": p.only_a_right,
                        "B right, A wrong": p.only_b_right,
                        "p (McNemar)": round_p(p.mcnemar_p),
                        "verdict": verdict(na, ca["accuracy"], nb, cb["accuracy"], p)})
    return out
