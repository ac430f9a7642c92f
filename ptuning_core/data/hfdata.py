"""Hugging Face datasets as data references: ``hf:NAME[/CONFIG]:SPLIT``.

``hf:glue/sst2:validation``, ``hf:stanfordnlp/imdb:test``, ``hf:ag_news:test[:500]``, or a local
folder (``hf:./my_data:train``: data files, or a ``save_to_disk`` folder). Offline-first: a
dataset is read from the local ``datasets`` cache and never downloaded unless
``PTUNING_HF_DOWNLOAD=1``; one that is not cached is a one-line error, at once.
Labels stored as class indices (``ClassLabel``) come back as their names.
"""
from __future__ import annotations

import contextlib
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ptuning_core.data.dataset import DataError, Dataset, norm_value

PREFIX = "hf:"
_NAME = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*){0,2}$")
_SPLIT = re.compile(r"^[A-Za-z0-9_.\-]+(\[[0-9:%+\-]*\])?$")
_lock = threading.Lock()


@dataclass(frozen=True)
class HfRef:
    path: str  # hub name (owner/name) or local folder
    config: Optional[str]
    split: str
    local: bool
    # for a two-part hub name (a/b): also try name a with config b
    alt: Optional[tuple] = None


def is_hf_ref(ref: str) -> bool:
    return isinstance(ref, str) and ref.startswith(PREFIX)


def parse_ref(ref: str) -> HfRef:
    body = ref[len(PREFIX):]
    path, sep, split = body.partition(":")
    if not sep or not path or not split:
        raise DataError(f"'{ref}' is not a dataset reference of the form hf:NAME[/CONFIG]:SPLIT "
                        f"(e.g. hf:glue/sst2:validation)")
    if not _SPLIT.match(split):
        raise DataError(f"'{split}' is not a split name (e.g. train, validation, test[:500])")
    if path.startswith((".", "/", "~")):
        return HfRef(os.path.expanduser(path), None, split, local=True)
    if not _NAME.match(path):
        raise DataError(f"'{path}' is not a Hugging Face dataset name (NAME, OWNER/NAME, "
                        f"NAME/CONFIG or OWNER/NAME/CONFIG)")
    parts = path.split("/")
    if len(parts) == 3:
        return HfRef("/".join(parts[:2]), parts[2], split, local=False)
    if len(parts) == 2:
        return HfRef(path, None, split, local=False, alt=(parts[0], parts[1]))
    return HfRef(path, None, split, local=False)


def _download_allowed() -> bool:
    return os.environ.get("PTUNING_HF_DOWNLOAD", "").strip().lower() in ("1", "true", "yes")


@contextlib.contextmanager
def _offline(on: bool):
    """Turn the hub's offline switches on for this load (they are read at import time, so the
    environment alone would not do)."""
    import datasets.config as dcfg
    import huggingface_hub.constants as hcst
    old = (dcfg.HF_HUB_OFFLINE, hcst.HF_HUB_OFFLINE)
    dcfg.HF_HUB_OFFLINE = hcst.HF_HUB_OFFLINE = on or old[0]
    try:
        yield
    finally:
        dcfg.HF_HUB_OFFLINE, hcst.HF_HUB_OFFLINE = old


def _short(e: BaseException) -> str:
    return " ".join(str(e).split())[:200]


def _load(ref: HfRef):
    import datasets
    from datasets.utils.logging import disable_progress_bar, set_verbosity_error
    disable_progress_bar()
    set_verbosity_error()
    if ref.local:
        p = Path(ref.path)
        if not p.exists():
            raise FileNotFoundError(f"no folder {ref.path}")
        if (p / "dataset_dict.json").exists() or (p / "state.json").exists():
            d = datasets.load_from_disk(str(p))
            base = ref.split.split("[")[0]
            if isinstance(d, datasets.DatasetDict):
                if base not in d:
                    raise KeyError(f"no split '{base}'; splits: {', '.join(d)}")
                d = d[base]
            return d
        return datasets.load_dataset(str(p), split=ref.split)
    try:
        return datasets.load_dataset(ref.path, ref.config, split=ref.split)
    except Exception:
        if ref.alt is None:
            raise
        return datasets.load_dataset(ref.alt[0], ref.alt[1], split=ref.split)


def load(ref_text: str, max_rows: int):
    """Rows of an ``hf:`` reference as a :class:`ptuning_core.data.bundled.Dataset` (all values
    strings, class indices turned into class names)."""
    ref = parse_ref(ref_text)
    try:
        import datasets  # noqa: F401
    except ImportError:
        raise DataError("hf: references need the 'datasets' package (pip install datasets)") \
            from None
    with _lock, _offline(not _download_allowed()):
        try:
            ds = _load(ref)
        except (ConnectionError, FileNotFoundError) as e:
            if ref.local:
                raise DataError(f"{ref_text}: {_short(e)}") from None
            raise DataError(f"{ref_text} is not in the local datasets cache; load it once where "
                            f"there is network (datasets.load_dataset) or set "
                            f"PTUNING_HF_DOWNLOAD=1") from None
        except (KeyError, ValueError) as e:
            raise DataError(f"{ref_text}: {_short(e)}") from None
        except Exception as e:  # the datasets library raises many kinds; report, never crash
            raise DataError(f"{ref_text} could not be loaded ({type(e).__name__}: "
                            f"{_short(e)})") from None
    if len(ds) > max_rows:
        raise DataError(f"{ref_text} has {len(ds)} rows; the limit is {max_rows} (take a slice, "
                        f"e.g. :{ref.split.split('[')[0]}[:{max_rows}])")
    names = {}
    for col, feat in ds.features.items():
        if hasattr(feat, "int2str") and hasattr(feat, "names"):
            names[col] = list(feat.names)
    cols = list(ds.column_names)
    rows = []
    for rec in ds:
        row = {}
        for c in cols:
            v = rec[c]
            if c in names and isinstance(v, int) and 0 <= v < len(names[c]):
                v = names[c][v]
            row[c] = norm_value(v)
        rows.append(row)
    if not rows:
        raise DataError(f"{ref_text} has no rows")
    return Dataset(rows, cols, ref_text)
