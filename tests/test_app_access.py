"""AppTest of who may change a run: two browser sessions, and a teacher who signs in."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from support.apptest import WAIT_S, button, ok, page, tiny_draft

from lab.runs import access
from lab.runs.access import PasswordGuard, Visitor
from lab.ui.state import VISITOR_KEY, job_manager

pytestmark = pytest.mark.usefixtures("isolated_lab")  # tests/conftest.py
APP = str(Path(__file__).resolve().parents[1] / "app.py")
APP_PAGES = Path(__file__).resolve().parents[1] / "app_pages"
LONG = tiny_draft(epochs=50)  # still running while the other sessions look at it
NOT_YOURS = "Only its own session or a teacher can stop it."


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def clock(monkeypatch) -> Clock:
    """A fresh server-wide password guard for each test, on a clock of its own: one free wrong try."""
    clock = Clock()
    monkeypatch.setattr(access, "teacher_sign_in", PasswordGuard(free_tries=1, clock=clock))
    return clock


def app_session() -> AppTest:
    """A new browser session on the home page, sidebar included."""
    return ok(AppTest.from_file(APP, default_timeout=WAIT_S).run())


def sign_in(at: AppTest, password: str) -> AppTest:
    at.sidebar.text_input(key="teacher.password").input(password)  # a form: sent with its button
    at.sidebar.button[0].click().run()
    return ok(at)


def signed_in(at: AppTest) -> bool:
    return any("Signed in as teacher" in c.value for c in at.sidebar.caption)


def compare_page(visitor: Visitor | None = None) -> AppTest:
    at = AppTest.from_file(str(APP_PAGES / "compare.py"), default_timeout=WAIT_S)
    if visitor is not None:
        at.session_state[VISITOR_KEY] = visitor
    return at.run()


def started_run() -> tuple[AppTest, str]:
    owner = page("train", draft=LONG, owner="anna")
    button(owner, "Start training").click().run()
    ok(owner)
    return owner, owner.query_params["run"]


def test_another_session_sees_the_run_but_no_stop_button():
    owner, run_id = started_run()
    try:
        other = page("train", run=run_id)  # a classmate's browser, on a shared link
        ok(other)
        assert other.subheader[0].value == "Run tiny-digits-1" and any("by anna" in c.value for c in other.caption)
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
        teacher = sign_in(app_session(), "guess")
        assert "not the teacher password" in teacher.error[0].value
        assert signed_in(sign_in(teacher, "class-7b"))
        teacher.query_params["run"] = run_id
        teacher.switch_page("app_pages/train.py").run()
        ok(teacher)
        button(teacher, "Stop").click().run()
        assert job_manager().wait(run_id, WAIT_S).status == "stopped"
    finally:
        job_manager().stop(run_id)


def test_wrong_passwords_make_every_session_wait_and_say_for_how_long(monkeypatch, clock):
    monkeypatch.setenv("LAB_TEACHER_PASSWORD", "class-7b")
    guesser = sign_in(sign_in(app_session(), "guess 1"), "guess 2")  # the free try, then one more: 2 s
    assert "not the teacher password" in guesser.error[0].value
    teacher = sign_in(app_session(), "class-7b")  # another browser: the wait is the server's, not a session's
    assert "try again in 2 s" in teacher.error[0].value and not signed_in(teacher)
    assert not teacher.session_state[VISITOR_KEY].teacher
    clock.now += 2.5
    assert signed_in(sign_in(teacher, "class-7b"))


def test_a_teacher_signs_out_and_the_session_keeps_its_own_runs(monkeypatch):
    monkeypatch.setenv("LAB_TEACHER_PASSWORD", "class-7b")
    at = sign_in(app_session(), "class-7b")
    secret = at.session_state[VISITOR_KEY].secret
    assert signed_in(at)
    at.sidebar.button(key="teacher.sign_out").click().run()
    assert ok(at).session_state[VISITOR_KEY] == Visitor(secret)  # a student again, with the same runs
    assert not signed_in(at) and [e for e in at.sidebar.expander if e.label == "Teacher"]
    assert not [b for b in at.sidebar.button if b.key == "teacher.sign_out"]


def test_without_a_teacher_password_there_is_no_sign_in(monkeypatch):
    monkeypatch.delenv("LAB_TEACHER_PASSWORD", raising=False)
    at = app_session()
    assert not [e for e in at.sidebar.expander if e.label == "Teacher"]
    assert [t.label for t in at.sidebar.text_input] == ["Your name"]


def test_compare_offers_rename_and_delete_only_for_your_own_runs():
    owner, run_id = started_run()
    job_manager().stop(run_id)
    job_manager().wait(run_id, WAIT_S)
    other = compare_page()
    ok(other)
    assert any("Only the browser session that started this run" in c.value for c in other.caption)
    assert not [b for b in other.button if b.key == "compare.ask_delete"]
    same_session = compare_page(owner.session_state[VISITOR_KEY])  # the owner, one page further
    assert [b for b in same_session.button if b.key == "compare.ask_delete"]
