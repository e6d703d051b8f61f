"""``python -m lab ...`` as a user types it, in a subprocess with its own runs and data folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def lab(*args: str, runs_dir: Path, data_dir: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """The command's exit code and text output; data in ``runs_dir / "data"`` unless ``data_dir``."""
    env = {**os.environ, "LAB_RUNS_DIR": str(runs_dir), "LAB_DATA_DIR": str(data_dir or Path(runs_dir) / "data")}
    return subprocess.run([sys.executable, "-m", "lab", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)
