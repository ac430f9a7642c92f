"""Stability of the defaults, not only their mean (issue 22): per bundled set (dev split, k=16,
5 seeds), for each candidate setting, the mean, the sample sd, the worst seed, the number of
seeds whose learned prompt is significantly better than the discrete one on the same dev
examples (exact McNemar, p < 0.05), the accuracy after 30 / 60 / 100 steps (from the prompt
snapshots of one 100-step run: the same run read at three points) and the training seconds.

    python bench/sweep_stability.py [--datasets sentiment,topics] [--seeds 13,21,42,87,100]
        [--candidates today,words,after@lr=0.001] [--steps 30,60,100]

Candidates: ``today`` = the manifest's ``ptuning_templates`` before this sweep (random
``[P*n]``, most before the input), ``after`` = the same number of pseudo tokens after the
input (its text becomes a cached frozen prefix), ``words`` = the discrete template with its prompt words
turned into ``[P:word]`` (``template.to_continuous``: pseudo tokens start at the words they
replace, fields, anchors and [MASK] stay). A candidate may change the settings after ``@``:
``after@lr=0.001,encoder=mlp,aux_weight=0.5,batch_size=16`` (others as in ``TODAY_CFG``).
Resumable: each finished cell is written to ``bench/results/sweep_stability.json`` at once and
not run again. Prints a table and one JSON line.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ptuning_core import config as C  # noqa: E402
from ptuning_core.data import bundled as D  # noqa: E402
from ptuning_core.engine.evaluate import evaluate  # noqa: E402
from ptuning_core.lm.model import PromptModel  # noqa: E402
from ptuning_core.lm.registry import get_backbone  # noqa: E402
from ptuning_core.stats import mean_std, pair_predictions  # noqa: E402
from ptuning_core.template import to_continuous  # noqa: E402
from ptuning_core.engine.train import TrainConfig, train  # noqa: E402
from ptuning_core.lm.verbalizer import Verbalizer  # noqa: E402
from bench_train import OLD_DEFAULT, cpu_model  # noqa: E402  (bench/ is the script's folder)

# the manifest's P-tuning templates (causal) before issue 22, kept here to stay measurable
TODAY = {"sentiment": "[P*4] {sentence} It was [MASK]",
         "topics": "{sentence} [P*4] This news story is about [MASK]",
         "pairs": "[P*4] {premise} Question: {hypothesis} [A:?] Answer: [MASK]",
         "facts-capital": "[P*3] The capital of {subject} is [P*3] [MASK]",
         "facts-antonym": "[P*3] The opposite of {subject} is [P*3] [MASK]"}
# the same pseudo tokens moved after the input (the examples' own text is a frozen prefix: the
# prefix cache runs it once, so a training step is ~2-3x cheaper on the CPU)
AFTER = {"sentiment": "{sentence} [P*4] It was [MASK]",
         "topics": "{sentence} [P*4] This news story is about [MASK]",
         "pairs": "{premise} Question: {hypothesis} [P*4] [A:?] Answer: [MASK]",
         "facts-capital": "The capital of {subject} is [P*6] [MASK]",
         "facts-antonym": "The opposite of {subject} is [P*6] [MASK]"}
TODAY_CFG = {"lr": OLD_DEFAULT["lr"], "batch_size": OLD_DEFAULT["batch_size"], "encoder": "lstm",
             "aux_weight": 0.0}


def split_candidate(cand: str) -> tuple:
    """``after@lr=0.001,encoder=mlp`` -> ("after", {"lr": 0.001, "encoder": "mlp"}): a template
    candidate and the settings that differ from TODAY_CFG (lr, batch_size, encoder, aux_weight)."""
    base, _, rest = cand.partition("@")
    over = {}
    for kv in filter(None, rest.split(",")):
        k, _, v = kv.partition("=")
        if k not in TODAY_CFG:
            raise SystemExit(f"unknown setting {k!r} in {cand!r} (one of {sorted(TODAY_CFG)})")
        over[k] = v if k == "encoder" else type(TODAY_CFG[k])(float(v))
    return base, over


def template_for(cand: str, name: str, info: dict) -> str:
    cand = split_candidate(cand)[0]
    if cand == "today":
        return TODAY[name]
    if cand == "after":
        return AFTER[name]
    if cand == "words":
        return to_continuous(info["templates"]["causal"])
    raise SystemExit(f"unknown candidate {cand}")


def run_cell(bb, info, tpl, seed, k, dev_rows, train_all, steps_at, disc_preds, over=None):
    st = dict(TODAY_CFG, **(over or {}))
    verb = Verbalizer.parse(info["verbalizer"]) if info.get("verbalizer") else None
    lf = info["label_field"]
    tr, _ = D.sample_k_shot(train_all, k, seed, lf, vocab=verb is None)
    pm = PromptModel(bb, tpl, verb, st["encoder"], seed, info["fields"])
    top = max(steps_at)
    every = min(steps_at)
    for s in steps_at:
        every = _gcd(every, s)
    cfg = TrainConfig(seed=seed, steps=top, snapshot_every=every, lr=st["lr"],
                      batch_size=st["batch_size"], aux_weight=st["aux_weight"])
    t = time.perf_counter()
    res = train(pm, tr, cfg, lf)
    secs = time.perf_counter() - t
    snaps = dict(res.snapshots)
    out = {}
    for s in steps_at:
        pm.set_fixed_prompt(snaps[s])
        ev = evaluate(pm, dev_rows, lf)
        p = pair_predictions(disc_preds, ev["predictions"])
        out[s] = {"accuracy": round(ev["accuracy"], 4), "mcnemar_p": p.mcnemar_p,
                  "better": bool(p.significant and p.only_b_right > p.only_a_right)}
    return out, secs, res.path


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="sentiment,topics,pairs,facts-capital,facts-antonym")
    ap.add_argument("--seeds", default=",".join(map(str, C.SEEDS)))
    ap.add_argument("--candidates", default="today,words")
    ap.add_argument("--steps", default="30,60,100")
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "sweep_stability.json"))
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    steps_at = [int(s) for s in a.steps.split(",")]
    bb = get_backbone("default", "auto")
    path = Path(a.out)
    out = json.loads(path.read_text()) if path.exists() else {}
    out.update({"k": a.k, "split": "dev", "settings": TODAY_CFG, "cpu": cpu_model()})
    out.setdefault("datasets", {})
    t0 = time.time()
    for name in a.datasets.split(","):
        info = D.dataset_info(name)
        verb = Verbalizer.parse(info["verbalizer"]) if info.get("verbalizer") else None
        lf, fields = info["label_field"], info["fields"]
        classes = verb.classes if verb else None
        train_all = D.validate(D.load_ref(f"{name}:train"), fields, lf, classes).rows
        dev_rows = D.validate(D.load_ref(f"{name}:dev"), fields, lf, classes).rows
        dres = evaluate(PromptModel(bb, info["templates"]["causal"], verb, "none", 0, fields),
                        dev_rows, lf)
        entry = out["datasets"].setdefault(name, {"cells": {}})
        entry.update(discrete=info["templates"]["causal"], discrete_dev=round(dres["accuracy"], 4),
                     n_dev=dres["n"])
        for cand in a.candidates.split(","):
            tpl = template_for(cand, name, info)
            over = split_candidate(cand)[1]
            cell = entry["cells"].setdefault(cand, {"template": tpl, "seeds": {}})
            if over:
                cell["settings"] = dict(TODAY_CFG, **over)
            for seed in seeds:
                if str(seed) in cell["seeds"]:
                    continue
                got, secs, pth = run_cell(bb, info, tpl, seed, a.k, dev_rows, train_all,
                                          steps_at, dres["predictions"], over)
                cell["seeds"][str(seed)] = {"by_steps": {str(s): v for s, v in got.items()},
                                            "train_seconds": round(secs, 1), "path": pth}
                save(path, out, name, cand)
                print(f"{name:14s} {cand:6s} seed {seed:<4d} " + "  ".join(
                    f"{s}: {v['accuracy']:.3f}{'*' if v['better'] else ' '}"
                    for s, v in got.items()) + f"  ({secs:.0f} s train, {pth}; "
                    f"{time.time() - t0:.0f} s)", flush=True)
            cell["summary"] = summarize(cell, dres["accuracy"], steps_at)
            save(path, out, name, cand)
    print_table(out)
    print(json.dumps({n: {c: v.get("summary") for c, v in d["cells"].items()}
                      for n, d in out["datasets"].items()}))
    return 0


def save(path: Path, out: dict, name: str, cand: str) -> None:
    """Write this process's cell into the file as it is now (another process may be filling
    other cells of it: never write back a stale copy of theirs)."""
    now = json.loads(path.read_text()) if path.exists() else {k: v for k, v in out.items()
                                                              if k != "datasets"}
    now.setdefault("datasets", {})
    entry = now["datasets"].setdefault(name, {"cells": {}})
    mine = out["datasets"][name]
    entry.update({k: v for k, v in mine.items() if k != "cells"})
    entry.setdefault("cells", {})[cand] = mine["cells"][cand]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(now, indent=1) + "\n")
    tmp.replace(path)


def summarize(cell: dict, disc: float, steps_at: list) -> dict:
    out = {}
    runs = list(cell["seeds"].values())
    for s in steps_at:
        at = [r["by_steps"][str(s)] for r in runs if str(s) in r["by_steps"]]  # a seed read
        accs = [v["accuracy"] for v in at]  # at other steps (an older run) is left out here
        if not accs:
            continue
        m, sd = mean_std(accs)
        out[str(s)] = {"mean": round(m, 4), "sd": round(sd, 4), "worst": min(accs),
                       "worst_minus_discrete": round(min(accs) - disc, 4),
                       "seeds_significantly_better": sum(v["better"] for v in at),
                       "seeds": len(accs)}
    out["train_seconds_mean"] = round(sum(r["train_seconds"] for r in runs) / len(runs), 1)
    return out


def print_table(out: dict) -> None:
    print(f"{'set':14s} {'cand':6s} {'steps':>5s} {'mean':>6s} {'sd':>6s} {'worst':>6s} "
          f"{'w-disc':>7s} {'sig+':>5s} {'train s':>8s}")
    for n, d in out["datasets"].items():
        for c, cell in d["cells"].items():
            for s, v in (cell.get("summary") or {}).items():
                if s == "train_seconds_mean":
                    continue
                print(f"{n:14s} {c:6s} {s:>5s} {v['mean']:6.3f} {v['sd']:6.3f} {v['worst']:6.3f} "
                      f"{v['worst_minus_discrete']:+7.3f} {v['seeds_significantly_better']:>2d}/"
                      f"{v['seeds']:<2d} {cell['summary']['train_seconds_mean']:8.1f}")


if __name__ == "__main__":
    sys.exit(main())
