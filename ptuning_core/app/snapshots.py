"""The queue as every open page sees it: one shared ``QueueSnapshot`` of frozen ``JobView``s,
rebuilt only when the queue changed. Private to the door (the runs and classroom façades read
it); no ``Job`` leaves this module."""
from __future__ import annotations

import threading
import time
from typing import Optional

from ptuning_core.executors.jobs import Job
from ptuning_core.executors.live import JobView, QueueSnapshot, remaining_seconds, start_times
from ptuning_core.lru import LRU

FAILURE_SHOWN_S = 120  # how long after a failure a refresh / new tab still shows it


def run_curves(store, run_id: str) -> tuple:
    """(losses, dev accuracies) of a stored run, each [(step, value)]; cheap (no details)."""
    steps = store.steps(run_id)
    return ([(r["step"], r["loss"]) for r in steps if r["loss"] is not None],
            [(r["step"], r["dev"]) for r in steps if r["dev"] is not None])


def activity(kind: str, label: str, events: list) -> Optional[str]:
    """What a job is doing now, in words, from its last events: a comparison's variant, an
    experiment's cell (None when there is nothing more than its progress to say)."""
    if kind == "compare":
        var = [e for e in events if e.get("type") == "variant"]
        return f"{var[-1]['name']} ({var[-1]['index'] + 1}/{var[-1]['total']})" if var \
            else "starting"
    if kind == "experiment":
        cells = [e for e in events if e.get("type") == "cell" and e.get("arm")]
        if not cells:
            return label
        c = cells[-1]
        return (f"{label} · run {c['done'] + 1}/{c['total']}: {c['arm']} k={c['k']} "
                f"seed={c['seed']}")
    return None


class LiveBoard:
    """The shared snapshot of one server's queue (see ``live``)."""

    def __init__(self, core):
        self.core = core
        self._live = None  # the last QueueSnapshot
        self._live_key = None
        self._live_checked = self._live_made = 0.0
        self._live_lock = threading.Lock()
        self._done_views = LRU(lambda: self.DONE_VIEW_CACHE)  # job id -> JobView (done)

    LIVE_INTERVAL = 0.5  # s: the snapshot is rebuilt at most this often, for every page at once
    LIVE_MAX_AGE = 15.0  # s: and at least this often (display names, estimates)
    DONE_VIEW_CACHE = 512

    def live(self) -> QueueSnapshot:
        """The queue and its jobs' progress for every open page (``QueueSnapshot`` of
        ``JobView``s): rebuilt at most every ``LIVE_INTERVAL`` seconds and only when the queue's
        version changed (or ``LIVE_MAX_AGE`` passed), so an open page that polls an unchanged
        queue costs a comparison; a job added, started, ended or stopped is seen at once. No
        model or store work unless a job just ended (its stored curves, read once)."""
        now = time.monotonic()
        snap, q, key = self._live, self.core.queue, self._live_key
        if snap is not None and key is not None and key[0] == q.structure and (
                now - self._live_checked < self.LIVE_INTERVAL or
                (key[1] == q.version and now - self._live_made < self.LIVE_MAX_AGE)):
            return snap  # nothing was added, started, ended or stopped since: the shared one
        with self._live_lock:
            return self._rebuild_live()

    def _rebuild_live(self) -> QueueSnapshot:
        key = (self.core.queue.structure, self.core.queue.version)
        now = time.monotonic()
        if self._live is None or key != self._live_key or now - self._live_made >= \
                self.LIVE_MAX_AGE:
            self._live = self._build_live(key[1])
            self._live_key, self._live_made = key, now
        self._live_checked = now
        return self._live

    def _build_live(self, version: int) -> QueueSnapshot:
        at = time.time()
        jobs = self.core.queue.jobs()
        live = [j for j in jobs if not j.done]
        labels = self.core.classroom.labels(j.session for j in live) if live else {}
        times = self.core.queue.times
        left = {}
        for j in live:
            snap = j.snapshot()
            p = snap["progress"]
            left[j.id] = (remaining_seconds(
                times, j.kind, j.work, j.status, int(p.get("step") or 0),
                float(p.get("seconds") or 0.0), at - j.started if j.started else 0.0), snap)
        starts, positions = {}, {}
        for device in {j.device for j in live}:
            running = [left[j.id][0] for j in live if j.device == device and j.status == "running"]
            order = self.core.queue.order(device)
            lengths = [left[j.id][0] if j.id in left else None for j in order]
            for i, (j, s) in enumerate(zip(order, start_times(
                    running, lengths, self.core.queue.slots(device)))):
                starts[j.id], positions[j.id] = s, i + 1
        views = []
        for j in live:
            rem, snap = left[j.id]
            p = snap["progress"]
            start = starts.get(j.id, 0.0 if j.status == "running" else None)
            end = None if rem is None or start is None else start + rem
            views.append(self._view(j, snap, labels.get(j.session, ""), positions.get(j.id, 0),
                                    start if j.status == "queued" else None, end, at,
                                    p.get("losses", []), p.get("dev", [])))
        views.sort(key=lambda v: (v.position, v.label))
        done = []
        for j in jobs:
            if j.done:
                v = self._done_views.get(j.id)
                if v is None or v.rev != j.rev:
                    v = self._done_view(j)
                done.append(v)
        return QueueSnapshot(version, at, tuple(views) + tuple(done))

    def _view(self, j: Job, snap: dict, owner: str, position: int, start, end, at,
              losses, dev) -> JobView:
        p = snap["progress"]
        return JobView(j.id, j.label, j.kind, j.session, owner, snap["status"],
                       j.stop.is_set(), position, int(p.get("step") or 0),
                       int(p.get("steps") or 0), p.get("loss"), float(p.get("seconds") or 0.0),
                       p.get("phase"), p.get("phase_done"), p.get("phase_total"),
                       tuple(losses), tuple(dev), snap["error"], snap["run_id"], start, end,
                       at, j.rev, activity(j.kind, j.label, snap["events"]), j.created, j.ended)

    def _done_view(self, j: Job) -> JobView:
        """A done job's view: built once (its curves read from the store once), then kept."""
        snap = j.snapshot()
        losses, dev = (run_curves(self.core.store, j.run_id) if j.run_id and
                       self.core.store.get(j.run_id, details=False) is not None else ([], []))
        owner = self.core.classroom.labels([j.session]).get(j.session, "")
        v = self._view(j, snap, owner, 0, None, 0.0, time.time(), losses, dev)
        self._done_views.put(j.id, v)
        return v

    def job_view(self, job_id: str) -> Optional[JobView]:
        """One job as of the latest snapshot (None when the server no longer holds it)."""
        snap = self.live()
        v = snap.get(job_id)
        if v is None and self.core.queue.get(job_id) is not None:  # newer than the snapshot
            with self._live_lock:
                self._live_key = None
                v = self._rebuild_live().get(job_id)
        return v

    def current(self, who: str, kind: str = "train") -> Optional[JobView]:
        """``who``'s latest job of a kind, one still queued or running first (what a page shows
        after a refresh or in a new tab)."""
        mine = [j for j in self.core.queue.jobs(who) if j.kind == kind]
        live = [j for j in mine if not j.done]
        running = [j for j in live if j.status == "running"]  # the current one, not the next
        job = (running or live or mine or [None])[-1]
        return None if job is None else self.job_view(job.id)

    def events(self, job_id: str, kind: str) -> list:
        """The events of one type a job emitted so far (a sweep's finished cells)."""
        job = self.core.queue.get(job_id)
        if job is None:
            return []
        return [e for e in job.snapshot()["events"] if e.get("type") == kind]

    def mine(self, who: str, held: Optional[str], kind: str) -> Optional[JobView]:
        """The job a page shows: the one its session started (``held``), or, in a new tab or
        after a refresh, ``who``'s latest job of ``kind`` (a live one first). A failure is shown
        with its job to the session that started it, or to a refresh within
        ``FAILURE_SHOWN_S``; it does not follow the identity into later sessions."""
        job = self.job_view(held) if held else None
        if job is not None and job.status != "queued":
            return job
        current = self.current(who, kind)
        if job is not None:  # queued: the identity's running one, if any, is the current one
            return current if current is not None and current.status == "running" else job
        if current is not None and current.status == "failed" and \
                time.time() - (current.ended or current.created) > FAILURE_SHOWN_S:
            return None
        return current
