"""The lab served by a real ``streamlit run app.py`` in a subprocess, and the headless chromium that opens it.

Two clients drive the whole app from outside, as a visitor's browser does: the live-UI benchmark
(``python -m lab bench --live-ui``) and the browser tests (tests/browser/). The benchmark cannot
import from tests/ and the tests should not import the benchmark, so the launcher lives here, on
its own. It imports nothing from lab (the served app does, in its own process) and no Streamlit.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # where app.py is
CHROMIUM = Path("/usr/bin/chromium")  # Debian's; .ci/run installs it
_CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def launch_chromium(playwright):
    """Debian's chromium, headless, through Playwright (the object ``sync_playwright()`` yields):
    the browser both clients open the lab in. Close it when done."""
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=_CHROMIUM_ARGS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    """Whether the Streamlit server at ``url`` answers its health check."""
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class Server:
    """``streamlit run app.py`` on a free port with its own runs and data folders in ``folder``;
    its output goes to ``folder/streamlit.log``. Use it as a context manager, or call :meth:`close`."""

    def __init__(self, folder: Path, start_s: float = 120, cores: set[int] | None = None):
        """Returns once the server answers. ``start_s``: how long it may take to come up (else
        RuntimeError, with the server stopped). ``cores``: run the server (and so its torch
        threads, which count them at start) on these only."""
        self.runs_dir = folder / "runs"
        self.log_path = folder / "streamlit.log"
        self.url = f"http://127.0.0.1:{free_port()}"
        env = {**os.environ, "LAB_RUNS_DIR": str(self.runs_dir), "LAB_DATA_DIR": str(folder / "data")}
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", self.url.rsplit(":", 1)[1],
             "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None)
        deadline = time.monotonic() + start_s
        while not healthy(self.url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"streamlit did not start; see {self.log_path}")
            time.sleep(0.3)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
