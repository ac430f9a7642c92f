"""The server's limits and model allow-list, chosen by whoever starts the server (environment).
Private to the door (``ptuning_core.app``): pages read what they need as a ``ServerInfo``."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from ptuning_core.lm.backbone import DEFAULT_MODEL, ModelLoadError

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
