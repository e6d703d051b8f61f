"""Jobs: training runs executed off the UI thread, queued, observable, stoppable.

``JobManager`` is the executor interface the pages talk to: ``submit``,
``stop``, ``state``. ``LocalExecutor`` runs jobs in worker threads of this
process (torch releases the GIL in its kernels, so a thread trains at full
speed). A distributed engine (Ray) would replace the executor behind the same
three calls; nothing in the pages would change.

The pages never touch a Trainer. ``state(run_id)`` returns one ``RunState``
shape for a queued, running, finished or pre-restart run: live runs from
memory, everything else from the RunStore.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field

from lab.insight.probe import insight_callbacks
from lab.runs import access
from lab.runs.access import Visitor
from lab.runs.store import RunStore
from lab.train.device import return_freed_memory
from lab.train.engine import Callback, RunRecorder, TrainConfig, Trainer, best_row, run_record

log = logging.getLogger(__name__)
MAX_BATCH_POINTS = 2000  # batch-loss points kept per live run; older ones are thinned


@dataclass
class RunState:
    """What a page shows of a run, whatever its age."""

    run_id: str
    status: str
    message: str = ""
    name: str = ""
    owner: str = ""
    epoch: int = 0
    epochs: int = 0
    batch: int = 0
    batches: int = 0
    images_per_sec: float = 0.0
    eta_seconds: float | None = None
    queue_position: int = 0  # 1 = next to start; 0 when not queued
    batch_losses: list[tuple[int, float]] = field(default_factory=list)  # (step, loss)
    metrics: list[dict] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return self.status in ("queued", "running")

    @property
    def progress(self) -> float:
        """Fraction of all batches done, in [0, 1]."""
        total = self.epochs * self.batches
        done = (self.epoch - 1) * self.batches + self.batch if self.epoch else 0
        return min(1.0, done / total) if total else (1.0 if not self.live else 0.0)

    @property
    def best(self) -> dict | None:
        """The best epoch's metrics row so far (lab.train.engine.best_row)."""
        return best_row(self.metrics)


class _Job(Callback):
    """In-memory record of one submitted run, updated by its Trainer's events."""

    def __init__(self, run_id: str, config: TrainConfig, extra_callbacks: tuple = ()):
        self.run_id, self.config, self.extra_callbacks = run_id, config, tuple(extra_callbacks)
        self.lock = threading.Lock()
        self.state = RunState(run_id, "queued", name=config.name, owner=config.owner, epochs=config.epochs)
        self.trainer: Trainer | None = None
        self.stop_requested = False
        self.started = 0.0

    def snapshot(self) -> RunState:
        with self.lock:
            s = self.state
            return RunState(**{**s.__dict__, "batch_losses": list(s.batch_losses), "metrics": list(s.metrics)})

    def on_run_start(self, trainer: Trainer) -> None:
        with self.lock:
            self.state.status, self.state.batches = "running", trainer.steps_per_epoch
        self.started = time.perf_counter()

    def on_batch_end(self, trainer: Trainer, info: dict) -> None:
        if self.stop_requested:
            trainer.stop()
        with self.lock:
            s = self.state
            s.epoch, s.batch, s.images_per_sec = info["epoch"], info["batch"], info["images_per_sec"]
            s.batch_losses.append((info["step"], info["loss"]))
            if len(s.batch_losses) > MAX_BATCH_POINTS:
                s.batch_losses = s.batch_losses[::2]
            elapsed = time.perf_counter() - self.started
            s.eta_seconds = elapsed * (1 - s.progress) / s.progress if s.progress > 0 else None

    def on_epoch_end(self, trainer: Trainer, metrics: dict) -> None:
        with self.lock:
            self.state.metrics.append(metrics)

    def on_run_end(self, trainer: Trainer, status: str, message: str) -> None:
        with self.lock:
            self.state.status, self.state.message, self.state.eta_seconds = status, message, 0.0


class LocalExecutor:
    """Runs jobs in ``workers`` daemon threads pulling from one FIFO queue."""

    def __init__(self, run_job, workers: int = 1):
        self.queue: queue.Queue = queue.Queue()
        self.run_job = run_job
        self.threads = [threading.Thread(target=self._work, daemon=True, name=f"lab-job-{i}")
                        for i in range(workers)]
        for t in self.threads:
            t.start()

    def submit(self, job: _Job) -> None:
        self.queue.put(job)

    def _work(self) -> None:
        while True:
            job = self.queue.get()
            try:
                self.run_job(job)
            finally:
                self.queue.task_done()


class JobManager:
    """Server-wide registry of jobs (one per process, shared by all sessions)."""

    def __init__(self, runs_dir=None, data_dir=None, workers: int = 1):
        self.store = RunStore(runs_dir)
        self.data_dir = data_dir
        self.jobs: dict[str, _Job] = {}
        self.waiting: list[str] = []  # run ids in queue order
        self.lock = threading.Lock()
        self.executor = LocalExecutor(self._run, workers)

    def submit(self, config: TrainConfig, extra_callbacks=(), by: Visitor | None = None) -> str:
        """Validate, create the run folder (``queued``) and queue it; returns the run id at once.

        Settings out of range raise ``ConfigError`` here, before anything is queued, so
        the page can show the message. The model and the data set are checked when the
        worker builds the Trainer (:meth:`_build`): a bad one ends the run ``failed``.
        ``by`` is the browser session starting it: only that session (or a teacher) may
        stop or delete it. Whether a student may start it (the class's exercise) is the
        caller's to check first (lab.classroom.exercise.check_run).
        """
        config.validate()
        run_id = self.store.create(config.to_dict(), name=config.name, owner=config.owner,
                                   owner_key=access.owner_key(by))
        job = _Job(run_id, config, extra_callbacks)
        with self.lock:
            self.jobs[run_id] = job
            self.waiting.append(run_id)
        self.executor.submit(job)
        return run_id

    def _run(self, job: _Job) -> None:
        with self.lock:
            if job.run_id not in self.waiting:  # stopped while queued: already recorded by stop()
                return
            self.waiting.remove(job.run_id)
        try:
            if self._build(job):
                job.trainer.run()
        except Exception as err:  # a listener raised in on_run_end: the run ends failed, the worker lives on
            log.exception("run %s: a listener failed at the end of the run", job.run_id)
            self._end(job, "failed", f"{type(err).__name__}: {err}")
        finally:
            self._retire(job)

    def _build(self, job: _Job) -> bool:
        """Build the job's Trainer here, in the worker: loading a data set can take a while, and no
        page may wait on it. False when the run ended instead: a spec, data set or limit the
        Trainer refuses (``failed``, with its message) or a stop that came while it was built."""
        try:
            trainer = Trainer(job.config, data_dir=self.data_dir,
                              source=self.store.source_weights(job.config.init_from))
            trainer.callbacks = [RunRecorder(self.store, job.run_id),
                                 *insight_callbacks(trainer, self.store, job.run_id), job, *job.extra_callbacks]
            self.store.write_config(job.run_id, run_record(job.config, trainer))  # now with the data set's facts
        except ValueError as err:  # ConfigError, SpecError, DatasetError: their message says what to change
            self._end(job, "failed", str(err))
            return False
        except Exception as err:  # a job must end as a failed run, never take the worker down
            log.exception("run %s: building its trainer failed", job.run_id)
            self._end(job, "failed", f"{type(err).__name__}: {err}")
            return False
        job.trainer = trainer  # before reading stop_requested: stop() sets that before it reads the trainer
        if job.stop_requested:
            self._end(job, "stopped", "stopped before it started")
            return False
        return True

    def _retire(self, job: _Job) -> None:
        """Forget an ended run: its batch-loss curve joins the rest of it on disk, so the server
        keeps nothing per finished run and a class's hundredth run costs what its first did."""
        self.store.save_batch_losses(job.run_id, job.snapshot().batch_losses)
        with self.lock:
            self.jobs.pop(job.run_id, None)
        job.trainer = None  # drop the model and data references
        return_freed_memory()

    def _end(self, job: _Job, status: str, message: str) -> None:
        """Record the end of a run that its Trainer did not (or could not) report itself."""
        if job.snapshot().live:
            self.store.set_status(job.run_id, status, message, ended=time.time())
            job.on_run_end(job.trainer, status, message)

    def stop(self, run_id: str, by: Visitor | None = None) -> bool:
        """Request a stop; a queued job never starts, a running one ends within a batch.

        Raises ``AccessDenied`` when ``by`` is another student's session."""
        job = self.jobs.get(run_id)
        if job is None or not job.snapshot().live:
            return False
        access.check(self.store.read_status(run_id), by, "stop")
        job.stop_requested = True
        with self.lock:
            queued = run_id in self.waiting
            if queued:
                self.waiting.remove(run_id)
        if queued:  # ends now, not when a worker gets to it behind a long run
            self._end(job, "stopped", "stopped before it started")
            self._retire(job)
            return True
        trainer = job.trainer
        if trainer is not None:
            trainer.stop()
        return True

    def state(self, run_id: str) -> RunState:
        """The run's current state, live from memory or from disk after it ends or a restart."""
        job = self.jobs.get(run_id)
        if job is not None:
            snap = job.snapshot()
            with self.lock:
                snap.queue_position = self.waiting.index(run_id) + 1 if run_id in self.waiting else 0
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

    def wait(self, run_id: str, timeout: float = 600.0) -> RunState:
        """Block until the run has ended and the server is done with it (for tests and the CLI)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state(run_id)
            if not state.live and run_id not in self.jobs:
                return state
            time.sleep(0.05)
        raise TimeoutError(f"run {run_id} still {self.state(run_id).status} after {timeout:.0f} s")
