"""Run storage: an SQLite index and files under ``$PTUNING_HOME/runs``.

The index holds each run's summary; the per-example results (``result["details"]``:
predictions, confusion matrices) live in the run's folder as ``details.json`` next to the
safetensors files, so listing runs never reads them. ``get`` merges them back. Runs stored
before that keep their details inline in the index and read as before.

Writes are atomic: SQLite transactions for the index, write-then-rename for files. Reads take no
write lock (WAL: readers never wait for a writer). A run left 'queued' or 'running' by a process
that died is shown as 'interrupted' on open.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Optional

from safetensors.torch import load_file, save_file

from ptuning_core.store import paths

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, created REAL NOT NULL,
  updated REAL NOT NULL, owner TEXT, shared INTEGER NOT NULL DEFAULT 0, author TEXT,
  kind TEXT NOT NULL DEFAULT 'train', config TEXT NOT NULL, result TEXT, error TEXT, pid INTEGER
);
CREATE TABLE IF NOT EXISTS steps (
  run_id TEXT NOT NULL, step INTEGER NOT NULL, loss REAL, dev REAL,
  PRIMARY KEY (run_id, step)
);
"""
ACTIVE = ("queued", "running")
DETAILS_FILE = "details.json"
_ID_RE = re.compile(r"[0-9a-f]{8,32}\Z")
# Every column but the result's per-example part (only runs stored inline still have one).
_SUMMARY_COLUMNS = ("id, name, status, created, updated, owner, shared, author, kind, config, "
                    "json_remove(result, '$.details') AS result, error, pid")

log = logging.getLogger(__name__)


class StoreError(ValueError):
    pass


def _atomic_write(path: Path, write) -> None:
    """``write(tmp_path)`` then rename onto ``path``: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_save(tensors: dict, path: Path, metadata: Optional[dict] = None) -> None:
    """Save tensors as safetensors, write-then-rename."""
    _atomic_write(path, lambda tmp: save_file(
        {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, tmp,
        metadata=metadata))


def atomic_write_json(obj, path: Path) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f)
    _atomic_write(path, write)


class RunStore:
    def __init__(self, root: Optional[Path] = None):
        self.root = Path(root) if root else paths.runs_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "runs.sqlite"
        self._lock = threading.Lock()
        c = sqlite3.connect(self.db_path, timeout=30)
        try:
            c.execute("PRAGMA journal_mode=WAL")
            c.executescript(SCHEMA)
        finally:
            c.close()
        self.recover()

    def _conn(self):
        c = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA busy_timeout=30000")
        c.row_factory = sqlite3.Row
        return _Tx(c)

    def _read(self):
        """A connection for reading: no BEGIN IMMEDIATE, so no write lock; each SELECT sees a
        consistent snapshot (WAL) and never waits for a writer."""
        c = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        c.execute("PRAGMA busy_timeout=30000")
        c.row_factory = sqlite3.Row
        return _Read(c)

    def recover(self) -> int:
        """Mark runs of dead processes as interrupted (their logged metrics stay)."""
        n = 0
        with self._conn() as c:
            for r in c.execute("SELECT id, pid FROM runs WHERE status IN ('queued','running')"):
                if r["pid"] is None or not _alive(r["pid"]):
                    c.execute("UPDATE runs SET status='interrupted', updated=? WHERE id=?",
                              (time.time(), r["id"]))
                    n += 1
        return n

    # ---- runs ----------------------------------------------------------------------------
    def create(self, name: str, config: dict, owner: str = "", kind: str = "train",
               status: str = "queued") -> str:
        rid = uuid.uuid4().hex[:12]
        now = time.time()
        with self._conn() as c:
            c.execute("INSERT INTO runs (id,name,status,created,updated,owner,kind,config,pid) "
                      "VALUES (?,?,?,?,?,?,?,?,?)",
                      (rid, name[:200] or rid, status, now, now, owner, kind,
                       json.dumps(config), os.getpid()))
        return rid

    def set_status(self, rid: str, status: str, error: Optional[str] = None) -> None:
        with self._conn() as c:
            c.execute("UPDATE runs SET status=?, error=COALESCE(?, error), updated=? WHERE id=?",
                      (status, error, time.time(), rid))

    def log_steps(self, rid: str, rows: list) -> None:
        """rows: (step, loss, dev) tuples; one transaction."""
        if not rows:
            return
        with self._conn() as c:
            c.executemany("INSERT INTO steps (run_id,step,loss,dev) VALUES (?,?,?,?) "
                          "ON CONFLICT(run_id,step) DO UPDATE SET "
                          "loss=COALESCE(excluded.loss, loss), dev=COALESCE(excluded.dev, dev)",
                          [(rid, s, l, d) for s, l, d in rows])

    def finish(self, rid: str, status: str, result: dict,
               tensors: Optional[dict] = None, error: Optional[str] = None) -> None:
        """Store a run's result: its ``details`` (per-example results) go to the run's folder,
        the rest (the summary) to the index."""
        if tensors:
            for fname, group in tensors.items():
                atomic_save(group, self.run_dir(rid) / fname)
        if isinstance(result, dict) and "details" in result:
            result = dict(result)
            atomic_write_json(result.pop("details"), self.run_dir(rid) / DETAILS_FILE)
        with self._conn() as c:
            c.execute("UPDATE runs SET status=?, result=?, error=?, updated=? WHERE id=?",
                      (status, json.dumps(result), error, time.time(), rid))

    def run_dir(self, rid: str) -> Path:
        if not _ID_RE.match(rid or ""):
            raise StoreError(f"not a run id: {rid!r}")
        return self.root / rid

    def get(self, rid: str, details: bool = True) -> Optional[dict]:
        """One run; its result carries ``details`` (per-example results) unless
        ``details=False``."""
        if not _ID_RE.match(rid or ""):
            return None
        with self._read() as c:
            r = c.execute(f"SELECT {'*' if details else _SUMMARY_COLUMNS} FROM runs WHERE id=?",
                          (rid,)).fetchone()
        if r is None:
            return None
        run = _row(r)
        res = run["result"]
        if details and isinstance(res, dict) and "details" not in res:
            d = self.details(rid)
            if d is not None:
                res["details"] = d
        return run

    def details(self, rid: str) -> Optional[dict]:
        """The per-example results stored in the run's folder (None if there are none)."""
        p = self.run_dir(rid) / DETAILS_FILE
        try:
            with open(p, encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("cannot read the per-example results of run %s: %s", rid, e)
            return None

    def list(self, kind: Optional[str] = None, shared_only: bool = False) -> list:
        """Run summaries, newest first: no per-example results (see ``get``), no write lock."""
        q, args = f"SELECT {_SUMMARY_COLUMNS} FROM runs", []
        conds = []
        if kind:
            conds.append("kind=?")
            args.append(kind)
        if shared_only:
            conds.append("shared=1")
        if conds:
            q += " WHERE " + " AND ".join(conds)
        with self._read() as c:
            rows = c.execute(q + " ORDER BY created DESC", args).fetchall()
        return [_row(r) for r in rows]

    def steps(self, rid: str) -> list:
        with self._read() as c:
            return [dict(r) for r in c.execute(
                "SELECT step, loss, dev FROM steps WHERE run_id=? ORDER BY step", (rid,))]

    def rename(self, rid: str, name: str) -> None:
        name = (name or "").strip()
        if not name:
            raise StoreError("a run needs a name")
        with self._conn() as c:
            c.execute("UPDATE runs SET name=?, updated=? WHERE id=?", (name[:200], time.time(), rid))

    def share(self, rid: str, shared: bool, author: str = "") -> None:
        with self._conn() as c:
            c.execute("UPDATE runs SET shared=?, author=?, updated=? WHERE id=?",
                      (1 if shared else 0, author.strip()[:60], time.time(), rid))

    def delete(self, rid: str, force: bool = False) -> None:
        r = self.get(rid, details=False)
        if r is None:
            raise StoreError(f"no run {rid}")
        if not force and r["status"] in ACTIVE and r.get("pid") == os.getpid():
            raise StoreError("stop the run before deleting it")
        with self._conn() as c:
            c.execute("DELETE FROM steps WHERE run_id=?", (rid,))
            c.execute("DELETE FROM runs WHERE id=?", (rid,))
        shutil.rmtree(self.run_dir(rid), ignore_errors=True)

    def tensors(self, rid: str, fname: str = "prompt.safetensors") -> dict:
        p = self.run_dir(rid) / fname
        if not p.is_file():
            return {}
        return load_file(str(p))


class _Tx:
    """Connection context: BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error), then close."""

    def __init__(self, c):
        self.c = c

    def __enter__(self):
        self.c.execute("BEGIN IMMEDIATE")
        return self.c

    def __exit__(self, et, ev, tb):
        try:
            self.c.execute("ROLLBACK" if et else "COMMIT")
        finally:
            self.c.close()


class _Read:
    """Connection context for reads: autocommit (no explicit transaction), then close."""

    def __init__(self, c):
        self.c = c

    def __enter__(self):
        return self.c

    def __exit__(self, et, ev, tb):
        self.c.close()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # this process: its own job queue decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _row(r) -> dict:
    d = dict(r)
    d["config"] = json.loads(d["config"]) if d.get("config") else {}
    d["result"] = json.loads(d["result"]) if d.get("result") else None
    d["shared"] = bool(d.get("shared"))
    return d
