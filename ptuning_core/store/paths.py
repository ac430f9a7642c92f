"""Where caches and runs live: ``$PTUNING_HOME`` (default ``~/.cache/ptuning-studio``)."""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    p = Path(os.environ.get("PTUNING_HOME") or Path.home() / ".cache" / "ptuning-studio")
    p.mkdir(parents=True, exist_ok=True)
    return p


def models_dir() -> Path:
    """Model caches; ``$PTUNING_MODELS`` overrides (tests keep models but isolate runs)."""
    env = os.environ.get("PTUNING_MODELS")
    p = Path(env) if env else home() / "models"
    p.mkdir(parents=True, exist_ok=True)
    return p


def runs_dir() -> Path:
    p = home() / "runs"
    p.mkdir(parents=True, exist_ok=True)
    return p
