"""The class: identities (who is who), what the server keeps for each (display name, working
state), who is the teacher, and what the teacher pinned. The rules about runs and jobs (who may
stop or delete what) are in ``Service``, which asks this class who the teacher is."""
from __future__ import annotations

import hmac
import threading
import time
from typing import Optional

from ptuning_core.access import PermissionDenied
from ptuning_core.store.identity import Identities, is_identity
from ptuning_core.store.profiles import ProfileStore

PIN_KEY = "pin"


class Classroom:
    """Teacher mode is on when a teacher code is set (``PTUNING_TEACHER_CODE``). A teacher is an
    identity that entered the code: the flag is kept with the identity as a keyed digest of the
    code, so changing or unsetting the code ends every teacher's mode."""

    MAX_TRIES = 5  # wrong teacher codes per identity per minute
    MAX_TRIES_ALL = 30  # ... and from everyone together (a student can clear cookies)

    def __init__(self, teacher_code: str = "", profiles: Optional[ProfileStore] = None,
                 identities: Optional[Identities] = None):
        self._code = (teacher_code or "").strip()
        self.profiles = profiles or ProfileStore()
        self.identities = identities or Identities()
        self._lock = threading.Lock()
        self._wrong: list = []  # (time, identity) of wrong codes in the last minute

    @property
    def teacher_mode(self) -> bool:
        return bool(self._code)

    # ---- identities ---------------------------------------------------------------------------
    def sign_in(self, token) -> tuple:
        """(identity, token to give the browser): the token's identity and None when the token
        is valid, else a new identity and its token."""
        who = self.identities.verify(token)
        if who is not None:
            return who, None
        return self.identities.issue()

    def name(self, who: str) -> str:
        return self.profiles.get(who)["name"]

    def set_name(self, who: str, name: str) -> str:
        return self.profiles.set_name(who, name)

    def labels(self, owners) -> dict:
        """{owner: how the class sees it}: the display name, else 'student <first 4 of id>';
        owners that are not identities (runs stored before identities, the CLI) as stored."""
        owners = set(owners)
        names = self.profiles.names(owners)
        return {o: names.get(o) or (f"student {o[:4]}" if is_identity(o) else (o or "unknown"))
                for o in owners}

    # ---- working state ------------------------------------------------------------------------
    def state(self, who: str) -> dict:
        return self.profiles.get(who)["state"]

    def save_state(self, who: str, state: dict) -> bool:
        return self.profiles.save_state(who, state)

    # ---- the teacher --------------------------------------------------------------------------
    def is_teacher(self, who: str) -> bool:
        if not self._code or not is_identity(who):
            return False
        flag = self.profiles.get(who)["teacher"]
        return bool(flag) and hmac.compare_digest(flag, self.identities.fingerprint(self._code))

    def become_teacher(self, who: str, code: str) -> None:
        """Check the code (constant-time); PermissionDenied with the reason when it is wrong,
        teacher mode is off or there were too many wrong codes."""
        if not self._code:
            raise PermissionDenied("this server has no teacher mode (PTUNING_TEACHER_CODE is "
                                   "not set)")
        if not is_identity(who):
            raise PermissionDenied("only a browser with an identity can become the teacher")
        now = time.monotonic()
        with self._lock:
            self._wrong = [(t, w) for t, w in self._wrong if now - t < 60]
            mine = sum(1 for _, w in self._wrong if w == who)
            if mine >= self.MAX_TRIES or len(self._wrong) >= self.MAX_TRIES_ALL:
                raise PermissionDenied("too many wrong teacher codes; wait a minute")
            ok = hmac.compare_digest((code or "").strip().encode(), self._code.encode())
            if not ok:
                self._wrong.append((now, who))
        if not ok:
            raise PermissionDenied("that is not the teacher code")
        self.profiles.set_teacher(who, self.identities.fingerprint(self._code))

    def leave_teacher(self, who: str) -> None:
        if is_identity(who):
            self.profiles.set_teacher(who, None)

    # ---- what the teacher pinned --------------------------------------------------------------
    def pin(self) -> Optional[dict]:
        return self.profiles.class_setting(PIN_KEY)

    def set_pin(self, who: str, value: Optional[dict]) -> None:
        """Pin (or with None, unpin) the class's template and dataset: the teacher only."""
        if not self.is_teacher(who):
            raise PermissionDenied("only the teacher can pin the class template")
        self.profiles.set_class_setting(PIN_KEY, value)
