"""The default executor: each run trains in a thread of the server process.

torch releases the GIL in its kernels, so a thread trains at full speed; several small runs share a
GPU this way (BENCHMARKS.md: a class's runs end 2.1x sooner at 4 at once on one H200).
"""

from __future__ import annotations

import logging

from lab import settings
from lab.insight.probe import insight_callbacks
from lab.jobs.state import Job
from lab.runs.store import RunStore
from lab.train.engine import RunRecorder, Trainer, run_record

log = logging.getLogger(__name__)
RUNS_PER_GPU = 4  # BENCHMARKS.md "Runs at once on one GPU": completion 2.1x at 4, little more beyond


class LocalExecutor:
    """Trains a job in the calling thread (the job manager gives each run its own)."""

    name = "local"

    def __init__(self, store: RunStore, data_dir=None):
        self.store, self.data_dir = store, data_dir

    def slots(self) -> int:
        """Runs training at once: the setting, else 4 per GPU, else one (a CPU is full with one run)."""
        configured = settings.queue_settings().concurrent_runs
        if configured:
            return configured
        import torch

        return RUNS_PER_GPU * torch.cuda.device_count() if torch.cuda.is_available() else 1

    def run(self, job: Job, end) -> None:
        """Build the job's Trainer and train it; ``end(job, status, message)`` records a run that ended
        before its Trainer could say so itself."""
        if self._build(job, end):
            job.trainer.run()

    def _build(self, job: Job, end) -> bool:
        """Build the Trainer here, in the run's thread: loading a data set can take a while, and no page may
        wait on it. False when the run ended instead: a spec, data set or limit the Trainer refuses
        (``failed``, with its message) or a stop that came while it was built."""
        try:
            trainer = Trainer(job.config, data_dir=self.data_dir,
                              source=self.store.source_weights(job.config.init_from))
            trainer.callbacks = [RunRecorder(self.store, job.run_id),
                                 *insight_callbacks(trainer, self.store, job.run_id), job, *job.extra_callbacks]
            self.store.write_config(job.run_id, run_record(job.config, trainer))  # now with the data set's facts
        except ValueError as err:  # ConfigError, SpecError, DatasetError: their message says what to change
            end(job, "failed", str(err))
            return False
        except Exception as err:  # a job must end as a failed run, never take the server down
            log.exception("run %s: building its trainer failed", job.run_id)
            end(job, "failed", f"{type(err).__name__}: {err}")
            return False
        job.trainer = trainer  # before reading stop_requested: stop() sets that before it reads the trainer
        if job.stop_requested:
            end(job, "stopped", "stopped before it started")
            return False
        return True

    def stop(self, job: Job) -> None:
        """Ask the run's Trainer to stop (it ends within a batch); one still being built reads
        ``job.stop_requested``, which the manager set first."""
        if job.trainer is not None:
            job.trainer.stop()

    def close(self) -> None:
        """Nothing to release: the threads end with their runs."""
