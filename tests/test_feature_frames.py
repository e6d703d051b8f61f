"""The feature space as the CIFAR write-up drew it: frames titled with the epoch's validation accuracy,
the epochs where the best accuracy improved marked, and a "best epochs only" animation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.apptest import DETAILS, charts, ok, page

from lab.insight.best import best_epochs_only, improving_epochs, val_accuracies
from lab.insight.maps import MapFrame
from lab.plots.insight import feature_space_figure
from lab.runs.layout import RunLayout
from lab.train.engine import best_row


def rows(*accs: float) -> list[dict]:
    """metrics.jsonl rows of epochs 1, 2, … with these validation accuracies."""
    return [{"epoch": epoch, "val_acc": acc, "train_acc": acc} for epoch, acc in enumerate(accs, 1)]


@pytest.mark.parametrize("metrics, expected", [
    (rows(0.5, 0.6, 0.7), [1, 2, 3]),
    (rows(0.5, 0.5, 0.7), [1, 3]),  # a tie is not an improvement, as best.pt keeps the first of equals
    (rows(0.9, 0.8, 0.7), [1]),  # a run that only got worse: its first epoch is its best
    (rows(0.4, 0.7, 0.6, 0.7, 0.8), [1, 2, 5]),
    (list(reversed(rows(0.4, 0.3, 0.5))), [1, 3]),  # by epoch, whatever the order of the rows
    ([], []),
])
def test_improving_epochs_are_those_that_beat_every_earlier_one(metrics, expected):
    assert improving_epochs(metrics) == expected
    if metrics:
        assert expected[-1] == best_row(metrics)["epoch"]  # the last improvement is the run's best epoch


def test_the_untrained_epoch_and_unusable_rows_are_no_improvement():
    metrics = [{"epoch": 0, "val_acc": 0.1}, {"epoch": 1, "val_acc": "0.9"}, {"epoch": 2, "val_acc": float("nan")},
               {"epoch": 3, "val_acc": True}, {"epoch": "4", "val_acc": 0.5}, {"epoch": 5}, {"epoch": 6, "val_acc": 0.3}]
    assert improving_epochs(metrics) == [6]
    assert val_accuracies(metrics) == {0: 0.1, 6: 0.3}


def test_best_epochs_only_keeps_the_untrained_epoch_and_the_improving_ones():
    epochs = [0, 1, 2, 3, 4, 5]
    kept = best_epochs_only(epochs, improving_epochs(rows(0.4, 0.7, 0.6, 0.7, 0.8)))
    assert kept == [0, 1, 2, 5]
    assert best_epochs_only([0, 1, 2], []) == [0]  # a live run before its first epoch ends


def frame(epoch: int) -> MapFrame:
    return MapFrame(epoch=epoch, points=np.arange(8.0).reshape(4, 2) + epoch, labels=np.array([0, 1, 0, 1]),
                    preds=np.array([0, 1, 1, 1]), confidence=np.full(4, 0.9), indices=np.arange(4), knn_acc=0.75)


def test_each_frame_is_titled_with_its_validation_accuracy_and_the_improving_ones_marked():
    fig = feature_space_figure([frame(e) for e in range(4)], ["cat", "dog"], "tsne", metrics=rows(0.5, 0.5, 0.8125))
    titles = [f.layout.title.text for f in fig.frames]
    assert titles == [
        "Feature space (t-SNE) · epoch 0, untrained · k-NN accuracy 75.0%",
        "Feature space (t-SNE) · epoch 1 · validation accuracy 50.0% · k-NN accuracy 75.0% · ★ new best",
        "Feature space (t-SNE) · epoch 2 · validation accuracy 50.0% · k-NN accuracy 75.0%",
        "Feature space (t-SNE) · epoch 3 · validation accuracy 81.2% · k-NN accuracy 75.0% · ★ new best",
    ]
    assert fig.layout.title.text == titles[-1]  # the figure opens on its last frame
    assert [s.label for s in fig.layout.sliders[0].steps] == ["0", "1 ★", "2", "3 ★"]
    assert [list(s.args[0]) for s in fig.layout.sliders[0].steps] == [["0"], ["1"], ["2"], ["3"]]  # frames by epoch


def test_a_frame_without_its_metrics_row_says_only_what_is_known_and_korean_has_its_own_words():
    fig = feature_space_figure([frame(1), frame(2)], ["cat", "dog"], "pca", metrics=rows(0.5))
    assert fig.frames[1].layout.title.text == "Feature space (PCA) · epoch 2 · k-NN accuracy 75.0%"  # row not yet in
    korean = feature_space_figure([frame(1)], ["cat", "dog"], "pca", lang="ko", metrics=rows(0.5))
    assert korean.layout.title.text == "특징 공간 (PCA) · 에폭 1 · 검증 정확도 50.0% · k-NN 정확도 75.0% · ★ 최고 정확도 갱신"


@pytest.mark.usefixtures("isolated_lab")
def test_the_train_page_animates_the_best_epochs_only_when_asked(tmp_path, copy_gap_cam_run):
    run_id = copy_gap_cam_run(tmp_path / "runs")
    metrics = RunLayout(tmp_path / "runs" / run_id).metrics
    recorded = [json.loads(line) for line in metrics.read_text().splitlines()]
    accs = [0.62, 0.62, 0.81]  # epoch 2 ties epoch 1: not a new best
    metrics.write_text("".join(json.dumps({**row, "val_acc": acc}) + "\n" for row, acc in zip(recorded, accs)))
    at = page("train", run=run_id, session=DETAILS)
    ok(at)
    toggle = at.toggle(key="train.insight.best_only")
    assert toggle.label == "Best epochs only" and not toggle.value
    space = charts(at)["Feature space (PCA)"]
    assert [f["name"] for f in space["frames"]] == ["0", "1", "2", "3"]
    assert "validation accuracy 62.0%" in space["frames"][2]["layout"]["title"]["text"]
    toggle.set_value(True).run()
    ok(at)
    space = charts(at)["Feature space (PCA)"]
    assert [f["name"] for f in space["frames"]] == ["0", "1", "3"]  # the last frame is the best epoch
    assert [s["label"] for s in space["layout"]["sliders"][0]["steps"]] == ["0", "1 ★", "3 ★"]
    title = space["layout"]["title"]["text"]
    assert "epoch 3 · validation accuracy 81.0%" in title and title.endswith("★ new best")
