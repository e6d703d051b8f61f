"""Where the lab keeps things, the server-side limits, and the classroom exercise file, in one place.

Paths resolve in the order: explicit argument, environment variable, default
relative to the current directory. Limits protect a shared classroom server: an
exercise file's ``[limits]`` replace the defaults, and environment variables set
by whoever runs the server replace both.
"""

from __future__ import annotations

import math
import os
import threading
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """Directory for downloaded datasets and extracted uploads (``LAB_DATA_DIR``)."""
    return Path(override or os.environ.get("LAB_DATA_DIR") or "data").expanduser()


def runs_dir(override: str | os.PathLike | None = None) -> Path:
    """Directory holding one folder per run (``LAB_RUNS_DIR``)."""
    return Path(override or os.environ.get("LAB_RUNS_DIR") or "runs").expanduser()


def models_dir(override: str | os.PathLike | None = None) -> Path:
    """Directory of pretrained weight files a backbone layer may name (``LAB_MODELS_DIR``); by default
    ``models`` next to the runs folder, so a lab moved or backed up as one folder keeps its weights."""
    return Path(override or os.environ.get("LAB_MODELS_DIR") or runs_dir().parent / "models").expanduser()


def data_mirror() -> str:
    """A base URL that replaces the official hosts of MNIST, Fashion-MNIST and CIFAR-10 (``LAB_DATA_MIRROR``,
    e.g. ``http://files.school.lan/datasets/``), serving the same file names; empty: the official hosts.
    For a class network without internet but with its own copy, and for the tests' loopback server."""
    return os.environ.get("LAB_DATA_MIRROR", "").strip()


class ExerciseFileError(ValueError):
    """The exercise file cannot be read; the server's operator must fix it."""


_exercise_cache: dict[tuple, dict] = {}
_exercise_lock = threading.Lock()


def exercise_file() -> dict[str, Any]:
    """The TOML exercise file named by ``LAB_EXERCISE`` as a dict ({} without one).

    Re-read when the file changes, so a teacher can edit it during the class.
    It lives on the server: nothing a student types or links can change it.
    """
    name = os.environ.get("LAB_EXERCISE", "").strip()
    if not name:
        return {}
    path = Path(name).expanduser()
    try:
        key = (str(path), path.stat().st_mtime_ns)
    except OSError:
        raise ExerciseFileError(f"LAB_EXERCISE names {path}, which does not exist") from None
    with _exercise_lock:
        if key not in _exercise_cache:
            try:
                _exercise_cache.clear()
                _exercise_cache[key] = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
                raise ExerciseFileError(f"exercise file {path}: {err}") from None
        return _exercise_cache[key]


def teacher_password() -> str:
    """The password that makes a browser session a teacher's: ``LAB_TEACHER_PASSWORD``, else the
    exercise file's ``[teacher] password``; empty: no teachers.

    It lives on the server, never in a URL, so a student cannot grant themselves the rights.
    """
    return os.environ.get("LAB_TEACHER_PASSWORD") or str(exercise_file().get("teacher", {}).get("password", ""))


def anyone_changes_runs() -> bool:
    """``LAB_RUN_ACCESS=anyone``: every session may stop, rename or delete every run (one person's
    lab on a laptop). The default, ``owner``, keeps that to a run's own session and teachers."""
    return os.environ.get("LAB_RUN_ACCESS", "owner").strip().lower() == "anyone"


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value and value.strip().isdigit() else default


@dataclass(frozen=True)
class Limits:
    """Upper bounds a user cannot exceed; defaults suit a shared CPU/GPU server."""

    max_epochs: int = 200
    max_batch_size: int = 4096
    max_params: int = 50_000_000  # refuse bigger models before training starts
    max_activation_mb: int = 4096  # activations of any pass the lab runs (lab.model.budget); refused before training
    max_upload_bytes: int = 200 * 2**20  # uncompressed zip content
    max_upload_files: int = 50_000
    max_zip_ratio: int = 200  # uncompressed/compressed, per entry and for the whole zip; above: a zip bomb
    max_upload_disk_mb: int = 1024  # one person's uploads on disk (uploads/<session>/)
    max_server_disk_mb: int = 20480  # everyone's uploads on disk
    max_image_side: int = 4096  # larger images are skipped on import
    max_decode_megapixels: int = 2000  # pixels one import or load may decode (JPEGs count reduced): ~seconds
    # A run's images (train + val, uint8) as they sit on the device, and once more in the host's cache of
    # loaded data sets. CIFAR-10 takes 176 MB; 1 GB holds 7,100 RGB images at 224 px, 28,500 at 112.
    max_data_mb: int = 1024
    max_probe_size: int = 5000  # points in the feature-space probe
    # Quotas of the job queue (lab.jobs.quotas); teachers and the command line are not held to the first two.
    max_queued_runs: int = 10  # one person's runs waiting to start (a sweep of 64 is refused: start it in parts)
    max_person_disk_mb: int = 4096  # one person's uploads and runs on disk
    max_class_runs: int = 200  # runs waiting or training on the whole server, everyone's together


def limits() -> Limits:
    """Current limits: the defaults, replaced by the exercise file's ``[limits]``, replaced by
    ``LAB_<FIELD>`` (e.g. ``LAB_MAX_EPOCHS``).

    Read on every call so a server (or a test) can change them.
    """
    from_file = exercise_file().get("limits", {})
    unknown = sorted(set(from_file) - {f.name for f in fields(Limits)})
    if unknown:
        raise ExerciseFileError(f"unknown limit(s) {', '.join(unknown)} in the exercise file; "
                                f"valid: {', '.join(f.name for f in fields(Limits))}")
    return Limits(**{f.name: _env_int(f"LAB_{f.name.upper()}", _file_int(from_file, f.name, f.default))
                     for f in fields(Limits)})


def _file_int(table: dict, name: str, default: int) -> int:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ExerciseFileError(f"limit {name} in the exercise file must be a whole number >= 1, got {value!r}")
    return value


EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class QueueSettings:
    """How the server runs its queue: where runs train, how many at once, who goes first.

    From the exercise file's ``[queue]`` table, replaced by ``LAB_<FIELD>`` (``LAB_EXECUTOR=ray``).
    """

    executor: str = "local"  # "local": threads of the server; "ray": tasks on a Ray cluster (lab.jobs.ray_executor)
    ray_address: str = "local"  # "local": a Ray head on loopback started by the lab; "auto"; "ray://host:10001"
    concurrent_runs: int = 0  # runs training at once; 0: 4 per GPU, 1 on a CPU (BENCHMARKS.md), Ray: its resources
    teacher_priority: int = 2  # a teacher's runs start before everyone else's...
    exercise_priority: int = 1  # ...then runs that follow the exercise, then free exploration (0)
    retries: int = 0  # times a run whose Ray worker died is started again before it is marked failed
    ray_gpus_per_run: float = 0.25  # a run's share of a GPU on a Ray worker: 4 small runs per GPU
    ray_cpus_per_run: float = 1.0


def queue_settings() -> QueueSettings:
    """The current queue settings (read on every call, like :func:`limits`); a bad value is an
    ExerciseFileError naming the setting and what it may be."""
    table = exercise_file().get("queue", {})
    known = {f.name: f for f in fields(QueueSettings)}
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ExerciseFileError(f"unknown queue setting(s) {', '.join(unknown)} in the exercise file; "
                                f"valid: {', '.join(known)}")
    values = {}
    for name, f in known.items():
        raw = os.environ.get(f"LAB_{name.upper()}", "").strip() or table.get(name, f.default)
        values[name] = _queue_value(name, type(f.default), raw)
    if values["executor"] not in EXECUTORS:
        raise ExerciseFileError(f"executor must be one of {', '.join(EXECUTORS)}, got {values['executor']!r}")
    return QueueSettings(**values)


def _queue_value(name: str, kind: type, raw: Any) -> Any:
    try:
        value = kind(str(raw).strip()) if kind is not str else str(raw).strip().lower()
    except ValueError:
        value = None
    if value is None or (kind is not str and not 0 <= value < math.inf):  # NaN and inf too
        raise ExerciseFileError(f"queue setting {name} (LAB_{name.upper()}) must be a {kind.__name__} >= 0, "
                                f"got {raw!r}")
    return value
