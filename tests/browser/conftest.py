"""A real server and a real browser for the main flows: `streamlit run app.py` + Debian's chromium.

The server runs in a subprocess with its own runs and data dirs; chromium is
driven by Playwright. Without /usr/bin/chromium every browser test is skipped
(CI installs it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.bench.live_ui import CHROMIUM, CHROMIUM_ARGS, Server

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
START_S = 90  # a guard for a slow, busy machine; the server is usually up in seconds


@pytest.fixture(scope="session")
def server_dir(tmp_path_factory) -> Path:
    """The served lab's folder: its runs dir is ``runs/`` (a test may put a finished run there)."""
    return tmp_path_factory.mktemp("server")


@pytest.fixture(scope="session")
def app_url(server_dir) -> Iterator[str]:
    """The lab served on a free port with empty runs and data dirs; stopped after the session."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); browser tests need it")
    try:
        server = Server(server_dir, start_s=START_S)
    except RuntimeError:
        pytest.fail(f"streamlit did not come up:\n{(server_dir / 'streamlit.log').read_text()[-3000:]}")
    try:
        yield server.url
    finally:
        server.close()


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
