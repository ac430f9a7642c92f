"""Job queue: one worker thread per device runs jobs one at a time, fair across sessions.

Fairness: the next job is taken round-robin over sessions (the session served least recently
goes first), so one session's many jobs cannot starve others. Each session may hold at most
``max_queued`` queued/running jobs. Jobs carry their live progress (events, losses) for pages
to poll; a worker never touches the UI. A session that stops polling for ``idle_timeout``
seconds has its queued jobs cancelled and its running job stopped (what was learned is kept).
The app's session is the browser's identity (``Service``): every tab of one student is one
session, so a new tab cannot jump the queue or lift the cap.

Memory: a job's function stores what it produces (the run store), so once a job is done the queue
keeps only a small summary (status, run id, error, the last progress numbers): the function and
what it holds (prepared rows), the events, the loss lists and the returned result are dropped.
Pages read finished runs from the store.
"""
from __future__ import annotations

import logging
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Optional

from ptuning_core.executors.live import StepTimes, Work

log = logging.getLogger(__name__)


class QueueFull(RuntimeError):
    pass


@dataclass
class Job:
    id: str
    session: str
    device: str
    label: str
    fn: Optional[Callable]  # fn(job): reads job.stop, calls job.event(e), stores its result
    kind: str = "task"  # train | compare | sweep | task
    status: str = "queued"  # queued | running | finished | stopped | failed | cancelled
    created: float = field(default_factory=time.time)
    started: Optional[float] = None
    ended: Optional[float] = None
    stop: threading.Event = field(default_factory=threading.Event)
    events: list = field(default_factory=list)
    progress: dict = field(default_factory=dict)
    error: Optional[str] = None
    run_id: Optional[str] = None
    on_cancel: Optional[Callable] = None  # called when a queued job is cancelled
    work: Optional[Work] = None  # a training run's model, path, steps, batch (its estimate)
    rev: int = 0  # changes with anything a page shows of this job
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    on_change: Optional[Callable] = field(default=None, repr=False)  # the queue's version

    def changed(self) -> None:
        self.rev += 1
        if self.on_change is not None:
            self.on_change()

    def event(self, e: dict) -> None:
        with self.lock:
            self._event(e)
        self.changed()

    def _event(self, e: dict) -> None:
        if e.get("type") == "step":
            self.progress.update(step=e["step"], steps=e["steps"], loss=e["loss"],
                                 seconds=e["seconds"])
            self.progress.setdefault("losses", []).append((e["step"], e["loss"]))
        elif e.get("type") == "eval":
            self.progress.setdefault("dev", []).append((e["step"], e["dev_accuracy"]))
        elif e.get("type") == "phase":
            self.progress["phase"] = e["phase"]
            self.progress["phase_done"] = e.get("done")
            self.progress["phase_total"] = e.get("total")
        else:
            if e.get("type") == "variant":  # a comparison's next run: its numbers start afresh
                for k in ("step", "steps", "loss", "seconds", "phase", "phase_done",
                          "phase_total", "losses", "dev"):
                    self.progress.pop(k, None)
            if e.get("type") == "start" and e.get("path"):
                self.progress["path"] = e["path"]  # the path it really trains on
            self.events.append(e)
            if len(self.events) > 1000:
                del self.events[:500]

    def snapshot(self) -> dict:
        with self.lock:
            p = dict(self.progress)
            p["losses"] = list(p.get("losses", []))
            p["dev"] = list(p.get("dev", []))
            return {"id": self.id, "status": self.status, "label": self.label,
                    "progress": p, "error": self.error, "run_id": self.run_id,
                    "events": list(self.events)}

    @property
    def done(self) -> bool:
        return self.status in ("finished", "stopped", "failed", "cancelled")

    def release(self) -> None:
        """Drop the heavy data of a done job; keep status, run id, error and scalar progress."""
        with self.lock:
            self.fn = None
            self.on_cancel = None
            self.events = []
            self.progress = {k: v for k, v in self.progress.items()
                             if isinstance(v, (int, float, str)) or v is None}


class JobQueue:
    def __init__(self, max_queued_per_session: int = 3, max_queued_total: int = 100,
                 idle_timeout: float = 0.0):
        self.max_per_session = max_queued_per_session
        self.max_total = max_queued_total
        self.idle_timeout = idle_timeout
        self._cv = threading.Condition()
        self._jobs: "OrderedDict[str, Job]" = OrderedDict()
        self._workers: dict = {}
        self._last_served: dict = {}  # (device, session) -> time
        self._seen: dict = {}  # session -> last poll
        self._slots: dict = {}  # device -> worker threads (1 unless set_slots says more)
        self._closed = False
        self.times = StepTimes()  # measured step times (finished runs): the queue's estimates
        self._version = 0
        self._structure = 0
        self._vlock = threading.Lock()

    @property
    def version(self) -> int:
        """Changes whenever a job is added, starts, ends, is stopped or reports progress."""
        return self._version

    @property
    def structure(self) -> int:
        """Changes whenever a job is added, starts, ends or is stopped (not on progress)."""
        return self._structure

    def bump(self, structure: bool = False) -> None:
        with self._vlock:
            self._version += 1
            if structure:
                self._structure += 1

    def slots(self, device: str) -> int:
        return self._slots.get(device, 1)

    def set_slots(self, device: str, n: int) -> None:
        """Run up to ``n`` jobs of ``device`` at once (a pool of remote workers behind one
        device name, e.g. Ray's). The order stays round-robin over sessions. Set it before the
        device's first job."""
        with self._cv:
            self._slots[device] = max(1, int(n))

    # ---- submitting ----------------------------------------------------------------------
    def submit(self, session: str, fn: Callable, device: str = "cpu", label: str = "",
               kind: str = "task") -> Job:
        with self._cv:
            if self._closed:
                raise QueueFull("the server is shutting down")
            mine = [j for j in self._jobs.values() if j.session == session and not j.done]
            if len(mine) >= self.max_per_session:
                raise QueueFull(f"you already have {len(mine)} runs queued or running "
                                f"(the limit is {self.max_per_session}); wait or stop one")
            active = [j for j in self._jobs.values() if not j.done]
            if len(active) >= self.max_total:
                raise QueueFull("the server's queue is full; try again in a minute")
            job = Job(uuid.uuid4().hex[:12], session, device, label, fn, kind)
            job.on_change = self.bump
            self._jobs[job.id] = job
            self.bump(structure=True)
            self._seen[session] = time.monotonic()
            if device not in self._workers:
                for i in range(self._slots.get(device, 1)):
                    t = threading.Thread(target=self._work, args=(device,), daemon=True,
                                         name=f"ptuning-worker-{device}" + (f"-{i}" if i else ""))
                    self._workers[device if i == 0 else f"{device}#{i}"] = t
                    t.start()
            if self.idle_timeout and "_reaper" not in self._workers:
                r = threading.Thread(target=self._reap_loop, daemon=True, name="ptuning-reaper")
                self._workers["_reaper"] = r
                r.start()
            self._cv.notify_all()
        return job

    # ---- inspecting ----------------------------------------------------------------------
    def get(self, job_id: str) -> Optional[Job]:
        with self._cv:
            return self._jobs.get(job_id)

    def jobs(self, session: Optional[str] = None) -> list:
        with self._cv:
            return [j for j in self._jobs.values() if session is None or j.session == session]

    def _order(self, device: str) -> list:
        """Queued jobs of a device in the order they will run (round-robin over sessions)."""
        queued = [j for j in self._jobs.values() if j.device == device and j.status == "queued"]
        per: "OrderedDict[str, list]" = OrderedDict()
        for j in queued:
            per.setdefault(j.session, []).append(j)
        sessions = sorted(per, key=lambda s: (self._last_served.get((device, s), 0.0),
                                              per[s][0].created))
        out = []
        while any(per[s] for s in sessions):
            for s in sessions:
                if per[s]:
                    out.append(per[s].pop(0))
        return out

    def order(self, device: str) -> list:
        """Queued jobs of a device in the order they will run."""
        with self._cv:
            return self._order(device)

    def position(self, job_id: str) -> int:
        """0 while running or done; 1 = next to run; n = n-th in the queue."""
        with self._cv:
            j = self._jobs.get(job_id)
            if j is None or j.status != "queued":
                return 0
            order = self._order(j.device)
            return order.index(j) + 1

    def heartbeat(self, session: str) -> None:
        with self._cv:
            self._seen[session] = time.monotonic()

    # ---- stopping --------------------------------------------------------------------------
    def stop(self, job_id: str) -> None:
        with self._cv:
            j = self._jobs.get(job_id)
            if j is None:
                return
            cancelled = j.status == "queued"
            if cancelled:
                j.status, j.ended = "cancelled", time.time()
            j.stop.set()
            self.bump(structure=True)
            self._cv.notify_all()
        j.changed()
        if cancelled:
            if j.on_cancel is not None:
                j.on_cancel()
            j.release()

    def reap_idle(self) -> list:
        """Cancel queued and stop running jobs of sessions silent for idle_timeout seconds."""
        if not self.idle_timeout:
            return []
        now = time.monotonic()
        gone = []
        with self._cv:
            for j in self._jobs.values():
                if not j.done and now - self._seen.get(j.session, now) > self.idle_timeout:
                    gone.append(j.id)
        for jid in gone:
            self.stop(jid)
        return gone

    def _reap_loop(self) -> None:
        while not self._closed:
            self.reap_idle()
            time.sleep(min(5.0, max(0.05, self.idle_timeout / 4)))

    def forget_finished(self, older_than: float = 3600.0) -> None:
        cutoff = time.time() - older_than
        with self._cv:
            for jid in [k for k, j in self._jobs.items() if j.done and (j.ended or 0) < cutoff]:
                del self._jobs[jid]

    def close(self) -> None:
        with self._cv:
            self._closed = True
            ids = [j.id for j in self._jobs.values() if not j.done]
            self._cv.notify_all()
        for jid in ids:
            self.stop(jid)

    # ---- worker ----------------------------------------------------------------------------
    def _work(self, device: str) -> None:
        while True:
            with self._cv:
                while True:
                    if self._closed:
                        return
                    order = self._order(device)
                    if order:
                        job = order[0]
                        break
                    self._cv.wait(timeout=1.0)
                job.status, job.started = "running", time.time()
                self._last_served[(device, job.session)] = time.monotonic()
                self.bump(structure=True)
            job.changed()
            try:
                job.fn(job)  # it stores its own result (the run store)
                status = "stopped" if job.stop.is_set() else "finished"
            except BaseException as e:  # the worker must survive anything a job does
                # one line for the user (the traceback goes to the server log below)
                job.error = (f"{type(e).__name__}: {e}".strip().splitlines() or ["failed"])[0][:300]
                log.error("job %s (%s) failed: %s\n%s", job.id, job.label, job.error,
                          traceback.format_exc(limit=5))
                status = "failed"
            job.release()
            with self._cv:
                job.status, job.ended = status, time.time()
                self.bump(structure=True)
                self._cv.notify_all()
            self._measure(job)
            job.changed()

    def _measure(self, job: Job) -> None:
        """A finished job's measured times feed the estimates of those that wait."""
        if job.status not in ("finished", "stopped") or job.started is None:
            return
        total = job.ended - job.started
        p = job.progress
        if job.work is not None:
            steps, train_s = int(p.get("step") or 0), float(p.get("seconds") or 0.0)
            self.times.record_run(job.work.model, p.get("path") or job.work.path,
                                  job.work.batch, steps, train_s, total)
        elif job.status == "finished":
            self.times.record_job(job.kind, total)

    def wait(self, job_id: str, timeout: float = 60.0) -> Job:
        end = time.monotonic() + timeout
        with self._cv:
            while True:
                j = self._jobs[job_id]
                if j.done or time.monotonic() > end:
                    return j
                self._cv.wait(timeout=0.1)
