"""The sweep that chose the default P-tuning templates and training settings.

On each bundled classification set, k=16 examples per class (the same samples for every
setting, per seed), scored on the dev split (never on test). Stage 1 compares where the pseudo
tokens go (after the input, before it, both) at lr 3e-3, 60 steps, batch 8. Stage 2 takes each
set's best position and varies lr, batch and the auxiliary-loss weight. A setting is chosen by
its mean over seeds; the spread is reported beside it. Prints a table and one JSON line, and
writes bench/results/sweep_defaults.json.

    python bench/sweep_defaults.py [--seeds 13,21,42] [--k 16] [--datasets sentiment,topics,pairs]
        [--stage2 sentiment=lr,batch,aux;topics=aux]

Resumable: every finished cell is written to the results file at once, and a cell already there
(same dataset, template and settings) is not run again.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from ptuning_core import config as C  # noqa: E402
from ptuning_core.data import bundled as D  # noqa: E402
from ptuning_core.engine.evaluate import evaluate  # noqa: E402
from ptuning_core.lm.model import PromptModel  # noqa: E402
from ptuning_core.lm.registry import get_backbone  # noqa: E402
from ptuning_core.stats import mean_std  # noqa: E402
from ptuning_core.engine.train import TrainConfig, train  # noqa: E402
from ptuning_core.lm.verbalizer import Verbalizer  # noqa: E402

POSITIONS = {
    "sentiment": {"after": "{sentence} [P*4] It was [MASK]",
                  "before": "[P*4] {sentence} It was [MASK]",
                  "both": "[P*2] {sentence} [P*2] It was [MASK]"},
    "topics": {"after": "{sentence} [P*4] This news story is about [MASK]",
               "before": "[P*4] {sentence} This news story is about [MASK]",
               "both": "[P*2] {sentence} [P*2] This news story is about [MASK]"},
    "pairs": {"between": "{premise} [P*2] {hypothesis} [A:?] [P*2] Answer: [MASK]",
              "before": "[P*4] {premise} Question: {hypothesis} [A:?] Answer: [MASK]",
              "both": "[P*2] {premise} Question: {hypothesis} [A:?] [P*2] Answer: [MASK]"},
}
BASE = {"lr": 3e-3, "steps": 60, "batch_size": 8, "aux_weight": 0.0}
STAGE2 = {"lr": {"lr": 1e-3}, "batch": {"batch_size": 16}, "aux": {"aux_weight": 0.5}}


def run_cell(bb, name, template, settings, seed, k, dev_rows, train_all, info):
    verb = Verbalizer.parse(info["verbalizer"])
    lf = info["label_field"]
    tr, _ = D.sample_k_shot(train_all, k, seed, lf)
    pm = PromptModel(bb, template, verb, "lstm", seed, info["fields"])
    cfg = TrainConfig(seed=seed, snapshot_every=0, **settings)
    t = time.perf_counter()
    train(pm, tr, cfg, lf)
    secs = time.perf_counter() - t
    return evaluate(pm, dev_rows, lf)["accuracy"], secs


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default=",".join(map(str, C.SEEDS[:C.N_SEEDS])))
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--datasets", default="sentiment,topics,pairs")
    ap.add_argument("--stage2", default="",
                    help="per dataset, which stage-2 changes to run (default: all): "
                         "'sentiment=lr,batch,aux;topics=aux'")
    ap.add_argument("--positions", default="",
                    help="per dataset, which positions to try (default: all): 'pairs=between,before'")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "sweep_defaults.json"))
    a = ap.parse_args()
    positions = {d: [c for c in cs.split(",") if c] for d, _, cs in
                 (x.partition("=") for x in a.positions.split(";") if x)}
    seeds = [int(s) for s in a.seeds.split(",")]
    stage2 = {d: [c for c in cs.split(",") if c] for d, _, cs in
              (x.partition("=") for x in a.stage2.split(";") if x)}
    bb = get_backbone("default", "auto")
    path = Path(a.out)
    out = json.loads(path.read_text()) if path.exists() else {}
    if out.get("k") != a.k or out.get("seeds") != seeds:
        out = {"k": a.k, "seeds": seeds, "split": "dev", "base": BASE, "datasets": {}}
    t0 = time.time()
    for name in a.datasets.split(","):
        info = D.dataset_info(name)
        verb = Verbalizer.parse(info["verbalizer"])
        lf, fields = info["label_field"], info["fields"]
        train_all = D.validate(D.load_ref(f"{name}:train"), fields, lf, verb.classes).rows
        dev_rows = D.validate(D.load_ref(f"{name}:dev"), fields, lf, verb.classes).rows
        disc = evaluate(PromptModel(bb, info["templates"]["causal"], verb, "none", 0, fields),
                        dev_rows, lf)["accuracy"]
        entry = out["datasets"].setdefault(name, {"cells": []})
        entry.update(discrete_dev=round(disc, 4), n_dev=len(dev_rows))
        cells = entry["cells"]

        def measure(pos, settings):
            for c in cells:
                if c["template"] == POSITIONS[name][pos] and all(c[k] == v for k, v in
                                                                 settings.items()):
                    return c
            accs, secs = [], []
            for s in seeds:
                acc, sec = run_cell(bb, name, POSITIONS[name][pos], settings, s, a.k, dev_rows,
                                    train_all, info)
                accs.append(acc)
                secs.append(sec)
            m, sd = mean_std(accs)
            cell = {"position": pos, "template": POSITIONS[name][pos], **settings,
                    "accuracies": [round(x, 4) for x in accs], "mean": round(m, 4),
                    "std": round(sd, 4), "train_seconds": round(sum(secs) / len(secs), 1)}
            cells.append(cell)
            path.write_text(json.dumps(out, indent=1) + "\n")
            print(f"{name:10s} {pos:8s} lr={settings['lr']:<7g} bs={settings['batch_size']:<3d} "
                  f"aux={settings['aux_weight']:<4g} dev acc {m:.3f} ± {sd:.3f}  "
                  f"{cell['accuracies']}  ({time.time() - t0:.0f}s)", flush=True)
            return cell

        for pos in positions.get(name, list(POSITIONS[name])):
            measure(pos, dict(BASE))
        best_pos = max(cells, key=lambda c: (c["mean"], -c["std"]))["position"]
        for change in stage2.get(name, list(STAGE2)):
            measure(best_pos, {**BASE, **STAGE2[change]})
        entry["best"] = max(cells, key=lambda c: (c["mean"], -c["std"]))
        path.write_text(json.dumps(out, indent=1) + "\n")
    # One set of training settings for the app: a stage-2 change is taken only when it raises
    # the mean over the sets where it was measured and lowers no set by more than that set's
    # spread over seeds (stable across seeds and sets); otherwise the base settings stay.
    keys = ("lr", "batch_size", "aux_weight")
    base_key = tuple(BASE[k] for k in keys)
    deltas: dict = {}
    for d in out["datasets"].values():
        pos = d["best"]["position"]
        at_pos = {tuple(c[k] for k in keys): c for c in d["cells"] if c["position"] == pos}
        base = at_pos.get(base_key)
        if base is None:
            continue
        for key, c in at_pos.items():
            if key != base_key:
                deltas.setdefault(key, []).append((c["mean"] - base["mean"], base["std"]))
    ok = {key: sum(x for x, _ in v) / len(v) for key, v in deltas.items()
          if sum(x for x, _ in v) > 0 and all(x >= -sd for x, sd in v)}
    pick = max(ok, key=ok.get) if ok else base_key
    out["stage2_deltas"] = {f"lr={k[0]:g} batch={k[1]} aux={k[2]:g}": [round(x, 4) for x, _ in v]
                            for k, v in deltas.items()}
    out["chosen_settings"] = dict(zip(keys, pick), steps=BASE["steps"])
    out["chosen_templates"] = {n: d["best"]["template"] for n, d in out["datasets"].items()}
    out["seconds"] = round(time.time() - t0)
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({"chosen_settings": out["chosen_settings"],
                      "chosen_templates": out["chosen_templates"], "seconds": out["seconds"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
