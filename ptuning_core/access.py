"""Who may change what. A run, comparison, sweep or queued job belongs to the identity that
started it; its owner and the teacher may stop, rename, share, unshare or delete it, everyone
else only looks. ``Service`` applies these rules on every change, whatever page asks."""
from __future__ import annotations


class PermissionDenied(ValueError):
    """A user error: the caller may not do this (the message says why, in one line)."""


def may_manage(owner, who: str, teacher: bool) -> bool:
    """True when ``who`` may change something owned by ``owner``."""
    return bool(teacher) or (bool(who) and owner == who)


def require_manage(owner, who: str, teacher: bool, what: str, verb: str) -> None:
    """Raise PermissionDenied unless ``who`` may ``verb`` ``what`` (both words for the message)."""
    if not may_manage(owner, who, teacher):
        raise PermissionDenied(f"only the person who started {what} (or the teacher) can "
                               f"{verb} it")
