"""A real server and a real browser for the main flows: `streamlit run app.py` + Debian's chromium.

The server runs in a subprocess with its own runs and data dirs; chromium is driven by
Playwright (both from tests/support/browser.py). Without /usr/bin/chromium every browser
test fails, saying what to install (.ci/run installs it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.browser import headless_chromium, served_lab

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"


@pytest.fixture(scope="session")
def server_dir(tmp_path_factory) -> Path:
    """The served lab's folder: its runs dir is ``runs/`` (a test may put a finished run there)."""
    return tmp_path_factory.mktemp("server")


@pytest.fixture(scope="session")
def app_url(server_dir) -> Iterator[str]:
    """The lab served on a free port with empty runs and data dirs; stopped after the session."""
    with served_lab(server_dir) as server:
        yield server.url


@pytest.fixture(scope="session")
def browser(app_url):
    with headless_chromium() as chromium:
        yield chromium


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
