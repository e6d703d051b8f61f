"""The order in which queued runs start: priority first, then turns between owners, then arrival.

Within a priority, runs are taken round-robin by owner: an owner's n-th run in line (counting the
runs of theirs already training) waits behind everyone's (n-1)-th, so one student who clicks Start
thirty times, or starts a sweep of 64, holds nobody back. A teacher's runs and an exercise's runs
can be given a higher priority (lab.settings.QueueSettings). Pure bookkeeping: no threads, no I/O;
the caller (lab.jobs.manager) holds the lock.
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
        """Every queued run id, next to start first, given how many runs each owner has training."""
        seen: Counter = Counter()
        keyed = []
        for w in sorted(self._waiting.values(), key=lambda w: w.arrival):
            turn = running_owners[w.owner] + seen[w.owner]
            seen[w.owner] += 1
            keyed.append(((-w.priority, turn, w.arrival), w.run_id))
        return [run_id for _, run_id in sorted(keyed)]

    def pop_next(self, running_owners: Counter) -> str | None:
        """The run to start now, taken out of the queue; None when empty or paused."""
        if self.paused or not self._waiting:
            return None
        run_id = self.order(running_owners)[0]
        del self._waiting[run_id]
        return run_id


def estimate_starts(running_left_s: list[float | None], queued_s: list[float | None], slots: int) -> list[float | None]:
    """Seconds until each queued run starts, in queue order, when ``slots`` runs train at once.

    ``running_left_s``: what the training runs still need; ``queued_s``: how long each queued run will
    take. Each queued run takes the slot that frees first. An unknown duration (None) makes every later
    estimate unknown: better no number than a wrong one."""
    if any(left is None for left in running_left_s):
        return [None] * len(queued_s)
    free_at = sorted(float(left) for left in running_left_s)
    free_at += [0.0] * max(0, slots - len(free_at))
    heapq.heapify(free_at)
    starts: list[float | None] = []
    for duration in queued_s:
        if duration is None or (starts and starts[-1] is None):
            starts.append(None)
            continue
        start = heapq.heappop(free_at)
        starts.append(start)
        heapq.heappush(free_at, start + duration)
    return starts
