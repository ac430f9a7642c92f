"""Data: user files (CSV/TSV/JSONL) with validation, the bundled dataset registry, k-shot sampling.

A data reference is a file path, ``NAME:SPLIT`` for a bundled dataset (``sentiment:train``,
``facts-capital:test``; see ``data/manifest.json``), or ``hf:NAME[/CONFIG]:SPLIT`` for a Hugging
Face dataset in the local cache (``hf:glue/sst2:validation``; see ``hfdata.py``).
"""
from __future__ import annotations

import csv
import io
import json
import os
import random
from pathlib import Path
from typing import Optional

# The value types live one module down, shared with hfdata.py (no import circle); re-exported.
from ptuning_core.data.dataset import DataError, Dataset, norm_value  # noqa: F401

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
MAX_BYTES = int(os.environ.get("PTUNING_MAX_UPLOAD_MB", "20")) * 2 ** 20
MAX_ROWS = 200_000
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _decode(raw: bytes, name: str) -> str:
    if not raw.strip():
        raise DataError(f"{name} is empty")
    if b"\x00" in raw[:4096]:
        raise DataError(f"{name} looks like a binary file, not CSV/TSV/JSONL text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{name} is not UTF-8 text (bad byte at position {e.start}); "
                        f"save it as UTF-8") from None


def _fmt(name: str, fmt: Optional[str]) -> str:
    if fmt:
        return fmt.lower().lstrip(".")
    suf = Path(name).suffix.lower().lstrip(".")
    if suf in ("csv", "tsv", "jsonl"):
        return suf
    if suf in ("json", "ndjson"):
        return "jsonl"
    raise DataError(f"{name}: unknown file type '.{suf}'; use .csv, .tsv or .jsonl")


def parse_bytes(raw: bytes, name: str = "data", fmt: Optional[str] = None) -> Dataset:
    if len(raw) > MAX_BYTES:
        raise DataError(f"{name} is {len(raw) / 2**20:.1f} MB; the limit is "
                        f"{MAX_BYTES / 2**20:.0f} MB")
    kind = _fmt(name, fmt)
    text = _decode(raw, name)
    rows: list = []
    if kind == "jsonl":
        cols: list = []
        for ln, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{name} line {ln} is not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{name} line {ln} is not a JSON object")
            row = {str(k): norm_value(v) for k, v in obj.items()}
            for k in row:
                if k not in cols:
                    cols.append(k)
            rows.append(row)
            if len(rows) > MAX_ROWS:
                raise DataError(f"{name} has more than {MAX_ROWS} rows")
    else:
        delim = "\t" if kind == "tsv" else ","
        quoting = csv.QUOTE_NONE if kind == "tsv" and _unquoted_tsv(text) else csv.QUOTE_MINIMAL
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim, quoting=quoting)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{name} is empty") from None
        except csv.Error as e:
            raise DataError(f"{name}: {e}") from None
        cols = [h.strip() for h in header]
        if not any(cols):
            raise DataError(f"{name} has no header row")
        if len(set(cols)) != len(cols):
            raise DataError(f"{name} has duplicate column names")
        try:
            for ln, rec in enumerate(reader, 2):
                if not rec or all(not c.strip() for c in rec):
                    continue
                if len(rec) != len(cols):
                    raise DataError(f"{name} line {ln} has {len(rec)} fields, the header has "
                                    f"{len(cols)}")
                rows.append(dict(zip(cols, rec)))
                if len(rows) > MAX_ROWS:
                    raise DataError(f"{name} has more than {MAX_ROWS} rows")
        except csv.Error as e:
            raise DataError(f"{name}: {e}") from None
    if not rows:
        raise DataError(f"{name} has no data rows (only a header?)")
    return Dataset(rows, cols, name)


def _unquoted_tsv(text: str) -> bool:
    """GLUE-style TSV: no quoting at all, so a sentence may hold a lone '"'. True when every
    non-empty line has as many tabs as the header (then quotes are plain characters)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return False
    tabs = lines[0].count("\t")
    return all(ln.count("\t") == tabs for ln in lines)


def load_file(path, fmt: Optional[str] = None) -> Dataset:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"no such file: {path}")
    if p.stat().st_size > MAX_BYTES:
        raise DataError(f"{p.name} is {p.stat().st_size / 2**20:.1f} MB; the limit is "
                        f"{MAX_BYTES / 2**20:.0f} MB")
    return parse_bytes(p.read_bytes(), p.name, fmt)


def validate(ds: Dataset, fields: list, label_field: Optional[str] = "label",
             classes: Optional[list] = None, mapping: Optional[dict] = None,
             min_classes: int = 1) -> Dataset:
    """Check (and map) columns; normalise labels to strings; drop exact duplicate rows."""
    mapping = {k: v for k, v in (mapping or {}).items() if v}
    rows = ds.rows
    if mapping:
        missing = [src for src in mapping.values() if src not in ds.columns]
        if missing:
            raise DataError(f"{ds.name}: no column {missing[0]!r} to map from; columns are "
                            f"{', '.join(ds.columns)}")
        rows = [{**r, **{dst: r.get(src, "") for dst, src in mapping.items()}} for r in rows]
    cols = set(ds.columns) | set(mapping)
    need = list(fields) + ([label_field] if label_field else [])
    for f in need:
        if f not in cols:
            raise DataError(f"{ds.name} has no column '{f}'; its columns are "
                            f"{', '.join(ds.columns)}")
    out, seen, dups = [], set(), 0
    for i, r in enumerate(rows):
        for f in fields:
            if not str(r.get(f, "")).strip():
                raise DataError(f"{ds.name} row {i + 1}: the field '{f}' is empty")
        if label_field:
            lab = str(r.get(label_field, "")).strip()
            if not lab:
                raise DataError(f"{ds.name} row {i + 1}: the label is empty")
            if classes is not None and lab not in classes:
                raise DataError(f"{ds.name} row {i + 1}: label '{lab}' is not one of the "
                                f"verbalizer's classes ({', '.join(classes)})")
            r = {**r, label_field: lab}
        key = tuple(str(r.get(f, "")) for f in need)
        if key in seen:
            dups += 1
            continue
        seen.add(key)
        out.append(r)
    warnings = list(ds.warnings)
    if dups:
        warnings.append(f"{dups} duplicate row(s) dropped")
    if label_field and classes is not None:
        present = {r[label_field] for r in out}
        if len(present) < min_classes:
            raise DataError(f"{ds.name} has only the class(es) {', '.join(sorted(present))}; "
                            f"training needs examples of at least {min_classes} classes")
    return Dataset(out, ds.columns + [c for c in mapping if c not in ds.columns], ds.name,
                   warnings)


def safe_cell(value: str) -> str:
    """Show a cell as plain text in exported CSV (defuses spreadsheet formula payloads)."""
    s = str(value)
    return "'" + s if s.startswith(_FORMULA) else s


# ---- bundled datasets -------------------------------------------------------------------
def manifest() -> dict:
    with open(DATA_DIR / "manifest.json", encoding="utf-8") as f:
        return json.load(f)["datasets"]


def list_datasets() -> list:
    return sorted(manifest())


def dataset_info(name: str) -> dict:
    m = manifest()
    if name not in m:
        raise DataError(f"no bundled dataset '{name}'; bundled: {', '.join(sorted(m))}")
    return m[name]


def is_bundled_ref(ref: str) -> bool:
    if ":" not in ref or os.path.exists(ref):
        return False
    return ref.rsplit(":", 1)[0] in manifest()


def load_ref(ref: str) -> Dataset:
    """``name:split`` for a bundled dataset, ``hf:...`` for a Hugging Face one, else a file."""
    from ptuning_core.data import hfdata
    if hfdata.is_hf_ref(ref):
        return hfdata.load(ref, MAX_ROWS)
    if is_bundled_ref(ref):
        name, split = ref.rsplit(":", 1)
        info = dataset_info(name)
        files = info["files"]
        if split not in files:
            raise DataError(f"dataset '{name}' has no split '{split}'; splits: "
                            f"{', '.join(files)}")
        ds = load_file(DATA_DIR / files[split])
        ds.name = ref
        return ds
    return load_file(ref)


def bundled_info(ref: Optional[str]) -> Optional[dict]:
    """The manifest entry of a bundled reference, else None."""
    if not ref or not is_bundled_ref(ref):
        return None
    return manifest()[ref.rsplit(":", 1)[0]]


def _k_hint(most: int) -> str:
    """What would work instead: the largest k these examples allow, or all of them."""
    every = "train on all examples (k-shot 0 on the Train page, no --shots in the CLI)"
    return f": use k = {most} or less, or {every}" if most >= 1 else f": {every}"


def sample_k_shot(rows: list, k: int, seed: int, label_field: str = "label",
                  vocab: bool = False) -> tuple:
    """k examples per class for training and a disjoint k per class for dev (k in all for an
    open-vocabulary label space). Deterministic for a seed and independent of the template, so
    every prompt variant sees the same split (paired comparisons)."""
    if k < 1:
        raise DataError("k must be at least 1")
    rng = random.Random(seed)
    if vocab:
        idx = list(range(len(rows)))
        rng.shuffle(idx)
        if len(idx) < 2 * k:
            raise DataError(f"k={k} needs {2 * k} examples (train + dev); there are {len(idx)}"
                            + _k_hint(len(idx) // 2))
        return [rows[i] for i in idx[:k]], [rows[i] for i in idx[k:2 * k]]
    by: dict = {}
    for i, r in enumerate(rows):
        by.setdefault(str(r[label_field]), []).append(i)
    train, dev = [], []
    for c in sorted(by):
        idx = by[c][:]
        rng.shuffle(idx)
        if len(idx) < 2 * k:
            raise DataError(f"k={k} needs {2 * k} examples of class '{c}' (train + dev); "
                            f"there are {len(idx)}"
                            + _k_hint(min(len(v) for v in by.values()) // 2))
        train += idx[:k]
        dev += idx[k:2 * k]
    rng.shuffle(train)
    return [rows[i] for i in train], [rows[i] for i in dev]
