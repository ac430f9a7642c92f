"""Who is who: a browser's identity is a random id signed with a server-side key (HMAC-SHA256),
``<id>.<signature>``, so a student who edits the cookie that holds it cannot become someone
else. The key is made once per ``$PTUNING_HOME`` (``identity.key``, readable by the server's user
only) and kept: every identity handed out stays valid until that file is deleted."""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path
from typing import Optional

from ptuning_core.store import paths

KEY_FILE = "identity.key"
ID_RE = re.compile(r"[0-9a-f]{16}\Z")
_SIG_CHARS = 32  # 128 bits of the HMAC


def is_identity(value) -> bool:
    """True for a well-formed identity (16 lowercase hex digits): safe in paths and SQL."""
    return isinstance(value, str) and bool(ID_RE.match(value))


def load_or_create_key(path: Path) -> bytes:
    """The signing key at ``path``; created once (0600) if missing. Two processes that start at
    the same moment agree on one key: the file is linked into place only if it is not there."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    try:
        os.link(tmp, path)  # fails if another process made the key first: theirs wins
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return bytes.fromhex(path.read_text().strip())


class Identities:
    """Issue and check signed identities."""

    def __init__(self, key_path: Optional[Path] = None):
        self.key_path = Path(key_path) if key_path else paths.home() / KEY_FILE
        self._key = load_or_create_key(self.key_path)

    def issue(self) -> tuple:
        """A new (identity, token): the token is what the browser keeps."""
        ident = secrets.token_hex(8)
        return ident, self.token(ident)

    def token(self, ident: str) -> str:
        return f"{ident}.{self._sign('id:' + ident)}"

    def verify(self, token) -> Optional[str]:
        """The identity a token stands for, or None if it is missing, malformed or forged."""
        if not isinstance(token, str) or len(token) > 64:
            return None
        ident, _, sig = token.partition(".")
        if not is_identity(ident) or len(sig) != _SIG_CHARS:
            return None
        return ident if hmac.compare_digest(sig, self._sign("id:" + ident)) else None

    def fingerprint(self, secret: str) -> str:
        """A keyed digest of a secret (the teacher code), to store instead of the secret."""
        return self._sign("secret:" + secret)

    def _sign(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()[:_SIG_CHARS]
