"""AppTest of the shared queue on the pages (issue 18): a queued run's place, its estimated start and the
teacher's pause on Train; quotas that refuse a Start, a sweep or a write-up whole, saying which limit and
what to do; priorities for the teacher and the exercise; the teacher's queue controls on the Class page,
which students never see; the new words in Korean. Queues are paused wherever nothing needs to train."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from support.apptest import WAIT_S, button, ok, page, tiny_draft
from support.jobs import TINY, Gate
from support.runs import fake_run

from lab.jobs import JobManager, RunState
from lab.model.presets import get_preset
from lab.runs.access import Visitor
from lab.train.engine import TrainConfig
from lab.ui.queue_view import CLEAR_CONFIRM_KEY, OWNER_KEY, STOP_CONFIRM_KEY
from lab.ui.state import VISITOR_KEY, job_manager
from lab.ui.train_view import progress_text

pytestmark = pytest.mark.usefixtures("isolated_lab")  # tests/conftest.py
ROOT = Path(__file__).resolve().parents[1]


def held() -> JobManager:
    """The page's job manager with its queue paused: what is submitted stays queued (nothing trains)."""
    job_manager().pause()
    return job_manager()


def config(owner: str = "", **changes) -> TrainConfig:
    return TrainConfig.from_dict({"spec": TINY, "dataset": "digits", "epochs": 1, "batch_size": 128, "device": "cpu",
                                  "train_limit": 256, "owner": owner, **changes})


def session(name: str, visitor: Visitor | None = None, draft: dict | None = None, lang: str = "") -> AppTest:
    """One page of app_pages in a new browser session, as ``visitor`` (else a student's new session)."""
    at = AppTest.from_file(str(ROOT / "app_pages" / f"{name}.py"), default_timeout=WAIT_S)
    at.session_state[VISITOR_KEY] = visitor or Visitor()
    if draft is not None:
        at.session_state["draft"] = draft
    if lang:
        at.session_state["lang"] = lang
    return ok(at.run())


def start(at: AppTest, label: str = "Start training") -> AppTest:
    button(at, label).click().run()
    return ok(at)


def progress(at: AppTest) -> str:
    return at.get("progress")[0].proto.text


# ---------------------------------------------------------------- Train: place, estimate, pause


@pytest.mark.parametrize("state, expected", [
    (RunState("r", "queued", queue_position=2, start_in_seconds=250),
     "Queued: #2 in the queue · starts in about 4 min"),
    (RunState("r", "queued", queue_position=1, start_in_seconds=20), "Queued: next to start · starts within a minute"),
    (RunState("r", "queued", queue_position=4, queue_paused=True),
     "Queued: #4 in the queue · the teacher paused the queue"),
    (RunState("r", "queued", queue_position=3), "Queued: #3 in the queue"),  # no pace yet: no number
])
def test_progress_text_gives_a_queued_runs_place_and_when_it_starts(state, expected):
    assert progress_text(state) == expected


def test_a_queued_run_shows_its_place_and_that_the_teacher_paused_the_queue():
    manager = held()
    for _ in range(2):
        manager.submit(config("ben"), by=Visitor())  # two other students were first
    at = start(page("train", draft=tiny_draft(), owner="anna"))
    assert progress(at) == "Queued: #3 in the queue · the teacher paused the queue"


def test_a_queued_run_shows_when_it_should_start_once_the_pace_is_known(monkeypatch):
    monkeypatch.setenv("LAB_CONCURRENT_RUNS", "1")
    manager, gate = job_manager(), Gate()
    training = manager.submit(config(), extra_callbacks=[gate])  # holds the only slot
    assert gate.started.wait(WAIT_S)
    job = manager.running[training]
    with job.lock:
        job.state.eta_seconds = 180.0  # as its batches would say: three minutes left
    ahead = manager.submit(config("ben"), by=Visitor())  # one epoch to train before anna's
    at = start(page("train", draft=tiny_draft(), owner="anna"))
    assert progress(at) == "Queued: #2 in the queue"  # no run on digits has finished: no pace, no estimate
    manager.seconds_per_epoch["digits"] = 60.0
    assert progress(ok(at.run())) == "Queued: #2 in the queue · starts in about 4 min"  # 3 min left + 1 epoch
    for queued in (ahead, at.query_params["run"]):
        manager.stop(queued)
    manager.stop(training)
    gate.release.set()
    manager.wait(training, WAIT_S)


# ---------------------------------------------------------------- quotas and priorities


def test_a_start_past_the_queue_quota_says_which_limit_and_queues_nothing(isolated_lab, monkeypatch):
    monkeypatch.setenv("LAB_MAX_QUEUED_RUNS", "1")
    held()
    at = start(page("train", draft=tiny_draft(), owner="anna"))
    first = at.query_params["run"]
    at = start(at)
    refusal = at.error[0].value
    assert refusal.startswith("Cannot start: You have 1 runs waiting to start; 1 more would pass")
    assert r"LAB\_MAX\_QUEUED\_RUNS = 1" in refusal and "stop a queued run" in refusal  # the limit, what to do
    assert [run.id for run in isolated_lab.list()] == [first] and at.query_params["run"] == first


def sweep(visitor: Visitor, batch_sizes: str, epochs: str, draft: dict | None = None) -> AppTest:
    at = session("compare", visitor, draft or tiny_draft())
    at.text_input(key="sweep.batch_size").input(batch_sizes)
    at.text_input(key="sweep.epochs").input(epochs)
    ok(at.run()).button(key="sweep.queue").click().run()
    return ok(at)


def test_a_sweep_past_the_quota_is_refused_whole_and_one_within_it_is_queued(isolated_lab, monkeypatch):
    monkeypatch.setenv("LAB_MAX_QUEUED_RUNS", "3")
    manager, student = held(), Visitor()
    at = sweep(student, "64, 128", "1, 2")
    assert "Cannot queue the sweep: You have 0 runs waiting to start; 4 more would pass" in at.error[0].value
    assert isolated_lab.list() == []  # not the three that fitted
    at = sweep(student, "64, 128", "1")
    assert "Queued sweep" in at.success[0].value and len(manager.queued_ids()) == 2


def test_a_write_up_past_the_quota_is_refused_on_home_and_nothing_is_queued(isolated_lab, monkeypatch):
    monkeypatch.setenv("LAB_MAX_QUEUED_RUNS", "2")
    held()
    at = ok(AppTest.from_file(str(ROOT / "app.py"), default_timeout=WAIT_S).run())
    at.button(key="home.writeup.start.cifar10-writeup").click().run()  # more than two runs
    refusal = ok(at).error[0].value
    assert "more would pass the most one person may queue" in refusal and r"LAB\_MAX\_QUEUED\_RUNS = 2" in refusal
    assert isolated_lab.list() == []


def test_the_teachers_runs_and_the_exercises_go_ahead_of_free_exploration(tmp_path, monkeypatch):
    exercise = tmp_path / "exercise.toml"
    exercise.write_text('[exercise]\ntitle = "Digits"\ndataset = "digits"\npresets = ["gap_cam"]\n')  # not locked
    monkeypatch.setenv("LAB_EXERCISE", str(exercise))
    manager = held()
    on_exercise = tiny_draft() | {"spec": get_preset("gap_cam")}
    explorer = start(session("train", draft=tiny_draft()))  # a model of their own: free exploration
    sweep(Visitor(), "64, 128", "1", on_exercise)
    student = start(session("train", draft=on_exercise))
    teacher = start(session("train", Visitor(teacher=True), tiny_draft()))
    priority = {job.run_id: job.priority for job in manager.jobs.values()}
    assert [priority[at.query_params["run"]] for at in (explorer, student, teacher)] == [0, 1, 2]
    assert sorted(priority.values()) == [0, 1, 1, 1, 2]  # the sweep's two runs follow the exercise too
    assert manager.queued_ids()[0] == teacher.query_params["run"]
    assert manager.queued_ids()[-1] == explorer.query_params["run"]  # though it was the first to start


# ---------------------------------------------------------------- the teacher's controls on the Class page


def queue_buttons(at: AppTest) -> list[str]:
    return [b.key for b in at.button if (b.key or "").startswith("class.queue")]


def test_the_teacher_pauses_and_resumes_the_queue_and_a_student_sees_no_controls():
    student = session("gallery")
    assert queue_buttons(student) == [] and not student.checkbox and not student.subheader
    at = session("gallery", Visitor(teacher=True))
    assert queue_buttons(at) == ["class.queue.pause", "class.queue.clear"]  # and Stop all runs of, once some are live
    at.button(key="class.queue.pause").click().run()
    assert job_manager().paused and at.button(key="class.queue.pause").label == "Resume the queue"
    assert any("The queue is paused" in m.value for m in ok(at).markdown)
    at.button(key="class.queue.pause").click().run()
    assert not job_manager().paused and at.button(key="class.queue.pause").label == "Pause the queue"


def test_the_teacher_sees_the_queue_in_order_and_stops_every_run_of_one_student():
    manager, anna, ben = held(), Visitor(), Visitor()
    manager.submit(config("Ms Kim", name="demo"), by=Visitor(teacher=True), priority=2)
    annas = [manager.submit(config("anna", name=f"a{n}"), by=anna) for n in (1, 2)]
    bens = manager.submit(config("ben", name="b1"), by=ben)
    at = session("gallery", Visitor(teacher=True))
    table = at.dataframe[-1].value
    assert list(table["name"]) == ["demo", "a1", "b1", "a2"]  # priority, then turns between students
    assert list(table["place"]) == ["1", "2", "3", "4"] and list(table["priority"]) == [2, 0, 0, 0]
    assert at.button(key="class.queue.stop_owner").disabled  # not before the teacher confirms
    at.selectbox(key=OWNER_KEY).set_value(anna.key).run()
    at.checkbox(key=STOP_CONFIRM_KEY).check().run()
    at.button(key="class.queue.stop_owner").click().run()
    assert ok(at).success[0].value == "Stopped 2 run(s) of anna."
    assert [manager.state(run_id).status for run_id in annas] == ["stopped", "stopped"]
    assert manager.state(bens).status == "queued" and list(at.dataframe[-1].value["name"]) == ["demo", "b1"]
    assert not at.checkbox(key=STOP_CONFIRM_KEY).value  # the next stop asks again


def test_the_teacher_clears_the_finished_runs_after_confirming_and_keeps_their_own(isolated_lab):
    teacher = Visitor(teacher=True)
    for name in ("old-1", "old-2"):
        fake_run(isolated_lab, name, [0.5])
    isolated_lab.set_status(fake_run(isolated_lab, "demo", [0.9]), "finished", owner_key=teacher.key)
    held().submit(config("anna", name="waiting"), by=Visitor())
    at = session("gallery", teacher)
    assert at.button(key="class.queue.clear").disabled
    at.checkbox(key=CLEAR_CONFIRM_KEY).check().run()
    at.button(key="class.queue.clear").click().run()
    assert ok(at).success[0].value == "Deleted 2 finished run(s)."
    assert sorted(run.name for run in isolated_lab.list()) == ["demo", "waiting"]


# ---------------------------------------------------------------- Korean


def test_the_queue_in_korean(monkeypatch):
    monkeypatch.setenv("LAB_LANGUAGE", "ko")
    manager = held()
    manager.submit(config("ben"), by=Visitor())
    at = start(session("train", draft=tiny_draft(), lang="ko"), "학습 시작")
    assert progress(at) == "대기 중: 대기열 2번째 · 선생님이 대기열을 멈췄습니다"
    at = session("gallery", Visitor(teacher=True), lang="ko")
    assert "대기열" in [s.value for s in at.subheader]
    assert at.button(key="class.queue.pause").label == "대기열 다시 시작"
    assert list(at.dataframe[-1].value["place"]) == ["1", "2"]
