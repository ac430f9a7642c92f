"""What the app server needs from the core: settings chosen by whoever starts the server,
model allow-listing, and runs/sweeps submitted as background jobs that write to the store.

The one door between the pages and the core. Every call that changes something takes the
caller's identity (``who``) and checks it here: a run, comparison, sweep, job or upload belongs
to whoever started it; only its owner or the teacher may stop, rename, share, unshare or delete
it (``PermissionDenied``, a user error, otherwise)."""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from . import evalcache, uploads
from .access import PermissionDenied, may_manage, require_manage
from .backbone import DEFAULT_MODEL, ModelLoadError
from .classroom import Classroom
from .experiment import Prepared, RunSpec, prepare, run_recorded
from .jobs import Job, JobQueue, QueueFull
from .live import JobView, QueueSnapshot, Work, remaining_seconds, run_path, start_times
from .learned import Evaluation, LearnedPrompt, Prediction
from .lru import LRU
from .store import ACTIVE, RunStore, StoreError
from .train import ConfigError

log = logging.getLogger(__name__)


def _env_int(name, default):
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        log.warning("%s=%r is not a whole number; using %s", name, os.environ.get(name), default)
        return default


def _env_bool(name, default=False):
    v = os.environ.get(name)
    return default if v is None else v.strip().lower() in ("1", "true", "yes", "on")


@dataclass
class Settings:
    """Server limits. Environment: PTUNING_MAX_STEPS, PTUNING_MAX_QUEUED (per session),
    PTUNING_MAX_QUEUED_TOTAL, PTUNING_MAX_UPLOAD_MB, PTUNING_IDLE_TIMEOUT (s),
    PTUNING_ALLOWED_MODELS (comma list), PTUNING_ALLOW_LOCAL_PATHS, PTUNING_ALLOW_ANY_MODEL,
    PTUNING_TEACHER_CODE (unset or empty: no teacher mode)."""
    max_steps: int = 500
    max_queued: int = 3
    max_queued_total: int = 60
    max_upload_mb: int = 20
    idle_timeout: int = 1800
    allowed_models: list = field(default_factory=list)
    allow_local_paths: bool = False
    allow_any_model: bool = False
    teacher_code: str = field(default="", repr=False)

    @classmethod
    def from_env(cls) -> "Settings":
        allowed = [m.strip() for m in os.environ.get("PTUNING_ALLOWED_MODELS", "").split(",")
                   if m.strip()]
        return cls(max_steps=_env_int("PTUNING_MAX_STEPS", 500),
                   max_queued=_env_int("PTUNING_MAX_QUEUED", 3),
                   max_queued_total=_env_int("PTUNING_MAX_QUEUED_TOTAL", 60),
                   max_upload_mb=_env_int("PTUNING_MAX_UPLOAD_MB", 20),
                   idle_timeout=_env_int("PTUNING_IDLE_TIMEOUT", 1800),
                   allowed_models=allowed,
                   allow_local_paths=_env_bool("PTUNING_ALLOW_LOCAL_PATHS"),
                   allow_any_model=_env_bool("PTUNING_ALLOW_ANY_MODEL"),
                   teacher_code=os.environ.get("PTUNING_TEACHER_CODE", "").strip())

    def cached_hub_models(self) -> list:
        try:
            from huggingface_hub import scan_cache_dir
            from huggingface_hub.errors import CacheNotFound
        except ImportError:
            return []
        try:
            return sorted(r.repo_id for r in scan_cache_dir().repos if r.repo_type == "model")
        except CacheNotFound:
            return []  # nothing downloaded yet
        except OSError as e:
            log.warning("cannot read the Hugging Face cache: %s", e)
            return []

    def model_choices(self) -> list:
        out = [DEFAULT_MODEL] + [m for m in self.allowed_models if m != DEFAULT_MODEL]
        out += [m for m in self.cached_hub_models() if m not in out]
        return out

    def check_model(self, name: str) -> str:
        """Return the model name if this server allows it, else raise ModelLoadError."""
        name = (name or "").strip() or DEFAULT_MODEL
        if name == DEFAULT_MODEL or name in self.allowed_models:
            return name
        if len(name) > 300 or "\x00" in name:  # no model has such a name (and os.stat raises)
            raise ModelLoadError(f"the model '{name[:40]}…' is not on this server's list of "
                                 f"allowed models")
        looks_local = name.startswith((".", "/", "~")) or name.endswith(".gguf") or \
            "\\" in name or ".." in name or _exists(name)
        if looks_local:
            if self.allow_local_paths:
                return name
            raise ModelLoadError("this server does not load models from local paths "
                                 "(the person who started it can allow that)")
        if self.allow_any_model or name in self.cached_hub_models():
            return name
        raise ModelLoadError(f"the model '{name}' is not on this server's list of allowed "
                             f"models")


def _exists(name: str) -> bool:
    try:
        return Path(os.path.expanduser(name)).exists()
    except (OSError, ValueError):  # a name too long for a path, a NUL byte
        return False


KIND_WORDS = {"train": "this run", "compare": "this comparison", "sweep": "this sweep",
              "experiment": "this experiment"}


class Service:
    """One per server process: the queue, the store, the settings, the class."""

    def __init__(self, settings: Optional[Settings] = None, store: Optional[RunStore] = None,
                 classroom: Optional[Classroom] = None):
        self.settings = settings or Settings.from_env()
        self.store = store or RunStore()
        evalcache.use(self.store.root / "evalcache")  # discrete baselines, shared by the class
        self.classroom = classroom or Classroom(self.settings.teacher_code)
        self.queue = JobQueue(self.settings.max_queued, self.settings.max_queued_total,
                              self.settings.idle_timeout)
        self._by_run: dict = {}
        self._lock = threading.Lock()
        self._previews = LRU(lambda: self.PREVIEW_CACHE)
        self._prompts = LRU(lambda: self.PROMPT_CACHE)  # run id -> [prompt, model]
        self._predictions = LRU(lambda: self.PREDICTION_CACHE)
        # the pages' typed views (section "typed views for the pages" below)
        self._studio = LRU(lambda: self.STUDIO_CACHE)
        self._embeddings = LRU(lambda: self.EMBEDDINGS_CACHE)
        self._maps = LRU(lambda: self.MAP_CACHE)
        self._retests = LRU(lambda: self.RETEST_CACHE)  # job id / "run:<id>" -> RetestResult
        self._live = None  # the last QueueSnapshot (section "the queue as the class sees it")
        self._live_key = None
        self._live_checked = self._live_made = 0.0
        self._live_lock = threading.Lock()
        self._done_views = LRU(lambda: self.DONE_VIEW_CACHE)  # job id -> JobView (done)
        self._teachers = LRU(lambda: 512)  # who -> (is teacher, when looked up): display only
        self.ray = None  # the Ray pool runs and sweeps go to (PTUNING_RAY_ADDRESS set)
        self.backend_error: Optional[str] = None  # why that pool cannot take jobs (app banner)
        self._start_backend()

    # ---- where runs and sweeps run --------------------------------------------------------------
    def _start_backend(self) -> None:
        """With PTUNING_RAY_ADDRESS set, runs, sweeps and comparisons run on a Ray pool
        (``raybackend``); when it cannot be reached ``backend_error`` says why (one line, shown
        by the app) and they are refused, never run here instead. Unset: Ray is not imported."""
        if not os.environ.get("PTUNING_RAY_ADDRESS", "").strip():
            return
        from . import raybackend
        try:
            self.ray = raybackend.pool()
        except raybackend.BackendUnavailable as e:
            self.backend_error = str(e)
            log.error("the Ray backend cannot take jobs: %s", e)
            return
        self.queue.set_slots(raybackend.DEVICE, self.ray.size)
        log.info("jobs run on %s", self.ray.describe())

    def backend(self) -> dict:
        """{backend: local | ray, workers (Ray), error (one line, or None)}."""
        if self.ray is None and self.backend_error is None:
            return {"backend": "local", "error": None}
        return {"backend": "ray", "workers": self.ray.size if self.ray else 0,
                "error": self.backend_error}

    def _check_backend(self) -> None:
        if self.backend_error is not None:
            from .raybackend import BackendUnavailable
            raise BackendUnavailable(self.backend_error)

    def _runner(self, who: str):
        """run_recorded(spec, store, rid, callback=, stop=, prepared=) on this server's
        backend."""
        if self.ray is None:
            return run_recorded
        from . import raybackend
        pool = self.ray

        def run(spec, store, rid, callback=None, stop=None, prepared=None):
            return raybackend.run_recorded(pool, spec, store, rid, prepared or prepare(spec),
                                           callback, stop, who)
        return run

    def clamp_steps(self, steps: int) -> int:
        return max(1, min(int(steps), self.settings.max_steps))

    def check_spec(self, who: str, spec: RunSpec) -> Prepared:
        """The one validation path of a run's settings on this server (model allowed, step
        limit, data this caller may read, then everything ``prepare`` checks). User errors
        raise here, before anything is queued."""
        from . import config as C
        spec.model = self.settings.check_model(spec.model)
        C.check_seed(spec.train_cfg.seed)
        if spec.shots is not None:
            C.check("shots", spec.shots)
        if spec.max_eval is not None:
            C.check("max_eval", spec.max_eval)
        if len(spec.template or "") > C.MAX_TEMPLATE_CHARS:
            raise ConfigError(f"the template is {len(spec.template)} characters long; "
                              f"{C.range_text('template_chars')}")
        if spec.train_cfg.steps > self.settings.max_steps:
            raise ConfigError(f"this server allows at most {self.settings.max_steps} steps per "
                              f"run")
        for ref in (spec.train, spec.eval, spec.dev):
            if ref is not None:
                self.check_data_ref(ref, who)
        return prepare(spec)

    def submit_run(self, who: str, spec: RunSpec) -> Job:
        """Validate (user errors raise here, in the page), then queue a run owned by ``who``
        (the identity; also its session in the queue's fairness). Returns the job."""
        self._check_backend()
        prep = self.check_spec(who, spec)
        from .backbone import resolve_device
        from .experiment import check_against_model
        from .registry import get_backbone
        check_against_model(spec, prep, get_backbone(spec.model, spec.device))
        device = str(resolve_device(spec.device))
        rid = self.store.create(spec.name or spec.template[:60], spec.to_dict(), who,
                                status="queued")
        store = self.store

        runner = self._runner(who)
        if self.ray is not None:
            from .raybackend import DEVICE as device

        def fn(job: Job):
            return runner(spec, store, rid, callback=job.event, stop=job.stop, prepared=prep)
        try:
            job = self.queue.submit(who, fn, device, spec.name or spec.template[:60], "train")
        except QueueFull:
            self.store.delete(rid, force=True)  # never queued: leave no trace
            raise
        job.run_id = rid
        job.on_cancel = lambda: store.set_status(rid, "cancelled")
        job.work = Work(spec.model, run_path(prep.template, get_backbone(spec.model,
                                                                         spec.device).kind),
                        spec.train_cfg.steps, spec.train_cfg.batch_size)
        self.queue.bump()
        with self._lock:
            self._by_run[rid] = job.id
        return job

    def check_data_ref(self, ref: str, who: Optional[str] = None) -> str:
        """Server mode: data comes from bundled sets or files this server wrote (uploads). With
        ``who``, an upload must be theirs or the class's (the teacher may read any)."""
        from . import data as D
        from . import hfdata
        if hfdata.is_hf_ref(ref):
            if hfdata.parse_ref(ref).local and not self.settings.allow_local_paths:
                raise D.DataError("this server does not read local folders (hf:./...); use a "
                                  "Hugging Face dataset name")
            return ref
        if D.is_bundled_ref(ref):
            name, split = ref.rsplit(":", 1)
            if split not in D.dataset_info(name)["files"]:
                raise D.DataError(f"dataset '{name}' has no split '{split}'")
            return ref
        owner = uploads.owner_of(ref)
        if owner is None:
            raise D.DataError("this server only reads bundled datasets and files uploaded "
                              "through the app")
        if who is not None and owner not in (who, uploads.CLASS) and not self.is_teacher(who):
            raise PermissionDenied("that uploaded file belongs to someone else; upload your "
                                   "own copy")
        return ref

    def open_hf_dataset(self, train_ref: str, eval_ref: str, text_fields: list,
                        label_field: str = "label") -> dict:
        """Check and load a Hugging Face dataset for the app: the data context a page works
        with (same shape as an upload's). One-line DataError on anything wrong."""
        import re

        from . import config as C
        from . import data as D
        from . import hfdata
        for ref in (train_ref, eval_ref):
            if not hfdata.is_hf_ref(ref or ""):
                raise D.DataError(f"'{ref}' is not of the form hf:NAME[/CONFIG]:SPLIT")
            self.check_data_ref(ref)
        text_fields = [f.strip() for f in text_fields if f.strip()]
        if not text_fields:
            raise D.DataError("name the text column(s) of the dataset")
        for f in text_fields + [label_field]:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", f):
                raise D.DataError(f"'{f}' cannot be a template field; columns used by the app "
                                  f"need plain names (letters, digits, _)")
        train = D.validate(D.load_ref(train_ref), text_fields, label_field)
        D.validate(D.load_ref(eval_ref), text_fields, label_field)
        classes = sorted({r[label_field] for r in train.rows})
        if len(classes) < 2:
            raise D.DataError(f"{train_ref} has only one class; training needs two")
        if len(classes) > C.MAX_CLASSES:
            raise D.DataError(f"{train_ref} has {len(classes)} different labels (at most "
                              f"{C.MAX_CLASSES} classes; is '{label_field}' the label column?)")
        return {"name": f"hf:{train_ref[3:].rsplit(':', 1)[0]}", "train_ref": train_ref,
                "eval_ref": eval_ref, "dev_ref": None, "rows": train.rows[:2000],
                "fields": text_fields, "label_field": label_field, "classes": classes,
                "verbalizer": {c: [c] for c in classes},
                **C.upload_templates(text_fields),  # the same as an upload's
                "description": f"{train_ref} ({len(train.rows)} rows) evaluated on {eval_ref}",
                "vocab": False, "warnings": train.warnings}

    # ---- using a learned prompt (no encoder) -------------------------------------------------
    PROMPT_CACHE = 8  # loaded fixed prompts (each a small PromptModel over the shared backbone)
    PREDICTION_CACHE = 256

    def learned_prompt(self, run_id: str) -> LearnedPrompt:
        """A stored run's learned prompt; PromptFileError (one line) when there is no such run
        or it learned none. Remembered (LRU) while the run exists."""
        from .learned import from_run
        from .portable import PromptFileError
        if self.store.get(run_id, details=False) is None:
            self._forget_prompt(run_id)
            raise PromptFileError(f"no run {run_id}")
        hit = self._prompts.get(run_id)
        if hit is not None:
            return hit[0]
        lp = from_run(run_id, self.store)
        self._prompts.put(run_id, [lp, None])
        return lp

    def _forget_prompt(self, run_id: str) -> None:
        self._prompts.drop(lambda k: k == run_id)
        self._predictions.drop(lambda k: json.loads(k)[0] == run_id)

    def _fixed_prompt_model(self, run_id: str):
        """(learned prompt, PromptModel with the stored embeddings as its fixed prompt), on the
        model the prompt was learned on, if this server allows it."""
        from .learned import model_name, prompt_model
        from .registry import get_backbone
        lp = self.learned_prompt(run_id)
        bb = get_backbone(self.settings.check_model(model_name(lp)), "auto")
        hit = self._prompts.get(run_id)
        pm = hit[1] if hit is not None else None
        if pm is None or pm.backbone is not bb:  # first use, or the model was reloaded
            pm = prompt_model(lp, bb)
            self._prompts.put(run_id, [lp, pm])
        return lp, pm

    def predict(self, run_id: str, fields: dict) -> Prediction:
        """One example (a text per template field) through a run's learned prompt, without its
        encoder: class probabilities, or the top tokens (open vocabulary). User errors (no
        run, no prompt, a field missing, a model not allowed) raise with one line."""
        from . import config as C
        from .learned import example_from, predict
        for name, text in (fields or {}).items():
            if isinstance(text, str) and len(text) > C.MAX_TEXT_CHARS:
                raise ConfigError(f"the text of '{name}' is {len(text)} characters long; "
                                  f"{C.range_text('text_chars')}")
        lp = self.learned_prompt(run_id)
        ex = example_from(lp, fields)
        key = json.dumps([run_id, ex], sort_keys=True)
        hit = self._predictions.get(key)
        if hit is not None:
            return hit
        lp, pm = self._fixed_prompt_model(run_id)
        pred = predict(lp, pm, ex)
        self._predictions.put(key, pred)
        return pred

    def submit_evaluation(self, session: str, run_id: str, ref: str,
                          max_eval: Optional[int] = None, owner: str = "") -> Job:
        """Queue an evaluation of a run's learned prompt (and its discrete template) on ``ref``.
        Checked here (user errors raise in the page); the job stores its result as an 'eval'
        record of the store (see ``evaluations``)."""
        from .learned import eval_rows, evaluate_recorded
        if max_eval is not None and int(max_eval) < 1:
            raise ConfigError("evaluate on at least 1 example")
        self.check_data_ref(ref, session)
        lp, pm = self._fixed_prompt_model(run_id)
        eval_rows(lp, ref, max_eval)  # the data fits the prompt (columns, labels)
        bb, store = pm.backbone, self.store
        label = f"{lp.name} on {ref}"
        rid = store.create(label, {"prompt": run_id, "eval": ref, "max_eval": max_eval,
                                   "model": lp.model}, owner or session, kind="eval",
                           status="queued")

        def fn(job: Job):
            return evaluate_recorded(lp, bb, ref, store, rid, max_eval, callback=job.event)
        try:
            job = self.queue.submit(session, fn, str(bb.device), label)
        except QueueFull:
            store.delete(rid, force=True)
            raise
        job.run_id = rid
        job.on_cancel = lambda: store.set_status(rid, "cancelled")
        return job

    def evaluations(self, run_id: str) -> list:
        """The finished evaluations of a run's learned prompt, newest first."""
        return [Evaluation.from_dict(r["result"]) for r in self.store.list(kind="eval")
                if r["config"].get("prompt") == run_id and r["status"] == "finished"
                and r["result"]]

    def submit_task(self, who: str, label: str, fn, device: str = "cpu",
                    kind: str = "task") -> Job:
        """Queue any other long task owned by ``who``: fn(job) -> result."""
        return self.queue.submit(who, fn, device, label, kind)

    def submit_comparison(self, who: str, spec: RunSpec, variants: list,
                          device: str = "cpu") -> Job:
        """Check a comparison (user errors raise here), then queue it; its runs and its
        comparison entry belong to ``who``."""
        from .compare import run_comparison, variant_specs
        self._check_backend()
        if not variants:
            raise ConfigError("choose at least one variant to compare with the discrete prompt")
        self.check_spec(who, spec)
        variant_specs(spec, variants)  # unknown variants raise here
        store, runner = self.store, self._runner(who)
        if self.ray is not None:
            from .raybackend import DEVICE as device
        return self.submit_task(who, "comparison", lambda j: run_comparison(
            spec, variants, store, who, j.event, j.stop, runner=runner), device, "compare")

    def submit_sweep(self, who: str, spec, device: str = "cpu") -> Job:
        """Queue a few-shot sweep (a ``fewshot.SweepSpec``); the stored sweep belongs to ``who``."""
        from . import data as D
        from .fewshot import run_sweep, summarize
        self._check_backend()
        from . import config as C
        spec.model = self.settings.check_model(spec.model)
        if not spec.methods:
            raise ConfigError("choose at least one method")
        if not spec.ks:
            raise ConfigError("give at least one k")
        for k in spec.ks:
            C.check("k", k)
        for s in spec.seeds:
            C.check_seed(s)
        if spec.steps > self.settings.max_steps:
            raise ConfigError(f"this server allows at most {self.settings.max_steps} steps per "
                              f"run")
        D.dataset_info(spec.dataset)  # an unknown dataset raises DataError here
        store = self.store

        pool = self.ray
        if pool is not None:
            from . import raybackend
            device = raybackend.DEVICE

        def fn(job: Job):
            rows = run_sweep(spec, callback=job.event, stop=job.stop) if pool is None else \
                raybackend.run_sweep(pool, spec, job.event, job.stop, who)
            rid = store.create(f"sweep {spec.dataset}", spec.__dict__, who, kind="sweep",
                               status="running")
            store.finish(rid, "stopped" if job.stop.is_set() else "finished",
                         {"rows": rows, "summary": summarize(rows)})
            return rows
        return self.submit_task(who, f"sweep {spec.dataset}", fn, device, "sweep")

    # ---- experiments (the method's claims, E1-E6) -------------------------------------------
    def submit_experiment(self, who: str, request) -> Job:
        """Check an ``experiments.ExperimentRequest`` (model allowed, step limit, preset, seeds,
        k, dataset: user errors raise here), then queue it; the stored experiment belongs to
        ``who``. The job's result is an ``experiments.ExperimentResult``."""
        from . import experiments as X
        from .backbone import resolve_device
        request.model = self.settings.check_model(request.model)
        plan = X.plan(request)
        if plan.settings.steps > self.settings.max_steps:
            raise ConfigError(f"this server allows at most {self.settings.max_steps} steps per "
                              f"run")
        store = self.store

        def fn(job: Job):
            res = X.run(plan, callback=job.event, stop=job.stop)
            rid = X.record(store, who, request, res)
            job.run_id = rid
            return X.ExperimentResult.from_store(store, rid)
        label = f"{plan.experiment.id} {plan.experiment.title}"
        return self.submit_task(who, label, fn, str(resolve_device(request.device)),
                                X.STORE_KIND)

    def experiment(self, rid: str):
        """A stored experiment (``experiments.ExperimentResult``); StoreError if there is none."""
        from . import experiments as X
        res = X.ExperimentResult.from_store(self.store, rid)
        if res is None:
            raise StoreError(f"no experiment {rid}")
        return res

    def experiments(self) -> list:
        """Stored experiments, newest first: (id, experiment id, status, created)."""
        from . import experiments as X
        return [{"id": r["id"], "experiment": r["config"].get("experiment"), "name": r["name"],
                 "status": r["status"], "created": r["created"], "owner": r.get("owner")}
                for r in self.store.list(kind=X.STORE_KIND)]

    def import_prompt(self, who: str, path, backbone=None, model: Optional[str] = None) -> str:
        """Import a prompt file as a run owned by ``who``; its run id."""
        from .portable import import_prompt
        return import_prompt(self.store, path, owner=who, backbone=backbone, model=model)

    def job_for_run(self, rid: str) -> Optional[Job]:
        with self._lock:
            jid = self._by_run.get(rid)
        return self.queue.get(jid) if jid else None

    def current_job(self, who: str, kind: str = "train") -> Optional[Job]:
        """``who``'s latest job of a kind, one still queued or running first (what a page shows
        after a refresh or in a new tab)."""
        mine = [j for j in self.queue.jobs(who) if j.kind == kind]
        live = [j for j in mine if not j.done]
        running = [j for j in live if j.status == "running"]  # the current one, not the next
        return (running or live or mine or [None])[-1]

    # ---- who may change what ------------------------------------------------------------------
    def is_teacher(self, who: str) -> bool:
        return self.classroom.is_teacher(who)

    def can_manage(self, who: str, owner) -> bool:
        """May ``who`` change what ``owner`` started? (its owner or the teacher)"""
        return may_manage(owner, who, self.is_teacher(who))

    def _checked_run(self, rid: str, who: str, verb: str) -> dict:
        run = self.store.get(rid, details=False)
        if run is None:
            raise StoreError(f"no run {rid}")
        require_manage(run.get("owner"), who, self.is_teacher(who),
                       KIND_WORDS.get(run.get("kind"), "this run"), verb)
        return run

    def stop_run(self, rid: str, who: str) -> None:
        """Stop a running run (keeps what it learned) or cancel a queued one."""
        self._checked_run(rid, who, "stop")
        job = self.job_for_run(rid)
        if job is not None:
            self.queue.stop(job.id)

    def stop_job(self, job_id: str, who: str) -> None:
        """Stop any queued or running job (a run, comparison or sweep)."""
        job = self.queue.get(job_id)
        if job is None:
            return
        require_manage(job.session, who, self.is_teacher(who),
                       KIND_WORDS.get(job.kind, "this job"), "stop")
        self.queue.stop(job_id)

    def rename_run(self, rid: str, name: str, who: str) -> None:
        self._checked_run(rid, who, "rename")
        self.store.rename(rid, name)

    def share_run(self, rid: str, shared: bool, who: str) -> None:
        """Put a run on the class board (under its owner's display name) or take it off."""
        run = self._checked_run(rid, who, "share" if shared else "unshare")
        if shared:
            author = self.classroom.labels([run.get("owner") or ""]).get(run.get("owner") or "")
            self.store.share(rid, True, author or "anonymous")
        else:
            self.store.share(rid, False, run.get("author") or "")

    def remove_from_board(self, rid: str, who: str) -> None:
        """Take an entry off the class board: its owner or the teacher."""
        run = self._checked_run(rid, who, "remove from the board")
        self.store.share(rid, False, run.get("author") or "")

    def delete_run(self, rid: str, who: str) -> None:
        """Delete a run, comparison or sweep and its files (a queued run is cancelled first; a
        running one must be stopped first)."""
        run = self._checked_run(rid, who, "delete")
        job = self.job_for_run(rid) if run["status"] in ACTIVE else None
        if job is not None:
            self.queue.stop(job.id)  # a queued run is cancelled at once
            if not job.done:
                raise StoreError("the run is stopping (what it learned is kept); delete it "
                                 "once it has stopped")
        self.store.delete(rid)

    # ---- the queue as the class sees it -------------------------------------------------------
    LIVE_INTERVAL = 0.5  # s: the snapshot is rebuilt at most this often, for every page at once
    LIVE_MAX_AGE = 15.0  # s: and at least this often (display names, estimates)
    DONE_VIEW_CACHE = 512
    TEACHER_TTL = 10.0  # s a page's "may I stop it" display trusts a teacher lookup

    def live(self) -> QueueSnapshot:
        """The queue and its jobs' progress for every open page (``QueueSnapshot`` of
        ``JobView``s): rebuilt at most every ``LIVE_INTERVAL`` seconds and only when the queue's
        version changed (or ``LIVE_MAX_AGE`` passed), so an open page that polls an unchanged
        queue costs a comparison; a job added, started, ended or stopped is seen at once. No
        model or store work unless a job just ended (its stored curves, read once)."""
        now = time.monotonic()
        snap, q, key = self._live, self.queue, self._live_key
        if snap is not None and key is not None and key[0] == q.structure and (
                now - self._live_checked < self.LIVE_INTERVAL or
                (key[1] == q.version and now - self._live_made < self.LIVE_MAX_AGE)):
            return snap  # nothing was added, started, ended or stopped since: the shared one
        with self._live_lock:
            return self._rebuild_live()

    def _rebuild_live(self) -> QueueSnapshot:
        key = (self.queue.structure, self.queue.version)
        now = time.monotonic()
        if self._live is None or key != self._live_key or now - self._live_made >= \
                self.LIVE_MAX_AGE:
            self._live = self._build_live(key[1])
            self._live_key, self._live_made = key, now
        self._live_checked = now
        return self._live

    def _build_live(self, version: int) -> QueueSnapshot:
        at = time.time()
        jobs = self.queue.jobs()
        live = [j for j in jobs if not j.done]
        labels = self.classroom.labels(j.session for j in live) if live else {}
        times = self.queue.times
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
            order = self.queue.order(device)
            lengths = [left[j.id][0] if j.id in left else None for j in order]
            for i, (j, s) in enumerate(zip(order, start_times(
                    running, lengths, self.queue.slots(device)))):
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
                       at, j.rev)

    def _done_view(self, j: Job) -> JobView:
        """A done job's view: built once (its curves read from the store once), then kept."""
        snap = j.snapshot()
        losses, dev = (self.run_curves(j.run_id) if j.run_id and
                       self.store.get(j.run_id, details=False) is not None else ([], []))
        owner = self.classroom.labels([j.session]).get(j.session, "")
        v = self._view(j, snap, owner, 0, None, 0.0, time.time(), losses, dev)
        self._done_views.put(j.id, v)
        return v

    def job_view(self, job_id: str) -> Optional[JobView]:
        """One job as of the latest snapshot (None when the server no longer holds it)."""
        snap = self.live()
        v = snap.get(job_id)
        if v is None and self.queue.get(job_id) is not None:  # newer than the snapshot
            with self._live_lock:
                self._live_key = None
                v = self._rebuild_live().get(job_id)
        return v

    def teacher_view(self, who: str) -> bool:
        """Whether ``who`` is the teacher, for what a polling page shows: the flag is remembered
        for ``TEACHER_TTL`` seconds (a permission itself is always checked again)."""
        hit = self._teachers.get(who)
        if hit is None or time.monotonic() - hit[1] > self.TEACHER_TTL:
            hit = (self.is_teacher(who), time.monotonic())
            self._teachers.put(who, hit)
        return hit[0]

    def may_stop(self, who: str, owner: str) -> bool:
        """Whether to show ``who`` a Stop button for ``owner``'s job: ``can_manage`` with the
        teacher flag of ``teacher_view`` (stopping checks again, ``stop_job``)."""
        return may_manage(owner, who, owner != who and self.teacher_view(who))

    def queue_rows(self, who: str) -> list:
        """Every queued or running job, in order (running first, then by position): label,
        kind, owner's display name, whether it is ``who``'s, state, position, step, whether
        ``who`` may stop it, and the estimated start (seconds from now; None: unknown or
        running). Read from the shared snapshot (``live``)."""
        snap = self.live()
        now = time.time()
        rows = []
        for v in snap.live:
            start = None if v.start_in_s is None else max(0.0, v.start_in_s - (now - snap.at))
            rows.append({"job": v.id, "run": v.label, "kind": v.kind, "owner": v.owner,
                         "yours": v.owner_id == who, "state": v.state,
                         "position": v.position or None,
                         "step": v.step if v.status == "running" and v.steps else None,
                         "start_in_s": start, "can_stop": self.may_stop(who, v.owner_id)})
        return rows

    # ---- uploads and the class's pinned data --------------------------------------------------
    def save_upload(self, who: str, raw: bytes, filename: str, text_fields: list,
                    label_field: str) -> dict:
        """Validate and keep an uploaded file in ``who``'s folder; its data context."""
        from . import data as D
        if len(raw) > self.settings.max_upload_mb * 2 ** 20:
            raise D.DataError(f"the file is larger than this server's limit "
                              f"({self.settings.max_upload_mb} MB)")
        return uploads.save(who, raw, filename, text_fields, label_field)

    def open_upload(self, who: str, meta: dict) -> dict:
        """The data context of a kept upload, if it is ``who``'s or the class's."""
        for key in ("train_ref", "eval_ref"):
            self.check_data_ref(str((meta or {}).get(key) or ""), who)
        return uploads.context(meta)

    def class_pin(self) -> Optional[dict]:
        """What the teacher pinned: {template, dataset, upload (meta) or hf (references), by,
        version}, or None. An uploaded or Hugging Face dataset is named ``class:...``
        (``class_data`` opens it); a bundled one keeps its name."""
        return self.classroom.pin()

    def pin_class(self, who: str, template: str, ctx: dict) -> dict:
        """Pin a template and the data context it is for; students' Studio opens on them. An
        uploaded dataset is copied to the class folder so every student can read it."""
        from .template import parse
        if not self.is_teacher(who):
            raise PermissionDenied("only the teacher can pin the class template")
        parse(template, fields=ctx["fields"])  # a TemplateError says what is wrong
        from .hfdata import is_hf_ref
        name = ctx["name"]
        for prefix in ("class:", "upload:"):
            name = name[len(prefix):] if name.startswith(prefix) else name
        pin = {"template": template, "dataset": name, "upload": None, "hf": None,
               "by": self.classroom.labels([who])[who], "version": time.time()}
        if uploads.owner_of(ctx["train_ref"]) is not None:
            self.open_upload(who, uploads.meta(ctx))  # checks the files are readable by who
            pin["dataset"] = "class:" + name
            pin["upload"] = {**uploads.copy_to_class(uploads.meta(ctx)), "name": pin["dataset"]}
        elif is_hf_ref(ctx["train_ref"]):
            pin["dataset"] = "class:" + name
            pin["hf"] = {"train_ref": ctx["train_ref"], "eval_ref": ctx["eval_ref"],
                         "text_fields": ctx["fields"], "label_field": ctx["label_field"]}
        self.classroom.set_pin(who, pin)
        return pin

    def unpin_class(self, who: str) -> None:
        self.classroom.set_pin(who, None)

    def class_data(self, who: str) -> Optional[dict]:
        """The data context of the pinned dataset when it is an upload or a Hugging Face
        dataset (None for a bundled one, or no pin); its name is the pin's ``dataset``."""
        pin = self.class_pin()
        if not pin:
            return None
        if pin.get("upload"):
            ctx = self.open_upload(who, pin["upload"])
        elif pin.get("hf"):
            ctx = self.open_hf_dataset(**pin["hf"])
        else:
            return None
        ctx["name"] = pin["dataset"]
        return ctx

    # ---- what a student's pages open on -------------------------------------------------------
    def keep_working_state(self, who: str, values: dict) -> None:
        """Keep what changed on ``who``'s pages, for their next tab or refresh: any of ``name``,
        ``template``, ``template_input``, ``dataset``, ``model``, ``pin_seen`` and the data
        contexts ``upload`` and ``hfdata`` (kept as references, not rows). Only the keys given
        change (None removes one), so a tab that changed its name does not put back the
        template another tab replaced."""
        if "name" in values:
            self.classroom.set_name(who, values["name"] or "")
        changes = {k: values[k] for k in ("template", "template_input", "dataset", "model",
                                          "pin_seen", "label_tokens") if k in values}
        if "upload" in values:
            changes["upload"] = uploads.meta(values["upload"]) if values["upload"] else None
        if "hfdata" in values:
            hf = values["hfdata"]
            changes["hf"] = {"train_ref": hf["train_ref"], "eval_ref": hf["eval_ref"],
                             "text_fields": hf["fields"], "label_field": hf["label_field"]} \
                if hf else None
        if changes:
            self.classroom.save_state(who, changes)

    def working_state(self, who: str) -> dict:
        """What ``who``'s pages open on in a new tab or after a refresh: the values
        ``keep_working_state`` kept, with ``upload`` / ``hfdata`` as data contexts again, and
        ``problems``: one line for each thing that could not be brought back."""
        from .experiment import USER_ERRORS
        kept = self.classroom.state(who)
        out = {k: kept[k] for k in ("template", "template_input", "dataset", "pin_seen")
               if k in kept}
        if kept.get("label_tokens") in ("words", "learned"):  # Studio's learned-label toggle
            out["label_tokens"] = kept["label_tokens"]
        out["name"] = self.classroom.name(who)
        out["problems"] = []
        if kept.get("model"):
            try:
                out["model"] = self.settings.check_model(kept["model"])
            except ModelLoadError as e:
                out["problems"].append(str(e))
        try:
            if kept.get("upload"):
                out["upload"] = self.open_upload(who, kept["upload"])
            if kept.get("hf"):
                out["hfdata"] = self.open_hf_dataset(**kept["hf"])
        except USER_ERRORS as e:
            out["problems"].append(str(e))
        return out

    # ---- typed views for the pages (the door; ptuning_core/views.py builds them) --------------
    STUDIO_CACHE = 128
    PREVIEW_CACHE = 64
    EMBEDDINGS_CACHE = 32
    MAP_CACHE = 8
    RETEST_CACHE = 64

    def backbone(self, model: Optional[str] = None):
        """The shared frozen model, if this server allows it (ModelLoadError otherwise)."""
        from .registry import get_backbone
        return get_backbone(self.settings.check_model(model or DEFAULT_MODEL), "auto")

    def datasets(self, label_space: Optional[str] = None) -> list:
        """The bundled datasets' names (only those of one ``label_space``: classes | vocab)."""
        from . import data as D
        names = D.list_datasets()
        return [n for n in names if label_space is None or
                D.dataset_info(n)["label_space"] == label_space]

    def dataset_info(self, name: str) -> dict:
        """A bundled dataset's manifest entry (DataError when there is none)."""
        from . import data as D
        return D.dataset_info(name)

    def dataset_rows(self, name: str, split: str) -> list:
        """The rows of a bundled dataset's split."""
        from . import data as D
        return D.load_ref(self.check_data_ref(f"{name}:{split}")).rows

    def upload_columns(self, raw: bytes, filename: str) -> list:
        """The columns of a file about to be uploaded (DataError when it cannot be read)."""
        from . import data as D
        if len(raw) > self.settings.max_upload_mb * 2 ** 20:
            raise D.DataError(f"the file is larger than this server's limit "
                              f"({self.settings.max_upload_mb} MB)")
        return D.parse_bytes(raw, filename).columns

    def studio(self, model: str, template_src: str, fields: list,
               verbalizer_spec: Optional[dict], example_row: dict):
        """Template Studio for one template: a ``StudioView`` (a bad template comes back as its
        one-line error and position, never raised). Remembered per input (LRU)."""
        from .views import studio_view
        model = self.settings.check_model(model)
        key = json.dumps([model, template_src, fields, verbalizer_spec, example_row],
                         sort_keys=True, default=str)
        hit = self._studio.get(key)
        if hit is None:
            hit = studio_view(self.backbone(model), template_src, fields, verbalizer_spec,
                              example_row)
            self._studio.put(key, hit)
        return hit

    def preview(self, model: str, template: str, verbalizer: Optional[dict], fields: list,
                label_field: str, rows: list) -> tuple:
        """Zero-shot predictions (``PreviewRow``) of a discrete template on a few rows (Template
        Studio), remembered per template so a rerun of the page costs nothing. Bounded (LRU)."""
        from .views import preview_rows
        model = self.settings.check_model(model)
        key = json.dumps([model, template, verbalizer, fields, label_field, rows],
                         sort_keys=True, default=str)
        hit = self._previews.get(key)
        if hit is not None:
            return hit
        from .evaluate import evaluate
        from .model import PromptModel
        from .verbalizer import Verbalizer
        verb = Verbalizer.parse(verbalizer) if verbalizer is not None else None
        preds = evaluate(PromptModel(self.backbone(model), template, verb, "none", 0, fields),
                         rows, label_field)["predictions"]
        out = preview_rows(preds)
        self._previews.put(key, out)
        return out

    def _run_backbone(self, run_id: str):
        """(backbone) of the model a stored run was trained on, if it exists and is allowed."""
        from .portable import PromptFileError
        run = self.store.get(run_id, details=False)
        if run is None:
            self._forget_views(run_id)
            raise PromptFileError(f"no run {run_id}")
        return self.backbone((run.get("config") or {}).get("model") or DEFAULT_MODEL)

    def _forget_views(self, run_id: str) -> None:
        self._embeddings.drop(lambda k: k[0] == run_id)
        self._maps.drop(lambda k: k[0] == run_id)

    def embeddings(self, run_id: str, k: int = 5, words_only: bool = False):
        """What a run's pseudo tokens learned (``EmbeddingsView``): nearest tokens, drift,
        similarities, the discretized template, trajectory steps and losses. Cached (LRU)."""
        from .views import embeddings_view
        bb = self._run_backbone(run_id)
        key = (run_id, int(k), bool(words_only))
        hit = self._embeddings.get(key)
        if hit is None:
            hit = embeddings_view(self.store, run_id, bb, int(k), bool(words_only))
            self._embeddings.put(key, hit)
        return hit

    def embedding_map(self, run_id: str, method: str = "pca"):
        """The 2-D map (``EmbeddingMap``) of a run's pseudo tokens among the vocabulary, by
        ``pca`` or ``tsne``. Cached (LRU)."""
        from .views import embedding_map
        if method not in ("pca", "tsne"):
            raise ConfigError(f"unknown projection '{method}': use pca or tsne")
        bb = self._run_backbone(run_id)
        key = (run_id, method)
        hit = self._maps.get(key)
        if hit is None:
            hit = embedding_map(self.store, run_id, bb, method)
            self._maps.put(key, hit)
        return hit

    def submit_retest(self, who: str, run_id: str) -> Job:
        """Queue "discretize and re-test": the run's nearest-word template evaluated on its own
        evaluation data, paired with its learned prompt. The result (``RetestResult``) is read
        with ``retest_result(job id)`` or ``last_retest(run id)``."""
        from .views import load_prompt, retest
        bb = self._run_backbone(run_id)
        run = load_prompt(self.store, run_id, bb)[0]  # no prompt / does not fit: raises here
        ref = (run.get("config") or {}).get("eval")
        if not ref:
            raise ConfigError("this run names no evaluation data to re-test on")
        self.check_data_ref(ref, who)  # someone else's upload stays theirs
        store, results = self.store, self._retests

        def fn(job: Job):
            res = retest(store, run_id, bb, callback=job.event)
            results.put(job.id, res)
            results.put("run:" + run_id, res)
            return res
        job = self.submit_task(who, f"re-test {run['name']}", fn, str(bb.device), "retest")
        results.put("job:" + run_id, job.id)
        return job

    def retest_job(self, run_id: str):
        """The latest re-test job of a run (queued, running or done; None if it left memory):
        what the Embeddings page shows again after a refresh or in another tab."""
        jid = self._retests.get("job:" + run_id)
        return self.queue.get(jid) if jid else None

    def retest_result(self, job_id: str):
        """The ``RetestResult`` of a finished re-test job (None while it runs, or if it failed)."""
        return self._retests.get(job_id)

    def last_retest(self, run_id: str):
        """The latest ``RetestResult`` of a run in this server's memory, or None."""
        return self._retests.get("run:" + run_id)

    def runs(self, kind: Optional[str] = "train", shared_only: bool = False) -> list:
        """Stored runs of a kind (None: all) as ``RunSummary``s, newest first; no per-example
        results."""
        from .views import run_summary
        return [run_summary(r, (self.store.run_dir(r["id"]) / "prompt.safetensors").is_file())
                for r in self.store.list(kind=kind, shared_only=shared_only)]

    def run_summary(self, run_id: str):
        """One run's ``RunSummary`` (None when there is no such run)."""
        from .views import run_summary
        run = self.store.get(run_id, details=False)
        if run is None:
            return None
        return run_summary(run, (self.store.run_dir(run_id) / "prompt.safetensors").is_file())

    def run_curves(self, run_id: str) -> tuple:
        """(losses, dev accuracies) of a stored run, each [(step, value)]; cheap (no details)."""
        steps = self.store.steps(run_id)
        return ([(r["step"], r["loss"]) for r in steps if r["loss"] is not None],
                [(r["step"], r["dev"]) for r in steps if r["dev"] is not None])

    def run_detail(self, run_id: str):
        """One run for its page (``RunDetail``: summary, curves, confusion matrices), or None."""
        from .views import run_detail
        return run_detail(self.store, run_id)

    def export_prompt(self, run_id: str) -> bytes:
        """A run's learned prompt as a portable .safetensors file (PromptFileError if none)."""
        import tempfile

        from .portable import export_prompt
        with tempfile.TemporaryDirectory() as d:
            return Path(export_prompt(self.store, run_id, Path(d) / "prompt.safetensors")) \
                .read_bytes()

    def comparison(self, comparison_id: str):
        """A stored comparison (``ComparisonView``): table, pairwise tests, losses, confusion
        matrices, changed predictions. StoreError when there is no such comparison."""
        from .views import comparison_view
        view = comparison_view(self.store, comparison_id)
        if view is None:
            raise StoreError(f"no comparison {comparison_id}")
        return view

    def sweep(self, sweep_id: str):
        """A stored few-shot sweep (``SweepView``): every cell and the mean/spread per k."""
        from .views import sweep_view
        entry = self.store.get(sweep_id, details=False)
        if entry is None or entry.get("kind") != "sweep":
            raise StoreError(f"no sweep {sweep_id}")
        return sweep_view((entry.get("result") or {}).get("rows") or [], sweep_id,
                          entry["name"], entry["status"], entry.get("owner") or "")

    def sweep_progress(self, job_id: str):
        """The cells a running sweep has finished so far (``SweepView``), or None."""
        from .views import sweep_view
        job = self.queue.get(job_id)
        if job is None:
            return None
        snap = job.snapshot()
        cells = [e for e in snap["events"] if e.get("type") == "cell"]
        last = cells[-1] if cells else {}
        return sweep_view(cells, "", job.label, snap["status"], job.session,
                          last.get("done", 0), last.get("total", 0))
