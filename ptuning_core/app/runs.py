"""The runs façade: everything that queues work (a training run, a comparison, a few-shot
sweep, an experiment, an evaluation) and the jobs as pages see them (frozen ``JobView``s).
Every submission goes through ``submit``: the backend and the server's step limit are checked
there once, and the work runs on the executor (this process, or the Ray pool)."""
from __future__ import annotations

from typing import Callable, Optional

from ptuning_core import config as C
from ptuning_core.access import require_manage
from ptuning_core.engine.experiment import Prepared, RunSpec, prepare
from ptuning_core.executors.jobs import QueueFull
from ptuning_core.executors.live import JobView, Work, run_path
from ptuning_core.engine.train import ConfigError
from .core import KIND_WORDS
from .snapshots import LiveBoard


def parse_ks(value) -> list:
    """k values per class: the text typed ("2,4,8") or a list; ConfigError (one line naming
    the range) otherwise."""
    if isinstance(value, str):
        try:
            return C.parse_list("k", value, C.FEWSHOT_MAX_KS)
        except ConfigError as e:
            raise ConfigError(f"k values: {e}") from None
    if not value:
        raise ConfigError("give at least one k")
    return [C.check("k", k) for k in value]


def parse_seeds(value) -> list:
    """Seeds: the text typed ("13,21") or a list; ConfigError otherwise."""
    if isinstance(value, str):
        try:
            return C.parse_list("seed", value)
        except ConfigError as e:
            raise ConfigError(f"seeds: {e}") from None
    return [C.check_seed(s) for s in value]


class Runs:
    def __init__(self, core, svc):
        self._core, self._svc = core, svc
        self._board = LiveBoard(core)

    # ---- one way in ---------------------------------------------------------------------------
    def submit(self, who: str, label: str, kind: str, fn: Callable, *, steps: int = 0,
                device: str = "cpu", rid: Optional[str] = None,
                work: Optional[Work] = None) -> JobView:
        """Queue ``fn(job)`` owned by ``who`` on the executor's device. The one place that
        checks the backend and the server's step limit; a refused job leaves no stored trace."""
        core = self._core
        try:
            core.executor.check()
            if steps > core.settings.max_steps:
                raise ConfigError(f"this server allows at most {core.settings.max_steps} steps "
                                  f"per run")
            job = core.queue.submit(who, fn, core.executor.device(device), label, kind)
        except (QueueFull, ConfigError):
            if rid is not None:
                core.store.delete(rid, force=True)  # never queued: leave no trace
            raise
        if rid is not None:
            job.run_id = rid
            job.on_cancel = lambda: core.store.set_status(rid, "cancelled")
            core.held_by(rid, job.id)
        job.work = work
        core.queue.bump()
        return self._board.job_view(job.id)

    def check(self, who: str, spec: RunSpec) -> Prepared:
        """The one validation path of a run's settings on this server (model allowed, data this
        caller may read, then everything ``prepare`` checks). User errors raise here, before
        anything is queued. The step limit is ``submit``'s."""
        core = self._core
        spec.model = core.settings.check_model(spec.model)
        C.check_seed(spec.train_cfg.seed)
        if spec.shots is not None:
            C.check("shots", spec.shots)
        if spec.max_eval is not None:
            C.check("max_eval", spec.max_eval)
        if len(spec.template or "") > C.MAX_TEMPLATE_CHARS:
            raise ConfigError(f"the template is {len(spec.template)} characters long; "
                              f"{C.range_text('template_chars')}")
        for ref in (spec.train, spec.eval, spec.dev):
            if ref is not None:
                self._svc.data.check_ref(ref, who)
        return prepare(spec)

    # ---- what can be queued -----------------------------------------------------------------
    def train(self, who: str, spec: RunSpec) -> JobView:
        """Validate (user errors raise here, in the page), then queue a run owned by ``who``.
        The template is parsed once (``prepare``) and no model is loaded here: when the model
        is already loaded its checks (label words it cannot encode, context length) answer
        now; otherwise the job makes them when it loads the model (a failed job, one line)."""
        from ptuning_core.lm.backbone import resolve_device
        from ptuning_core.engine.experiment import check_against_model
        from ptuning_core.lm.registry import held
        self._core.executor.check()
        prep = self.check(who, spec)
        bb = held(spec.model, spec.device)
        if bb is not None:
            check_against_model(spec, prep, bb)
        store = self._core.store
        label = spec.name or spec.template[:60]
        rid = store.create(label, spec.to_dict(), who, status="queued")
        runner = self._core.executor.train(who)
        return self.submit(who, label, "train", lambda job: runner(
            spec, store, rid, callback=job.event, stop=job.stop, prepared=prep),
            steps=spec.train_cfg.steps, device=str(resolve_device(spec.device)), rid=rid,
            work=Work(spec.model, run_path(prep.template, bb.kind if bb else "unknown"),
                      spec.train_cfg.steps, spec.train_cfg.batch_size))  # (path: an estimate)

    def compare(self, who: str, spec: RunSpec, variants: list, device: str = "cpu") -> JobView:
        """Check a comparison (user errors raise here), then queue it; its runs and its
        comparison entry belong to ``who``."""
        from ptuning_core.engine.compare import run_comparison, variant_specs
        self._core.executor.check()
        if not variants:
            raise ConfigError("choose at least one variant to compare with the discrete prompt")
        self.check(who, spec)
        variant_specs(spec, variants)  # unknown variants raise here
        store, runner = self._core.store, self._core.executor.train(who)
        return self.submit(who, "comparison", "compare", lambda j: run_comparison(
            spec, variants, store, who, j.event, j.stop, runner=runner),
            steps=spec.train_cfg.steps, device=device)

    def sweep(self, who: str, spec, device: str = "cpu") -> JobView:
        """Queue a few-shot sweep (a ``fewshot.SweepSpec``; its ``ks`` / ``seeds`` may be the
        text the user typed, parsed here); the stored sweep belongs to ``who``."""
        from ptuning_core.data import bundled as D
        from ptuning_core.engine.fewshot import summarize
        self._core.executor.check()
        spec.model = self._core.settings.check_model(spec.model)
        if not spec.methods:
            raise ConfigError("choose at least one method")
        spec.ks = sorted(set(parse_ks(spec.ks)))
        spec.seeds = parse_seeds(spec.seeds)
        D.dataset_info(spec.dataset)  # an unknown dataset raises DataError here
        store, executor = self._core.store, self._core.executor

        def fn(job):
            rows = executor.sweep(spec, job.event, job.stop, who)
            rid = store.create(f"sweep {spec.dataset}", spec.__dict__, who, kind="sweep",
                               status="running")
            store.finish(rid, "stopped" if job.stop.is_set() else "finished",
                         {"rows": rows, "summary": summarize(rows)})
            return rows
        return self.submit(who, f"sweep {spec.dataset}", "sweep", fn, steps=spec.steps,
                            device=device)

    def experiment(self, who: str, request) -> JobView:
        """Check an ``experiments.ExperimentRequest`` (model allowed, step limit, preset, seeds,
        k, dataset: user errors raise here; its ``seeds`` / ``ks`` may be the typed text), then
        queue it; the stored experiment belongs to ``who``."""
        from ptuning_core.engine import experiments as X
        from ptuning_core.lm.backbone import resolve_device
        request.model = self._core.settings.check_model(request.model)
        if isinstance(request.seeds, str):
            request.seeds = parse_seeds(request.seeds) if request.seeds.strip() else None
        if isinstance(request.ks, str):
            request.ks = parse_ks(request.ks) if request.ks.strip() else None
        plan = X.plan(request)
        store, executor = self._core.store, self._core.executor

        def fn(job):
            res = executor.experiment(plan, job.event, job.stop)
            rid = X.record(store, who, request, res)
            job.run_id = rid
            return X.ExperimentResult.from_store(store, rid)
        return self.submit(who, f"{plan.experiment.id} {plan.experiment.title}", X.STORE_KIND,
                            fn, steps=plan.settings.steps,
                            device=str(resolve_device(request.device)))

    def evaluate(self, who: str, run_id: str, ref: str, max_eval: Optional[int] = None,
                 owner: str = "") -> JobView:
        """Queue an evaluation of a run's learned prompt (and its discrete template) on ``ref``.
        Checked here (user errors raise in the page); the job stores its result as an 'eval'
        record of the store (``library.evaluations``)."""
        from ptuning_core.engine.learned import eval_rows
        if max_eval is not None and int(max_eval) < 1:
            raise ConfigError("evaluate on at least 1 example")
        self._svc.data.check_ref(ref, who)
        lp, pm = self._svc.library.fixed_prompt_model(run_id)
        eval_rows(lp, ref, max_eval)  # the data fits the prompt (columns, labels)
        bb, store, executor = pm.backbone, self._core.store, self._core.executor
        label = f"{lp.name} on {ref}"
        rid = store.create(label, {"prompt": run_id, "eval": ref, "max_eval": max_eval,
                                   "model": lp.model}, owner or who, kind="eval",
                           status="queued")
        return self.submit(who, label, "eval", lambda job: executor.evaluate(
            lp, bb, ref, store, rid, max_eval, job.event, who), device=str(bb.device), rid=rid)

    # ---- the jobs as pages see them -----------------------------------------------------------
    def live(self):
        """The queue and its jobs' progress for every open page (``QueueSnapshot``)."""
        return self._board.live()

    def view(self, job_id: Optional[str]) -> Optional[JobView]:
        """One job as of the latest snapshot (None when the server no longer holds it)."""
        return self._board.job_view(job_id) if job_id else None

    def current(self, who: str, kind: str = "train") -> Optional[JobView]:
        return self._board.current(who, kind)

    def mine(self, who: str, held: Optional[str], kind: str) -> Optional[JobView]:
        """The job a page shows (``LiveBoard.mine``): the one its session started, or after a
        refresh ``who``'s latest of ``kind``."""
        return self._board.mine(who, held, kind)

    def for_run(self, rid: str) -> Optional[JobView]:
        """The job producing a stored run, while the server holds it."""
        job = self._core.job_for_run(rid)
        return self.view(job.id) if job is not None else None

    def sweep_progress(self, job_id: str):
        """The cells a running sweep has finished so far (``SweepView``), or None."""
        from ptuning_core.app.views import sweep_view
        v = self.view(job_id)
        if v is None:
            return None
        cells = self._board.events(job_id, "cell")
        last = cells[-1] if cells else {}
        return sweep_view(cells, "", v.label, v.status, v.owner_id, last.get("done", 0),
                          last.get("total", 0))

    # ---- stopping -----------------------------------------------------------------------------
    def stop(self, job_id: str, who: str) -> None:
        """Stop any queued or running job (its owner or the teacher)."""
        core = self._core
        job = core.queue.get(job_id)
        if job is None:
            return
        require_manage(job.session, who, core.is_teacher(who),
                       KIND_WORDS.get(job.kind, "this job"), "stop")
        core.queue.stop(job_id)

    def stop_run(self, rid: str, who: str) -> None:
        """Stop a running run (keeps what it learned) or cancel a queued one."""
        self._core.checked_run(rid, who, "stop")
        job = self._core.job_for_run(rid)
        if job is not None:
            self._core.queue.stop(job.id)
