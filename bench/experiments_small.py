"""Wall time of each experiment's small preset on this machine (default model, CPU).

Usage: python bench/experiments_small.py E1 [E2 ...]  (run each under
``flock /tmp/ptuning-heavy.lock`` on a shared machine). Prints one line per experiment (time,
its computed sentence) and one JSON line."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from ptuning_core.engine import experiments as X  # noqa: E402
from ptuning_core.lm.registry import get_backbone  # noqa: E402


def main(names):
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    get_backbone("default", "cpu")  # loading is not part of an experiment's time
    out = []
    for name in names:
        p = X.plan(X.ExperimentRequest(name, device="cpu"))
        t0 = time.perf_counter()
        res = X.run(p)
        secs = time.perf_counter() - t0
        sentence = X.conclude(p.experiment, res)
        print(f"{p.experiment.id}: {p.n_cells} runs in {secs:.0f} s ({torch.get_num_threads()} "
              f"threads)\n  {sentence}", flush=True)
        out.append({"experiment": p.experiment.id, "runs": p.n_cells, "seconds": round(secs, 1),
                    "settings": res["settings"], "summary": X.summarize(res),
                    "sentence": sentence})
    print(json.dumps({"bench": "experiments_small", "threads": torch.get_num_threads(),
                      "results": out}))


if __name__ == "__main__":
    main(sys.argv[1:] or [e for e in X.EXPERIMENTS])
