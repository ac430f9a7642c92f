"""The app server's cost to training: training steps/s while N open pages poll.

Each simulated page does what a live Train page does in the server every second: build the loss
figure, serialise it, and (as Streamlit did by default after every script run, fragments
included) a full ``gc.collect(2)``. With torch and a model loaded a full collection holds the GIL
for about a third of a second, so the training thread waits. ``.streamlit/config.toml`` turns
Streamlit's collection off (``runner.postScriptGC = false``); this measures what that changes.

    python bench/bench_server.py [--pages 0,1,3] [--steps 12] [--json]
    python bench/bench_server.py --class-pages 0,20 [--steps 8] [--json]

Prints a table and one JSON line: ``gc_s`` (one full collection), ``steps_per_s`` keyed by
"<pages> pages, gc on|off", and ``slowdown_gc_on`` (steps/s with gc off over on, per number of
pages). Same process, same model, same run settings for every row.

``--class-pages 0,N`` (issue 21) simulates a class's open pages doing what the real pages now do
in the server per rerun (``open_page``): the Train page's job panel (the shared snapshot's
``JobView``, the progress line or the waiting line with its estimated start, the loss figure
rebuilt only when the job changed and handed to Streamlit's ``st.plotly_chart`` conversion each
rerun), the class queue list (``queue_rows`` and its table through Streamlit's Arrow conversion)
and one teacher's Studio panel (``Service.studio`` and the token strip), each at the interval the
real fragment uses, stopping where the real one stops. One page is the training run's owner, the
others each have a run waiting in the queue. It reports ``steps_per_s_<N>_pages_ratio`` (the run's
steps/s with N pages over 0 pages, same run settings), ``cpu_per_idle_page`` (the process's CPU
seconds per second per open page with nothing queued or running, by ``time.process_time``) and
the same for pages as they polled before this issue (``cpu_per_idle_page_before``: a loss figure
built and converted every second and the queue table every two, forever); ``..._threads``: the
page threads' own CPU (``time.thread_time``). ``--idle-only``: just those. Not simulated:
Streamlit's own cost per rerun (the script-run thread, protobuf deltas, the websocket).
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
from ptuning_core.lm.registry import get_backbone  # noqa: E402
from ptuning_core.service import Service  # noqa: E402
from ptuning_core.store.runs import RunStore  # noqa: E402
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
    job = svc._core.queue.get(svc.runs.train("bench", spec).id)
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


# ---- a class of open pages (issue 21) ------------------------------------------------------------
TEMPLATE = "[P*4] {sentence} It was [MASK]"
VERB = {"negative": ["terrible"], "positive": ["great"]}


def run_spec(steps: int, name: str = "") -> RunSpec:
    return RunSpec(template=TEMPLATE, train="sentiment:train", eval="sentiment:test",
                   verbalizer=VERB, shots=4, max_eval=8, device="cpu", name=name,
                   train_cfg=TrainConfig(steps=steps, snapshot_every=0))


def open_page(svc: Service, who: str, job_id, stop: threading.Event, studio: bool,
              cpu: list) -> None:
    """One open Train page (and the teacher's Studio panel when ``studio``), as the real
    fragments run in the server: each panel at its own interval, none once it stops polling."""
    import plotly
    from streamlit import dataframe_util
    from ui.common import (eta_text, job_interval, progress_line, queue_frame, queue_polls,
                           token_strip_html, waiting_line)

    def chart(fig):  # what st.plotly_chart does with a figure, each rerun
        plotly.io.to_json(plotly.tools.return_figure_from_figure_or_data(
            fig, validate_figure=True), validate=False)

    fig_cache = {}

    def job_panel():
        svc.room.heartbeat(who)
        view = svc.runs.view(job_id)
        if view is None:
            return None
        if view.status == "queued":
            waiting_line(view)
        elif not view.done:
            text = progress_line(view.progress(), view.stopping)[1]
            if view.end_in_s is not None:
                text += eta_text(view.end_in_s, view.at)
        if view.losses:
            if fig_cache.get("rev") != view.rev:  # ui.common._live_figure
                fig_cache.update(rev=view.rev, fig=loss_figure({"loss": list(view.losses)},
                                                               {"run": list(view.dev)}))
            chart(fig_cache["fig"])
        svc.room.may_stop(who, view.owner_id)
        return view

    def queue_list():
        svc.room.heartbeat(who)
        rows = svc.room.queue_rows(who)
        if rows:
            dataframe_util.convert_pandas_df_to_arrow_bytes(queue_frame(rows))

    def studio_panel():
        view = svc.inspect.studio("default", TEMPLATE, ["sentence"], VERB, {"sentence": "a fine film"})
        token_strip_html(view.tokens)

    t0 = time.thread_time()
    # the page's first (full) run declares each fragment with its interval
    view = job_panel() if job_id else None
    panel_every = job_interval(view)
    queue_list()
    queue_every = 2.0 if queue_polls(svc, who) else None
    studio_every = 2.0 if studio else None  # a teacher editing: a rerun every two seconds
    if studio:
        studio_panel()
    due = {"panel": time.monotonic() + (panel_every or 0), "queue": time.monotonic() +
           (queue_every or 0), "studio": time.monotonic() + (studio_every or 0)}
    while not stop.is_set():
        now = time.monotonic()
        if panel_every and now >= due["panel"]:
            view = job_panel()
            if job_interval(view) != panel_every and (view is None or view.done or
                                                      view.status != "queued"):
                panel_every = job_interval(view)  # the page reran and declared it again
            due["panel"] = now + (panel_every or 0)
        if queue_every and now >= due["queue"]:
            queue_list()
            if not queue_polls(svc, who):
                queue_every = None
            due["queue"] = now + 2.0
        if studio_every and now >= due["studio"]:
            studio_panel()
            due["studio"] = now + studio_every
        waits = [due[k] for k, e in (("panel", panel_every), ("queue", queue_every),
                                      ("studio", studio_every)) if e]
        stop.wait(max(0.005, min(waits) - time.monotonic()) if waits else 0.2)
    cpu.append(time.thread_time() - t0)


def old_page(svc: Service, job_id, stop: threading.Event) -> None:
    """A Train page as it polled before issue 21: the loss figure built and converted every
    second and the queue table every two, whatever the job's state."""
    import plotly
    import pandas as pd
    from streamlit import dataframe_util
    pts = [(i, 1.0 / (i + 1)) for i in range(60)]
    tick = 0
    while not stop.is_set():
        t = time.perf_counter()
        job = svc._core.queue.get(job_id)
        if job is not None:
            job.snapshot()
        plotly.io.to_json(plotly.tools.return_figure_from_figure_or_data(
            loss_figure({"loss": pts}, {"run": []}), validate_figure=True), validate=False)
        if tick % 2 == 0:
            dataframe_util.convert_pandas_df_to_arrow_bytes(pd.DataFrame(
                [{"position": "–", "run": "r", "kind": "train", "owner": "o", "state": "finished",
                  "step": ""}]).set_index("position"))
        tick += 1
        stop.wait(max(0.0, 1.0 - (time.perf_counter() - t)))


def class_steps_per_s(svc: Service, pages: int, steps: int) -> tuple:
    """(steps/s of one training run while ``pages`` class pages are open, their CPU seconds per
    second per page). Page 0 is the run's owner; the others each have a run waiting."""
    job = svc._core.queue.get(svc.runs.train("owner", run_spec(steps, "measured")).id)
    waiting = [svc._core.queue.get(svc.runs.train(f"student-{i}", run_spec(steps, f"waits {i}")).id)
               for i in range(1, pages)]
    stop, cpu = threading.Event(), []
    owners = [("owner", job.id)] + [(f"student-{i}", w.id) for i, w in enumerate(waiting, 1)]
    threads = [threading.Thread(target=open_page, args=(svc, who, jid, stop, i == pages - 1,
                                                        cpu), daemon=True)
               for i, (who, jid) in enumerate(owners[:pages])]
    t_start = time.perf_counter()
    for t in threads:
        t.start()
    first = last = None
    while not job.done:
        s = job.progress.get("step") or 0
        now = time.perf_counter()
        if s >= 2 and first is None:
            first = (now, s)
        if first is not None and s > first[1]:
            last = (now, s)
        time.sleep(0.01)
    for w in waiting:
        svc._core.queue.stop(w.id)
    stop.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t_start
    if job.status != "finished" or last is None:
        raise RuntimeError(f"run {job.status}: {job.error}")
    per_page = sum(cpu) / wall / pages if pages else 0.0
    return (last[1] - first[1]) / (last[0] - first[0]), per_page


def idle_cpu(svc: Service, pages: int, seconds: float, old: bool) -> tuple:
    """(the process's CPU seconds per second per open page, the page threads' own) with nothing
    queued or running (it waits for the queue to empty first: a run stopped while it was
    starting still evaluates what it learned)."""
    for j in svc._core.queue.jobs():
        j = svc._core.queue.wait(j.id, 600)
    done = svc._core.queue.jobs()[-1].id if svc._core.queue.jobs() else None
    stop, cpu = threading.Event(), []

    def old_page_timed():
        t0 = time.thread_time()
        old_page(svc, done, stop)
        cpu.append(time.thread_time() - t0)
    threads = [threading.Thread(target=old_page_timed, daemon=True) if old else
               threading.Thread(target=open_page, args=(svc, f"idle-{i}", done, stop, False,
                                                        cpu), daemon=True)
               for i in range(pages)]
    w_start = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(0.5)  # the pages' first runs
    c0, w0 = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    used, wall = time.process_time() - c0, time.perf_counter() - w0
    stop.set()
    for t in threads:
        t.join()
    return used / wall / pages, sum(cpu) / (time.perf_counter() - w_start) / pages


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def class_main(a) -> None:
    import os
    import torch
    get_backbone("default", "cpu")
    svc = Service(store=RunStore(Path(tempfile.mkdtemp(prefix="bench-server-"))))
    svc._core.settings.max_queued_total = 100
    svc._core.queue.max_total = 100
    warm = svc._core.queue.get(svc.runs.train("owner", run_spec(3, "warm-up")).id)  # also the queue's first measure
    warm = svc._core.queue.wait(warm.id, 600)
    ns = [int(x) for x in a.class_pages.split(",")]
    if a.idle_only:
        ns = []
    res = {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "steps": a.steps, "template": TEMPLATE, "steps_per_s_class": {},
           "cpu_per_polling_page": {}}
    for n in ns:
        r, per_page = class_steps_per_s(svc, n, a.steps)
        res["steps_per_s_class"][n] = round(r, 4)
        if n:
            res["cpu_per_polling_page"][n] = round(per_page, 5)
        print(f"{n} class pages: {r:.3f} steps/s; page threads' CPU {per_page:.4f} s/s per page",
              flush=True)
    base = res["steps_per_s_class"].get(0)
    for n in ns:
        if n and base:
            res[f"steps_per_s_{n}_pages_ratio"] = round(res["steps_per_s_class"][n] / base, 3)
    n_idle = max([int(x) for x in a.class_pages.split(",")]) or 20
    now, now_threads = idle_cpu(svc, n_idle, a.idle_seconds, False)
    before, before_threads = idle_cpu(svc, n_idle, a.idle_seconds, True)
    res.update(cpu_per_idle_page=round(now, 5), cpu_per_idle_page_before=round(before, 5),
               cpu_per_idle_page_threads=round(now_threads, 5),
               cpu_per_idle_page_before_threads=round(before_threads, 5), idle_pages=n_idle)
    print(f"idle: {res['cpu_per_idle_page']} core per open page now, "
          f"{res['cpu_per_idle_page_before']} as pages polled before ({n_idle} pages)")
    svc.close()
    print(json.dumps(res))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", default="0,1,3")
    ap.add_argument("--class-pages", default="",
                    help="e.g. 0,20: the class simulation (issue 21) instead of the gc rows")
    ap.add_argument("--idle-seconds", type=float, default=6.0)
    ap.add_argument("--idle-only", action="store_true",
                    help="with --class-pages: only the idle pages' CPU (no training rows)")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.class_pages:
        return class_main(a)
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
    svc.close()
    print(f"one full collection: {res['gc_s']} s ({res['objects']} objects)")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
