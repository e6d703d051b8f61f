"""AppTest for the Explain page's "Suspected label errors": a small run on shapes with some training labels
flipped, ranked once on the page (then from the run folder), marked, saved as a corrections version that
names exactly the marks, and retrained as a queued run grouped with the original, opened on Compare; work
over the page's limit and a second ranking at once are refused before anything trains."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from support.apptest import WAIT_S, button, ok

from lab.data import load_dataset
from lab.data.corrections import read_corrections, split_name
from lab.insight import mistakes
from lab.runs import access
from lab.ui import label_issues_view
from lab.ui.state import VISITOR_KEY, job_manager

ROOT = Path(__file__).resolve().parents[1]
PAGE, APP = str(ROOT / "app_pages" / "explain.py"), str(ROOT / "app.py")
SUSPECT = re.compile(r"#(\d+) given: (.+) · suggested: (.+) · score (\d\.\d\d)$")
RANK = "Rank the training images"
PER_CLASS, FLIPPED = 40, 16  # 320 training images, 5% of them filed under a wrong class


@pytest.fixture(scope="module")
def flipped_run(tmp_path_factory, data_dir) -> tuple[Path, str]:
    """gap_cam trained 3 epochs on a folder of shapes with 16 training labels flipped (a few seconds), and
    ranked once headless, so the copies below start ranked (the page's own ranking is one test)."""
    from PIL import Image

    from lab.cli import run_training
    from lab.data import shapes
    from lab.model.presets import get_preset
    from lab.train.engine import TrainConfig

    root = tmp_path_factory.mktemp("label-issues")
    ds = shapes.load(seed=0, train_per_class=PER_CLASS, val_per_class=10)
    rng = np.random.default_rng(7)
    labels = ds.train_y.numpy().copy()
    flipped = rng.choice(len(labels), FLIPPED, replace=False)
    labels[flipped] = (labels[flipped] + rng.integers(1, len(ds.classes), FLIPPED)) % len(ds.classes)
    for split, images, split_labels in (("train", ds.train_x, labels), ("test", ds.val_x, ds.val_y.numpy())):
        for i, (image, label) in enumerate(zip(images.numpy(), split_labels)):
            folder = root / "flipped" / split / ds.classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"{i:05d}.png")
    config = TrainConfig.from_dict(dict(spec=get_preset("gap_cam"), dataset=f"folder:{root / 'flipped'}", epochs=3,
                                        lr=3e-3, batch_size=32, device="cpu", insight=False, seed=0, name="flipped"))
    run_id, result = run_training(config, root / "runs", data_dir)
    assert result.status == "finished", result.message
    mistakes.label_issues(run_id, runs_dir=root / "runs", data_dir=data_dir, device="cpu")
    return root / "runs", run_id


@pytest.fixture
def ranked(isolated_lab, flipped_run) -> str:
    """The ranked run, copied into the lab the page reads (the page writes into its folder)."""
    runs, run_id = flipped_run
    shutil.copytree(runs / run_id, isolated_lab.root / run_id)
    return run_id


@pytest.fixture
def unranked(ranked, isolated_lab) -> str:
    (isolated_lab.root / ranked / "label_issues.npz").unlink()
    return ranked


def page(**session) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=WAIT_S)
    for key, value in session.items():
        at.session_state[key] = value
    return ok(at.run())


def suspects(at: AppTest) -> list[re.Match]:
    return [m for img in at.image for c in img.captions if (m := SUSPECT.match(c))]


def mark_box(at: AppTest, run_id: str, image_id: int):
    return at.selectbox(key=f"explain.issues.mark.{run_id}.{image_id}")


def marked(at: AppTest) -> str:
    return next(c.value for c in at.caption if c.value.startswith("Marked: "))


def test_the_page_ranks_once_then_shows_the_suspects_from_the_run_folder(unranked, isolated_lab, data_dir,
                                                                         monkeypatch):
    at = page()
    assert any(c.value.startswith("Ranking trains 4 models with this run's settings, each on 240 of 320")
               for c in at.caption)
    assert not suspects(at)
    button(at, RANK).click().run()
    found = suspects(ok(at))
    assert found and (isolated_lab.root / unranked / "label_issues.npz").is_file()
    listing = mistakes.label_issues(str(isolated_lab.root / unranked), top=1000, data_dir=data_dir)
    assert [int(m[1]) for m in found] == [row["id"] for row in listing.rows[:24]]  # the likeliest first
    assert [(m[2], m[3]) for m in found] == [(row["given"], row["predicted"]) for row in listing.rows[:24]]
    assert any("suspected label errors among 320 training images" in c.value for c in at.caption)

    monkeypatch.setattr(mistakes, "cross_val_probs", lambda *a, **k: pytest.fail("trained the folds again"))
    again = page()  # another visit: from the run folder, no button, no training
    assert not [b for b in again.button if b.label == RANK]
    assert [m.groups() for m in suspects(again)] == [m.groups() for m in found]


def explain_in_the_app() -> AppTest:
    """The whole app (sidebar and navigation, so the page can open Compare) on the Explain page."""
    at = ok(AppTest.from_file(APP, default_timeout=WAIT_S).run())
    at.switch_page("app_pages/explain.py").run()
    return ok(at)


def test_marks_are_saved_as_exactly_those_corrections_and_retrained_beside_the_original(
        ranked, isolated_lab, data_dir):
    job_manager().pause()  # the retrained run stays queued
    at = explain_in_the_app()
    top = suspects(at)[:3]
    ids = [int(m[1]) for m in top]
    run = isolated_lab.get(ranked)
    relabel_as = next(i for i, name in enumerate(run.classes) if name not in (top[2][2], top[2][3]))
    mark_box(at, ranked, ids[0]).set_value("drop")
    mark_box(at, ranked, ids[1]).set_value("drop")
    mark_box(at, ranked, ids[2]).set_value(f"relabel:{relabel_as}").run()
    assert marked(ok(at)) == "Marked: 2 to drop, 1 to relabel."
    at.run()  # marks outlive reruns
    assert [mark_box(at, ranked, i).value for i in ids] == ["drop", "drop", f"relabel:{relabel_as}"]

    button(at, "Save as a new data set version").click().run()
    assert any("Saved 3 changes as a new version of the data set" in s.value for s in ok(at).success)
    (shown,) = [c.value for c in at.code if "@fixes:" in c.value]
    assert shown.startswith("flipped@fixes:")  # the folder's name, never its path on the server
    version = shown.removeprefix("flipped@fixes:")
    base_name = split_name(run.config["dataset"])[0]
    base = load_dataset(base_name, data_dir)
    written = {(c.split, c.index, c.action, c.label) for c in read_corrections(base, version, data_dir)}
    assert written == {("train", ids[0], "drop", ""), ("train", ids[1], "drop", ""),
                       ("train", ids[2], "relabel", run.classes[relabel_as])}

    button(at, "Retrain with these fixes").click().run()
    assert any("Queued flipped-fixed on the corrected data" in s.value for s in ok(at).success)
    (new,) = [r for r in isolated_lab.list() if r.id != ranked]
    original = isolated_lab.get(ranked)
    assert new.config["dataset"] == f"{base_name}@fixes:{version}" and new.state == "queued"
    assert job_manager().queued_ids() == [new.id]
    assert new.config["sweep"]["id"] == original.config["sweep"]["id"]
    visitor = at.session_state[VISITOR_KEY]
    assert access.may_change(isolated_lab.read_status(new.id), visitor)  # the student's own run
    assert not access.may_change(isolated_lab.read_status(ranked), visitor)

    button(at, "Compare before and after").click().run()
    assert ok(at).title[0].value == "Compare"
    assert at.multiselect(key="compare.selected").value == [ranked, new.id]


def test_the_shortcuts_mark_every_suspect_and_the_marks_come_back(ranked):
    at = page()
    listed = len(mistakes.label_issues(ranked, top=1000).rows)
    shown = suspects(at)
    button(at, f"Mark all {listed:,} suspects: drop").click().run()
    assert {mark_box(ok(at), ranked, int(m[1])).value for m in shown} == {"drop"}
    assert marked(at) == f"Marked: {listed:,} to drop, 0 to relabel."
    button(at, f"Mark all {listed:,} suspects: relabel as suggested").click().run()
    for m in shown:
        box = mark_box(ok(at), ranked, int(m[1]))
        assert box.value.startswith("relabel:") and box.options[box.index] == f"relabel as {m[3]}"
    at = page(**{label_issues_view.MARKS_KEY: at.session_state[label_issues_view.MARKS_KEY]})  # boxes forgotten,
    assert marked(at) == f"Marked: 0 to drop, {listed:,} to relabel."  # as after a visit to another page
    assert {mark_box(at, ranked, int(m[1])).value[:8] for m in shown} == {"relabel:"}
    button(at, f"Keep all {listed:,}").click().run()
    assert marked(ok(at)) == "Marked: 0 to drop, 0 to relabel."
    assert not [b for b in at.button if b.label == "Save as a new data set version" and not b.disabled]


def test_work_over_the_pages_limit_is_refused_before_training_with_the_command_to_run(
        unranked, isolated_lab, monkeypatch):
    monkeypatch.setattr(label_issues_view, "WORK_LIMITS", {"cpu": 1e9, "gpu": 1e9})
    monkeypatch.setattr(mistakes, "cross_val_probs", lambda *a, **k: pytest.fail("trained the folds"))
    at = page()
    refusal = next(i.value for i in at.info if "The page does at most 0.0 trillion" in i.value)
    assert "Ranking this run's training images means training 4 models, each on 240 of 320 images" in refusal
    assert [c.value for c in at.code] == [f"python -m lab mistakes {unranked} --label-issues"]
    assert not [b for b in at.button if b.label == RANK] and not suspects(at)
    assert not (isolated_lab.root / unranked / "label_issues.npz").exists()


def test_a_second_ranking_at_once_is_refused(unranked, isolated_lab, monkeypatch):
    monkeypatch.setattr(mistakes, "cross_val_probs", lambda *a, **k: pytest.fail("trained the folds"))
    at = page()
    lock = label_issues_view._ranking_lock()
    with lock:  # another session's ranking
        button(at, RANK).click().run()
    assert any("Another session is ranking label errors" in i.value for i in ok(at).info)
    assert not (isolated_lab.root / unranked / "label_issues.npz").exists()


def test_the_section_in_korean(ranked, monkeypatch):
    monkeypatch.setenv("LAB_LANGUAGE", "ko")
    at = page()
    assert "라벨 오류로 의심되는 이미지" in [s.value for s in at.subheader]
    assert any(c.startswith("#") and "제안: " in c for img in at.image for c in img.captions)
    assert [b for b in at.button if b.label == "데이터 세트 새 버전으로 저장"]


def test_a_refused_retrain_leaves_the_original_run_as_it_was(ranked, isolated_lab, monkeypatch):
    """The queue says no (a quota): one error line, and the original gains no half-made sweep record."""
    from lab.jobs import JobManager, QuotaExceeded

    def refuse(*args, **kwargs):
        raise QuotaExceeded("you have 10 runs waiting (max_queued_runs, LAB_MAX_QUEUED_RUNS): wait for one")

    at = explain_in_the_app()
    mark_box(at, ranked, int(suspects(at)[0][1])).set_value("drop").run()
    button(ok(at), "Save as a new data set version").click().run()
    before = isolated_lab.get(ranked).config
    monkeypatch.setattr(JobManager, "submit", refuse)
    button(ok(at), "Retrain with these fixes").click().run()
    assert any("runs waiting" in e.value for e in ok(at).error)
    assert isolated_lab.get(ranked).config == before and not before.get("sweep")
    assert [r.id for r in isolated_lab.list()] == [ranked]
