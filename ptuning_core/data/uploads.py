"""Uploaded data: validated, split 80/20 (seeded) and written by the server under its owner's
folder, ``$PTUNING_HOME/uploads/<identity>/``; ``uploads/class/`` holds the copies of what a
teacher pinned for the class. A page keeps an upload's *data context* (the shape
``Service.open_hf_dataset`` returns too); the server keeps its *meta* (the context without the
rows), from which ``context`` rebuilds it after a refresh."""
from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
from pathlib import Path
from typing import Optional

from ptuning_core import config as C
from ptuning_core.data import bundled as D
from ptuning_core.store import paths
from ptuning_core.store.identity import is_identity

CLASS = "class"
META_KEYS = ("name", "train_ref", "eval_ref", "dev_ref", "fields", "label_field", "classes",
             "verbalizer", "templates", "ptuning_templates", "description", "vocab")


def root() -> Path:
    p = paths.home() / "uploads"
    p.mkdir(parents=True, exist_ok=True)
    return p


def folder(owner: str) -> Path:
    """The folder of an identity's uploads (or of the class's, ``CLASS``)."""
    if owner != CLASS and not is_identity(owner):
        raise ValueError(f"not an upload owner: {owner!r}")
    p = root() / owner
    p.mkdir(parents=True, exist_ok=True)
    return p


def owner_of(ref) -> Optional[str]:
    """Whose upload folder a file reference points into (an identity or ``CLASS``), or None
    when it is not a file the server wrote for an upload."""
    try:
        p = Path(str(ref)).resolve()
        rel = p.relative_to(root().resolve())
    except (OSError, ValueError):
        return None
    if len(rel.parts) != 2:
        return None
    owner = rel.parts[0]
    return owner if owner == CLASS or is_identity(owner) else None


def clean_filename(filename) -> str:
    name = Path(str(filename or "data")).name
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip() or "data"
    return name[-80:]


def save(owner: str, raw: bytes, filename: str, text_fields: list, label_field: str) -> dict:
    """Validate an uploaded file and write its train/test parts to the owner's folder; the data
    context. One-line ``DataError`` for anything wrong with the file."""
    filename = clean_filename(filename)
    ds = D.parse_bytes(raw, filename)
    ds = D.validate(ds, list(text_fields), label_field)
    classes = sorted({r[label_field] for r in ds.rows})
    if len(classes) < 2:
        raise D.DataError(f"{filename} has only one class ({classes[0]}); training needs two")
    if len(classes) > C.MAX_CLASSES:
        raise D.DataError(f"{filename} has {len(classes)} different labels; at most "
                          f"{C.MAX_CLASSES} classes")
    rows = ds.rows[:]
    random.Random(0).shuffle(rows)
    cut = max(1, int(len(rows) * 0.8))
    train, test = rows[:cut], rows[cut:] or rows[:1]
    digest = hashlib.sha256(raw).hexdigest()[:16]
    out = folder(owner)
    for part, name in ((train, "train"), (test, "test")):
        with open(out / f"{digest}-{name}.jsonl", "w", encoding="utf-8") as f:
            for r in part:
                f.write(json.dumps({k: r[k] for k in list(text_fields) + [label_field]}) + "\n")
    text_fields = list(text_fields)
    return {"name": "upload:" + filename, "train_ref": str(out / f"{digest}-train.jsonl"),
            "eval_ref": str(out / f"{digest}-test.jsonl"), "dev_ref": None, "rows": train,
            "fields": text_fields, "label_field": label_field, "classes": classes,
            "verbalizer": {c: [c] for c in classes},
            **C.upload_templates(text_fields),
            "description": f"your file {filename} ({len(ds.rows)} rows, "
                           f"{text_fields[0]!r} ...)",
            "vocab": False, "warnings": ds.warnings}


def meta(ctx: dict) -> dict:
    """What the server keeps of an upload's context: everything but the rows."""
    return {k: ctx.get(k) for k in META_KEYS}


def context(m: dict) -> dict:
    """The data context of a kept upload (its training rows read back from its file)."""
    if not isinstance(m, dict) or not all(isinstance(m.get(k), str)
                                          for k in ("name", "train_ref", "eval_ref")):
        raise D.DataError("the saved upload is incomplete; upload the file again")
    try:
        rows = D.load_file(m["train_ref"]).rows
    except (OSError, D.DataError):
        raise D.DataError(f"the file of {m['name']} is no longer on the server; upload it "
                          f"again") from None
    return {**{k: m.get(k) for k in META_KEYS}, "rows": rows, "warnings": []}


def copy_to_class(m: dict) -> dict:
    """Copy an upload's files into the class folder (for a pinned dataset); the new meta."""
    out = dict(m)
    dest = folder(CLASS)
    for key in ("train_ref", "eval_ref"):
        src = Path(m[key])
        if src.resolve().parent != dest.resolve():
            shutil.copyfile(src, dest / src.name)
        out[key] = str(dest / src.name)
    out["description"] = f"the class dataset {m['name'].split(':', 1)[-1]}"
    return out
