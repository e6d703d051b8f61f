"""A real server and a real browser for the main flows: `streamlit run app.py` + Debian's chromium.

The server runs in a subprocess with its own runs and data dirs; chromium is
driven by Playwright. Without /usr/bin/chromium every browser test is skipped
(CI installs it).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
START_S = 90  # a guard for a slow, busy machine; the server is usually up in seconds


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def server_dir(tmp_path_factory) -> Path:
    """The served lab's folder: its runs dir is ``runs/`` (a test may put a finished run there)."""
    return tmp_path_factory.mktemp("server")


@pytest.fixture(scope="session")
def app_url(server_dir) -> Iterator[str]:
    """The lab served on a free port with empty runs and data dirs; stopped after the session."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); browser tests need it")
    tmp = server_dir
    port = _free_port()
    env = {**os.environ, "LAB_RUNS_DIR": str(tmp / "runs"), "LAB_DATA_DIR": str(tmp / "data")}
    log = open(tmp / "streamlit.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_S
        while not _healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not come up:\n{(tmp / 'streamlit.log').read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="session")
def browser(app_url):
    sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright (pip install playwright)")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser context (a new Streamlit session) per test, wide enough for the wide layout."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    yield tab
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go (git-ignored), for a person to look at after a run."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
