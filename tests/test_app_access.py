"""AppTest of who may change a run: two browser sessions, and a teacher who signs in."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from test_app_train import WAIT_S, button, no_exception, page, tiny_draft

from lab.runs.access import Visitor
from lab.ui.state import VISITOR_KEY, job_manager

pytestmark = pytest.mark.usefixtures("isolated_lab")  # tests/conftest.py
APP = str(Path(__file__).resolve().parents[1] / "app.py")
APP_PAGES = Path(__file__).resolve().parents[1] / "app_pages"
LONG = tiny_draft(epochs=50)  # still running while the other sessions look at it
NOT_YOURS = "Only its own session or a teacher can stop it."


def compare_page(visitor: Visitor | None = None) -> AppTest:
    at = AppTest.from_file(str(APP_PAGES / "compare.py"), default_timeout=WAIT_S)
    if visitor is not None:
        at.session_state[VISITOR_KEY] = visitor
    return at.run()


def started_run() -> tuple[AppTest, str]:
    owner = page("train", draft=LONG, owner="anna")
    button(owner, "Start training").click().run()
    no_exception(owner)
    return owner, owner.query_params["run"]


def test_another_session_sees_the_run_but_no_stop_button():
    owner, run_id = started_run()
    try:
        other = page("train", run=run_id)  # a classmate's browser, on a shared link
        no_exception(other)
        assert other.subheader[0].value == "Run tiny-digits-1" and "by anna" in other.caption[1].value
        assert not [b for b in other.button if b.label == "Stop"]
        assert any(c.value == NOT_YOURS for c in other.caption)
        owner.run()
        assert not any(c.value == NOT_YOURS for c in owner.caption)
        button(owner, "Stop").click().run()
    finally:
        job_manager().stop(run_id)
    assert job_manager().wait(run_id, WAIT_S).status == "stopped"


def test_a_teacher_signs_in_with_the_servers_password_and_may_stop_any_run(monkeypatch):
    monkeypatch.setenv("LAB_TEACHER_PASSWORD", "class-7b")
    _, run_id = started_run()
    try:
        teacher = AppTest.from_file(APP, default_timeout=WAIT_S).run()
        teacher.sidebar.text_input[1].input("guess")  # a form: sent with its button
        teacher.sidebar.button[0].click().run()
        no_exception(teacher)
        assert "not the teacher password" in teacher.error[0].value
        teacher.sidebar.text_input[1].input("class-7b")
        teacher.sidebar.button[0].click().run()
        assert any("Signed in as teacher" in c.value for c in teacher.sidebar.caption)
        teacher.query_params["run"] = run_id
        teacher.switch_page("app_pages/train.py").run()
        no_exception(teacher)
        button(teacher, "Stop").click().run()
        assert job_manager().wait(run_id, WAIT_S).status == "stopped"
    finally:
        job_manager().stop(run_id)


def test_without_a_teacher_password_there_is_no_sign_in(monkeypatch):
    monkeypatch.delenv("LAB_TEACHER_PASSWORD", raising=False)
    at = AppTest.from_file(APP, default_timeout=WAIT_S).run()
    assert not [e for e in at.sidebar.expander if e.label == "Teacher"]
    assert [t.label for t in at.sidebar.text_input] == ["Your name"]


def test_compare_offers_rename_and_delete_only_for_your_own_runs():
    owner, run_id = started_run()
    job_manager().stop(run_id)
    job_manager().wait(run_id, WAIT_S)
    other = compare_page()
    no_exception(other)
    assert any("Only the browser session that started this run" in c.value for c in other.caption)
    assert not [b for b in other.button if b.key == "compare.ask_delete"]
    same_session = compare_page(owner.session_state[VISITOR_KEY])  # the owner, one page further
    assert [b for b in same_session.button if b.key == "compare.ask_delete"]
