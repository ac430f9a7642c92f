"""One frozen backbone per (model, device) per process, shared by every session and job.

Memory: at most ``PTUNING_MAX_MODELS`` (default 2) loaded models stay in the registry; loading
one more evicts the least recently used (the default model too: it reloads from its cache).
A run that still uses an evicted model keeps its own reference until it ends. Backbones
registered with :func:`put` were built by the caller and cannot be reloaded by name, so they
are kept outside that budget.
"""
from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from typing import Optional

from ptuning_core.lm.backbone import Backbone, load_backbone, resolve_device

log = logging.getLogger(__name__)

DEFAULT_MAX_MODELS = 2

_lock = threading.Lock()
_loaded: "OrderedDict[tuple, Backbone]" = OrderedDict()  # least recently used first
_pinned: set = set()  # keys registered with put(): never evicted
_loading: dict = {}


def max_models() -> int:
    raw = os.environ.get("PTUNING_MAX_MODELS", "")
    if not raw.strip():
        return DEFAULT_MAX_MODELS
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        log.warning("PTUNING_MAX_MODELS=%r is not a whole number of at least 1; using %d", raw,
                    DEFAULT_MAX_MODELS)
        return DEFAULT_MAX_MODELS
    return n


def _evict_locked(budget: int) -> list:
    """Drop least recently used loaded models until ``budget`` are left; returns their keys."""
    gone = []
    for key in list(_loaded):
        if sum(k not in _pinned for k in _loaded) <= budget:
            break
        if key not in _pinned:
            del _loaded[key]
            gone.append(key)
    return gone


def get_backbone(name: str = "default", device: str = "auto") -> Backbone:
    dev = str(resolve_device(device))
    key = ((name or "default").strip(), dev)
    with _lock:
        if key in _loaded:
            _loaded.move_to_end(key)
            return _loaded[key]
        ev = _loading.get(key)
        if ev is None:
            ev = _loading[key] = threading.Event()
            owner = True
        else:
            owner = False
    if not owner:
        ev.wait()
        with _lock:
            if key in _loaded:
                _loaded.move_to_end(key)
                return _loaded[key]
        return get_backbone(name, device)  # the loader failed: try (and fail) ourselves
    try:
        bb = load_backbone(key[0], dev)
        with _lock:
            _loaded[key] = bb
            gone = _evict_locked(max_models())
        for k in gone:
            log.info("unloaded the model %s on %s (PTUNING_MAX_MODELS=%d)", k[0], k[1],
                     max_models())
        if gone and dev.startswith("cuda"):
            import torch
            torch.cuda.empty_cache()
        return bb
    finally:
        with _lock:
            _loading.pop(key, None)
        ev.set()


def loaded() -> list:
    """Keys of the models held now, least recently used first."""
    with _lock:
        return list(_loaded)


def held(name: str = "default", device: str = "auto") -> Optional[Backbone]:
    """The model if it is loaded now, else None: never loads (a request that must not wait
    for a model asks this)."""
    key = ((name or "default").strip(), str(resolve_device(device)))
    with _lock:
        return _loaded.get(key)


def put(bb: Backbone) -> None:
    """Register an already built backbone (tests, tiny models). It cannot be reloaded by name,
    so it is never evicted and does not count against PTUNING_MAX_MODELS."""
    key = (bb.name, str(bb.device))
    with _lock:
        _loaded[key] = bb
        _pinned.add(key)


def unload(name: str, device: str = "cpu") -> bool:
    """Drop a model from the registry (loaded or put); True if it was there."""
    key = ((name or "default").strip(), str(resolve_device(device)))
    with _lock:
        _pinned.discard(key)
        return _loaded.pop(key, None) is not None
