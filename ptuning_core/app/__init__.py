"""The one door between the pages and the core: ``Service``, one per server process, made of five
façades, each a room of its own:

- ``svc.runs``: what queues work (train, compare, sweep, experiment, evaluate) and the jobs as
  pages see them (frozen ``JobView``s); one ``submit`` checks the limits and dispatches through
  the executor (this process, or the Ray pool) — ``app/runs.py``;
- ``svc.library``: stored runs, comparisons, sweeps, experiments, evaluations, learned prompts
  (try, export, import), rename/share/delete, the class board — ``app/library.py``;
- ``svc.inspect``: Template Studio, a run's pseudo tokens and maps, re-tests —
  ``app/inspection.py``;
- ``svc.data``: bundled datasets, uploads, Hugging Face datasets, who may read what —
  ``app/datasets.py``;
- ``svc.room`` (the classroom): identity, teacher, pin, working state, the queue's rows —
  ``app/classroom.py``.

The settings, queue, store, class and pool are private (``app/core.py``); what pages need of the
settings comes as a ``ServerInfo``. Every call that changes something takes the caller's
identity (``who``) and checks it: what a user started belongs to them; only its owner or the
teacher may stop, rename, share, unshare or delete it (``PermissionDenied`` otherwise)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ptuning_core.lm.backbone import DEFAULT_MODEL
from ptuning_core.store.classroom import Classroom
from ptuning_core.store.runs import RunStore
from .classroom import ClassroomDoor
from .core import Core
from .datasets import Data
from .inspection import Inspect
from .library import BoardRow, Library
from .runs import Runs
from .settings import Settings

__all__ = ["Service", "Settings", "ServerInfo", "BoardRow"]


@dataclass(frozen=True)
class ServerInfo:
    """What pages show and bound their widgets by, from the server's settings."""
    max_steps: int
    max_upload_mb: int
    other_models: bool  # whether typing another model (hub id, path) can be allowed
    backend: str  # local | ray
    workers: int  # Ray actors (0: local)
    backend_text: Optional[str]  # "Ray cluster … (N workers)", None when local
    backend_error: Optional[str]  # why the Ray pool cannot take jobs (one line), or None


class Service:
    """One per server process: a small composition of the five façades."""

    def __init__(self, settings: Optional[Settings] = None, store: Optional[RunStore] = None,
                 classroom: Optional[Classroom] = None):
        self._core = Core(settings, store, classroom)
        self.runs = Runs(self._core, self)
        self.library = Library(self._core, self)
        self.inspect = Inspect(self._core, self)
        self.data = Data(self._core, self)
        self.room = ClassroomDoor(self._core, self)

    def info(self) -> ServerInfo:
        s, ex = self._core.settings, self._core.executor
        ray = ex.pool is not None or ex.error is not None
        return ServerInfo(s.max_steps, s.max_upload_mb, s.allow_any_model or s.allow_local_paths,
                          "ray" if ray else "local", ex.pool.size if ex.pool else 0,
                          ex.describe(), ex.error)

    def model_choices(self) -> list:
        """The models a student can pick: the default, the allowed ones, those in the Hugging
        Face cache (read from disk: the sidebar asks once per run of a page)."""
        return self._core.settings.model_choices()

    def check_model(self, name: str) -> str:
        """The model name if this server allows it, else ModelLoadError (one line)."""
        return self._core.settings.check_model(name)

    def backbone(self, model: Optional[str] = None):
        """The shared frozen model, if this server allows it (ModelLoadError otherwise)."""
        from ptuning_core.lm.registry import get_backbone
        return get_backbone(self.check_model(model or DEFAULT_MODEL), "auto")

    def close(self) -> None:
        """Stop the queue's workers (tests, benches, the CLI)."""
        self._core.queue.close()
