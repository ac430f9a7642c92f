"""A second job backend: runs and sweep cells on a pool of Ray actors (``PTUNING_RAY_ADDRESS``).

What runs where. The app server (or the CLI) stays the driver: it validates, reads the data
(uploads live there), orders jobs fairly (the local ``JobQueue``, one thread per actor), and is
the one writer of the run store. Each actor (one per GPU, or per CPU slot when the cluster has
no GPU) holds the frozen backbone once (``registry.get_backbone`` in its own process) and runs
one cell at a time: a run (``run_experiment``) or one (k, seed, method) cell of a few-shot
sweep. Its events stream back as they happen (a Ray streaming generator: the live loss curve),
a stop flag reaches it through another actor method, and what it produced (result, tensors,
logged steps) comes back to the driver, which writes the store. An actor that dies fails the
cell it was running (``WorkerLost``) and is replaced; the other cells go on.

Ray is imported here only, and only when a pool is started: without ``PTUNING_RAY_ADDRESS`` (or
``--backend ray`` on the CLI) nothing imports it. An address that cannot be reached gives one
line (``BackendUnavailable``) within ``PTUNING_RAY_CONNECT_TIMEOUT`` seconds (default 20); the
local backend is never used instead.

Environment: PTUNING_RAY_ADDRESS (host:port of a running head, ``ray://host:port``, ``auto``, or
``local`` to start a local Ray instance), PTUNING_RAY_WORKERS (actors; default one per GPU of the
cluster, else one per CPU), PTUNING_RAY_GPUS_PER_WORKER (default 1 when the cluster has GPUs),
PTUNING_RAY_CPUS_PER_WORKER (default 1), PTUNING_RAY_NUM_CPUS (CPUs of a ``local`` instance;
default all), PTUNING_RAY_CONNECT_TIMEOUT (seconds).
"""
from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

from ptuning_core.executors.jobs import QueueFull

log = logging.getLogger(__name__)

ENV_ADDRESS = "PTUNING_RAY_ADDRESS"
DEVICE = "ray"  # the JobQueue's device name for jobs that run on the pool
# Passed on to the actors when set on the driver (a worker elsewhere has its own paths).
PASS_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "PTUNING_OFFLINE", "TOKENIZERS_PARALLELISM",
            "PTUNING_MAX_MODELS")
LOCAL_ENV = ("PTUNING_MODELS", "PTUNING_HOME", "HF_HOME")  # only to a local instance


class BackendUnavailable(QueueFull):
    """The Ray cluster cannot take jobs (unreachable, Ray missing): one line for the user."""


class WorkerLost(RuntimeError):
    """The Ray worker running a cell died (killed, out of memory, its node lost)."""


def _env_num(name: str, default, cast=int):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        v = cast(raw)
    except ValueError:
        raise BackendUnavailable(f"{name}={raw!r} is not a number") from None
    if v < 0:
        raise BackendUnavailable(f"{name} must not be negative, got {raw}")
    return v


@dataclass
class RayConfig:
    address: str = "local"
    workers: int = 0  # 0: one per GPU of the cluster, else one per CPU
    gpus_per_worker: float = -1.0  # -1: 1 when the cluster has GPUs, else 0
    cpus_per_worker: float = 1.0
    num_cpus: int = 0  # CPUs of a local instance (0: all)
    connect_timeout: float = 20.0

    @classmethod
    def from_env(cls, address: Optional[str] = None) -> "RayConfig":
        return cls(address=(address or os.environ.get(ENV_ADDRESS, "") or "local").strip(),
                   workers=_env_num("PTUNING_RAY_WORKERS", 0),
                   gpus_per_worker=_env_num("PTUNING_RAY_GPUS_PER_WORKER", -1.0, float),
                   cpus_per_worker=_env_num("PTUNING_RAY_CPUS_PER_WORKER", 1.0, float) or 1.0,
                   num_cpus=_env_num("PTUNING_RAY_NUM_CPUS", 0),
                   connect_timeout=_env_num("PTUNING_RAY_CONNECT_TIMEOUT", 20.0, float) or 20.0)


def configured() -> Optional[str]:
    """The Ray address this process was told to use, or None (the local backend)."""
    return os.environ.get(ENV_ADDRESS, "").strip() or None


# ---- connecting ---------------------------------------------------------------------------------
def _host_port(address: str):
    a = address
    if "://" in a:
        a = a.split("://", 1)[1]
    a = a.split("/", 1)[0]
    host, sep, port = a.rpartition(":")
    if not sep:
        raise BackendUnavailable(f"{ENV_ADDRESS}={address!r} is not HOST:PORT, ray://HOST:PORT, "
                                 f"auto or local")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise BackendUnavailable(f"{ENV_ADDRESS}={address!r}: '{port}' is not a port") from None


def _runtime_env(cfg: RayConfig) -> dict:
    """The package travels to the workers (they run this server's code; their Python needs the
    requirements installed); a few settings go with it."""
    names = PASS_ENV + (LOCAL_ENV if cfg.address == "local" else ())
    env = {k: os.environ[k] for k in names if os.environ.get(k)}
    return {"py_modules": [str(Path(__file__).resolve().parents[1])], "env_vars": env}


def _init(cfg: RayConfig) -> None:
    try:
        import ray
    except ImportError:
        raise BackendUnavailable(f"{ENV_ADDRESS} is set but Ray is not installed here "
                                 f"(pip install -r requirements-ray.txt)") from None
    if cfg.address not in ("local", "auto"):
        host, port = _host_port(cfg.address)
        try:  # one quick TCP probe: Ray itself retries an unreachable head for minutes
            socket.create_connection((host, port), timeout=min(5.0, cfg.connect_timeout)).close()
        except OSError as e:
            raise BackendUnavailable(f"cannot reach the Ray cluster at {cfg.address} "
                                     f"({e.strerror or type(e).__name__}); is 'ray start "
                                     f"--head' running there?") from None
    if ray.is_initialized():  # connected already (one process, one cluster)
        return
    kw = dict(include_dashboard=False, log_to_driver=False, runtime_env=_runtime_env(cfg),
              configure_logging=False)
    if cfg.address == "local":  # a new instance, even if another one runs on this machine
        ray.init(address="local", num_cpus=cfg.num_cpus or None, **kw)
        return
    box: dict = {}

    def connect():
        try:
            ray.init(address=cfg.address, **kw)
            box["ok"] = True
        except BaseException as e:  # reported to the caller below
            box["error"] = e
    t = threading.Thread(target=connect, daemon=True, name="ptuning-ray-connect")
    t.start()
    t.join(cfg.connect_timeout)
    if "ok" in box:
        return
    why = box.get("error")
    msg = str(why).strip().splitlines()[0][:200] if why else \
        f"no answer within {cfg.connect_timeout:.0f} s"
    raise BackendUnavailable(f"cannot connect to the Ray cluster at {cfg.address}: {msg}")


# ---- the actor ----------------------------------------------------------------------------------
class Worker:
    """One Ray actor: holds the backbone(s) it was asked for (the registry of its process) and
    runs one cell at a time. ``run`` is a generator (Ray streams what it yields); ``stop`` runs
    beside it (the actor has two threads)."""

    def __init__(self, threads: int = 1):
        import torch
        if threads:
            torch.set_num_threads(max(1, int(threads)))
        self._lock = threading.Lock()
        self._stops: dict = {}  # token -> threading.Event
        self._sweeps: dict = {}  # sweep key -> SweepContext (the last two)

    def info(self) -> dict:
        from ptuning_core.lm.backbone import resolve_device
        return {"host": socket.gethostname(), "pid": os.getpid(),
                "device": str(resolve_device("auto"))}

    def _stop_event(self, token: str) -> threading.Event:
        with self._lock:
            return self._stops.setdefault(token, threading.Event())

    def stop(self, token: str) -> None:
        self._stop_event(token).set()

    def run(self, cell: dict, token: str, data=None):
        stop = self._stop_event(token)
        q: "queue.Queue" = queue.Queue()

        def work():
            try:
                q.put(("result", self._execute(cell, data, lambda e: q.put(("event", e)), stop)))
            except BaseException as e:
                q.put(("error", _portable_error(e)))
        threading.Thread(target=work, daemon=True, name="ptuning-cell").start()
        try:
            while True:
                batch = [q.get()]
                while True:
                    try:
                        batch.append(q.get_nowait())
                    except queue.Empty:
                        break
                yield batch
                if batch[-1][0] in ("result", "error"):
                    return
        finally:
            with self._lock:
                self._stops.pop(token, None)

    def _execute(self, cell: dict, data, emit, stop) -> dict:
        if cell["kind"] == "run":
            return _execute_run(cell, emit, stop)
        if cell["kind"] == "sweep":
            from ptuning_core.engine.fewshot import SweepContext, SweepSpec
            key = cell["sweep"]
            ctx = self._sweeps.get(key)
            if ctx is None:
                ctx = SweepContext(SweepSpec(**cell["spec"]), data)
                self._sweeps = {**dict(list(self._sweeps.items())[-1:]), key: ctx}
            k, seed, m = cell["cell"]
            return ctx.cell(k, seed, m, stop)
        if cell["kind"] == "eval":  # a learned prompt on rows the driver read
            from ptuning_core.engine.learned import evaluate_prompt
            from ptuning_core.lm.registry import get_backbone
            ev = evaluate_prompt(cell["prompt"], get_backbone(cell["model"], "auto"),
                                 cell["ref"], cell["max_eval"], callback=emit, data=cell["data"])
            return {"result": ev, "pid": os.getpid()}
        if cell["kind"] == "retest":  # a stored run (record, tensors) sent by the driver
            from ptuning_core.lm.registry import get_backbone
            from ptuning_core.engine.retest import retest
            res = retest(RecordingStore(".", emit, cell["resume"]), cell["run_id"],
                         get_backbone(cell["model"], "auto"), callback=emit, rows=cell["rows"])
            return {"result": res, "pid": os.getpid()}
        raise ValueError(f"unknown cell kind {cell['kind']!r}")


def _portable_error(e: BaseException) -> dict:
    """An error of a cell as plain data: the driver raises a user error (one line) as the same
    class again (``_raise``), anything else as a RuntimeError that names it."""
    if _user_error_classes().get(type(e).__name__) is not type(e):
        log.warning("cell failed: %s", traceback.format_exc())
    return {"type": type(e).__name__, "message": str(e)}


def _user_error_classes() -> dict:
    from ptuning_core.lm.backbone import ModelLoadError
    from ptuning_core.engine.experiment import USER_ERRORS
    return {c.__name__: c for c in (*USER_ERRORS, ModelLoadError)}


def _raise(err: dict):
    cls = _user_error_classes().get(err["type"])
    if cls is not None:
        raise cls(err["message"])
    raise RuntimeError(f"{err['type']}: {err['message']}")


class RecordingStore:
    """What ``run_experiment`` writes to a store, kept for the driver instead: logged steps go
    back as events as they come, the final result and tensors with the cell's result. A run
    that resumes reads the earlier run's record and encoder weights sent by the driver."""

    def __init__(self, root: str, emit, resume: Optional[dict] = None):
        self.root = Path(root)
        self.emit = emit
        self.resume = resume or {}
        self.finished = None

    def log_steps(self, rid: str, rows: list) -> None:
        if rows:
            self.emit({"type": "_steps", "rows": [list(r) for r in rows]})

    def finish(self, rid, status, result, tensors=None, error=None) -> None:
        self.finished = {"status": status, "result": result, "tensors": tensors or {},
                         "error": error}

    def run_dir(self, rid: str) -> Path:
        return self.root / rid

    def get(self, rid: str, details: bool = True):
        return self.resume.get("record") if rid == self.resume.get("id") else None

    def tensors(self, rid: str, fname: str = "prompt.safetensors") -> dict:
        return self.resume.get("tensors", {}).get(fname, {}) if rid == self.resume.get("id") \
            else {}


def _execute_run(cell: dict, emit, stop) -> dict:
    from ptuning_core.engine.experiment import RunSpec, run_experiment
    spec = RunSpec.from_dict(cell["spec"])
    rid = cell.get("run_id")
    rec = RecordingStore(cell["root"], emit, cell.get("resume")) if rid else None
    result = run_experiment(spec, callback=emit, stop=stop, store=rec, run_id=rid,
                            prepared=cell.get("prepared"),
                            keep_details=bool(cell.get("keep_details")))
    return {"result": result, "finish": rec.finished if rec else None}


# ---- the pool (driver side) ---------------------------------------------------------------------
class FairSlots:
    """``n`` workers handed out fairly: a free one goes to the first waiter of the session
    served least recently (the local queue's round-robin), so one session's sweep of many cells
    cannot keep everyone else's runs waiting. No Ray here."""

    def __init__(self, n: int):
        self._cv = threading.Condition()
        self._idle = list(range(n))
        self._pending: list = []  # [seq, session], in arrival order
        self._seq = 0
        self._last: dict = {}  # session -> monotonic time it was last handed a worker

    def _next_locked(self):
        firsts: dict = {}
        for t in self._pending:
            firsts.setdefault(t[1], t)
        if not firsts:
            return None
        s = min(firsts, key=lambda s: (self._last.get(s, 0.0), firsts[s][0]))
        return firsts[s]

    def waiting(self) -> list:
        """Sessions of the waiters, in arrival order."""
        with self._cv:
            return [t[1] for t in self._pending]

    def acquire(self, session: str, stop=None) -> Optional[int]:
        """Block until a worker is this caller's turn; its index, or None once ``stop`` is
        set (the caller gave up waiting)."""
        with self._cv:
            self._seq += 1
            ticket = [self._seq, session]
            self._pending.append(ticket)
            try:
                while True:
                    if stop is not None and stop.is_set():
                        return None
                    if self._idle and self._next_locked() is ticket:
                        self._last[session] = time.monotonic()
                        return self._idle.pop(0)
                    self._cv.wait(0.2)
            finally:
                self._pending.remove(ticket)
                self._cv.notify_all()

    def release(self, idx: int) -> None:
        with self._cv:
            self._idle.append(idx)
            self._cv.notify_all()


class RayPool:
    """The actors (one per GPU, or per CPU slot) and their fair hand-out (``FairSlots``)."""

    def __init__(self, cfg: RayConfig):
        import ray
        self.ray = ray
        self.cfg = cfg
        _init(cfg)
        res = ray.cluster_resources()
        gpus = float(res.get("GPU", 0))
        per_gpu = cfg.gpus_per_worker if cfg.gpus_per_worker >= 0 else (1.0 if gpus else 0.0)
        if cfg.workers:
            n = cfg.workers
        elif per_gpu:
            n = max(1, int(gpus // per_gpu))
        else:
            n = max(1, int(float(res.get("CPU", 1)) // cfg.cpus_per_worker))
        self._opts = dict(num_cpus=cfg.cpus_per_worker, num_gpus=per_gpu, max_concurrency=2)
        self._cls = ray.remote(Worker)
        self._handles = [self._new_actor() for _ in range(n)]
        self.slots = FairSlots(n)
        self.lost = 0  # actors that died and were replaced
        self.busy: dict = {}  # actor index -> what it runs now (a run id or a sweep cell)

    def _new_actor(self):
        return self._cls.options(**self._opts).remote(int(self.cfg.cpus_per_worker) or 1)

    @property
    def size(self) -> int:
        return len(self._handles)

    def describe(self) -> str:
        gpu = f", {self._opts['num_gpus']:g} GPU each" if self._opts["num_gpus"] else ""
        return f"Ray at {self.cfg.address}: {self.size} workers{gpu}"

    def _release(self, idx: int, dead: bool = False) -> None:
        if dead:
            try:
                self.ray.kill(self._handles[idx])
            except Exception:  # already gone
                pass
            self._handles[idx] = self._new_actor()
            self.lost += 1
        self.slots.release(idx)

    def handle(self, idx: int):
        return self._handles[idx]

    # ---- running one cell ---------------------------------------------------------------------
    def run_cell(self, cell: dict, session: str = "cli",
                 on_event: Optional[Callable[[dict], None]] = None,
                 stop: Optional[threading.Event] = None, data=None,
                 on_start: Optional[Callable[[int], None]] = None):
        """Wait for a fair turn, run ``cell`` on a free actor, pass its events to ``on_event``
        as they come; (result, worker index), or None when ``stop`` was set before it started.
        The cell's own errors are raised as they were; a dead actor raises WorkerLost."""
        ray = self.ray
        idx = self.slots.acquire(session, stop)
        if idx is None:
            return None
        actor, token, dead = self._handles[idx], uuid.uuid4().hex, False
        self.busy[idx] = cell.get("run_id") or cell.get("cell")
        try:
            if on_start is not None:
                on_start(idx)
            gen = actor.run.remote(cell, token, data)
            sent_stop = False
            while True:
                if stop is not None and stop.is_set() and not sent_stop:
                    actor.stop.remote(token)
                    sent_stop = True
                ready, _ = ray.wait([gen], timeout=0.25)
                if not ready:
                    continue
                try:
                    ref = next(gen)
                except StopIteration:
                    raise WorkerLost("the Ray worker ended the cell without a result") from None
                for kind, payload in ray.get(ref):
                    if kind == "event":
                        if on_event is not None:
                            on_event(payload)
                    elif kind == "error":
                        _raise(payload)
                    else:
                        return payload, idx
        except ray.exceptions.RayTaskError as e:  # the actor's own code broke (not a cell's)
            raise RuntimeError(f"the Ray worker failed: {str(e).strip().splitlines()[-1]}") \
                from None
        except ray.exceptions.RayActorError as e:
            dead = True
            why = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise WorkerLost(f"the Ray worker running this died ({why})") from None
        finally:
            self.busy.pop(idx, None)
            self._release(idx, dead)

    # What the layers below see of the pool (experiments.run gets a pool and calls these, so it
    # never imports this module: the arrows point down).
    def run_specs(self, specs: list, **kw) -> Iterator:
        return run_specs(self, specs, **kw)

    def run_sweep(self, spec, **kw) -> list:
        return run_sweep(self, spec, **kw)

    def close(self) -> None:
        for h in self._handles:
            try:
                self.ray.kill(h)
            except Exception:  # already gone
                pass


_pools: dict = {}
_pools_lock = threading.Lock()


def pool(address: Optional[str] = None) -> RayPool:
    """The process's pool for ``address`` (default: PTUNING_RAY_ADDRESS, else a local instance),
    started on first use. BackendUnavailable (one line) when it cannot be reached."""
    cfg = RayConfig.from_env(address)
    with _pools_lock:
        p = _pools.get(cfg.address)
        if p is None:
            p = _pools[cfg.address] = RayPool(cfg)
        return p


def shutdown() -> None:
    """Kill this process's actors and leave Ray (tests)."""
    with _pools_lock:
        for p in _pools.values():
            p.close()
        _pools.clear()
    import sys
    if "ray" in sys.modules:
        sys.modules["ray"].shutdown()


class _Either:
    """Set when either event is (the caller's stop, or a cell's failure)."""

    def __init__(self, *events):
        self.events = [e for e in events if e is not None]

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


# ---- what the service and the CLI call ----------------------------------------------------------
def run_recorded(p: RayPool, spec, store, run_id: str, prepared=None,
                 callback: Optional[Callable[[dict], None]] = None,
                 stop: Optional[threading.Event] = None, session: str = "cli") -> dict:
    """``experiment.run_recorded`` on the pool: the run is marked running once an actor takes
    it, its steps are logged and its result and tensors stored here (the one writer), and it is
    marked failed (with the error) if anything raises, its worker dying included."""
    emit = callback or (lambda e: None)
    resume = None
    if spec.resume:
        rec = store.get(spec.resume, details=False)
        resume = {"id": spec.resume, "record": rec,
                  "tensors": {"encoder.safetensors": store.tensors(spec.resume,
                                                                   "encoder.safetensors")}}
    cell = {"kind": "run", "spec": spec.to_dict(), "run_id": run_id, "prepared": prepared,
            "root": str(store.root), "resume": resume}

    def on_event(e):
        if e.get("type") == "_steps":
            store.log_steps(run_id, [tuple(r) for r in e["rows"]])
        else:
            emit(e)
    out = _run_stored_cell(p, cell, session, on_event, stop, store, run_id)
    if out is None:
        store.set_status(run_id, "cancelled")
        return {"status": "cancelled"}
    payload, idx = out
    fin = payload["finish"]
    store.finish(run_id, fin["status"], fin["result"], fin["tensors"], fin["error"])
    result = payload["result"]
    result["worker"] = idx
    return result


def _run_stored_cell(p: RayPool, cell: dict, session: str, on_event, stop, store, rid: str):
    """``p.run_cell`` for work whose record ``rid`` the driver keeps: marked running when a
    worker takes it, failed (with the one-line reason) when it raises."""
    try:
        return p.run_cell(cell, session, on_event, stop,
                          on_start=lambda i: store.set_status(rid, "running"))
    except BaseException as e:
        store.set_status(rid, "failed", error=f"{type(e).__name__}: {e}"[:2000])
        raise


def run_evaluation(p: RayPool, lp, ref: str, store, record_id: str,
                   max_eval: Optional[int] = None,
                   callback: Optional[Callable[[dict], None]] = None, session: str = "cli"):
    """``learned.evaluate_recorded`` on the pool: the rows are read here (uploads live with the
    driver), evaluated on a worker, and the evaluation stored here (the one writer)."""
    from ptuning_core.engine.learned import eval_rows, model_name
    cell = {"kind": "eval", "prompt": lp, "ref": ref, "max_eval": max_eval,
            "data": eval_rows(lp, ref, max_eval), "model": model_name(lp)}
    out = _run_stored_cell(p, cell, session, callback, None, store, record_id)
    ev = out[0]["result"]
    store.finish(record_id, "finished", ev.to_dict())
    return ev


def run_retest(p: RayPool, store, run_id: str,
               callback: Optional[Callable[[dict], None]] = None, session: str = "cli"):
    """``retest.retest`` on the pool: the run's record, prompt and evaluation rows are read here
    and sent to a worker; its ``RetestResult`` comes back."""
    from ptuning_core.lm.backbone import DEFAULT_MODEL
    from ptuning_core.engine.retest import retest_rows
    rec = store.get(run_id)
    resume = {"id": run_id, "record": rec, "tensors": {"prompt.safetensors":
                                                       store.tensors(run_id)}}
    cell = {"kind": "retest", "run_id": run_id, "resume": resume,
            "rows": retest_rows(rec["config"]),
            "model": rec["config"].get("model") or DEFAULT_MODEL}
    return p.run_cell(cell, session, callback, None)[0]["result"]


def run_sweep(p: RayPool, spec, callback: Optional[Callable[[dict], None]] = None,
              stop: Optional[threading.Event] = None, session: str = "cli") -> list:
    """``fewshot.run_sweep`` with its cells spread over the pool: the same rows, in the same
    order, for the same seeds. A cell whose worker died runs once more on another; if that one
    dies too, its row has ``error`` and no accuracy, and the others go on. Each row says which
    worker ran it (``worker``)."""
    from ptuning_core.engine.fewshot import sweep_cells, sweep_inputs
    emit = callback or (lambda e: None)
    inputs = p.ray.put(sweep_inputs(spec))
    key = uuid.uuid4().hex
    cells = sweep_cells(spec)
    rows: list = [None] * len(cells)
    failed = threading.Event()
    halt = _Either(stop, failed)
    done = [0]
    lock = threading.Lock()
    first_error: list = []

    def one(i):
        k, seed, m = cells[i]
        cell = {"kind": "sweep", "sweep": key, "spec": dict(spec.__dict__), "cell": [k, seed, m]}
        try:
            try:
                out = p.run_cell(cell, session, None, halt, data=inputs)
            except WorkerLost as e:  # a cell stores nothing: it is run once more elsewhere
                log.warning("sweep cell %s: %s; running it again", cells[i], e)
                out = p.run_cell(cell, session, None, halt, data=inputs)
        except WorkerLost as e:
            out = ({"method": m, "k": k, "seed": seed, "accuracy": None, "ci95": None,
                    "n_test": None, "error": str(e)}, None)
        except BaseException as e:  # the sweep fails with the first cell error
            with lock:
                first_error.append(e)
            failed.set()  # the cells still waiting are not started
            return
        if out is None:
            return
        row, idx = out
        row = dict(row, worker=idx)
        with lock:
            rows[i] = row
            done[0] += 1
            n = done[0]
        emit({"type": "cell", **row, "done": n, "total": len(cells)})

    threads = [threading.Thread(target=one, args=(i,), daemon=True, name=f"ptuning-cell-{i}")
               for i in range(len(cells))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if first_error:
        raise first_error[0]
    return [r for r in rows if r is not None]


def run_specs(p: RayPool, specs: list, store=None, owner: str = "cli", session: str = "cli",
              callback: Optional[Callable[[int, dict], None]] = None,
              stop: Optional[threading.Event] = None, keep_details: bool = False) -> Iterator:
    """The general entry (an experiment's cells): ``specs`` (RunSpec objects or their dicts)
    run across the pool, yielding ``(index, result)`` as each ends, or ``(index, exception)``
    for one that failed (a user error, a lost worker). With a ``store`` each is a stored run
    owned by ``owner`` (its id in ``result['run_id']``); ``callback(index, event)`` gets the
    live events. Each spec is validated and its data read here, before anything runs.
    ``keep_details`` (no store): each result also has its per-example ``details``."""
    from ptuning_core.engine.experiment import RunSpec, prepare
    specs = [s if isinstance(s, RunSpec) else RunSpec.from_dict(s) for s in specs]
    preps = [prepare(s) for s in specs]
    out: "queue.Queue" = queue.Queue()

    def one(i):
        s, prep = specs[i], preps[i]
        cb = (lambda e: callback(i, e)) if callback is not None else None
        try:
            if store is not None:
                rid = store.create(s.name or s.template[:60], s.to_dict(), owner,
                                   status="queued")
                res = run_recorded(p, s, store, rid, prep, cb, stop, session)
                res["run_id"] = rid
            else:
                got = p.run_cell({"kind": "run", "spec": s.to_dict(), "run_id": None,
                                  "prepared": prep, "root": ".", "resume": None,
                                  "keep_details": keep_details},
                                 session, cb, stop)
                res = {"status": "cancelled"} if got is None else \
                    dict(got[0]["result"], worker=got[1])
            out.put((i, res))
        except BaseException as e:
            out.put((i, e))
    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(specs))]
    for t in threads:
        t.start()
    for _ in specs:
        yield out.get()
