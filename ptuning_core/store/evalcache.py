"""The discrete baseline once per class: evaluations of a template with no pseudo token, kept on
disk in the run store's folder and shared by every identity.

A discrete prompt's result depends only on (model, template text, verbalizer, label space,
evaluation data, precision) and the library versions that compute it; all of these make the
key, so a change of any of them misses. Entries are JSON files (the whole ``evaluate`` result,
per-example predictions included, so the paired test still has them); the folder is bounded in
bytes, least recently used first out.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Optional

from ptuning_core.store import paths

MAX_MB = 64  # a 200-example result is ~60 KB: about a thousand settings


def model_fingerprint(backbone) -> str:
    """Name, source and a hash of a slice of the weights (a local folder whose files changed
    under the same name gets another key). Memoised on the backbone."""
    fp = getattr(backbone, "_eval_fingerprint", None)
    if fp is None:
        import torch
        emb = backbone.embeddings.detach()
        h = hashlib.sha256()
        h.update(f"{backbone.name}|{backbone.source}|{backbone.kind}|{tuple(emb.shape)}|"
                 f"{backbone.n_parameters}".encode())
        h.update(emb[:16].float().cpu().numpy().tobytes())
        last = [p for p in backbone.model.parameters()][-1].detach()
        h.update(last.reshape(-1)[:4096].to(torch.float32).cpu().numpy().tobytes())
        fp = h.hexdigest()[:24]
        object.__setattr__(backbone, "_eval_fingerprint", fp)
    return fp


def data_hash(rows: list, label_field: str, text_fields) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([label_field, list(text_fields or [])]).encode())
    for r in rows:
        h.update(json.dumps(r, sort_keys=True, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()


def versions() -> str:
    import torch
    import transformers
    return f"torch {torch.__version__}, transformers {transformers.__version__}"


class EvalCache:
    def __init__(self, root: Path, max_mb: int = MAX_MB):
        self.root = Path(root)
        self.max_bytes = max_mb * 2 ** 20
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @staticmethod
    def key(*, model: str, template: str, verbalizer: Optional[dict], data: str,
            precision: str) -> str:
        label_space = "classes" if verbalizer is not None else "vocab"
        parts = json.dumps({"model": model, "template": template, "verbalizer": verbalizer,
                            "label_space": label_space, "data": data, "precision": precision,
                            "versions": versions()}, sort_keys=True)
        return hashlib.sha256(parts.encode()).hexdigest()[:32]

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def get(self, key: str) -> Optional[dict]:
        p = self._path(key)
        try:
            with open(p) as f:
                res = json.load(f)
            os.utime(p)  # recently used
        except (OSError, ValueError):
            self.misses += 1
            return None
        self.hits += 1
        return res

    def put(self, key: str, result: dict) -> None:
        from ptuning_core.store.runs import atomic_write_json
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write_json(result, self._path(key))
            self._trim()

    def _trim(self) -> None:
        files = []
        for p in self.root.glob("*.json"):
            try:
                st = p.stat()
            except OSError:
                continue
            files.append((st.st_mtime, st.st_size, p))
        total = sum(s for _, s, _ in files)
        for _, size, p in sorted(files):
            if total <= self.max_bytes:
                break
            p.unlink(missing_ok=True)
            total -= size

    def clear(self) -> None:
        for p in self.root.glob("*.json"):
            p.unlink(missing_ok=True)


_explicit: Optional[EvalCache] = None
_default: Optional[EvalCache] = None
_lock = threading.Lock()


def use(root: Optional[Path]) -> Optional[EvalCache]:
    """Make ``root`` (a run store's ``evalcache`` folder) the process's cache. The Service
    calls this with its store's folder; None goes back to the default run store's."""
    global _explicit
    with _lock:
        _explicit = EvalCache(root) if root is not None else None
        return _explicit


def current() -> EvalCache:
    """The process's cache: the one set by ``use``, else the default run store's folder
    (followed when ``$PTUNING_HOME`` changes)."""
    global _default
    with _lock:
        if _explicit is not None:
            return _explicit
        root = paths.runs_dir() / "evalcache"
        if _default is None or _default.root != root:
            _default = EvalCache(root)
        return _default
