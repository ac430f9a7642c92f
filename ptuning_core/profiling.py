"""Where a run's time goes: named sections, timed only while a profile is on (``bench_train.py
--profile``); off, a section costs one global read."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Optional

_active: Optional[dict] = None
_lock = threading.Lock()


def start() -> None:
    global _active
    with _lock:
        _active = {}


def stop() -> dict:
    """The sections' totals since ``start``: {name: {"seconds", "calls"}}; profiling goes off."""
    global _active
    with _lock:
        out, _active = _active or {}, None
    return {k: {"seconds": round(v[0], 4), "calls": v[1]} for k, v in out.items()}


@contextmanager
def section(name: str):
    if _active is None:
        yield
        return
    t = time.perf_counter()
    try:
        yield
    finally:
        dt = time.perf_counter() - t
        with _lock:
            if _active is not None:
                s = _active.setdefault(name, [0.0, 0])
                s[0] += dt
                s[1] += 1
