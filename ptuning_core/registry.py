"""One frozen backbone per (model, device) per process, shared by every session and job."""
from __future__ import annotations

import threading

from .backbone import Backbone, load_backbone, resolve_device

_lock = threading.Lock()
_loaded: dict = {}
_loading: dict = {}


def get_backbone(name: str = "default", device: str = "auto") -> Backbone:
    dev = str(resolve_device(device))
    key = ((name or "default").strip(), dev)
    with _lock:
        if key in _loaded:
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
                return _loaded[key]
        return get_backbone(name, device)  # the loader failed: try (and fail) ourselves
    try:
        bb = load_backbone(key[0], dev)
        with _lock:
            _loaded[key] = bb
        return bb
    finally:
        with _lock:
            _loading.pop(key, None)
        ev.set()


def loaded() -> list:
    with _lock:
        return list(_loaded)


def put(bb: Backbone) -> None:
    """Register an already built backbone (tests, tiny models)."""
    with _lock:
        _loaded[(bb.name, str(bb.device))] = bb
