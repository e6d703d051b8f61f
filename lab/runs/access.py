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
import threading
import time
from collections.abc import Callable
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


class SignInThrottled(Exception):
    """Too many wrong teacher passwords on this server lately; ``wait_s`` until the next try."""

    def __init__(self, wait_s: float):
        super().__init__(f"too many wrong passwords; try again in {wait_s:.0f} s")
        self.wait_s = wait_s


class PasswordGuard:
    """A back-off for the whole server, not per session: a new browser session is free to open, so a
    per-session delay slows no one down. After ``free_tries`` wrong passwords in a row, each further try
    must wait 2, 4, 8... seconds, at most ``max_wait_s``, whoever makes it; the right password resets it.
    The cap keeps a student who guesses from locking the teacher out for long."""

    def __init__(self, free_tries: int = 5, max_wait_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.free_tries, self.max_wait_s, self.clock = free_tries, max_wait_s, clock
        self._failures = 0
        self._next_try = 0.0
        self._lock = threading.Lock()

    def sign_in(self, password: str) -> bool:
        """Whether ``password`` is the teacher's; SignInThrottled, without checking it, while backing off."""
        with self._lock:
            wait = self._next_try - self.clock()
            if wait > 0:
                raise SignInThrottled(wait)
            if is_teacher_password(password):
                self._failures = 0
                return True
            self._failures += 1
            over = self._failures - self.free_tries
            if over > 0:
                self._next_try = self.clock() + min(self.max_wait_s, 2.0 ** over)
            return False


teacher_sign_in = PasswordGuard()  # the server's one guard, shared by every session
