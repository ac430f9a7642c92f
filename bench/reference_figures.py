"""Reference figures for the README, measured with the CLI on the default model.

Classification sets: discrete (manual) template accuracy on test, and P-tuning at k=16 per
class, mean ± std over the 5 default seeds (dev = a disjoint 16 per class, best dev checkpoint
kept). Facts: manual-template P@1 and P-tuned P@1 (trained on the train split).

    python bench/reference_figures.py [--steps 100] [--seeds 13,21,42,87,100]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ptuning_core import data as D  # noqa: E402


def cli(args):
    r = subprocess.run([sys.executable, "-m", "ptuning_core", "run", *args, "--json"], cwd=ROOT,
                       capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--seeds", default="13,21,42,87,100")
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--only", default="")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "reference.json"))
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    out = {"steps": a.steps, "k": a.k, "seeds": seeds, "datasets": {}}
    t0 = time.time()
    for name in D.list_datasets():
        if a.only and name not in a.only.split(","):
            continue
        info = D.dataset_info(name)
        common = ["--train", f"{name}:train", "--eval", f"{name}:test",
                  "--template", info["ptuning_templates"]["causal"],
                  "--discrete-template", info["templates"]["causal"],
                  "--label-field", info["label_field"], "--steps", str(a.steps),
                  "--eval-every", "20"]
        if info["label_space"] == "vocab":
            res = cli(common + ["--label-space", "vocab", "--dev", f"{name}:dev", "--lr", "3e-3",
                                "--seed", "13"])
            out["datasets"][name] = {"metric": "P@1", "discrete": res["discrete"]["accuracy"],
                                     "ptuning": res["continuous"]["accuracy"],
                                     "n": res["discrete"]["n"],
                                     "skipped": res["discrete"]["skipped"]}
        else:
            accs, disc = [], None
            for s in seeds:
                res = cli(common + ["--verbalizer", json.dumps(info["verbalizer"]),
                                    "--shots", str(a.k), "--seed", str(s)])
                disc = res["discrete"]["accuracy"]
                accs.append(res["continuous"]["accuracy"])
                print(f"{name} seed {s}: discrete {disc:.3f} p-tuning {accs[-1]:.3f}",
                      file=sys.stderr, flush=True)
            out["datasets"][name] = {"metric": "accuracy", "discrete": disc,
                                     "ptuning_mean": statistics.fmean(accs),
                                     "ptuning_std": statistics.pstdev(accs), "runs": accs,
                                     "n": res["discrete"]["n"]}
        print(name, out["datasets"][name], file=sys.stderr, flush=True)
    out["seconds"] = round(time.time() - t0)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print("| dataset | metric | discrete template | P-tuning |")
    print("|---|---|---|---|")
    for name, d in out["datasets"].items():
        if d["metric"] == "P@1":
            print(f"| {name} | P@1 (n={d['n']}, {d['skipped']} multi-token skipped) | "
                  f"{d['discrete']:.3f} | {d['ptuning']:.3f} |")
        else:
            print(f"| {name} | accuracy (n={d['n']}) | {d['discrete']:.3f} | "
                  f"{d['ptuning_mean']:.3f} ± {d['ptuning_std']:.3f} |")


if __name__ == "__main__":
    main()
