"""Where the lab keeps things, and the server-side limits, in one place.

Paths resolve in the order: explicit argument, environment variable, default
relative to the current directory. Limits protect a shared classroom server and
can be raised through environment variables by whoever runs it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """Directory for downloaded datasets and extracted uploads (``LAB_DATA_DIR``)."""
    return Path(override or os.environ.get("LAB_DATA_DIR") or "data").expanduser()


def runs_dir(override: str | os.PathLike | None = None) -> Path:
    """Directory holding one folder per run (``LAB_RUNS_DIR``)."""
    return Path(override or os.environ.get("LAB_RUNS_DIR") or "runs").expanduser()


def teacher_password() -> str:
    """The password that makes a browser session a teacher's (``LAB_TEACHER_PASSWORD``; empty: no teachers).

    It lives on the server, never in a URL, so a student cannot grant themselves the rights.
    """
    return os.environ.get("LAB_TEACHER_PASSWORD", "")


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
    max_activation_mb: int = 4096  # activation memory of one training step (torchinfo's estimate), likewise
    max_upload_bytes: int = 200 * 2**20  # uncompressed zip content
    max_upload_files: int = 50_000
    max_zip_ratio: int = 200  # uncompressed/compressed per entry; above this is a zip bomb
    max_image_side: int = 4096  # larger images are skipped on import
    max_probe_size: int = 5000  # points in the feature-space probe


def limits() -> Limits:
    """Current limits: each field can be overridden by ``LAB_<FIELD>`` (e.g. ``LAB_MAX_EPOCHS``).

    Read from the environment on every call so a server (or a test) can change them.
    """
    return Limits(**{f.name: _env_int(f"LAB_{f.name.upper()}", f.default) for f in fields(Limits)})
