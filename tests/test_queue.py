"""The shared server's queue (issue 18): fair order, priorities, start estimates, every quota, the
teacher's controls, and queued runs that hold no data set or model.

Where only the order matters the queue is paused and nothing trains; runs that do train are tiny
(``digits``, 200 images, one epoch, insight off: well under a second each).
"""

from __future__ import annotations

import gc
import threading
import types
from collections import Counter

import numpy as np
import pytest
import torch
from support.jobs import TINY, WAIT_S, Gate

from lab.jobs import JobManager, QuotaExceeded
from lab.jobs import local as local_executor
from lab.jobs.queue import FairQueue, estimate_starts
from lab.runs.access import AccessDenied, Visitor
from lab.settings import ExerciseFileError, QueueSettings, queue_settings
from lab.train import engine
from lab.train.engine import Callback, TrainConfig, Trainer

TEACHER = Visitor(teacher=True)


def config(name: str = "run", **overrides) -> TrainConfig:
    values = dict(spec=TINY, dataset="digits", epochs=1, batch_size=64, lr=3e-3, device="cpu", train_limit=200,
                  insight=False, name=name, owner="kim")
    values.update(overrides)
    return TrainConfig.from_dict(values)


@pytest.fixture(autouse=True)
def one_slot(monkeypatch):
    """One run at a time unless a test says otherwise (a GPU machine would otherwise train 4 at once)."""
    for name in ("LAB_EXERCISE", "LAB_EXECUTOR", "LAB_MAX_QUEUED_RUNS", "LAB_MAX_CLASS_RUNS", "LAB_MAX_PERSON_DISK_MB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LAB_CONCURRENT_RUNS", "1")


@pytest.fixture
def manager(tmp_path, data_dir):
    return JobManager(tmp_path / "runs", data_dir)


class StartLog(Callback):
    """Notes the name of each run as it starts: the order the queue chose."""

    def __init__(self):
        self.names: list[str] = []

    def on_run_start(self, trainer):
        self.names.append(trainer.config.name)


class HoldAll(Callback):
    """Holds every run it is given at its start until released; ``started`` counts them."""

    def __init__(self, expected: int):
        self.names: list[str] = []
        self.expected, self.all_started, self.release = expected, threading.Event(), threading.Event()

    def on_run_start(self, trainer):
        self.names.append(trainer.config.name)
        if len(self.names) >= self.expected:
            self.all_started.set()
        assert self.release.wait(WAIT_S)


def wait_all(manager: JobManager, run_ids: list[str]) -> list[str]:
    return [manager.wait(run_id, WAIT_S).status for run_id in run_ids]


# -- fair order


def test_three_owners_with_5_1_and_1_runs_start_in_turns(manager):
    a, b, c = Visitor(), Visitor(), Visitor()
    log = StartLog()
    manager.pause()
    ids = {f"A{i}": manager.submit(config(f"A{i}"), [log], by=a) for i in range(1, 6)}
    ids["B1"] = manager.submit(config("B1"), [log], by=b)
    ids["C1"] = manager.submit(config("C1"), [log], by=c)
    expected = ["A1", "B1", "C1", "A2", "A3", "A4", "A5"]
    assert manager.running == {} and manager.queued_ids() == [ids[name] for name in expected]
    manager.resume()
    assert wait_all(manager, list(ids.values())) == ["finished"] * 7
    assert log.names == expected


def test_an_owner_with_a_run_training_goes_behind_one_without():
    queue = FairQueue()
    for run_id, owner in [("a1", "a"), ("a2", "a"), ("b1", "b"), ("c1", "c"), ("b2", "b")]:
        queue.push(run_id, owner)
    assert queue.order(Counter()) == ["a1", "b1", "c1", "a2", "b2"]
    assert queue.order(Counter(a=1)) == ["b1", "c1", "a1", "b2", "a2"]
    assert queue.order(Counter(a=2, b=1)) == ["c1", "b1", "a1", "b2", "a2"]
    queue.paused = True
    assert queue.pop_next(Counter()) is None and len(queue) == 5
    queue.paused = False
    assert queue.pop_next(Counter(a=1)) == "b1" and "b1" not in queue


def test_turns_count_runs_that_already_ended_until_their_owner_has_none_left():
    queue = FairQueue()
    for run_id, owner in [("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b")]:
        queue.push(run_id, owner)
    assert queue.pop_next(Counter()) == "a1"
    assert queue.pop_next(Counter()) == "b1"  # a1 has ended (one slot): a2 still waits for b's first
    assert queue.pop_next(Counter()) == "a2"  # b has nothing left: b starts afresh...
    queue.push("b2", "b")
    assert queue.order(Counter()) == ["b2", "a3"]  # ...and its next run goes before a's third


def test_priority_goes_first_and_runs_of_one_priority_take_turns(manager):
    a, b, c = Visitor(), Visitor(), Visitor()
    settings = queue_settings()
    assert settings.teacher_priority > settings.exercise_priority > 0
    log = StartLog()
    manager.pause()
    ids = [manager.submit(config("A1"), [log], by=a), manager.submit(config("A2"), [log], by=a),
           manager.submit(config("B1"), [log], by=b, priority=settings.exercise_priority),
           manager.submit(config("B2"), [log], by=b, priority=settings.exercise_priority),
           manager.submit(config("C1"), [log], by=c, priority=settings.exercise_priority),
           manager.submit(config("T1"), [log], by=TEACHER, priority=settings.teacher_priority)]  # queued last
    manager.resume()
    assert wait_all(manager, ids) == ["finished"] * 6
    assert log.names == ["T1", "B1", "C1", "B2", "A1", "A2"]


# -- start estimates


@pytest.mark.parametrize("running, queued, slots, starts", [
    ([], [10.0, 20.0, 30.0], 1, [0.0, 10.0, 30.0]),
    ([], [10.0, 20.0, 30.0], 2, [0.0, 0.0, 10.0]),
    ([5.0, 50.0], [10.0, 10.0, 10.0], 2, [5.0, 15.0, 25.0]),
    ([40.0], [10.0, 10.0], 2, [0.0, 10.0]),
    ([None], [10.0], 1, [None]),  # a running run with no pace yet: no number at all
    ([30.0], [None, 10.0, 10.0], 1, [30.0, None, None]),  # an unknown duration hides the later starts only
    ([], [10.0, None, 5.0], 1, [0.0, 10.0, None]),
    ([10.0, 20.0, 30.0], [5.0], 1, [30.0]),  # more training than slots: all three must end first
    ([10.0, 20.0, 30.0], [5.0, 5.0], 2, [20.0, 25.0]),
    ([], [5.0], 0, [None]),
    ([3.0], [], 1, []),
])
def test_estimate_starts(running, queued, slots, starts):
    assert estimate_starts(running, queued, slots) == starts


def test_queue_positions_follow_the_fair_order_and_pause_hides_the_estimate(manager):
    a, b = Visitor(), Visitor()
    manager.pause()
    a_ids = [manager.submit(config(), by=a) for _ in range(3)]
    b_id = manager.submit(config(), by=b)
    positions = {run_id: manager.state(run_id) for run_id in [*a_ids, b_id]}
    assert [positions[run_id].queue_position for run_id in [a_ids[0], b_id, a_ids[1], a_ids[2]]] == [1, 2, 3, 4]
    assert all(s.status == "queued" and s.queue_paused and s.start_in_seconds is None for s in positions.values())
    manager.seconds_per_epoch["digits"] = 10.0  # a known pace changes nothing while paused
    assert manager.state(b_id).start_in_seconds is None
    manager.resume()
    assert wait_all(manager, [*a_ids, b_id]) == ["finished"] * 4
    assert manager.state(b_id).queue_position == 0


class HoldAtFirstBatch(Callback):
    """Holds its run after the first batch, once the run's own estimate (eta) is known."""

    def __init__(self):
        self.reached, self.release = threading.Event(), threading.Event()

    def on_batch_end(self, trainer, info):
        self.reached.set()
        assert self.release.wait(WAIT_S)


def test_start_in_seconds_adds_the_running_runs_time_left_and_the_known_pace(manager, monkeypatch):
    monkeypatch.setattr(Trainer, "log_interval_s", 0.0)  # the first batch is reported: the eta is known
    hold = HoldAtFirstBatch()
    running = manager.submit(config("running", epochs=3), [hold])
    assert hold.reached.wait(WAIT_S)
    try:
        first, second = manager.submit(config("first", epochs=2)), manager.submit(config("second", epochs=2))
        eta = manager.state(running).eta_seconds
        assert eta is not None and eta > 0
        unknown = manager.state(first), manager.state(second)  # no digits run has finished: no pace yet
        assert [s.queue_position for s in unknown] == [1, 2] and not any(s.queue_paused for s in unknown)
        assert unknown[0].start_in_seconds == pytest.approx(eta)  # its own length does not matter
        assert unknown[1].start_in_seconds is None
        manager.seconds_per_epoch["digits"] = 10.0
        assert manager.state(second).start_in_seconds == pytest.approx(eta + 2 * 10.0)
    finally:
        hold.release.set()
    assert wait_all(manager, [running, first, second]) == ["finished"] * 3
    seconds = [row["seconds"] for row in manager.state(second).metrics]  # the pace of the last run that finished
    assert manager.seconds_per_epoch["digits"] == pytest.approx(sum(seconds) / len(seconds))


# -- quotas


def refused(manager: JobManager, by, setting: str, *advice: str, count: int = 1) -> QuotaExceeded:
    """Submit ``count`` runs that a quota must refuse; check nothing was written and the message."""
    before = len(manager.store.list())
    with pytest.raises(QuotaExceeded) as refusal:
        manager.submit_all([config() for _ in range(count)], by=by)
    assert isinstance(refusal.value, ValueError)
    message = str(refusal.value)
    assert setting in message and f"LAB_{setting.upper()}" in message
    for words in advice:
        assert words in message
    assert len(manager.store.list()) == before
    return refusal.value


def test_the_class_wide_cap_holds_everyone_teachers_and_the_command_line_too(manager, monkeypatch):
    monkeypatch.setenv("LAB_MAX_CLASS_RUNS", "3")
    manager.pause()
    manager.submit_all([config() for _ in range(3)])
    for by in (Visitor(), TEACHER, None):
        refused(manager, by, "max_class_runs", "Wait until some of them finish")


def test_queued_runs_per_person_hold_students_only_and_a_too_big_sweep_queues_nothing(manager, monkeypatch):
    monkeypatch.setenv("LAB_MAX_QUEUED_RUNS", "2")
    student, other = Visitor(), Visitor()
    manager.pause()
    manager.submit_all([config(), config()], by=student)
    refused(manager, student, "max_queued_runs", "stop a queued run", "start fewer at once")
    refused(manager, other, "max_queued_runs", count=3)  # a sweep of 3 is refused whole...
    assert len(manager.submit_all([config(), config()], by=other)) == 2  # ...one of 2 is queued whole
    assert len(manager.submit_all([config() for _ in range(5)], by=TEACHER)) == 5
    assert len(manager.submit_all([config() for _ in range(5)])) == 5
    queued = manager.queued_ids()
    manager.resume()
    assert set(wait_all(manager, queued)) == {"finished"}
    manager.pause()
    assert len(manager.submit_all([config(), config()], by=student)) == 2  # runs that started no longer count


def test_queued_runs_per_person_come_from_the_exercise_file_too(manager, monkeypatch, tmp_path):
    exercise = tmp_path / "exercise.toml"
    exercise.write_text("[limits]\nmax_queued_runs = 1\n")
    monkeypatch.setenv("LAB_EXERCISE", str(exercise))
    student = Visitor()
    manager.pause()
    manager.submit(config(), by=student)
    refused(manager, student, "max_queued_runs")


@pytest.mark.parametrize("where", ["upload", "run"])
def test_a_person_over_their_disk_quota_is_told_what_to_delete(tmp_path, monkeypatch, where):
    monkeypatch.setenv("LAB_MAX_PERSON_DISK_MB", "1")
    manager = JobManager(tmp_path / "runs", tmp_path / "data")
    student, other = Visitor(), Visitor()
    manager.pause()
    if where == "upload":
        big = tmp_path / "data" / "uploads" / student.key / "cats" / "images.bin"
        big.parent.mkdir(parents=True)
    else:
        big = manager.store.path(manager.submit(config(), by=student)) / "big.bin"
    big.write_bytes(b"\0" * (2**20 + 1))
    refused(manager, student, "max_person_disk_mb", "Delete old runs", "uploads you no longer use")
    assert manager.submit(config(), by=other)  # the quota is per person
    for by in (TEACHER, None):  # teachers and the command line are not held to it
        assert manager.submit(config(), by=by)


# -- queue settings


def test_queue_settings_come_from_the_exercise_file_and_the_environment_wins(monkeypatch, tmp_path):
    monkeypatch.delenv("LAB_CONCURRENT_RUNS")
    assert queue_settings() == QueueSettings()
    exercise = tmp_path / "exercise.toml"
    exercise.write_text('[queue]\nconcurrent_runs = 3\nteacher_priority = 5\nray_gpus_per_run = 0.5\n'
                        'ray_address = "ray://head:10001"\n')
    monkeypatch.setenv("LAB_EXERCISE", str(exercise))
    from_file = queue_settings()
    assert (from_file.concurrent_runs, from_file.teacher_priority, from_file.ray_gpus_per_run,
            from_file.ray_address, from_file.executor) == (3, 5, 0.5, "ray://head:10001", "local")
    monkeypatch.setenv("LAB_CONCURRENT_RUNS", "2")
    monkeypatch.setenv("LAB_EXECUTOR", "Ray")
    from_env = queue_settings()
    assert (from_env.concurrent_runs, from_env.executor, from_env.teacher_priority) == (2, "ray", 5)


def test_an_unknown_queue_setting_in_the_exercise_file_is_refused_with_the_valid_ones(monkeypatch, tmp_path):
    exercise = tmp_path / "exercise.toml"
    exercise.write_text("[queue]\nworkers = 4\n")
    monkeypatch.setenv("LAB_EXERCISE", str(exercise))
    with pytest.raises(ExerciseFileError, match="workers.*valid: executor, ray_address, concurrent_runs"):
        queue_settings()


@pytest.mark.parametrize("name, value", [
    ("LAB_CONCURRENT_RUNS", "-1"), ("LAB_CONCURRENT_RUNS", "two"), ("LAB_CONCURRENT_RUNS", "1.5"),
    ("LAB_RETRIES", "-2"), ("LAB_RAY_GPUS_PER_RUN", "half"), ("LAB_RAY_GPUS_PER_RUN", "nan"),
    ("LAB_RAY_CPUS_PER_RUN", "inf"), ("LAB_EXECUTOR", "spark"),
])
def test_a_bad_queue_setting_is_refused_with_its_name(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ExerciseFileError, match=name.removeprefix("LAB_").lower()):
        queue_settings()


def test_a_bad_queue_setting_in_the_exercise_file_is_refused_with_its_name(monkeypatch, tmp_path):
    exercise = tmp_path / "exercise.toml"
    exercise.write_text("[queue]\nteacher_priority = true\n")
    monkeypatch.setenv("LAB_EXERCISE", str(exercise))
    with pytest.raises(ExerciseFileError, match="teacher_priority"):
        queue_settings()


# -- runs at once


def test_two_slots_train_two_runs_at_once_and_a_third_waits(manager, monkeypatch):
    monkeypatch.setenv("LAB_CONCURRENT_RUNS", "2")
    hold = HoldAll(expected=2)
    ids = [manager.submit(config(f"R{i}"), [hold]) for i in range(1, 4)]
    try:
        assert hold.all_started.wait(WAIT_S)
        assert [manager.state(run_id).status for run_id in ids] == ["running", "running", "queued"]
        assert manager.state(ids[2]).queue_position == 1 and len(manager.running) == 2
    finally:
        hold.release.set()
    assert wait_all(manager, ids) == ["finished"] * 3
    assert sorted(hold.names[:2]) == ["R1", "R2"] and hold.names[2] == "R3"  # the first two start together


# -- the teacher's controls


def test_stop_owner_stops_one_sessions_queued_and_running_runs_only(manager):
    student, other = Visitor(), Visitor()
    gate = Gate()
    running = manager.submit(config(), [gate], by=student)
    assert gate.started.wait(WAIT_S)
    manager.pause()
    queued, others = manager.submit(config(), by=student), manager.submit(config(), by=other)
    try:
        for by in (student, other):
            with pytest.raises(AccessDenied, match="teacher"):
                manager.stop_owner(student.key, by=by)
        assert manager.stop_owner(student.key, by=TEACHER) == 2
        assert manager.state(queued).status == "stopped"
    finally:
        gate.release.set()
    assert manager.wait(running, WAIT_S).status == "stopped"
    assert manager.state(others).status == "queued"
    manager.resume()
    assert manager.wait(others, WAIT_S).status == "finished"


def test_pause_keeps_queued_runs_from_starting_and_resume_starts_them(manager):
    manager.pause()
    assert manager.paused
    ids = [manager.submit(config()) for _ in range(2)]
    assert manager.running == {} and manager.queued_ids() == ids
    assert all(manager.state(run_id).queue_paused for run_id in ids)
    manager.resume()
    assert not manager.paused
    assert wait_all(manager, ids) == ["finished"] * 2


def test_pause_lets_a_running_run_finish(manager):
    gate = Gate()
    running = manager.submit(config(), [gate])
    assert gate.started.wait(WAIT_S)
    manager.pause()
    queued = manager.submit(config())
    gate.release.set()
    assert manager.wait(running, WAIT_S).status == "finished"
    assert manager.state(queued).status == "queued" and manager.running == {}


def test_clear_finished_keeps_the_teachers_own_runs_and_live_ones(manager):
    student = Visitor()
    teachers = manager.submit(config(), by=TEACHER)
    students = manager.submit(config(), by=student)
    headless = manager.submit(config())
    wait_all(manager, [teachers, students, headless])
    manager.pause()
    live = manager.submit(config(), by=student)
    with pytest.raises(AccessDenied, match="teacher"):
        manager.clear_finished(by=student)
    assert len(manager.store.list()) == 4
    assert manager.clear_finished(by=TEACHER) == 2
    assert {info.id for info in manager.store.list()} == {teachers, live}
    assert manager.state(live).status == "queued" and manager.queued_ids() == [live]


# -- a queued run holds nothing


class CountingTrainer(Trainer):
    built = 0

    def __init__(self, *args, **kwargs):
        type(self).built += 1
        super().__init__(*args, **kwargs)


HEAVY = (torch.Tensor, torch.nn.Module, np.ndarray)
OPAQUE = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType)


def heavy_objects_reachable(root) -> list:
    """Tensors, models and arrays reachable from ``root`` through its data (classes, modules and functions,
    which reach everything, are not followed)."""
    seen, heavy, todo = set(), [], [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, OPAQUE):
            continue
        seen.add(id(obj))
        if isinstance(obj, HEAVY):
            heavy.append(obj)
            continue
        todo.extend(gc.get_referents(obj))
    return heavy


def test_a_queued_run_holds_no_data_set_or_model_until_it_starts(manager, monkeypatch):
    loads = []
    real_load = engine.load_dataset

    def counted_load(*args, **kwargs):
        loads.append(args)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(engine, "load_dataset", counted_load)
    monkeypatch.setattr(local_executor, "Trainer", CountingTrainer)
    monkeypatch.setattr(CountingTrainer, "built", 0)
    manager.pause()
    ids = [manager.submit(config(f"queued-{i}")) for i in range(200)]  # the whole class's cap
    assert len(manager.jobs) == 200 and all(job.trainer is None for job in manager.jobs.values())
    assert loads == [] and CountingTrainer.built == 0
    assert heavy_objects_reachable(manager.jobs) == []  # a queued run is its settings and state only
    for run_id in ids:
        manager.stop(run_id)
    manager.resume()
    last = manager.submit(config("last"))
    assert manager.wait(last, WAIT_S).status == "finished"
    assert len(loads) == 1 and CountingTrainer.built == 1  # only the run that started loaded anything
    assert all(manager.state(run_id).status == "stopped" for run_id in ids)
