"""lab.runs.access: a run can be stopped, renamed or deleted only by its own session or a teacher."""

from __future__ import annotations

import dataclasses

import pytest
from support.jobs import TINY, WAIT_S, Gate

from lab.jobs import JobManager
from lab.runs.access import AccessDenied, Visitor, is_teacher_password, may_change
from lab.runs.store import RunStore
from lab.train.engine import TrainConfig

ANNA, BEN = Visitor(), Visitor()


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


@pytest.fixture
def annas_run(store):
    return store.create({"epochs": 1}, name="annas", owner="anna", owner_key=ANNA.key)


def test_a_run_keeps_a_hash_of_its_session_not_the_secret(store, annas_run):
    status = store.read_status(annas_run)
    assert status["owner_key"] == ANNA.key
    assert ANNA.secret not in (store.path(annas_run) / "status.json").read_text()
    assert ANNA.key != BEN.key


def test_only_the_owner_a_teacher_or_the_server_may_change_a_run(store, annas_run):
    status = store.read_status(annas_run)
    assert may_change(status, ANNA)
    assert not may_change(status, BEN)
    assert may_change(status, dataclasses.replace(BEN, teacher=True))
    assert may_change(status, None)  # the CLI and the server's own code


def test_a_run_without_an_owner_key_belongs_to_no_session(store):
    cli_run = store.create({"epochs": 1}, name="from the cli")
    assert not may_change(store.read_status(cli_run), ANNA)


def test_another_session_cannot_rename_or_delete(store, annas_run):
    with pytest.raises(AccessDenied, match="anna"):
        store.annotate(annas_run, name="mine now", by=BEN)
    with pytest.raises(AccessDenied, match="or a teacher"):
        store.delete(annas_run, by=BEN)
    assert store.get(annas_run).name == "annas"
    store.annotate(annas_run, name="renamed", by=ANNA)
    store.delete(annas_run, by=ANNA)
    assert store.list() == []


def test_run_access_anyone_opens_every_run(store, annas_run, monkeypatch):
    monkeypatch.setenv("LAB_RUN_ACCESS", "anyone")
    store.delete(annas_run, by=BEN)
    assert store.list() == []


def test_teacher_password_is_checked_and_absent_means_no_teachers(monkeypatch):
    monkeypatch.delenv("LAB_TEACHER_PASSWORD", raising=False)
    assert not is_teacher_password("")
    monkeypatch.setenv("LAB_TEACHER_PASSWORD", "s3cret")
    assert is_teacher_password("s3cret")
    assert not is_teacher_password("s3cre")
    assert not is_teacher_password("")


def test_another_session_cannot_stop_a_run_but_its_owner_can(tmp_path):
    manager = JobManager(tmp_path / "runs")
    gate = Gate()
    config = TrainConfig.from_dict(dict(spec=TINY, dataset="digits", epochs=1, batch_size=64, device="cpu"))
    run_id = manager.submit(config, extra_callbacks=[gate], by=ANNA)
    assert gate.started.wait(WAIT_S)
    try:
        with pytest.raises(AccessDenied):
            manager.stop(run_id, by=BEN)
        assert not manager.jobs[run_id].stop_requested
        assert manager.stop(run_id, by=ANNA)
    finally:
        gate.release.set()
    assert manager.wait(run_id, WAIT_S).status == "stopped"


def test_wrong_passwords_back_off_for_the_whole_server(monkeypatch):
    """Every session shares the guard: after 5 wrong tries, the next waits 2 s, then 4 s...; during the wait
    even the right password is not checked; the right one resets the count."""
    from lab.runs.access import PasswordGuard, SignInThrottled

    monkeypatch.setenv("LAB_TEACHER_PASSWORD", "s3cret")
    now = [0.0]
    guard = PasswordGuard(free_tries=5, max_wait_s=60, clock=lambda: now[0])
    assert [guard.sign_in(f"guess{i}") for i in range(5)] == [False] * 5
    assert guard.sign_in("guess5") is False  # the sixth wrong one starts the back-off
    with pytest.raises(SignInThrottled) as throttled:
        guard.sign_in("s3cret")
    assert throttled.value.wait_s == pytest.approx(2.0)
    now[0] += 2.0
    assert guard.sign_in("guess6") is False
    with pytest.raises(SignInThrottled, match="try again in 4 s"):
        guard.sign_in("s3cret")
    now[0] += 4.0
    assert guard.sign_in("s3cret") is True
    assert guard.sign_in("guess7") is False  # counted afresh: no wait
    for _ in range(20):
        now[0] += 60
        guard.sign_in("x")
    with pytest.raises(SignInThrottled) as capped:
        guard.sign_in("x")
    assert capped.value.wait_s == pytest.approx(60.0)
