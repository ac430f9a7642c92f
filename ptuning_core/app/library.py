"""The library façade: what is stored (runs, comparisons, sweeps, experiments, evaluations), the
learned prompts (try one, export one, import one), the changes their owners make (rename, share,
delete) and the class board. Everything comes back as frozen views (``views.py``)."""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ptuning_core import config as C
from ptuning_core.engine.learned import Evaluation, LearnedPrompt, Prediction
from ptuning_core.lru import LRU
from ptuning_core.engine.experiments import STORE_KIND as EXPERIMENT_KIND
from ptuning_core.store.runs import ACTIVE, StoreError
from ptuning_core.engine.train import ConfigError


@dataclass(frozen=True)
class BoardRow:
    """One entry of the class board, in rank order."""
    run: str
    owner_id: str
    author: str
    name: str
    template: str
    data: str
    accuracy: Optional[float]
    ci95_text: Optional[str]
    n: Optional[int]
    discrete: Optional[float]
    rank: float  # the lower end of the 95% interval (-1: nothing to rank on)


class Library:
    PROMPT_CACHE = 8  # loaded fixed prompts (each a small PromptModel over the shared backbone)
    PREDICTION_CACHE = 256

    def __init__(self, core, svc):
        self._core, self._svc = core, svc
        self._prompts = LRU(lambda: self.PROMPT_CACHE)  # run id -> [prompt, model]
        self._predictions = LRU(lambda: self.PREDICTION_CACHE)

    # ---- what is stored -----------------------------------------------------------------------
    def runs(self, kind: Optional[str] = "train", shared_only: bool = False) -> list:
        """Stored runs of a kind (None: all) as ``RunSummary``s, newest first."""
        from ptuning_core.app.views import run_summary
        store = self._core.store
        return [run_summary(r, (store.run_dir(r["id"]) / "prompt.safetensors").is_file())
                for r in store.list(kind=kind, shared_only=shared_only)]

    def run_summary(self, run_id: str):
        """One run's ``RunSummary`` (None when there is no such run)."""
        from ptuning_core.app.views import run_summary
        store = self._core.store
        run = store.get(run_id, details=False)
        if run is None:
            return None
        return run_summary(run, (store.run_dir(run_id) / "prompt.safetensors").is_file())

    def run_detail(self, run_id: str):
        """One run for its page (``RunDetail``: summary, curves, confusion matrices), or None."""
        from ptuning_core.app.views import run_detail
        return run_detail(self._core.store, run_id)

    def comparison(self, comparison_id: str):
        """A stored comparison (``ComparisonView``); StoreError when there is none."""
        from ptuning_core.app.views import comparison_view
        view = comparison_view(self._core.store, comparison_id)
        if view is None:
            raise StoreError(f"no comparison {comparison_id}")
        return view

    def sweep(self, sweep_id: str):
        """A stored few-shot sweep (``SweepView``): every cell and the mean/spread per k."""
        from ptuning_core.app.views import sweep_view
        entry = self._core.store.get(sweep_id, details=False)
        if entry is None or entry.get("kind") != "sweep":
            raise StoreError(f"no sweep {sweep_id}")
        return sweep_view((entry.get("result") or {}).get("rows") or [], sweep_id,
                          entry["name"], entry["status"], entry.get("owner") or "")

    def experiment(self, rid: str):
        """A stored experiment (``experiments.ExperimentResult``); StoreError if there is none."""
        from ptuning_core.engine import experiments as X
        res = X.ExperimentResult.from_store(self._core.store, rid)
        if res is None:
            raise StoreError(f"no experiment {rid}")
        return res

    def experiments(self) -> list:
        """Stored experiments, newest first: (id, experiment id, status, created, owner)."""
        from ptuning_core.engine import experiments as X
        return [{"id": r["id"], "experiment": r["config"].get("experiment"), "name": r["name"],
                 "status": r["status"], "created": r["created"], "owner": r.get("owner")}
                for r in self._core.store.list(kind=X.STORE_KIND)]

    def evaluations(self, run_id: str) -> list:
        """The finished evaluations of a run's learned prompt, newest first."""
        return [Evaluation.from_dict(r["result"]) for r in self._core.store.list(kind="eval")
                if r["config"].get("prompt") == run_id and r["status"] == "finished"
                and r["result"]]

    def owner_names(self, owners) -> dict:
        """Owner identity -> display name."""
        return self._core.classroom.labels(owners)

    def board(self) -> list:
        """The class board: shared runs as ``BoardRow``s, best first, ranked by the lower end
        of each 95% interval (a run tested on 20 examples does not outrank one tested on 200 by
        luck)."""
        rows = []
        for r in self.runs(None, shared_only=True):
            c = r.continuous
            # an experiment has no one template (its title is its name): its arm, by accuracy
            tpl = r.template if r.kind != EXPERIMENT_KIND else \
                f"experiment: {c.template if c else 'no result'}"
            rows.append(BoardRow(r.id, r.owner, r.author or "anonymous", r.name, tpl,
                                 (r.train_ref or "").split(":")[0],
                                 c.accuracy if c else None, c.text if c else None,
                                 c.n if c else None,
                                 r.discrete.accuracy if r.discrete else None,
                                 c.ci95[0] if c else -1.0))
        return sorted(rows, key=lambda b: b.rank, reverse=True)

    # ---- learned prompts ----------------------------------------------------------------------
    def learned_prompt(self, run_id: str) -> LearnedPrompt:
        """A stored run's learned prompt; PromptFileError (one line) when there is no such run
        or it learned none. Remembered (LRU) while the run exists."""
        from ptuning_core.engine.learned import from_run
        from ptuning_core.engine.portable import PromptFileError
        if self._core.store.get(run_id, details=False) is None:
            self._forget_prompt(run_id)
            raise PromptFileError(f"no run {run_id}")
        hit = self._prompts.get(run_id)
        if hit is not None:
            return hit[0]
        lp = from_run(run_id, self._core.store)
        self._prompts.put(run_id, [lp, None])
        return lp

    def _forget_prompt(self, run_id: str) -> None:
        self._prompts.drop(lambda k: k == run_id)
        self._predictions.drop(lambda k: json.loads(k)[0] == run_id)

    def fixed_prompt_model(self, run_id: str):
        """(learned prompt, PromptModel with the stored embeddings as its fixed prompt), on the
        model the prompt was learned on, if this server allows it."""
        from ptuning_core.engine.learned import model_name, prompt_model
        from ptuning_core.lm.registry import get_backbone
        lp = self.learned_prompt(run_id)
        bb = get_backbone(self._core.settings.check_model(model_name(lp)), "auto")
        hit = self._prompts.get(run_id)
        pm = hit[1] if hit is not None else None
        if pm is None or pm.backbone is not bb:  # first use, or the model was reloaded
            pm = prompt_model(lp, bb)
            self._prompts.put(run_id, [lp, pm])
        return lp, pm

    def predict(self, run_id: str, fields: dict) -> Prediction:
        """One example (a text per template field) through a run's learned prompt, without its
        encoder. User errors (no run, no prompt, a field missing, a model not allowed) raise
        with one line."""
        from ptuning_core.engine.learned import example_from, predict
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
        lp, pm = self.fixed_prompt_model(run_id)
        pred = predict(lp, pm, ex)
        self._predictions.put(key, pred)
        return pred

    def export_prompt(self, run_id: str) -> bytes:
        """A run's learned prompt as a portable .safetensors file (PromptFileError if none)."""
        from ptuning_core.engine.portable import export_prompt
        with tempfile.TemporaryDirectory() as d:
            return Path(export_prompt(self._core.store, run_id, Path(d) / "prompt.safetensors")) \
                .read_bytes()

    def import_prompt(self, who: str, raw: bytes, model: Optional[str] = None,
                      filename: str = "") -> str:
        """Import an exported prompt file (its bytes, as uploaded, and the uploaded file's name,
        which the run records) as a run owned by ``who``, on ``model`` if this server allows
        it; its run id (PromptFileError when it does not fit)."""
        from ptuning_core.engine.portable import import_prompt
        from ptuning_core.lm.registry import get_backbone
        name = self._core.settings.check_model(model)
        given = Path(filename or "").name
        if not (given.endswith(".safetensors") and len(given) <= 128):
            given = "import.safetensors"
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / given
            p.write_bytes(raw)
            return import_prompt(self._core.store, p, owner=who, model=name,
                                 backbone=get_backbone(name, "auto"))

    # ---- changes by their owner (or the teacher) ----------------------------------------------
    def rename(self, rid: str, name: str, who: str) -> None:
        self._core.checked_run(rid, who, "rename")
        self._core.store.rename(rid, name)

    def share(self, rid: str, shared: bool, who: str) -> None:
        """Put a run on the class board (under its owner's display name) or take it off."""
        run = self._core.checked_run(rid, who, "share" if shared else "unshare")
        if shared:
            owner = run.get("owner") or ""
            author = self._core.classroom.labels([owner]).get(owner)
            self._core.store.share(rid, True, author or "anonymous")
        else:
            self._core.store.share(rid, False, run.get("author") or "")

    def remove_from_board(self, rid: str, who: str) -> None:
        """Take an entry off the class board: its owner or the teacher."""
        run = self._core.checked_run(rid, who, "remove from the board")
        self._core.store.share(rid, False, run.get("author") or "")

    def delete(self, rid: str, who: str) -> None:
        """Delete a run, comparison or sweep and its files (a queued run is cancelled first; a
        running one must be stopped first)."""
        core = self._core
        run = core.checked_run(rid, who, "delete")
        job = core.job_for_run(rid) if run["status"] in ACTIVE else None
        if job is not None:
            core.queue.stop(job.id)  # a queued run is cancelled at once
            if not job.done:
                raise StoreError("the run is stopping (what it learned is kept); delete it "
                                 "once it has stopped")
        core.store.delete(rid)
