"""The app server's cost to training: training steps/s while N open pages poll.

Each simulated page does what a live Train page does in the server every second: build the loss
figure, serialise it, and (as Streamlit did by default after every script run, fragments
included) a full ``gc.collect(2)``. With torch and a model loaded a full collection holds the GIL
for about a third of a second, so the training thread waits. ``.streamlit/config.toml`` turns
Streamlit's collection off (``runner.postScriptGC = false``); this measures what that changes.

    python bench/bench_server.py [--pages 0,1,3] [--steps 12] [--json]

Prints a table and one JSON line: ``gc_s`` (one full collection), ``steps_per_s`` keyed by
"<pages> pages, gc on|off", and ``slowdown_gc_on`` (steps/s with gc off over on, per number of
pages). Same process, same model, same run settings for every row.
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import plotly.io as pio  # noqa: E402

from ptuning_core.api import RunSpec, TrainConfig  # noqa: E402
from ptuning_core.registry import get_backbone  # noqa: E402
from ptuning_core.service import Service  # noqa: E402
from ptuning_core.store import RunStore  # noqa: E402
from ui.common import loss_figure  # noqa: E402


def page(stop: threading.Event, collect: bool) -> None:
    """One open page: a script run each second (figure, JSON, and the collection if on)."""
    pts = [(i, 1.0 / (i + 1)) for i in range(200)]
    while not stop.is_set():
        t = time.perf_counter()
        pio.to_json(loss_figure({"loss": pts}))
        if collect:
            gc.collect(2)
        stop.wait(max(0.0, 1.0 - (time.perf_counter() - t)))


def steps_per_s(svc: Service, pages: int, collect: bool, steps: int) -> float:
    """Training steps/s of one run (after its first two steps) while ``pages`` pages poll."""
    stop = threading.Event()
    threads = [threading.Thread(target=page, args=(stop, collect), daemon=True)
               for _ in range(pages)]
    for t in threads:
        t.start()
    spec = RunSpec(template="[P*4] {sentence} It was [MASK]", train="sentiment:train",
                   eval="sentiment:test", verbalizer={"negative": ["terrible"],
                                                      "positive": ["great"]},
                   shots=4, max_eval=8, device="cpu",
                   train_cfg=TrainConfig(steps=steps, snapshot_every=0))
    job = svc.submit_run("bench", spec)
    first = last = None
    while not job.done:
        s = job.progress.get("step") or 0
        now = time.perf_counter()
        if s >= 2 and first is None:
            first = (now, s)
        if first is not None and s > first[1]:
            last = (now, s)
        time.sleep(0.01)
    stop.set()
    for t in threads:
        t.join()
    if job.status != "finished" or last is None:
        raise RuntimeError(f"run {job.status}: {job.error}")
    return (last[1] - first[1]) / (last[0] - first[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", default="0,1,3")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    get_backbone("default", "cpu")
    t = time.perf_counter()
    gc.collect(2)
    res = {"gc_s": round(time.perf_counter() - t, 3), "objects": len(gc.get_objects()),
           "steps_per_s": {}, "slowdown_gc_on": {}}
    svc = Service(store=RunStore(Path(tempfile.mkdtemp(prefix="bench-server-"))))
    steps_per_s(svc, 0, False, 3)  # warm-up
    for n in [int(x) for x in a.pages.split(",")]:
        for collect in (False, True):
            if n == 0 and collect:
                continue
            r = steps_per_s(svc, n, collect, a.steps)
            res["steps_per_s"][f"{n} pages, gc {'on' if collect else 'off'}"] = round(r, 3)
            print(f"{n} pages, gc {'on ' if collect else 'off'}: {r:.3f} steps/s", flush=True)
        if n:
            off = res["steps_per_s"][f"{n} pages, gc off"]
            on = res["steps_per_s"][f"{n} pages, gc on"]
            res["slowdown_gc_on"][n] = round(off / on, 2)
    svc.queue.close()
    print(f"one full collection: {res['gc_s']} s ({res['objects']} objects)")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
