"""A small thread-safe least-recently-used map with a size bound (the service's caches)."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable, Optional, Union


class LRU:
    def __init__(self, size: Union[int, Callable[[], int]]):
        """``size``: the bound, or a function giving it (read at each insertion)."""
        self.size = size
        self._d: "OrderedDict[Hashable, Any]" = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Optional[Any]:
        with self._lock:
            if key not in self._d:
                return None
            self._d.move_to_end(key)
            return self._d[key]

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            limit = self.size() if callable(self.size) else self.size
            while len(self._d) > limit:
                self._d.popitem(last=False)

    def drop(self, which: Callable[[Hashable], bool]) -> None:
        """Forget every key for which ``which(key)`` is true."""
        with self._lock:
            for k in [k for k in self._d if which(k)]:
                del self._d[k]

    def __len__(self) -> int:
        return len(self._d)

    def __iter__(self):
        """The keys, least recently used first (a snapshot)."""
        with self._lock:
            return iter(list(self._d))
