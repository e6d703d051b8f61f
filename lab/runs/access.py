"""Who may change a run: the browser session that started it, or a teacher.

Runs are shared on disk so a class can compare them, but stopping, renaming or
deleting one is kept to its own session. Names are typed freely and prove
nothing, so a run records the hash of a secret that only its session holds
(``owner_key`` in ``status.json``). A teacher signs in with the server's
password (``LAB_TEACHER_PASSWORD``) and may change every run; a lab used by one
person can open everything with ``LAB_RUN_ACCESS=anyone``.

Headless callers (the CLI, tests, the server's own code) pass no visitor: they
run with the rights of whoever owns the runs dir.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from lab import settings


class AccessDenied(Exception):
    """A session asked to change a run that is not its own."""


@dataclass(frozen=True)
class Visitor:
    """One browser session: its secret, and whether a teacher signed in there."""

    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    teacher: bool = False

    @property
    def key(self) -> str:
        """What a run stores: enough to recognise the session, useless for impersonating it."""
        return hashlib.sha256(self.secret.encode()).hexdigest()[:32]


def owner_key(visitor: Visitor | None) -> str:
    return visitor.key if visitor else ""


def may_change(status: dict, visitor: Visitor | None) -> bool:
    """Whether ``visitor`` may stop, rename, tag or delete the run with this ``status.json``."""
    if visitor is None or visitor.teacher or settings.anyone_changes_runs():
        return True
    recorded = status.get("owner_key", "")
    return bool(recorded) and hmac.compare_digest(recorded, visitor.key)


def check(status: dict, visitor: Visitor | None, action: str) -> None:
    """Raise :class:`AccessDenied` with what to do instead when ``visitor`` may not ``action`` the run."""
    if not may_change(status, visitor):
        who = f" ({status['owner']})" if status.get("owner") else ""
        raise AccessDenied(f"Only the browser session that started this run{who}, or a teacher, can {action} it.")


def is_teacher_password(password: str) -> bool:
    """True for the server's teacher password; always False when none is configured."""
    expected = settings.teacher_password()
    return bool(expected) and hmac.compare_digest(password.encode(), expected.encode())
