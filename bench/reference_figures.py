"""Reference figures for the README, measured with the CLI on the default model.

Classification sets: discrete (manual) template accuracy on test, and P-tuning at k=16 per
class, mean ± std over the 5 default seeds (dev = a disjoint 16 per class, best dev checkpoint
kept). Facts: manual-template P@1 and P-tuned P@1 (trained on the train split).

    python bench/reference_figures.py [--seeds 13,21,42,87,100] [--only sentiment,...]
    python bench/reference_figures.py --tables   # the README tables from the stored results

Training settings are the CLI's defaults (``TrainConfig``, chosen by bench/sweep_defaults.py).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ptuning_core import config as C  # noqa: E402
from ptuning_core.data import bundled as D  # noqa: E402
from ptuning_core.stats import mean_std  # noqa: E402
from ptuning_core.engine.train import TrainConfig  # noqa: E402


def cli(args):
    r = subprocess.run([sys.executable, "-m", "ptuning_core", "run", *args, "--json"], cwd=ROOT,
                       capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default=",".join(map(str, C.SEEDS)))
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--only", default="", help="comma list of datasets; 'facts' for all facts")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "reference.json"))
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    out = {"k": a.k, "seeds": seeds, "settings": TrainConfig().to_dict(), "datasets": {}}
    prev = Path(a.out)
    if a.only and prev.exists():  # a partial run adds to the figures already measured
        old = json.loads(prev.read_text())
        if old.get("settings") == out["settings"] and old.get("seeds") == seeds:
            out["datasets"] = old.get("datasets", {})
    t0 = time.time()
    for name in D.list_datasets():
        only = a.only.split(",") if a.only else []
        if only and name not in only and not ("facts" in only and name.startswith("facts-")):
            continue
        info = D.dataset_info(name)
        common = ["--train", f"{name}:train", "--eval", f"{name}:test",
                  "--template", info["ptuning_templates"]["causal"],
                  "--discrete-template", info["templates"]["causal"], "--eval-every", "20"]
        if info["label_space"] == "vocab":
            res = cli(common + ["--label-space", "vocab", "--dev", f"{name}:dev", "--seed", "13"])
            d, c = res["discrete"], res["continuous"]
            out["datasets"][name] = {"metric": "P@1", "discrete": d["accuracy"],
                                     "discrete_ci95": d["ci95"], "ptuning": c["accuracy"],
                                     "ptuning_ci95": c["ci95"], "paired": res["paired"],
                                     "n": d["n"], "skipped": d["skipped"]}
        else:
            runs = []
            for s in seeds:
                res = cli(common + ["--verbalizer", json.dumps(info["verbalizer"]),
                                    "--shots", str(a.k), "--seed", str(s)])
                d, c = res["discrete"], res["continuous"]
                runs.append({"seed": s, "accuracy": c["accuracy"], "ci95": c["ci95"],
                             "paired": res["paired"], "by_tag": res.get("by_tag")})
                print(f"{name} seed {s}: discrete {d['accuracy']:.3f} p-tuning "
                      f"{c['accuracy']:.3f} p={res['paired']['mcnemar_p']:.3g}",
                      file=sys.stderr, flush=True)
            accs = [r["accuracy"] for r in runs]
            m, sd = mean_std(accs)
            tags: dict = {}
            for r in runs:
                for t, v in ((r["by_tag"] or {}).get("continuous") or {}).items():
                    tags.setdefault(t, []).append(v["accuracy"])
            disc_tags = {t: v["accuracy"] for t, v in
                         ((runs[0]["by_tag"] or {}).get("discrete") or {}).items()}
            out["datasets"][name] = {
                "metric": "accuracy", "discrete": d["accuracy"], "discrete_ci95": d["ci95"],
                "ptuning_mean": round(m, 4), "ptuning_std": round(sd, 4), "runs": runs,
                "significant_runs": sum(r["paired"]["significant"] and
                                        r["accuracy"] > d["accuracy"] for r in runs),
                "by_tag": {t: {"discrete": disc_tags.get(t), "ptuning_mean":
                               round(sum(v) / len(v), 4), "n": (runs[0]["by_tag"] or {})
                               .get("continuous", {}).get(t, {}).get("n")}
                           for t, v in sorted(tags.items())},
                "n": d["n"]}
        print(name, json.dumps(out["datasets"][name])[:300], file=sys.stderr, flush=True)
    out["seconds"] = out.get("seconds", 0) + round(time.time() - t0)
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    print_tables(out)
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk not in ("runs", "by_tag")}
                      for k, v in out["datasets"].items()}))


def majority_p1(name: str) -> float:
    """Precision@1 of always answering the most frequent training object (a facts baseline)."""
    import collections
    train = D.load_ref(f"{name}:train").rows
    test = D.load_ref(f"{name}:test").rows
    top = collections.Counter(r["object"] for r in train).most_common(1)[0][0]
    return sum(r["object"] == top for r in test) / len(test)


def fmt_p(p: float) -> str:
    return "< 1e-6" if p < 1e-6 else f"{p:.2g}"


def print_tables(out: dict) -> None:
    """The README's two tables (classification, facts) from a results dict."""
    def ci(x):
        return f"[{x[0]:.3f}, {x[1]:.3f}]"
    sets = {k: v for k, v in out["datasets"].items() if v["metric"] != "P@1"}
    facts = {k: v for k, v in out["datasets"].items() if v["metric"] == "P@1"}
    print("| dataset | test n | discrete template [95% CI] | P-tuning, k=16: mean ± sd over "
          "seeds (each seed) | P-tuning better, McNemar p < 0.05 |")
    print("|---|---|---|---|---|")
    for name, d in sets.items():
        per_seed = ", ".join(f"{r['accuracy']:.3f}" for r in d["runs"])
        b = "**" if 2 * d["significant_runs"] > len(d["runs"]) else ""  # bold: a real gain
        print(f"| {name} | {d['n']} | {d['discrete']:.3f} {ci(d['discrete_ci95'])} | "
              f"{b}{d['ptuning_mean']:.3f} ± {d['ptuning_std']:.3f}{b} ({per_seed}) | "
              f"{d['significant_runs']} of {len(d['runs'])} seeds |")
    print()
    print("| relation | test facts | manual template P@1 [95% CI] | P-tuned P@1 [95% CI] | "
          "McNemar p | majority |")
    print("|---|---|---|---|---|---|")
    for name, d in facts.items():
        print(f"| {name} | {d['n']} | {d['discrete']:.3f} {ci(d['discrete_ci95'])} | "
              f"**{d['ptuning']:.3f}** {ci(d['ptuning_ci95'])} | "
              f"{fmt_p(d['paired']['mcnemar_p'])} | {majority_p1(name):.3f} |")


if __name__ == "__main__":
    if sys.argv[1:] == ["--tables"]:  # print the README tables from the stored results
        print_tables(json.loads((ROOT / "bench" / "results" / "reference.json").read_text()))
        sys.exit(0)
    main()
