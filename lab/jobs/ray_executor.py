"""The Ray executor (``LAB_EXECUTOR=ray``): each run trains in a Ray actor, on whatever node Ray's scheduler
picks, while the Streamlit server stays the single front end.

Which run starts next is still the server's fair queue (lab.jobs.manager): a run is handed to Ray only when
a slot is free, so Ray never holds a backlog that would bypass the order and the quotas. The actor
(:class:`RunWorker`, its own process with ``num_cpus``/``num_gpus`` from lab.settings.QueueSettings) trains
into a scratch copy of the run folder and keeps the Trainer's events; a thread of the server drains them
every :data:`POLL_S` and replays them into the run's Job (the live Train page) and the server's runs dir.

Files are shipped back, not shared: a Ray cluster's GPU workers rarely see the web server's disk, and
shipping needs no set-up. At every epoch end the worker sends the run's files that changed (metrics,
best checkpoint, probe features, CAM frames), so feature space and CAMs update epoch by epoch as for a
local run. ``status.json`` is the server's own: the server writes it from the worker's, with its own
process as owner, so a dead server still leaves its runs ``interrupted``.

Data: built-in sets are made (or found) on the worker; a 'folder:' data set (an upload) is packed once per
content hash and put in Ray's object store, and each node unpacks it once.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import tarfile
import tempfile
import threading
import time
from dataclasses import fields
from pathlib import Path

from lab import settings
from lab.durable import TEMP_SUFFIX, atomic_write
from lab.jobs.state import Job
from lab.runs.store import RunStore
from lab.train.engine import Callback

log = logging.getLogger(__name__)
POLL_S = 0.2  # how often the server drains a run's events: the Train page refreshes every second
WORKER_PROCESS_FIELDS = ("pid", "host", "pid_identity", "updated")  # status fields that name the writing process
SCRATCH = Path(tempfile.gettempdir()) / "lab-ray"  # a worker node's run folders and unpacked uploads
RESOURCES_TTL_S = 5.0  # the cluster's resources are asked again after this long: nodes come and go rarely
LISTENER_METHODS = {"start": "on_run_start", "batch": "on_batch_end", "epoch": "on_epoch_end", "end": "on_run_end"}


class ExecutorError(RuntimeError):
    """The Ray executor cannot start: ray is missing or the cluster cannot be reached; says what to set."""


class WorkerDied(RuntimeError):
    """The Ray worker training a run stopped: its process was killed, or its node left the cluster."""


# ------------------------------------------------------------------ the worker side


class RunWorker:
    """One run's trainer inside a Ray worker process (wrapped by ``ray.remote`` when first used).

    A threaded actor: ``run`` trains while ``drain`` and ``stop`` answer the server between batches."""

    def __init__(self, env: dict[str, str]):
        os.environ.update(env)  # the server's limits, so the worker refuses what the server would
        self.events: list[tuple] = []
        self.lock = threading.Lock()
        self.trainer = None
        self.stop_requested = False

    def pid(self) -> int:
        return os.getpid()

    def drain(self) -> list[tuple]:
        with self.lock:
            events, self.events = self.events, []
        return events

    def push(self, *event) -> None:
        with self.lock:
            self.events.append(event)

    def stop(self) -> None:
        self.stop_requested = True
        if self.trainer is not None:
            self.trainer.stop()

    def run(self, run_id: str, config: dict, files: dict[str, bytes], source, upload: list, corrections: list,
            data_dir: str) -> None:
        """Train the run in a scratch copy of its folder; every outcome ends with an ``end`` event."""
        from lab.insight.probe import insight_callbacks
        from lab.train.engine import RunRecorder, TrainConfig, Trainer, run_record

        root = Path(tempfile.mkdtemp(prefix="run-", dir=_scratch()))
        try:
            store = RunStore(root)
            _write_files(store.path(run_id), files)
            shipper = FileShipper(self, store, run_id)
            try:
                train_config = TrainConfig.from_dict(config)
                data_dir = data_dir if Path(data_dir).is_dir() else None  # the server's, when this node sees it
                dataset = _worker_dataset(train_config, upload, corrections, data_dir)
                trainer = Trainer(train_config, data_dir=data_dir, dataset=dataset, source=source)
                trainer.callbacks = [RunRecorder(store, run_id), *insight_callbacks(trainer, store, run_id), shipper]
                store.write_config(run_id, run_record(train_config, trainer))
            except ValueError as err:  # ConfigError, SpecError, DatasetError: their message says what to change
                self.push("end", "failed", str(err))
                return
            if self.stop_requested:
                self.push("end", "stopped", "stopped before it started")
                return
            self.trainer = trainer
            trainer.run()
        except Exception as err:  # a run ends failed with the reason, never a server that waits
            log.exception("run %s failed on its Ray worker", run_id)
            self.push("end", "failed", f"{type(err).__name__}: {err}")
        finally:
            self.trainer = None
            shutil.rmtree(root, ignore_errors=True)


class FileShipper(Callback):
    """The last listener of a run on a worker: forwards the Trainer's events, with the run's changed files
    at each epoch end and at the end (after RunRecorder and the probe have written theirs)."""

    def __init__(self, worker: RunWorker, store: RunStore, run_id: str):
        self.worker, self.store, self.run_id = worker, store, run_id
        self.sent: dict[str, tuple[int, int]] = {}  # relative path -> (size, mtime_ns) already shipped

    def on_run_start(self, trainer) -> None:
        self.worker.push("start", {"steps_per_epoch": trainer.steps_per_epoch})

    def on_batch_end(self, trainer, info: dict) -> None:
        self.worker.push("batch", info)

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        self.worker.push("files", *self.changed())
        self.worker.push("epoch", metrics)

    def on_run_end(self, trainer, status: str, message: str) -> None:
        self.worker.push("files", *self.changed())
        self.worker.push("end", status, message)

    def changed(self) -> tuple[dict[str, bytes], dict]:
        """The run's files written since the last call, and its status as the worker sees it."""
        layout = self.store.layout(self.run_id)
        files = {}
        for path in sorted(layout.root.rglob("*")):
            if not path.is_file() or path.name.endswith(TEMP_SUFFIX) or path == layout.status:
                continue
            relative, stat = path.relative_to(layout.root).as_posix(), path.stat()
            if self.sent.get(relative) != (stat.st_size, stat.st_mtime_ns):
                files[relative] = path.read_bytes()
                self.sent[relative] = (stat.st_size, stat.st_mtime_ns)
        return files, self.store.read_status(self.run_id)


def _scratch() -> Path:
    SCRATCH.mkdir(parents=True, exist_ok=True)
    return SCRATCH


def _write_files(folder: Path, files: dict[str, bytes]) -> None:
    """Write shipped files into a run folder; a name that would leave the folder is refused."""
    folder = folder.resolve()
    for relative, data in files.items():
        target = (folder / relative).resolve()
        if not target.is_relative_to(folder) or target == folder:
            raise ValueError(f"refused a shipped file outside the run folder: {relative!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, lambda f, data=data: f.write(data))


def _worker_dataset(config, upload: list, corrections: list, data_dir):
    """The run's data set as this node makes it: an upload unpacked from Ray's object store, a built-in one
    by name (None: the Trainer loads it); a corrected version ('NAME@fixes:V') with the server's corrections
    file put where lab.data.corrections looks for it."""
    from lab.data.corrections import corrected_name, corrections_dir, split_name
    from lab.data.registry import load_dataset

    base, version = split_name(config.dataset)
    name = f"folder:{_unpacked_folder(*upload)}" if upload else base
    if not version:
        return load_dataset(name, data_dir, image_size=config.image_size) if upload else None
    path = corrections_dir(load_dataset(name, data_dir).name, data_dir) / f"{version}.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: f.write(corrections[1]))
    return load_dataset(corrected_name(name, version), data_dir, image_size=config.image_size)


def _unpacked_folder(digest: str, ref) -> Path:
    """An uploaded folder, unpacked once per content hash on this node."""
    import ray

    folder = _scratch() / "data" / digest
    if not (folder / ".complete").exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=folder.parent))
        with tarfile.open(fileobj=io.BytesIO(ray.get(ref))) as tar:
            tar.extractall(staging, filter="data")
        (staging / ".complete").touch()
        try:
            staging.rename(folder)
        except OSError:  # another run on this node unpacked it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    return folder


# ------------------------------------------------------------------ the server side


class RemoteTrainer:
    """What the server's listeners see of a Trainer that runs on a Ray worker: its pace, history and stop."""

    def __init__(self, config, actor):
        self.config, self.actor = config, actor
        self.steps_per_epoch = 0
        self.history: list[dict] = []
        self.model = None

    def stop(self) -> None:
        self.actor.stop.remote()


class RayExecutor:
    """Hands each started run to a Ray actor and mirrors it back; ``slots`` follow the cluster's resources."""

    name = "ray"

    def __init__(self, store: RunStore, data_dir=None):
        self.store, self.data_dir = store, data_dir
        self.actors: dict[str, object] = {}  # run id -> its live actor (tests kill one to see the run fail)
        self.uploads: dict[str, object] = {}  # content hash -> the packed folder in Ray's object store
        self._lock = threading.Lock()
        self._resources, self._resources_at = {}, -RESOURCES_TTL_S  # the cluster's, as last asked
        connect()

    def slots(self) -> int:
        """Runs at once: the setting, else what the cluster's GPUs (or CPUs) hold at the per-run shares."""
        import ray

        queue = settings.queue_settings()
        if queue.concurrent_runs:
            return queue.concurrent_runs
        now = time.monotonic()
        if now - self._resources_at > RESOURCES_TTL_S:  # asked at every dispatch and every queued run's state
            self._resources, self._resources_at = ray.cluster_resources(), now
        resources = self._resources
        if resources.get("GPU", 0) and queue.ray_gpus_per_run:
            return max(1, int(resources["GPU"] / queue.ray_gpus_per_run))
        return max(1, int(resources.get("CPU", 1) / max(queue.ray_cpus_per_run, 0.01)))

    def run(self, job: Job, end) -> None:
        """Train the job on the cluster, replaying its events here until it ends; a worker that dies ends
        the run ``failed`` with the reason, or starts it again when the ``retries`` setting allows."""
        retries = settings.queue_settings().retries
        for attempt in range(retries + 1):
            try:
                self._attempt(job)
                return
            except WorkerDied as err:
                if attempt == retries or job.stop_requested:
                    end(job, "failed", str(err))
                    return
                log.warning("run %s: %s; starting it again (%d of %d)", job.run_id, err, attempt + 1, retries)
                self._start_over(job, f"{err}; starting again ({attempt + 1} of {retries})")
            except ValueError as err:  # the server could not prepare it (its upload is gone, ...)
                end(job, "failed", str(err))
                return

    def _start_over(self, job: Job, message: str) -> None:
        """Forget a dead attempt: its files (the next attempt ships its own) and its live curves."""
        layout = self.store.layout(job.run_id)
        for path in sorted(layout.root.rglob("*"), reverse=True):
            if path.is_file() and path not in (layout.config, layout.status):
                path.unlink()
        with job.lock:
            job.state.metrics, job.state.batch_losses, job.state.epoch, job.state.batch = [], [], 0, 0
        self.store.set_status(job.run_id, "queued", message)

    def _attempt(self, job: Job) -> None:
        import ray
        from ray.exceptions import RayActorError, WorkerCrashedError

        inputs = (job.run_id, job.config.to_dict(), self._run_files(job.run_id),
                  self.store.source_weights(job.config.init_from), self._upload(job.config),
                  self._corrections(job.config), str(settings.data_dir(self.data_dir).resolve()))  # may refuse
        actor = self._start_actor(job)
        remote = job.trainer = RemoteTrainer(job.config, actor)
        done = actor.run.remote(*inputs)
        listeners = [job, *job.extra_callbacks]
        stop_sent = False
        try:
            while True:
                finished = bool(ray.wait([done], timeout=POLL_S)[0])
                for event in ray.get(actor.drain.remote()):
                    self._replay(job, remote, listeners, event)
                if job.stop_requested and not stop_sent:
                    remote.stop()
                    stop_sent = True
                if finished:
                    ray.get(done)
                    return
        except (RayActorError, WorkerCrashedError) as err:
            raise WorkerDied(f"the Ray worker training this run stopped before it finished "
                             f"({type(err).__name__}: its process was killed or its node left the cluster)") from None
        finally:
            with self._lock:
                self.actors.pop(job.run_id, None)
            ray.kill(actor, no_restart=True)

    def _start_actor(self, job: Job):
        import ray

        queue = settings.queue_settings()
        wants_gpu = job.config.device != "cpu" and ray.cluster_resources().get("GPU", 0) > 0
        actor = ray.remote(RunWorker).options(
            num_cpus=queue.ray_cpus_per_run, num_gpus=queue.ray_gpus_per_run if wants_gpu else 0,
            max_concurrency=4, max_restarts=0).remote(_limits_env())
        with self._lock:
            self.actors[job.run_id] = actor
        return actor

    def _replay(self, job: Job, remote: RemoteTrainer, listeners: list, event: tuple) -> None:
        """One worker event, here: files into the runs dir, then the listeners, as a local Trainer would."""
        kind, *args = event
        if kind == "files":
            files, status = args
            _write_files(self.store.path(job.run_id), files)
            kept = {k: v for k, v in status.items() if k not in (*WORKER_PROCESS_FIELDS, "status", "message")}
            self.store.set_status(job.run_id, status.get("status", "running"), status.get("message", ""), **kept)
            return
        if kind == "start":
            remote.steps_per_epoch = args[0]["steps_per_epoch"]
            self.store.set_status(job.run_id, "running", started=time.time())
            args = []
        elif kind == "epoch":
            remote.history.append(args[0])
        elif kind == "end":
            if not job.snapshot().live:
                return
            if self.store.read_status(job.run_id).get("status") in ("queued", "running"):
                self.store.set_status(job.run_id, *args, ended=time.time())  # it ended before any files came
        for listener in listeners:
            getattr(listener, LISTENER_METHODS[kind])(remote, *args)

    def _run_files(self, run_id: str) -> dict[str, bytes]:
        """The run folder as the server created it (settings and status), for the worker's scratch copy."""
        layout = self.store.layout(run_id)
        return {path.name: path.read_bytes() for path in (layout.config, layout.status)}

    def _upload(self, config) -> list:
        """[content hash, object ref] of a 'folder:' data set, packed and put once per content; [] otherwise."""
        import ray

        from lab.data.corrections import split_name
        from lab.data.registry import folder_of

        folder = folder_of(split_name(config.dataset)[0], self.data_dir)
        if folder is None:
            return []
        digest, packed = _pack(folder)
        with self._lock:
            if digest not in self.uploads:
                self.uploads[digest] = ray.put(packed)
            return [digest, self.uploads[digest]]

    def _corrections(self, config) -> list:
        """[version, file content] of a corrected data set's corrections file ('NAME@fixes:VERSION'); [] otherwise."""
        from lab.data.corrections import corrections_dir, split_name
        from lab.data.registry import folder_of, normalise

        base, version = split_name(config.dataset)
        if not version:
            return []
        folder = folder_of(base, self.data_dir)
        name = f"folder:{folder.resolve()}" if folder is not None else normalise(base)
        path = corrections_dir(name, self.data_dir) / f"{version}.json"
        try:
            return [version, path.read_bytes()]
        except OSError:
            raise ValueError(f"the corrections {version} of this data set are gone from the server; write them "
                             "again with python -m lab mistakes") from None

    def stop(self, job: Job) -> None:
        """Ask the worker to stop; it ends within a batch (the server's next poll forwards it if the actor
        is still starting)."""
        if isinstance(job.trainer, RemoteTrainer):
            job.trainer.stop()

    def worker_pid(self, run_id: str) -> int | None:
        """The process id of the Ray worker training a run (None when it has none now)."""
        import ray

        actor = self.actors.get(run_id)
        return ray.get(actor.pid.remote()) if actor is not None else None

    def close(self) -> None:
        import ray

        for actor in list(self.actors.values()):
            ray.kill(actor, no_restart=True)


def _pack(folder: Path) -> tuple[str, bytes]:
    """The folder as an uncompressed tar (images are compressed already) and the sha256 of its content."""
    digest = hashlib.sha256()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
            relative = path.relative_to(folder).as_posix()
            data = path.read_bytes()
            digest.update(relative.encode() + b"\0" + hashlib.sha256(data).digest())
            info = tarfile.TarInfo(relative)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return digest.hexdigest()[:32], buffer.getvalue()


def _limits_env() -> dict[str, str]:
    """The server's limits as ``LAB_MAX_...`` variables: a worker has no exercise file, and must refuse a
    spec or data set the server would refuse."""
    limits = settings.limits()
    return {f"LAB_{f.name.upper()}": str(getattr(limits, f.name)) for f in fields(limits)}


_connect_lock = threading.Lock()


def connect() -> None:
    """Join the Ray cluster the settings name, once per process: ``local`` starts a head on loopback (its
    workers import the lab from this checkout), ``auto`` joins the cluster of this machine, ``ray://...``
    a remote one through Ray Client."""
    try:
        import ray
    except ImportError:
        raise ExecutorError("LAB_EXECUTOR=ray needs the ray package: pip install -r requirements.txt") from None
    with _connect_lock:
        if ray.is_initialized():
            return
        address = settings.queue_settings().ray_address
        quiet = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            if address == "local":
                project = str(Path(__file__).resolve().parents[2])
                ray.init(address="local", _node_ip_address="127.0.0.1", object_store_memory=512 * 2**20,
                         runtime_env={"env_vars": {"PYTHONPATH": project}}, **quiet)
            else:
                ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise ExecutorError(f"LAB_RAY_ADDRESS={address}: cannot join that Ray cluster ({err}). Give auto (the "
                                "cluster of this machine), ray://HEAD:10001, or local (a head on loopback).") from None
