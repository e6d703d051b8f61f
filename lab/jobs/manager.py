"""The server's job manager: submit, queue fairly, start as slots free, stop, and report state.

``JobManager`` is what the pages and the command line talk to: ``submit``, ``stop``, ``state``, and the
teacher's ``pause``/``resume``, ``stop_owner`` and ``clear_finished``. Which run starts next is the
fair queue's rule (lab.jobs.queue); whether a run may be queued at all, the quotas' (lab.jobs.quotas);
where it trains, the executor's: threads of this process (lab.jobs.local, the default) or a Ray cluster
(lab.jobs.ray_executor, ``LAB_EXECUTOR=ray``). A queued run is its settings only: its data set and
model are loaded when it starts.

The pages never touch a Trainer. ``state(run_id)`` returns one ``RunState`` shape for a queued, running,
finished or pre-restart run: live runs from memory, everything else from the RunStore.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from lab import settings
from lab.jobs.queue import FairQueue, estimate_starts
from lab.jobs.quotas import check_quotas, owned_runs
from lab.jobs.state import Job, RunState
from lab.runs import access
from lab.runs.access import Visitor
from lab.runs.store import LIVE_STATUSES, RunStore
from lab.train.device import return_freed_memory
from lab.train.engine import TrainConfig

log = logging.getLogger(__name__)


def make_executor(name: str, store: RunStore, data_dir=None):
    """The executor the settings name: ``local`` (threads here) or ``ray`` (lab.jobs.ray_executor)."""
    if name == "ray":
        from lab.jobs.ray_executor import RayExecutor  # ray is imported only by servers that use it

        return RayExecutor(store, data_dir)
    from lab.jobs.local import LocalExecutor

    return LocalExecutor(store, data_dir)


class JobManager:
    """Server-wide registry of jobs (one per process, shared by all sessions)."""

    def __init__(self, runs_dir=None, data_dir=None, executor: str | None = None):
        self.store = RunStore(runs_dir)
        self.data_dir = data_dir
        self.jobs: dict[str, Job] = {}  # every live run (queued or training) and runs ending now
        self.queue = FairQueue()
        self.running: dict[str, Job] = {}
        self.lock = threading.RLock()
        self.executor = make_executor(executor or settings.queue_settings().executor, self.store, data_dir)
        self.seconds_per_epoch: dict[str, float] = {}  # data set -> the last finished run's pace, for estimates

    # -- submitting

    def submit(self, config: TrainConfig, extra_callbacks=(), by: Visitor | None = None, priority: int = 0) -> str:
        """Validate, check the quotas, create the run folder (``queued``) and queue it; returns the run id at once.

        Settings out of range raise ``ConfigError`` and a full quota ``QuotaExceeded`` here, before
        anything is written, so the page can show the message. The model and the data set are checked
        when the run starts: a bad one ends the run ``failed``. ``by`` is the browser session starting it:
        only that session (or a teacher) may stop or delete it, and the fair queue takes turns between
        sessions. ``priority``: higher starts first (lab.classroom.exercise.queue_priority). Whether a
        student may start it (the class's exercise) is the caller's to check first.
        """
        return self.submit_all([config], extra_callbacks, by, priority)[0]

    def submit_all(self, configs: list[TrainConfig], extra_callbacks=(), by: Visitor | None = None,
                   priority: int = 0) -> list[str]:
        """:meth:`submit` for a sweep: every config is checked, and the quotas for all of them at once, before
        the first is queued, so a sweep is queued whole or not at all."""
        for config in configs:
            config.validate()
        owner_key = access.owner_key(by)
        jobs = [Job("", config, extra_callbacks, owner_key=owner_key, priority=priority) for config in configs]
        with self.lock:
            check_quotas(adding=len(jobs), live_runs=len(self.queue) + len(self.running),
                         queued_mine=self.queue.waiting_by_owner()[jobs[0].queue_owner] if jobs else 0,
                         owner_key=owner_key, exempt=by is None or by.teacher, store=self.store,
                         data_dir=self.data_dir)
            for job in jobs:
                config = job.config
                job.run_id = job.state.run_id = self.store.create(config.to_dict(), name=config.name,
                                                                  owner=config.owner, owner_key=owner_key)
                self.jobs[job.run_id] = job
                self.queue.push(job.run_id, job.queue_owner, priority)
        self._dispatch()
        return [job.run_id for job in jobs]

    def _dispatch(self) -> None:
        """Start queued runs while the executor has free slots and the queue is not paused."""
        while True:
            with self.lock:
                if len(self.running) >= self.executor.slots():
                    return
                run_id = self.queue.pop_next(Counter(j.queue_owner for j in self.running.values()))
                if run_id is None:
                    return
                job = self.running[run_id] = self.jobs[run_id]
            threading.Thread(target=self._run, args=(job,), daemon=True, name=f"lab-run-{run_id}").start()

    def _run(self, job: Job) -> None:
        try:
            self.executor.run(job, self._end)
        except Exception as err:  # a listener raised in on_run_end: the run ends failed, the server lives on
            log.exception("run %s: its executor failed", job.run_id)
            self._end(job, "failed", f"{type(err).__name__}: {err}")
        finally:
            self._retire(job)
            self._dispatch()

    def _retire(self, job: Job) -> None:
        """Forget an ended run: its batch-loss curve joins the rest of it on disk, so the server
        keeps nothing per finished run and a class's hundredth run costs what its first did."""
        snapshot = job.snapshot()
        self.store.save_batch_losses(job.run_id, snapshot.batch_losses)
        if snapshot.status == "finished" and snapshot.metrics:
            seconds = [row.get("seconds", 0.0) for row in snapshot.metrics]
            self.seconds_per_epoch[job.config.dataset] = sum(seconds) / len(seconds)
        with self.lock:
            self.running.pop(job.run_id, None)
            self.jobs.pop(job.run_id, None)
        job.trainer = None  # drop the model and data references
        return_freed_memory()

    def _end(self, job: Job, status: str, message: str) -> None:
        """Record the end of a run that its Trainer did not (or could not) report itself."""
        if job.snapshot().live:
            self.store.set_status(job.run_id, status, message, ended=time.time())
            job.on_run_end(job.trainer, status, message)

    # -- stopping

    def stop(self, run_id: str, by: Visitor | None = None) -> bool:
        """Request a stop; a queued job never starts, a running one ends within a batch.

        Raises ``AccessDenied`` when ``by`` is another student's session."""
        job = self.jobs.get(run_id)
        if job is None or not job.snapshot().live:
            return False
        access.check(self.store.read_status(run_id), by, "stop")
        job.stop_requested = True
        with self.lock:
            queued = self.queue.remove(run_id)
        if queued:  # ends now, not when a slot frees behind a long run
            self._end(job, "stopped", "stopped before it started")
            self._retire(job)
            return True
        self.executor.stop(job)
        return True

    def stop_owner(self, owner_key: str, by: Visitor | None = None) -> int:
        """Stop every live run one browser session started (a teacher's tool); returns how many."""
        if by is not None and not by.teacher:
            raise access.AccessDenied("Only a teacher can stop another person's runs.")
        if not owner_key:  # runs of the command line and the server's own code belong to no session
            return 0
        with self.lock:
            mine = [job.run_id for job in self.jobs.values() if job.owner_key == owner_key]
        return sum(self.stop(run_id, by) for run_id in mine)

    def pause(self) -> None:
        """Hold every queued run (running ones go on): a teacher's pause before a demo or at the bell."""
        with self.lock:
            self.queue.paused = True

    def resume(self) -> None:
        with self.lock:
            self.queue.paused = False
        self._dispatch()

    @property
    def paused(self) -> bool:
        return self.queue.paused

    def clear_finished(self, by: Visitor | None = None) -> int:
        """Delete every ended run except the ones started by ``by``'s own session (a teacher clearing the
        class's runs keeps their demos); returns how many. Live runs are never touched."""
        if by is not None and not by.teacher:
            raise access.AccessDenied("Only a teacher can clear the class's runs.")
        keep = set(owned_runs(self.store, access.owner_key(by)))
        cleared = 0
        for info in self.store.list():
            if info.state not in LIVE_STATUSES and info.id not in keep and info.id not in self.jobs:
                self.store.delete(info.id, by=by)
                cleared += 1
        return cleared

    def queued_ids(self) -> list[str]:
        """The queued runs, next to start first."""
        with self.lock:
            return self.queue.order(Counter(j.queue_owner for j in self.running.values()))

    # -- reading

    def state(self, run_id: str) -> RunState:
        """The run's current state, live from memory or from disk after it ends or a restart."""
        job = self.jobs.get(run_id)
        if job is not None:
            snap = job.snapshot()
            if snap.status == "queued":
                self._place_in_queue(snap)
            if snap.live:
                return snap
        info = self.store.get(run_id)
        state = RunState(run_id, info.state, info.status.get("message", ""), info.name,
                         info.status.get("owner", ""), epochs=info.config.get("epochs", 0),
                         metrics=info.metrics)
        state.batch_losses = job.snapshot().batch_losses if job is not None else info.batch_losses
        if info.metrics:
            state.epoch = info.metrics[-1]["epoch"]
            state.images_per_sec = info.metrics[-1].get("images_per_sec", 0.0)
        return state

    def _place_in_queue(self, snap: RunState) -> None:
        """Fill in a queued run's position and estimated wait."""
        with self.lock:
            order = self.queued_ids()
            if snap.run_id not in order:
                return
            ahead = [self.jobs[run_id] for run_id in order[:order.index(snap.run_id) + 1]]
            running = [job.snapshot() for job in self.running.values()]
            slots = self.executor.slots()
            snap.queue_position, snap.queue_paused = len(ahead), self.queue.paused
        left = [s.eta_seconds if s.status == "running" else self._duration(self.jobs.get(s.run_id)) for s in running]
        starts = estimate_starts(left, [self._duration(job) for job in ahead], slots)
        snap.start_in_seconds = None if self.queue.paused else starts[-1]

    def _duration(self, job: Job | None) -> float | None:
        """How long a queued run will take, from the last finished run on its data set (None: no idea yet)."""
        pace = self.seconds_per_epoch.get(job.config.dataset) if job is not None else None
        return pace * job.config.epochs if pace else None

    def wait(self, run_id: str, timeout: float = 600.0) -> RunState:
        """Block until the run has ended and the server is done with it (for tests and the CLI)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state(run_id)
            if not state.live and run_id not in self.jobs:
                return state
            time.sleep(0.05)
        raise TimeoutError(f"run {run_id} still {self.state(run_id).status} after {timeout:.0f} s")
