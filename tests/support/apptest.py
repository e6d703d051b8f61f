"""What the AppTest page tests read off a page run (streamlit.testing.v1.AppTest)."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest


def ok(at: AppTest) -> AppTest:
    """``at``, once it is known to have run without an exception (the exceptions' text otherwise)."""
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at: AppTest) -> dict[str, dict]:
    """The page's Plotly figures by the start of their title (before any " · " detail)."""
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return {f["layout"]["title"]["text"].split(" · ")[0]: f for f in figures}
