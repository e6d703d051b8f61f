"""What the AppTest page tests do to a page and read off its run (streamlit.testing.v1.AppTest)."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from lab.ui.state import default_draft
from support.jobs import TINY

PAGES = Path(__file__).resolve().parents[2] / "app_pages"
WAIT_S = 90  # a guard against hanging, never a measure of speed
DETAILS = {"train.view": "details"}  # the Train page's separate charts instead of the training film


def ok(at: AppTest) -> AppTest:
    """``at``, once it is known to have run without an exception (the exceptions' text otherwise)."""
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at: AppTest) -> dict[str, dict]:
    """The page's Plotly figures by the start of their title (before any " · " detail)."""
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return {f["layout"]["title"]["text"].split(" · ")[0]: f for f in figures}


def page(name: str, draft: dict | None = None, owner: str = "", session: dict | None = None, **query) -> AppTest:
    """A page run once in a new session, with an optional draft, user name, session state and URL query."""
    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=WAIT_S)
    for key, value in (session or {}).items():
        at.session_state[key] = value
    if draft is not None:
        at.session_state["draft"] = draft
    if owner:
        at.session_state["owner"] = owner
    at.query_params.update(query)
    return at.run()


def switch_page(at: AppTest, path: str) -> AppTest:
    """``at`` (the whole app) moved to the page at ``path`` and run, without an exception."""
    at.switch_page(path).run()
    assert not at.exception, at.exception
    return at


def tiny_draft(**train) -> dict:
    d = default_draft()
    d.update(dataset="digits", spec=TINY, augment={"preset": "none"})
    d["train"].update({"epochs": 1, "batch_size": 128, "lr": 3e-3, "device": "cpu", **train})
    return d


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)
