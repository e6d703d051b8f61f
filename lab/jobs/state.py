"""What the server knows of a live run: one ``Job`` per submitted run, updated by its Trainer's events
wherever that Trainer runs (a thread here, or a Ray worker whose events are replayed here), and the
``RunState`` snapshot the pages read."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from lab.train.engine import Callback, TrainConfig, best_row

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
    start_in_seconds: float | None = None  # a queued run's estimated wait (None: not queued, or no estimate yet)
    queue_paused: bool = False  # a teacher paused the queue: queued runs wait until it resumes
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


class Job(Callback):
    """In-memory record of one submitted run: its settings, its place in the fair queue (owner and
    priority) and its latest state, updated by the Trainer's events."""

    def __init__(self, run_id: str, config: TrainConfig, extra_callbacks: tuple = (), owner_key: str = "",
                 priority: int = 0):
        self.run_id, self.config, self.extra_callbacks = run_id, config, tuple(extra_callbacks)
        self.owner_key, self.priority = owner_key, priority
        self.lock = threading.Lock()
        self.state = RunState(run_id, "queued", name=config.name, owner=config.owner, epochs=config.epochs)
        self.trainer = None  # the Trainer, or the stand-in for a remote one (lab.jobs.ray_executor)
        self.stop_requested = False
        self.started = 0.0

    @property
    def queue_owner(self) -> str:
        """Whom the fair queue takes turns between: the browser session, else the name typed, else one
        shared turn for headless callers."""
        return self.owner_key or self.config.owner

    def snapshot(self) -> RunState:
        with self.lock:
            s = self.state
            return RunState(**{**s.__dict__, "batch_losses": list(s.batch_losses), "metrics": list(s.metrics)})

    def on_run_start(self, trainer) -> None:
        with self.lock:
            self.state.status, self.state.batches = "running", trainer.steps_per_epoch
        self.started = time.perf_counter()

    def on_batch_end(self, trainer, info: dict) -> None:
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

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        with self.lock:
            self.state.metrics.append(metrics)

    def on_run_end(self, trainer, status: str, message: str) -> None:
        with self.lock:
            self.state.status, self.state.message, self.state.eta_seconds = status, message, 0.0
