"""Hostile input on the pages (issue 16 items 7 and 9): each case is one clear message on the page, never an
exception, and a bad URL parameter does not stay in the URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lab.model.spec import MAX_SPEC_BYTES

PAGES = Path(__file__).resolve().parent.parent / "app_pages"
LONG_ID = "x" * 5000  # ENAMETOOLONG as a folder name

pytestmark = pytest.mark.usefixtures("isolated_lab")  # tests/conftest.py


def page(name: str, **query) -> AppTest:
    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=60)
    at.query_params.update(query)
    return at.run()


def no_exception(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def paste(at: AppTest, text: str) -> AppTest:
    at.text_area(key="build.json_text").input(text).run()
    return no_exception(at.button(key="build.load_json").click().run())


@pytest.mark.parametrize("text, message", [
    ('{"layers": [' + "[" * 30_000 + "]" * 30_000 + "]}", "the pasted text is nested deeper than 32 levels"),
    ('{"layers": []' + " " * MAX_SPEC_BYTES + "}", f"more than the {MAX_SPEC_BYTES:,} it may be"),
], ids=["deep", "large"])
def test_a_pasted_spec_too_deep_or_too_large_is_one_message_and_the_model_stays(text, message):
    at = no_exception(page("build"))
    before = at.session_state["draft"]["spec"]
    paste(at, text)
    assert [e.value for e in at.error if message in e.value]
    assert at.session_state["draft"]["spec"] == before


def test_a_valid_model_over_the_parameter_limit_says_so_instead_of_showing_code(monkeypatch):
    monkeypatch.setenv("LAB_MAX_PARAMS", "1000")
    at = no_exception(page("build"))
    assert any("over this server's limit of 1,000" in w.value for w in at.warning)
    assert not [toggle for toggle in at.toggle if toggle.key == "build.show_code"]
    code_button = at.get("download_button")[1]
    assert code_button.proto.disabled and "over this server's limit" in code_button.proto.help


@pytest.mark.parametrize("name", ["train", "explain"])
def test_a_run_id_no_folder_can_have_is_no_such_run_and_leaves_the_url(name):
    at = no_exception(page(name, run=LONG_ID))
    assert [w.value for w in at.warning if w.value.startswith("There is no run 'xxxx")]
    assert all(len(w.value) < 200 for w in at.warning)  # the id is not repeated 5,000 characters long
    assert "run" not in at.query_params
