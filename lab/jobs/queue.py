"""The order in which queued runs start: priority first, then turns between owners, then arrival.

Within a priority, runs are taken round-robin by owner: an owner's n-th run in line (counting the
runs of theirs already started since they last had none waiting or training) waits behind everyone's
(n-1)-th, so one student who clicks Start thirty times, or starts a sweep of 64, holds nobody back.
A teacher's runs and an exercise's runs can be given a higher priority (lab.settings.QueueSettings).
Pure bookkeeping: no threads, no I/O; the caller (lab.jobs.manager) holds the lock.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Waiting:
    run_id: str
    owner: str
    priority: int
    arrival: int


class FairQueue:
    """Queued runs and the rule that picks the next one; ``paused`` holds every start."""

    def __init__(self):
        self._waiting: dict[str, Waiting] = {}
        self._arrivals = itertools.count()
        self._taken: Counter = Counter()  # runs started per owner since they last had none waiting or training
        self.paused = False

    def __contains__(self, run_id: str) -> bool:
        return run_id in self._waiting

    def __len__(self) -> int:
        return len(self._waiting)

    def push(self, run_id: str, owner: str, priority: int = 0) -> None:
        self._waiting[run_id] = Waiting(run_id, owner, priority, next(self._arrivals))

    def remove(self, run_id: str) -> bool:
        return self._waiting.pop(run_id, None) is not None

    def waiting_by_owner(self) -> Counter:
        return Counter(w.owner for w in self._waiting.values())

    def order(self, running_owners: Counter) -> list[str]:
        """Every queued run id, next to start first, given how many runs each owner has training.

        Turns count the runs an owner has started, not only those training: with one slot, a student's
        first run has ended when the next starts, and their second must still wait for everyone's first."""
        seen: Counter = Counter()
        keyed = []
        for w in sorted(self._waiting.values(), key=lambda w: w.arrival):
            turn = max(self._taken[w.owner], running_owners[w.owner]) + seen[w.owner]
            seen[w.owner] += 1
            keyed.append(((-w.priority, turn, w.arrival), w.run_id))
        return [run_id for _, run_id in sorted(keyed)]

    def pop_next(self, running_owners: Counter) -> str | None:
        """The run to start now, taken out of the queue; None when empty or paused."""
        self._forget_idle(running_owners)
        if self.paused or not self._waiting:
            return None
        run_id = self.order(running_owners)[0]
        self._taken[self._waiting.pop(run_id).owner] += 1
        return run_id

    def _forget_idle(self, running_owners: Counter) -> None:
        """An owner with nothing waiting or training starts afresh: a student back after a break is not
        held behind the class for the runs they did before it."""
        active = {owner for owner, count in running_owners.items() if count} | self.waiting_by_owner().keys()
        for owner in self._taken.keys() - active:
            del self._taken[owner]


def estimate_starts(running_left_s: list[float | None], queued_s: list[float | None], slots: int) -> list[float | None]:
    """Seconds until each queued run starts, in queue order, when ``slots`` runs train at once.

    ``running_left_s``: what the training runs still need; ``queued_s``: how long each queued run will
    take. Each queued run takes the slot that frees first. An unknown duration (None) makes every later
    estimate unknown, not its own run's start: better no number than a wrong one. More runs training
    than slots (the setting was lowered) hold the queue until enough of them end."""
    if slots < 1 or any(left is None for left in running_left_s):
        return [None] * len(queued_s)
    free_at = sorted(float(left) for left in running_left_s)[-slots:]
    free_at += [0.0] * (slots - len(free_at))
    heapq.heapify(free_at)
    starts: list[float | None] = []
    unknown = False
    for duration in queued_s:
        if unknown:
            starts.append(None)
            continue
        start = heapq.heappop(free_at)
        starts.append(start)
        if duration is None:
            unknown = True
        else:
            heapq.heappush(free_at, start + duration)
    return starts
