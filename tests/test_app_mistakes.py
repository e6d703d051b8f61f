"""AppTest for the Explain page's Mistakes section: the confusion cells listed largest first, a cell's
images the surest first with their Grad-CAM and the epochs each was right and wrong, its rows as the CLI's
CSV, a run with no mistakes, a run that did not record its predictions per epoch, Korean."""

from __future__ import annotations

import base64
import csv
import io
import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest
from support.apptest import charts, ok

from lab.i18n import text
from lab.insight.mistakes import COLUMNS, mistakes
from lab.insight.validation import Evaluation
from lab.runs.layout import RunLayout

PAGE = str(Path(__file__).resolve().parent.parent / "app_pages" / "explain.py")
WAIT_S = 90  # a guard against hanging, never a measure of speed
PAIR_KEY = "explain.mistakes.pair"
CAPTION = re.compile(r"#(\d+) given: (.+) · predicted: (.+) \((\d+)%\)$")


@pytest.fixture
def run_id(isolated_lab, copy_gap_cam_run) -> str:
    """gap_cam on shapes (tests/conftest.py), copied into the isolated lab the page reads."""
    return copy_gap_cam_run(isolated_lab.root)


def page(**session) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=WAIT_S)
    for key, value in session.items():
        at.session_state[key] = value
    return ok(at.run())


def cell_captions(at: AppTest) -> list[re.Match]:
    return [m for img in at.image for c in img.captions if (m := CAPTION.match(c))]


def confusion(at: AppTest) -> np.ndarray:
    """The confusion matrix the page draws (Plotly writes arrays as base64 typed arrays)."""
    z = charts(at)["Confusion matrix"]["data"][0]["z"]
    if isinstance(z, dict):
        shape = tuple(int(n) for n in z["shape"].split(","))
        return np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(shape)
    return np.array(z)


def pair_count(label: str) -> int:
    return int(label.rsplit("(", 1)[1].rstrip(")").replace(",", ""))


def test_the_cells_are_listed_largest_first(run_id):
    at = page()
    pairs = at.selectbox(key=PAIR_KEY)
    matrix = confusion(at)
    off_diagonal = sorted((int(n) for n in (matrix - np.diag(np.diag(matrix))).ravel() if n), reverse=True)
    labels = pairs.options  # as shown: "true → predicted (count)"
    assert [pair_count(label) for label in labels] == off_diagonal
    true, pred = (int(i) for i in pairs.value.split(","))  # the first, chosen until the user picks another
    classes = charts(at)["Confusion matrix"]["data"][0]["y"]
    assert labels[0] == f"{classes[true]} → {classes[pred]} ({off_diagonal[0]})"
    assert matrix[true, pred] == off_diagonal[0]


def test_a_chosen_cell_shows_its_images_surest_first_with_their_grad_cam(run_id):
    at = page()
    at.selectbox(key=PAIR_KEY).select_index(1).run()
    pairs = ok(at).selectbox(key=PAIR_KEY)
    option, count = pairs.value, pair_count(pairs.options[1])
    found = cell_captions(at)
    assert len(found) == min(count, 24)
    confidences = [int(m[4]) for m in found]
    assert confidences == sorted(confidences, reverse=True) and confidences[0] > 0
    true, pred = (int(i) for i in option.split(","))
    classes = charts(at)["Confusion matrix"]["data"][0]["y"]
    assert {(m[2], m[3]) for m in found} == {(classes[true], classes[pred])}
    cams = [c for img in at.image for c in img.captions if c.startswith("Grad-CAM for ")]
    assert cams == [f"Grad-CAM for {m[3]}" for m in found]  # one beside each image


@pytest.fixture
def downloads(monkeypatch) -> dict[str, bytes]:
    """What the page hands to download buttons, by file name (the test runtime keeps no files after a run)."""
    saved, add = {}, MediaFileManager.add

    def keep(self, data, mimetype, coordinates, file_name=None, is_for_static_download=False):
        if file_name:
            saved[file_name] = data if isinstance(data, bytes) else str(data).encode()
        return add(self, data, mimetype, coordinates, file_name, is_for_static_download)

    monkeypatch.setattr(MediaFileManager, "add", keep)
    return saved


def test_the_cell_downloads_as_the_clis_csv(run_id, isolated_lab, data_dir, downloads):
    at = page()
    option, count = at.selectbox(key=PAIR_KEY).value, pair_count(at.selectbox(key=PAIR_KEY).options[0])
    assert at.download_button(key="explain.mistakes.csv").label == f"Download these {count:,} images as CSV"
    true, pred = option.split(",")
    rows = list(csv.DictReader(io.StringIO(downloads[f"{run_id}-mistakes-{true}-{pred}.csv"].decode())))
    assert list(rows[0]) == list(COLUMNS) and len(rows) == count
    listing = mistakes(str(isolated_lab.root / run_id), option, count, data_dir=data_dir)
    assert [(int(r["id"]), r["given"], r["predicted"], float(r["confidence"])) for r in rows] == \
        [(r["id"], r["given"], r["predicted"], r["confidence"]) for r in listing.rows]
    assert len(cell_captions(at)) == min(count, 24)
    if count > 24:
        assert any(f"The 24 surest of {count:,} images shown" in c.value for c in at.caption)


def test_a_run_with_no_mistakes_says_so(run_id, monkeypatch):
    """Every answer right: the validation labels are replaced by the model's own predictions."""
    from lab.ui import explain_view

    evaluate = explain_view.evaluate

    def all_right(model, stats, images, labels) -> Evaluation:
        answers = evaluate(model, stats, images, labels)
        return Evaluation(answers.preds.astype(np.int64), answers.probs)

    monkeypatch.setattr(explain_view, "evaluate", all_right)
    at = page()
    assert "every image is on the diagonal" in at.success[-1].value
    assert not [s for s in at.selectbox if s.key == PAIR_KEY] and not cell_captions(at)


def test_each_image_shows_the_epochs_it_was_right_and_wrong(run_id, isolated_lab):
    at = page()
    ids = [int(m[1]) for m in cell_captions(at)]
    histories = [c.value for c in at.caption if c.value.startswith("By epoch: ")]
    assert ids and len(histories) == len(ids)  # one under each image, in its order
    layout = RunLayout(isolated_lab.root / run_id)
    labels = np.load(layout.val_labels)
    epochs = [e for e in layout.val_pred_epochs() if e > 0]  # epoch 0, the untrained net's guess, is left out
    assert len(epochs) == 3
    preds = {e: np.load(layout.val_preds(e)) for e in epochs}
    for image, history in zip(ids, histories):
        right = [bool(preds[e][image] == labels[image]) for e in epochs]
        strip, summary = history.removeprefix("By epoch: ").split(" · ")
        assert strip == "".join("✓" if ok else "✗" for ok in right)
        if not any(right):
            assert summary == "never right"
        else:
            assert summary.startswith("right at epochs ")
            assert summary.endswith(f"wrong since epoch {epochs[-1]}") == (not right[-1])


def test_the_record_reads_as_spans_and_says_when_an_image_was_forgotten(monkeypatch):
    from lab.ui import mistakes_view

    monkeypatch.setattr(mistakes_view, "t", lambda key, **values: text(key, "en", **values))
    line = mistakes_view.history_line
    assert line([0, 1, 2, 3, 4, 5], np.array([1, 0, 1, 1, 0, 0], bool)) == \
        "By epoch: ✗✓✓✗✗ · right at epochs 2–3; wrong since epoch 4"
    assert line([0, 1, 2], np.array([1, 0, 0], bool)) == "By epoch: ✗✗ · never right"
    assert line([0, 1, 2, 3], np.array([0, 1, 0, 1], bool)) == "By epoch: ✓✗✓ · right at epochs 1, 3"
    flips = np.array([0, 1, 0] * 3 + [0], bool)  # right at epochs 1, 4 and 7: listed, then counted
    assert line(list(range(10)), flips).endswith("· right at epochs 1, 4, 7; wrong since epoch 8")
    assert line(list(range(12)), np.array([0, 1, 0] * 4, bool)).endswith(
        "· right in 4 of 11 epochs; wrong since epoch 11")
    assert line(list(range(41)), np.ones(41, bool)) == f"By epoch: …{'✓' * 30} · right at epochs 1–40"
    assert line([0], np.array([True])) == ""  # only the untrained net's guess: nothing to say


def test_a_run_that_did_not_record_its_predictions_still_shows_its_cells(run_id, isolated_lab):
    for path in (isolated_lab.root / run_id / "probe").glob("val_preds_*.npy"):
        path.unlink()
    at = page()
    assert any("did not record its predictions at each epoch" in c.value for c in at.caption)
    assert cell_captions(at) and not [c for c in at.caption if c.value.startswith("By epoch: ")]


def test_the_section_in_korean(run_id, monkeypatch):
    monkeypatch.setenv("LAB_LANGUAGE", "ko")
    at = page()
    assert "칸별로 보는 실수" in [s.value for s in at.subheader]
    assert at.selectbox(key=PAIR_KEY).label == "혼동 행렬 칸"
    assert any(c.startswith("#") and "주어진 라벨: " in c for img in at.image for c in img.captions)
    assert at.download_button(key="explain.mistakes.csv").label.endswith("CSV로 내려받기")
