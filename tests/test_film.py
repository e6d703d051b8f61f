"""The training film's data (lab.insight.film) from a real run's folder: every frame agrees with what the
run recorded, frames are cached once final, and runs recorded without a part still get a film."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from lab.insight.film import FRAME_VERSION, film_epochs, film_frames, film_head, film_metrics
from lab.insight.mistakes import prediction_history
from lab.insight.probe import load_cams, load_probe
from lab.runs.store import RunStore


@pytest.fixture
def run(tmp_path, copy_gap_cam_run):
    runs = tmp_path / "runs"
    return RunStore(runs).get(copy_gap_cam_run(runs))


def test_a_frame_per_epoch_from_the_untrained_network_on(run):
    assert film_epochs(run) == [0, 1, 2, 3]
    frames = film_frames(run)
    assert [f["epoch"] for f in frames] == [0, 1, 2, 3]
    val_size = len(np.load(run.layout.val_labels))
    assert val_size > 1000  # the whole val split, not the probe's 400
    for frame in frames:
        matrix = np.array(frame["confusion"])
        assert matrix.shape == (8, 8) and matrix.sum() == val_size
        assert len(frame["points"]["x"]) == len(load_probe(run.layout, frame["epoch"]).labels) == 400


def test_confusion_and_class_accuracy_agree_with_the_metrics_row(run):
    """The film's matrix is the whole val split's: its diagonal is the epoch's val_acc and val_class_acc."""
    for frame, row in zip(film_frames(run)[1:], run.metrics):
        matrix = np.array(frame["confusion"])
        assert matrix.trace() / matrix.sum() == pytest.approx(row["val_acc"], abs=1e-9)
        assert frame["class_acc"] == pytest.approx(row["val_class_acc"], abs=1e-4)
    untrained = np.array(film_frames(run)[0]["confusion"])
    assert untrained.sum() == np.array(film_frames(run)[1]["confusion"]).sum()  # a validation pass at epoch 0 too


def test_feature_space_and_cams_are_those_recorded(run):
    frame = film_frames(run)[2]
    probe = load_probe(run.layout, 2)
    assert frame["points"]["label"] == probe.labels.tolist() and frame["points"]["pred"] == probe.preds.tolist()
    assert frame["knn_acc"] == pytest.approx(probe.knn_acc, abs=1e-4)
    cams, sent = load_cams(run.layout, 2), frame["cams"]
    assert sent["preds"] == cams.preds.tolist()
    cells = [np.frombuffer(base64.b64decode(m), np.uint8).reshape(sent["h"], sent["w"]) for m in sent["maps"]]
    assert len(cells) == len(cams.labels) and max(sent["h"], sent["w"]) <= 32
    # the brightest cell is where the recorded heatmap is brightest (shrunk by whole blocks of cells)
    scale = cams.heatmaps.shape[1] // sent["h"]
    for cell, heatmap in zip(cells, cams.heatmaps):
        y, x = np.unravel_index(cell.argmax(), cell.shape)
        block = heatmap[y * scale:(y + 1) * scale, x * scale:(x + 1) * scale]
        assert block.mean() == pytest.approx(cell.max() / 255, abs=0.01)


def test_head_holds_the_cam_pictures_kept_in_the_run_folder(run, tmp_path):
    head = film_head(run, tmp_path / "no-data-here")  # no data set load: the run folder keeps them
    assert head["run"] == run.name and head["classes"] == run.classes
    assert len(head["cam"]["images"]) == len(run.classes)
    assert all(url.startswith("data:image/png;base64,") for url in head["cam"]["images"])
    assert head["cam"]["labels"] == list(range(len(run.classes)))
    assert [row["epoch"] for row in film_metrics(run)] == [1, 2, 3]


def test_frames_are_cached_once_final_and_remade_for_another_version(run):
    film_frames(run)
    cached = sorted(p.name for p in run.layout.film_dir.iterdir())
    assert cached == [f"epoch_00{e}.json" for e in range(4)]
    path = run.layout.film_frame(1)
    stale = {**json.loads(path.read_text()), "version": FRAME_VERSION - 1, "class_acc": "stale"}
    path.write_text(json.dumps(stale))
    assert film_frames(run, start=1)[0]["class_acc"] != "stale"


def test_a_live_run_s_newest_frame_is_not_cached(run):
    store = RunStore(run.path.parent)
    store.set_status(run.id, "running")
    live = store.get(run.id)
    assert len(film_frames(live)) == 4
    assert sorted(p.name for p in live.layout.film_dir.iterdir())[-1] == "epoch_002.json"


def test_a_run_recorded_before_the_film_still_has_curves_and_class_accuracy(run):
    for path in run.layout.probe_dir.glob("val_*"):
        path.unlink()
    frames = film_frames(run)
    assert all(f["confusion"] is None for f in frames)
    assert frames[0]["class_acc"] is None  # epoch 0 had no metrics row
    assert frames[3]["class_acc"] == run.metrics[-1]["val_class_acc"]
    assert prediction_history(run, [0, 1]) is None


def test_prediction_history_is_the_confusion_matrix_image_by_image(run):
    labels = np.load(run.layout.val_labels)
    history = prediction_history(run, np.arange(len(labels)))
    assert history.epochs == [0, 1, 2, 3]
    for epoch, right in zip(history.epochs, history.right()):
        matrix = np.array(film_frames(run)[epoch]["confusion"])
        assert right.sum() == matrix.trace()
