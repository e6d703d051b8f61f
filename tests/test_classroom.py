"""Teacher mode: an exercise file fixes, locks and limits; the class leaderboard ranks runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from support.runs import fake_run

from lab import settings
from lab.classroom.exercise import Exercise, check_run, current_exercise, leaderboard, queue_priority, starting_draft
from lab.classroom.share import encode_setup
from lab.jobs import JobManager
from lab.model.presets import get_preset
from lab.runs.access import Visitor
from lab.runs.store import RunStore
from lab.settings import ExerciseFileError
from lab.train.engine import ConfigError, TrainConfig
from lab.ui import train_view
from lab.ui.state import VISITOR_KEY, default_draft, job_manager

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "fashion-mnist-exercise.toml"
DIGITS = """
[exercise]
title = "Digits, two models"
text = "Beat 90%."
dataset = "digits"
presets = ["fashion_cnn", "gap_cam"]
augment_presets = ["none"]
locked = ["build"]

[exercise.train]
epochs = 2
batch_size = 64

[limits]
max_epochs = 5

[teacher]
password = "from-the-file"
"""


@pytest.fixture
def exercise_file(tmp_path, monkeypatch):
    """``write(text)``: that text becomes the server's exercise file."""
    path = tmp_path / "exercise.toml"
    monkeypatch.setenv("LAB_EXERCISE", str(path))
    monkeypatch.delenv("LAB_TEACHER_PASSWORD", raising=False)
    monkeypatch.delenv("LAB_MAX_EPOCHS", raising=False)

    def write(text: str) -> Path:
        path.write_text(text)
        return path

    return write


def test_the_example_exercise_file_is_valid(monkeypatch):
    monkeypatch.setenv("LAB_EXERCISE", str(EXAMPLE))
    exercise = current_exercise()
    assert exercise.dataset == "fashion-mnist" and exercise.presets[0] == "fashion_cnn"
    assert exercise.train == {"epochs": 10, "batch_size": 128} and settings.limits().max_params == 2_000_000


def test_limits_come_from_the_file_and_the_environment_wins(exercise_file, monkeypatch):
    exercise_file(DIGITS)
    assert settings.limits().max_epochs == 5
    assert settings.teacher_password() == "from-the-file"
    monkeypatch.setenv("LAB_MAX_EPOCHS", "7")
    monkeypatch.setenv("LAB_TEACHER_PASSWORD", "from-env")
    assert settings.limits().max_epochs == 7 and settings.teacher_password() == "from-env"


def test_an_edited_file_is_read_again(exercise_file):
    exercise_file(DIGITS)
    assert current_exercise().title == "Digits, two models"
    path = exercise_file(DIGITS.replace("Digits, two models", "Digits, round two"))
    path.touch()
    assert current_exercise().title == "Digits, round two"


@pytest.mark.parametrize("change, fragment", [
    (("dataset = \"digits\"", "dataset = \"imagenet\""), "dataset 'imagenet'"),
    (("presets = [", "presets = [\"vgg19\", "), "preset 'vgg19'"),
    (("locked = [\"build\"]", "locked = [\"everything\"]"), "locked 'everything'"),
    (("epochs = 2", "epochs = 0"), "epochs must be"),
    (("epochs = 2", "epoch = 2"), "train setting 'epoch'"),
    (("max_epochs = 5", "max_epoch = 5"), "unknown limit"),
    (("title =", "titel ="), "unknown key"),
    (("[limits]", "[limits"), "exercise file"),
])
def test_a_broken_file_names_its_problem(exercise_file, change, fragment):
    exercise_file(DIGITS.replace(*change))
    with pytest.raises(ExerciseFileError, match=fragment):
        current_exercise()
        settings.limits()


@pytest.mark.parametrize("table, fragment", [
    ('dataset = "digits"\nlocked = ["build"]', "locked 'build' needs what to lock it to: add presets = "),
    ('presets = ["lenet5"]\nlocked = ["augment"]', "locked 'augment' needs .*: add augment_presets = "),
    ('presets = ["lenet5"]\nlocked = ["data"]', "locked 'data' needs .*: add dataset = "),
])
def test_a_locked_page_needs_what_it_is_locked_to(exercise_file, table, fragment):
    exercise_file(f"[exercise]\n{table}\n")
    with pytest.raises(ExerciseFileError, match=fragment):
        current_exercise()


def test_a_lock_refuses_on_its_own_whatever_else_the_exercise_says():
    run = TrainConfig.from_dict(dict(spec=get_preset("lenet5"), dataset="digits", augment={"preset": "keras_basic"}))
    for exercise, fragment in [(Exercise(locked=frozenset({"build"})), "one of the models"),
                               (Exercise(locked=frozenset({"data"})), "trains on"),
                               (Exercise(locked=frozenset({"augment"})), "uses the augmentation"),
                               (Exercise(locked=frozenset({"augment"}), augment_presets=("none", "keras_basic")),
                                "uses the augmentation none$")]:  # locked: the first, not any offered
        with pytest.raises(ConfigError, match=fragment):
            exercise.check(run)
    Exercise(augment_presets=("none", "keras_basic")).check(run)  # open: any offered


def test_exercise_names_are_read_in_any_spelling(exercise_file):
    exercise_file('[exercise]\ndataset = "Digits"\npresets = ["Fashion-CNN"]\naugment_presets = ["Keras Basic"]\n'
                  'locked = ["build", "augment"]\n')
    exercise = current_exercise()
    assert (exercise.dataset, exercise.presets, exercise.augment_presets) == ("digits", ("fashion_cnn",),
                                                                              ("keras_basic",))
    exercise.check(TrainConfig.from_dict(dict(spec=get_preset("fashion_cnn"), dataset="digits",
                                              augment={"preset": "Keras-Basic"})))


def test_the_draft_keeps_the_exercise_whatever_is_edited(exercise_file):
    exercise_file(DIGITS)
    exercise = current_exercise()
    d = starting_draft(default_draft(), exercise)
    assert (d["dataset"], d["preset"], d["spec"]) == ("digits", "fashion_cnn", get_preset("fashion_cnn"))
    assert d["train"]["epochs"] == 2 and d["augment"] == {"preset": "none"}
    d.update(dataset="shapes", spec={"layers": [{"type": "flatten"}]}, augment={"preset": "strong"})
    d["train"].update(epochs=50, lr=0.1)
    exercise.apply(d)
    assert (d["dataset"], d["spec"], d["augment"]) == ("digits", get_preset("fashion_cnn"), {"preset": "none"})
    assert d["train"]["epochs"] == 2 and d["train"]["lr"] == 0.1  # free settings stay the student's


def test_an_unlocked_build_keeps_the_students_model(exercise_file):
    exercise_file(DIGITS.replace('locked = ["build"]', "locked = []"))
    d = starting_draft(default_draft(), current_exercise())
    d["spec"]["layers"][0]["filters"] = 12
    assert current_exercise().apply(d)["spec"]["layers"][0]["filters"] == 12


def test_a_students_run_must_keep_to_the_exercise_a_teachers_need_not(exercise_file, tmp_path):
    exercise_file(DIGITS)
    manager = JobManager(tmp_path / "runs")
    good = dict(spec=get_preset("fashion_cnn"), dataset="digits", epochs=2, batch_size=64, augment={"preset": "none"},
                device="cpu", train_limit=64)
    student, teacher = Visitor(), Visitor(teacher=True)
    for change, fragment in [({"epochs": 3}, "fixes epochs at 2"), ({"dataset": "shapes"}, "trains on digits"),
                             ({"spec": get_preset("lenet5")}, "fashion_cnn, gap_cam"),
                             ({"augment": {"preset": "strong"}}, "augmentation none")]:
        with pytest.raises(ConfigError, match=fragment):
            check_run(TrainConfig.from_dict(good | change), student)
        check_run(TrainConfig.from_dict(good | change), teacher)
        check_run(TrainConfig.from_dict(good | change), None)  # the command line
    check_run(TrainConfig.from_dict(good), student)
    # The job queue runs what its caller let through: the exercise is the page's to check, not the queue's.
    run_id = manager.submit(TrainConfig.from_dict(good | {"epochs": 3}), by=student)
    assert manager.wait(run_id, 120).status == "finished"


def test_the_teacher_then_the_exercise_go_first_in_the_queue(exercise_file, monkeypatch):
    exercise_file(DIGITS)
    follows = dict(spec=get_preset("gap_cam"), dataset="digits", epochs=2, batch_size=64, augment={"preset": "none"})
    student, teacher = Visitor(), Visitor(teacher=True)
    assert [queue_priority(TrainConfig.from_dict(follows), who) for who in (teacher, student, None)] == [2, 1, 0]
    for change in [{"dataset": "shapes"}, {"spec": get_preset("lenet5")}, {"epochs": 3}]:  # not the exercise
        assert queue_priority(TrainConfig.from_dict(follows | change), student) == 0
        assert queue_priority(TrainConfig.from_dict(follows | change), teacher) == 2
    monkeypatch.setenv("LAB_EXERCISE_PRIORITY", "5")
    monkeypatch.setenv("LAB_TEACHER_PRIORITY", "0")
    assert [queue_priority(TrainConfig.from_dict(follows), who) for who in (teacher, student)] == [0, 5]
    monkeypatch.delenv("LAB_EXERCISE")
    assert queue_priority(TrainConfig.from_dict(follows), student) == 0  # no exercise: no one goes ahead


def test_a_run_follows_the_exercise_on_its_dataset_and_one_of_its_presets_as_they_are():
    run = TrainConfig.from_dict(dict(spec=get_preset("gap_cam"), dataset="digits"))
    own_model = TrainConfig.from_dict(dict(spec=get_preset("lenet5"), dataset="digits"))
    assert Exercise(dataset="digits", presets=("gap_cam",)).follows(run)
    assert not Exercise(dataset="digits", presets=("gap_cam",)).follows(own_model)  # an open Build lets it run
    assert Exercise(dataset="digits").follows(own_model)  # no presets listed: any model on its dataset
    assert not Exercise(dataset="shapes").follows(run)
    assert not Exercise(dataset="digits", train={"epochs": 9}).follows(run)  # breaks a fixed setting


@pytest.mark.usefixtures("isolated_lab")  # runs in tmp_path/runs, a fresh job manager
def test_the_train_page_checks_the_exercise_before_it_submits(exercise_file, tmp_path, monkeypatch):
    exercise_file(DIGITS)
    checked = []
    monkeypatch.setattr(train_view, "check_run", lambda config, visitor: checked.append((config.epochs, visitor)))
    at = app(tmp_path)
    at.switch_page("app_pages/train.py").run()
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception
    assert checked == [(2, at.session_state[VISITOR_KEY])]
    run_id = at.query_params["run"]
    job_manager().stop(run_id)
    job_manager().wait(run_id, 120)


def test_leaderboard_ranks_best_first_one_row_per_student_on_the_exercise_dataset(tmp_path, exercise_file):
    exercise_file(DIGITS)
    store = RunStore(tmp_path / "runs")
    made = {}
    for owner, name, accs, dataset in [("anna", "a1", [0.5, 0.7], "digits"), ("anna", "a2", [0.9], "digits"),
                                       ("ben", "b1", [0.8], "digits"), ("", "anon", [0.6], "digits"),
                                       ("", "anon2", [0.4], "digits"), ("carl", "c1", [0.99], "shapes"),
                                       ("dana", "d1", [], "digits")]:
        run_id = fake_run(store, name, accs, dataset=dataset)
        store.set_status(run_id, "finished", owner=owner)
        made[name] = run_id
    board = leaderboard(store.list(), current_exercise())
    assert [(r["rank"], r["name"]) for r in board] == [(1, "a2"), (2, "b1"), (3, "anon"), (4, "anon2"), (None, "d1")]
    every = leaderboard(store.list(), current_exercise(), best_per_student=False)
    assert [r["name"] for r in every][:5] == ["a2", "b1", "a1", "anon", "anon2"]
    assert "c1" in [r["name"] for r in leaderboard(store.list())]  # no exercise: every dataset


def app(tmp_path, **query) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.query_params.update(query)
    return at.run()


@pytest.mark.usefixtures("isolated_lab")  # runs in tmp_path/runs, a fresh job manager
def test_the_train_page_shows_fixed_settings_locked(exercise_file, tmp_path):
    exercise_file(DIGITS)
    at = app(tmp_path)
    at.switch_page("app_pages/train.py").run()
    assert not at.exception
    epochs, lr = at.number_input(key="train.epochs"), at.number_input(key="train.lr")
    assert epochs.value == 2 and epochs.disabled and not lr.disabled
    assert any("Exercise: Digits, two models" in link.proto.label for link in at.sidebar.get("page_link"))


@pytest.mark.usefixtures("isolated_lab")  # runs in tmp_path/runs, a fresh job manager
def test_a_share_link_cannot_undo_the_exercise(exercise_file, tmp_path):
    exercise_file(DIGITS)
    other = default_draft() | {"spec": get_preset("lenet5")}  # not one the exercise offers
    other["train"]["epochs"] = 5
    at = app(tmp_path, setup=encode_setup(other))
    assert not at.exception
    d = at.session_state["draft"]
    assert (d["dataset"], d["train"]["epochs"], d["spec"]) == ("digits", 2, get_preset("fashion_cnn"))


@pytest.mark.usefixtures("isolated_lab")  # runs in tmp_path/runs, a fresh job manager
def test_the_class_page_ranks_the_runs(exercise_file, tmp_path):
    exercise_file(DIGITS)
    store = RunStore(tmp_path / "runs")
    for owner, accs in [("anna", [0.7]), ("ben", [0.9])]:
        store.set_status(fake_run(store, f"{owner}-run", accs, dataset="digits"), "finished", owner=owner)
    at = app(tmp_path)
    at.switch_page("app_pages/gallery.py").run()
    assert not at.exception
    assert at.title[0].value == "Digits, two models" and "Beat 90%." in at.markdown[0].value
    table = at.dataframe[0].value
    assert list(table["owner"]) == ["ben", "anna"] and list(table["rank"]) == [1, 2]
    assert at.metric[0].value == "90.0%"


@pytest.mark.usefixtures("isolated_lab")  # runs in tmp_path/runs, a fresh job manager
def test_a_broken_exercise_file_is_one_message_on_every_page(exercise_file, tmp_path):
    exercise_file(DIGITS.replace("gap_cam", "vgg19"))
    at = app(tmp_path)
    assert not at.exception
    assert len(at.error) == 1 and "preset 'vgg19' does not exist" in at.error[0].value


def test_visitor_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Visitor().teacher = True  # a session cannot promote itself


@pytest.mark.usefixtures("isolated_lab")
def test_locked_pages_offer_only_what_the_exercise_allows(exercise_file, tmp_path):
    exercise_file(DIGITS.replace('locked = ["build"]', 'locked = ["build", "augment"]'))
    at = app(tmp_path)
    at.switch_page("app_pages/data.py").run()
    assert not at.exception and "digits" in at.info[0].value
    assert not [s for s in at.selectbox if s.key == "data.pick"] and not at.get("file_uploader")
    at.switch_page("app_pages/build.py").run()
    assert not at.exception
    assert at.selectbox(key="build.preset").options == ["fashion_cnn", "gap_cam"]
    assert not [b for b in at.button if b.key == "build.add"]  # no layer editor
    at.switch_page("app_pages/augment.py").run()
    assert not at.exception
    box = at.selectbox(key="aug.preset")
    assert box.options == ["none"] and box.disabled and not at.toggle


@pytest.mark.usefixtures("isolated_lab")
def test_an_open_build_keeps_the_editor_and_offers_the_exercise_presets(exercise_file, tmp_path):
    exercise_file(DIGITS.replace('locked = ["build"]', "locked = []"))
    at = app(tmp_path)
    at.switch_page("app_pages/build.py").run()
    assert at.selectbox(key="build.preset").options == ["fashion_cnn", "gap_cam"]
    assert [b for b in at.button if b.key == "build.add"]
