"""What the server keeps for each identity: a display name, the working state a student's pages
open on (template, dataset, model, their upload), the teacher flag; and the class settings a
teacher pins. SQLite at ``$PTUNING_HOME/profiles.sqlite`` (one transaction per write)."""
from __future__ import annotations

import json
import logging
import re
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from ptuning_core.store import paths
from ptuning_core.store.identity import is_identity

SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
  id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', state TEXT NOT NULL DEFAULT '{}',
  teacher TEXT, created REAL NOT NULL, seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS classroom (
  key TEXT PRIMARY KEY, value TEXT NOT NULL, updated REAL NOT NULL
);
"""
# The working state kept per identity (anything else a page holds stays in its browser session).
STATE_KEYS = ("template", "template_input", "dataset", "model", "upload", "hf", "pin_seen",
              "label_tokens")
MAX_STATE_BYTES = 64_000
MAX_NAME = 40

log = logging.getLogger(__name__)


def clean_name(name) -> str:
    """A display name as shown to the class: one line, no control characters, at most 40."""
    name = re.sub(r"[\x00-\x1f\x7f]", "", str(name or ""))
    return " ".join(name.split())[:MAX_NAME]


class ProfileStore:
    def __init__(self, path: Optional[Path] = None):
        self.path = Path(path) if path else paths.home() / "profiles.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as c:
            c.execute("PRAGMA journal_mode=WAL")
            c.executescript(SCHEMA)

    @contextmanager
    def _db(self):
        c = sqlite3.connect(self.path, timeout=30)
        c.row_factory = sqlite3.Row
        try:
            with c:  # commit, or roll back on an error
                yield c
        finally:
            c.close()

    def _ensure(self, c, ident: str) -> None:
        if not is_identity(ident):
            raise ValueError(f"not an identity: {ident!r}")
        now = time.time()
        c.execute("INSERT INTO profiles (id, created, seen) VALUES (?, ?, ?) "
                  "ON CONFLICT(id) DO UPDATE SET seen=excluded.seen", (ident, now, now))

    # ---- one identity -------------------------------------------------------------------------
    def get(self, ident: str) -> dict:
        """{id, name, state, teacher}; an identity never seen reads as an empty profile."""
        empty = {"id": ident, "name": "", "state": {}, "teacher": None}
        if not is_identity(ident):
            return empty
        with self._db() as c:
            r = c.execute("SELECT id, name, state, teacher FROM profiles WHERE id=?",
                          (ident,)).fetchone()
        if r is None:
            return empty
        try:
            state = json.loads(r["state"])
        except ValueError:
            log.warning("the saved state of %s is unreadable; starting it afresh", ident)
            state = {}
        return {"id": r["id"], "name": r["name"], "state": state, "teacher": r["teacher"]}

    def set_name(self, ident: str, name: str) -> str:
        name = clean_name(name)
        with self._db() as c:
            self._ensure(c, ident)
            c.execute("UPDATE profiles SET name=? WHERE id=?", (name, ident))
        return name

    def save_state(self, ident: str, changes: dict) -> bool:
        """Merge ``changes`` into the kept state, key by key (a key whose value is None is
        removed; keys not named stay as they are), so two tabs of one student that change
        different things never undo each other's change. False (nothing written) if the
        result is too large."""
        changes = {k: v for k, v in changes.items() if k in STATE_KEYS}
        with self._db() as c:
            c.execute("BEGIN IMMEDIATE")  # read and write as one step
            self._ensure(c, ident)
            r = c.execute("SELECT state FROM profiles WHERE id=?", (ident,)).fetchone()
            try:
                kept = json.loads(r["state"]) if r and r["state"] else {}
            except ValueError:
                kept = {}
            for k, v in changes.items():
                if v is None:
                    kept.pop(k, None)
                else:
                    kept[k] = v
            text = json.dumps(kept, sort_keys=True)
            if len(text) > MAX_STATE_BYTES:
                log.warning("the working state of %s is %d bytes (limit %d); not saved", ident,
                            len(text), MAX_STATE_BYTES)
                return False
            c.execute("UPDATE profiles SET state=? WHERE id=?", (text, ident))
        return True

    def set_teacher(self, ident: str, fingerprint: Optional[str]) -> None:
        with self._db() as c:
            self._ensure(c, ident)
            c.execute("UPDATE profiles SET teacher=? WHERE id=?", (fingerprint, ident))

    def names(self, idents) -> dict:
        """{identity: display name} for the identities that have a profile."""
        idents = [i for i in set(idents) if is_identity(i)]
        if not idents:
            return {}
        with self._db() as c:
            rows = c.execute(f"SELECT id, name FROM profiles WHERE id IN "
                             f"({','.join('?' * len(idents))})", idents).fetchall()
        return {r["id"]: r["name"] for r in rows}

    # ---- the class ----------------------------------------------------------------------------
    def class_setting(self, key: str) -> Optional[dict]:
        with self._db() as c:
            r = c.execute("SELECT value FROM classroom WHERE key=?", (key,)).fetchone()
        return json.loads(r["value"]) if r else None

    def set_class_setting(self, key: str, value: Optional[dict]) -> None:
        with self._db() as c:
            if value is None:
                c.execute("DELETE FROM classroom WHERE key=?", (key,))
            else:
                c.execute("INSERT INTO classroom (key, value, updated) VALUES (?, ?, ?) "
                          "ON CONFLICT(key) DO UPDATE SET value=excluded.value, "
                          "updated=excluded.updated", (key, json.dumps(value), time.time()))
