"""What open pages show of the queue, computed once for all of them: measured step times, the
estimated start of waiting jobs, and the frozen views (``JobView``, ``QueueSnapshot``) the service
hands pages instead of ``Job`` objects.

Step times: every finished training run adds its measured seconds per step (per row of its batch)
and the seconds it spent outside training steps (data, cache, evaluations) to a running measure
per (model, path) — path ``plain`` or ``fast`` (pseudo tokens after the start of the input, on a
causal LM). Other job kinds (comparisons, sweeps, re-tests, experiments) keep a running measure of
their whole duration per kind. A job whose kind has no measure yet has an unknown duration, and so
has the start of every job queued behind it (``None``: the page says it is not known yet).

The estimate of a waiting job's start is the remaining work of the jobs ahead of it on its device:
each worker slot is free when its running job is expected to end; queued jobs, in the order the
queue will run them, each take the slot that is free first (``start_times``). No Streamlit here.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Optional


class StepTimes:
    """Running measures (exponentially weighted, ``weight`` for the newest value) of seconds
    per step per batch row and seconds outside the steps, per (model, path); and of whole job
    durations per kind. Thread-safe."""

    def __init__(self, weight: float = 0.3):
        self.weight = weight
        self._lock = threading.Lock()
        self._step: dict = {}  # (model, path) -> [s per step per row, overhead s]
        self._kind: dict = {}  # kind -> s per job

    def _mix(self, old: Optional[float], new: float) -> float:
        return new if old is None else (1 - self.weight) * old + self.weight * new

    def record_run(self, model: str, path: str, batch: int, steps: int, train_s: float,
                   total_s: float) -> None:
        """A training run measured ``steps`` steps in ``train_s`` seconds and ``total_s`` from
        start to end."""
        if steps <= 0 or train_s <= 0 or batch <= 0:
            return
        per_row = train_s / steps / batch
        overhead = max(0.0, total_s - train_s)
        with self._lock:
            old = self._step.get((model, path))
            self._step[(model, path)] = [self._mix(old and old[0], per_row),
                                         self._mix(old and old[1], overhead)]

    def record_job(self, kind: str, total_s: float) -> None:
        if total_s < 0:
            return
        with self._lock:
            self._kind[kind] = self._mix(self._kind.get(kind), total_s)

    def step_seconds(self, model: str, path: str, batch: int) -> Optional[float]:
        """Expected seconds per step at this batch size (None: nothing measured). A path not yet
        measured on this model borrows the other path's measure (an estimate, not nothing)."""
        with self._lock:
            hit = self._step.get((model, path)) or next(
                (v for (m, _), v in self._step.items() if m == model), None)
        return None if hit is None else hit[0] * batch

    def overhead_seconds(self, model: str, path: str) -> float:
        with self._lock:
            hit = self._step.get((model, path)) or next(
                (v for (m, _), v in self._step.items() if m == model), None)
        return 0.0 if hit is None else hit[1]

    def job_seconds(self, kind: str) -> Optional[float]:
        with self._lock:
            return self._kind.get(kind)


@dataclass(frozen=True)
class Work:
    """What a training job will do, known when it is queued (for its estimate)."""
    model: str
    path: str  # plain | fast
    steps: int
    batch: int


def remaining_seconds(times: StepTimes, kind: str, work: Optional[Work], status: str,
                      step: int = 0, train_s: float = 0.0, elapsed_s: float = 0.0
                      ) -> Optional[float]:
    """Seconds until a job ends (None: unknown). ``status`` queued: its whole expected length;
    running: what is left of it, at its own measured rate once it has trained a step (else the
    measure of its model and path), plus what is left of the usual time outside the steps."""
    if work is None:  # not a training run: the measured duration of its kind
        total = times.job_seconds(kind)
        if total is None:
            return None
        return total if status == "queued" else max(0.0, total - elapsed_s)
    per_step = times.step_seconds(work.model, work.path, work.batch)
    if status != "queued" and step > 0 and train_s > 0:
        per_step = train_s / step  # this run's own rate
    if per_step is None:
        return None
    overhead = times.overhead_seconds(work.model, work.path)
    left_steps = max(0, work.steps - step)
    outside = max(0.0, overhead - max(0.0, elapsed_s - train_s))
    return left_steps * per_step + outside


def start_times(running_left: list, queued_lengths: list, slots: int = 1) -> list:
    """Seconds from now until each queued job starts, in queue order.

    ``running_left``: the seconds left of each running job (None: unknown); ``queued_lengths``:
    each queued job's expected length (None: unknown); ``slots``: jobs run at once. Each queued
    job takes the slot that is free first. Once an unknown length is involved, every start that
    depends on it is None."""
    slots = max(1, int(slots))
    free = list(running_left[:slots]) + [0.0] * max(0, slots - len(running_left))
    # more running jobs than slots cannot happen in the queue; if it does, they queue too
    extra = list(running_left[slots:])
    out = []
    for length in extra + list(queued_lengths):
        known = [f for f in free if f is not None]
        if len(known) < len(free) and (not known or min(known) > 0):
            # a slot whose end is unknown could be the first free one
            start = None
        else:
            start = min(known)
        i = free.index(start) if start is not None else free.index(None)
        out.append(start)
        free[i] = None if start is None or length is None else start + length
    return out[len(extra):]


@dataclass(frozen=True)
class JobView:
    """One job as a page shows it (frozen: pages cannot change the queue through it)."""
    id: str
    label: str
    kind: str
    owner_id: str  # the identity that started it (for ``Service.can_manage``)
    owner: str  # its display name
    status: str  # queued | running | finished | stopped | failed | cancelled
    stopping: bool
    position: int  # 1 = next to run; 0 while running or done
    step: int
    steps: int
    loss: Optional[float]
    seconds: float  # training seconds so far
    phase: Optional[str]
    phase_done: Optional[int]
    phase_total: Optional[int]
    losses: tuple  # ((step, loss), ...)
    dev: tuple  # ((step, accuracy), ...)
    error: Optional[str]
    run_id: Optional[str]
    start_in_s: Optional[float]  # queued: estimated seconds from ``at`` until it starts
    end_in_s: Optional[float]  # estimated seconds from ``at`` until it ends (None: unknown)
    at: float  # wall-clock time of the snapshot the estimates count from
    rev: int  # changes whenever anything shown here changes
    activity: Optional[str] = None  # what it does now, in words (a comparison's variant...)
    created: float = 0.0  # wall-clock time it was queued
    ended: Optional[float] = None  # wall-clock time it ended (None: not yet)

    @property
    def done(self) -> bool:
        return self.status in ("finished", "stopped", "failed", "cancelled")

    @property
    def state(self) -> str:
        return "stopping" if self.stopping and not self.done else self.status

    def progress(self) -> dict:
        """The progress numbers as ``ui.common.progress_line`` reads them."""
        return {"step": self.step, "steps": self.steps, "loss": self.loss,
                "seconds": self.seconds, "phase": self.phase, "phase_done": self.phase_done,
                "phase_total": self.phase_total}


@dataclass(frozen=True)
class QueueSnapshot:
    """Every job still in the server's memory, as of ``at``; ``version`` changes whenever any of
    it does, so a page that drew this version has nothing new to draw."""
    version: int
    at: float
    jobs: tuple = field(default_factory=tuple)  # JobView: live ones in run order, then done

    def get(self, job_id: str) -> Optional[JobView]:
        return next((j for j in self.jobs if j.id == job_id), None)

    @property
    def live(self) -> tuple:
        return tuple(j for j in self.jobs if not j.done)

    def has_live(self, who: str) -> bool:
        return any(j.owner_id == who for j in self.live)


def run_path(template, model_kind: str) -> str:
    """The path a template is expected to train on (before its run says): ``plain`` when a
    pseudo token comes first or the LM is masked, ``fast`` when something fixed comes before the
    first pseudo token of a causal LM (what ``PromptModel.fast_path_possible`` decides)."""
    from ptuning_core.template import Pseudo
    first = next((s for s in template.segments if getattr(s, "text", None) != ""), None)
    if model_kind != "causal" or first is None or isinstance(first, Pseudo):
        return "plain"
    return "fast"
