"""The value types of data, below ``data.py`` and ``hfdata.py`` (both use them; ``data``
re-exports them): a ``Dataset`` of rows, the one-line ``DataError``, and ``norm_value``, the
one way a cell becomes the string the rest of the tool sees."""
from __future__ import annotations

import json
from dataclasses import dataclass, field


class DataError(ValueError):
    """Bad data; the message is one line for the user."""


@dataclass
class Dataset:
    rows: list
    columns: list
    name: str = ""
    warnings: list = field(default_factory=list)

    def __len__(self):
        return len(self.rows)


def norm_value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    return str(v)
