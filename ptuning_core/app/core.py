"""What the five façades share, private to the door: the settings, the run store, the job queue,
the class, and the executor (where queued work runs: this process, or the Ray pool). Pages never
see any of it; they get ``ServerInfo`` and the façades' frozen values."""
from __future__ import annotations

import logging
import os
import threading
from typing import Optional

from ptuning_core.store import evalcache
from ptuning_core.access import require_manage
from ptuning_core.store.classroom import Classroom
from ptuning_core.executors.jobs import JobQueue
from ptuning_core.store.runs import RunStore, StoreError
from .settings import Settings

log = logging.getLogger(__name__)

KIND_WORDS = {"train": "this run", "compare": "this comparison", "sweep": "this sweep",
              "experiment": "this experiment", "eval": "this evaluation",
              "retest": "this re-test"}


class Executor:
    """Where queued work runs. Local: in the queue's worker thread of this process. Ray
    (``PTUNING_RAY_ADDRESS``): on the pool's actors (``raybackend``); this process stays the
    driver and the one writer of the store. Every façade that queues work asks it for the
    queue's device and the function that does the work."""

    def __init__(self):
        self.pool = None  # raybackend.RayPool
        self.error: Optional[str] = None  # why the pool cannot take jobs (app banner)

    def start(self, queue: JobQueue) -> None:
        if not os.environ.get("PTUNING_RAY_ADDRESS", "").strip():
            return
        from ptuning_core.executors import raybackend
        try:
            self.pool = raybackend.pool()
        except raybackend.BackendUnavailable as e:
            self.error = str(e)
            log.error("the Ray backend cannot take jobs: %s", e)
            return
        queue.set_slots(raybackend.DEVICE, self.pool.size)
        log.info("jobs run on %s", self.pool.describe())

    def check(self) -> None:
        """Refuse work when a configured pool cannot take it (never run it here instead)."""
        if self.error is not None:
            from ptuning_core.executors.raybackend import BackendUnavailable
            raise BackendUnavailable(self.error)

    def device(self, local: str) -> str:
        """The queue's device of a job: the pool's when there is one."""
        if self.pool is None:
            return local
        from ptuning_core.executors.raybackend import DEVICE
        return DEVICE

    def describe(self) -> Optional[str]:
        return self.pool.describe() if self.pool is not None else None

    def train(self, who: str):
        """run_recorded(spec, store, rid, callback=, stop=, prepared=) on this executor."""
        from ptuning_core.engine.experiment import prepare, run_recorded
        if self.pool is None:
            return run_recorded
        from ptuning_core.executors import raybackend
        pool = self.pool

        def run(spec, store, rid, callback=None, stop=None, prepared=None):
            return raybackend.run_recorded(pool, spec, store, rid, prepared or prepare(spec),
                                           callback, stop, who)
        return run

    def sweep(self, spec, callback, stop, who: str) -> list:
        if self.pool is None:
            from ptuning_core.engine.fewshot import run_sweep
            return run_sweep(spec, callback=callback, stop=stop)
        from ptuning_core.executors import raybackend
        return raybackend.run_sweep(self.pool, spec, callback, stop, who)

    def experiment(self, plan, callback, stop) -> dict:
        from ptuning_core.engine import experiments as X
        return X.run(plan, callback=callback, stop=stop, pool=self.pool)

    def evaluate(self, lp, bb, ref, store, rid, max_eval, callback, who: str):
        """A learned prompt evaluated on ``ref``, stored as record ``rid``."""
        from ptuning_core.engine.learned import evaluate_recorded
        if self.pool is None:
            return evaluate_recorded(lp, bb, ref, store, rid, max_eval, callback=callback)
        from ptuning_core.executors import raybackend
        return raybackend.run_evaluation(self.pool, lp, ref, store, rid, max_eval, callback,
                                         who)

    def retest(self, store, run_id, bb, callback, who: str):
        from ptuning_core.app.views import retest
        if self.pool is None:
            return retest(store, run_id, bb, callback=callback)
        from ptuning_core.executors import raybackend
        return raybackend.run_retest(self.pool, store, run_id, callback, who)


class Core:
    """The state behind the door, one per server process."""

    def __init__(self, settings: Optional[Settings] = None, store: Optional[RunStore] = None,
                 classroom: Optional[Classroom] = None):
        self.settings = settings or Settings.from_env()
        self.store = store or RunStore()
        evalcache.use(self.store.root / "evalcache")  # discrete baselines, shared by the class
        self.classroom = classroom or Classroom(self.settings.teacher_code)
        self.queue = JobQueue(self.settings.max_queued, self.settings.max_queued_total,
                              self.settings.idle_timeout)
        self.executor = Executor()
        self.executor.start(self.queue)
        self.by_run: dict = {}  # run id -> id of the job that produces it
        self.lock = threading.Lock()

    def is_teacher(self, who: str) -> bool:
        return self.classroom.is_teacher(who)

    def checked_run(self, rid: str, who: str, verb: str) -> dict:
        """The stored entry ``rid`` if ``who`` may ``verb`` it (PermissionDenied otherwise)."""
        run = self.store.get(rid, details=False)
        if run is None:
            raise StoreError(f"no run {rid}")
        require_manage(run.get("owner"), who, self.is_teacher(who),
                       KIND_WORDS.get(run.get("kind"), "this run"), verb)
        return run

    def job_for_run(self, rid: str):
        with self.lock:
            jid = self.by_run.get(rid)
        return self.queue.get(jid) if jid else None

    def held_by(self, rid: str, job_id: str) -> None:
        with self.lock:
            self.by_run[rid] = job_id
