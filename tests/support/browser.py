"""The lab served for real and a headless chromium to open it, for the browser tests' fixtures.

lab.serve launches both (the live-UI benchmark uses it too); this adds what a test needs: a
failure that says what went wrong, never a skip. Chromium and Playwright are required for the
suite (.ci/run installs chromium, requirements-dev.txt has Playwright), so their absence fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from lab.serve import Server, launch_chromium

START_S = 90  # a guard for a slow, busy machine; the server is usually up in seconds


@contextmanager
def served_lab(folder: Path) -> Iterator[Server]:
    """``streamlit run app.py`` with its runs in ``folder/runs`` and data in ``folder/data``, stopped
    on exit; the test fails with the end of the server's log if it does not come up."""
    try:
        server = Server(folder, start_s=START_S)
    except RuntimeError:
        pytest.fail(f"streamlit did not come up:\n{(folder / 'streamlit.log').read_text()[-3000:]}")
    with server:
        yield server


@contextmanager
def headless_chromium() -> Iterator[Browser]:
    """Debian's chromium driven by Playwright, closed on exit."""
    with sync_playwright() as playwright:
        try:
            browser = launch_chromium(playwright)
        except RuntimeError as missing:
            pytest.fail(f"{missing} (bash .ci/run installs it): the browser tests need it")
        try:
            yield browser
        finally:
            browser.close()
