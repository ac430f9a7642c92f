"""The inspect façade: looking into templates and what runs learned. Template Studio's view and
zero-shot preview, a run's pseudo tokens (nearest words, drift, the 2-D map) and "discretize and
re-test", whose results are stored in the run store (kind ``retest``: they survive a restart)."""
from __future__ import annotations

import json
from dataclasses import asdict
from typing import Optional

from ptuning_core.lm.backbone import DEFAULT_MODEL
from ptuning_core.executors.live import JobView
from ptuning_core.lru import LRU
from ptuning_core.engine.train import ConfigError

RETEST_KIND = "retest"


def _retest_from(record: Optional[dict]):
    from ptuning_core.app.views import RetestResult
    if not record or record.get("status") != "finished" or not record.get("result"):
        return None
    r = dict(record["result"])
    for k in ("ci95", "continuous_ci95"):
        if r.get(k) is not None:
            r[k] = tuple(r[k])
    return RetestResult(**r)


class Inspect:
    STUDIO_CACHE = 128
    PREVIEW_CACHE = 64
    EMBEDDINGS_CACHE = 32
    MAP_CACHE = 8

    def __init__(self, core, svc):
        self._core, self._svc = core, svc
        self._studio = LRU(lambda: self.STUDIO_CACHE)
        self._previews = LRU(lambda: self.PREVIEW_CACHE)
        self._embeddings = LRU(lambda: self.EMBEDDINGS_CACHE)
        self._maps = LRU(lambda: self.MAP_CACHE)

    # ---- templates ----------------------------------------------------------------------------
    def studio(self, model: str, template_src: str, fields: list,
               verbalizer_spec: Optional[dict], example_row: dict):
        """Template Studio for one template: a ``StudioView`` (a bad template comes back as its
        one-line error and position, never raised). Remembered per input (LRU)."""
        from ptuning_core.app.views import studio_view
        model = self._core.settings.check_model(model)
        key = json.dumps([model, template_src, fields, verbalizer_spec, example_row],
                         sort_keys=True, default=str)
        hit = self._studio.get(key)
        if hit is None:
            hit = studio_view(self._svc.backbone(model), template_src, fields, verbalizer_spec,
                              example_row)
            self._studio.put(key, hit)
        return hit

    def preview(self, model: str, template: str, verbalizer: Optional[dict], fields: list,
                label_field: str, rows: list) -> tuple:
        """Zero-shot predictions (``PreviewRow``) of a discrete template on a few rows,
        remembered per template (LRU)."""
        from ptuning_core.engine.evaluate import evaluate
        from ptuning_core.lm.model import PromptModel
        from ptuning_core.lm.verbalizer import Verbalizer
        from ptuning_core.app.views import preview_rows
        model = self._core.settings.check_model(model)
        key = json.dumps([model, template, verbalizer, fields, label_field, rows],
                         sort_keys=True, default=str)
        hit = self._previews.get(key)
        if hit is not None:
            return hit
        verb = Verbalizer.parse(verbalizer) if verbalizer is not None else None
        preds = evaluate(PromptModel(self._svc.backbone(model), template, verb, "none", 0,
                                     fields), rows, label_field)["predictions"]
        out = preview_rows(preds)
        self._previews.put(key, out)
        return out

    # ---- what a run learned -------------------------------------------------------------------
    def _run_backbone(self, run_id: str):
        from ptuning_core.engine.portable import PromptFileError
        run = self._core.store.get(run_id, details=False)
        if run is None:
            self._embeddings.drop(lambda k: k[0] == run_id)
            self._maps.drop(lambda k: k[0] == run_id)
            raise PromptFileError(f"no run {run_id}")
        return self._svc.backbone((run.get("config") or {}).get("model") or DEFAULT_MODEL)

    def embeddings(self, run_id: str, k: int = 5, words_only: bool = False):
        """What a run's pseudo tokens learned (``EmbeddingsView``). Cached (LRU)."""
        from ptuning_core.app.views import embeddings_view
        bb = self._run_backbone(run_id)
        key = (run_id, int(k), bool(words_only))
        hit = self._embeddings.get(key)
        if hit is None:
            hit = embeddings_view(self._core.store, run_id, bb, int(k), bool(words_only))
            self._embeddings.put(key, hit)
        return hit

    def embedding_map(self, run_id: str, method: str = "pca"):
        """The 2-D map (``EmbeddingMap``) of a run's pseudo tokens among the vocabulary, by
        ``pca`` or ``tsne``. Cached (LRU)."""
        from ptuning_core.app.views import embedding_map
        if method not in ("pca", "tsne"):
            raise ConfigError(f"unknown projection '{method}': use pca or tsne")
        bb = self._run_backbone(run_id)
        key = (run_id, method)
        hit = self._maps.get(key)
        if hit is None:
            hit = embedding_map(self._core.store, run_id, bb, method)
            self._maps.put(key, hit)
        return hit

    # ---- discretize and re-test ---------------------------------------------------------------
    def retest(self, who: str, run_id: str) -> JobView:
        """Queue "discretize and re-test": the run's nearest-word template evaluated on its own
        evaluation data, paired with its learned prompt. The result (``RetestResult``) is stored
        (``retest_result(job id)``, ``last_retest(run id)``)."""
        from ptuning_core.app.views import load_prompt
        bb = self._run_backbone(run_id)
        store, executor = self._core.store, self._core.executor
        run = load_prompt(store, run_id, bb)[0]  # no prompt / does not fit: raises here
        ref = (run.get("config") or {}).get("eval")
        if not ref:
            raise ConfigError("this run names no evaluation data to re-test on")
        self._svc.data.check_ref(ref, who)  # someone else's upload stays theirs
        label = f"re-test {run['name']}"
        rid = store.create(label, {"run": run_id, "eval": ref}, who, kind=RETEST_KIND,
                           status="queued")

        def fn(job):
            store.set_status(rid, "running")
            try:
                res = executor.retest(store, run_id, bb, job.event, who)
            except BaseException as e:
                store.set_status(rid, "failed", error=f"{type(e).__name__}: {e}"[:2000])
                raise
            store.finish(rid, "finished", asdict(res))
            return res
        return self._svc.runs.submit(who, label, RETEST_KIND, fn, device=str(bb.device),
                                      rid=rid)

    def _retests(self, run_id: str) -> list:
        return [r for r in self._core.store.list(kind=RETEST_KIND)
                if (r.get("config") or {}).get("run") == run_id]

    def retest_job(self, run_id: str) -> Optional[JobView]:
        """The latest re-test job of a run while the server holds it (queued, running or done):
        what the Embeddings page shows again after a refresh or in another tab."""
        for r in self._retests(run_id):  # newest first
            v = self._svc.runs.for_run(r["id"])
            if v is not None:
                return v
        return None

    def retest_result(self, job_id: str):
        """The ``RetestResult`` of a finished re-test job (None while it runs, or if it failed)."""
        v = self._svc.runs.view(job_id)
        if v is None or not v.run_id:
            return None
        return _retest_from(self._core.store.get(v.run_id, details=False))

    def last_retest(self, run_id: str):
        """The latest stored ``RetestResult`` of a run, or None."""
        for r in self._retests(run_id):
            res = _retest_from(r)
            if res is not None:
                return res
        return None
