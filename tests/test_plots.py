"""lab.plots.training: figures carry the data they are given, thinned where they should be."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest

from lab.plots.training import MAX_LOSS_POINTS, batch_loss_figure, batch_loss_svg, epoch_figure, thin

SVG = "{http://www.w3.org/2000/svg}"
METRICS = [
    {"epoch": 1, "train_loss": 1.5, "val_loss": 1.2, "train_acc": 0.4, "val_acc": 0.5},
    {"epoch": 2, "train_loss": 0.9, "val_loss": 0.8, "train_acc": 0.7, "val_acc": 0.72},
    {"epoch": 3, "train_loss": 0.5, "val_loss": 0.6, "train_acc": 0.85, "val_acc": 0.8},
]


def test_thin_keeps_short_series_as_is():
    points = [(1, 2.0), (2, 1.0)]
    assert thin(points, 10) == [(1.0, 2.0), (2.0, 1.0)]


def test_thin_averages_runs_and_ends_at_the_last_point():
    points = [(step, float(step % 2)) for step in range(1, 1001)]  # alternating 1, 0, 1, 0 ...
    out = thin(points, 100)
    assert len(out) == 100
    assert all(y == pytest.approx(0.5) for _, y in out)  # each bucket of 10 averages to 0.5
    assert out[-1][0] == 1000.0


def test_thin_refuses_a_zero_budget():
    with pytest.raises(ValueError, match="max_points"):
        thin([(1, 1.0)], 0)


def test_batch_loss_figure_is_downsampled():
    points = [(step, 1.0 / step) for step in range(1, 5001)]
    (trace,) = batch_loss_figure(points).data
    assert len(trace.x) == MAX_LOSS_POINTS
    assert trace.x[-1] == 5000


@pytest.mark.parametrize("metric, train_key, val_key", [("acc", "train_acc", "val_acc"),
                                                         ("loss", "train_loss", "val_loss")])
def test_epoch_figure_has_train_and_validation_per_epoch(metric, train_key, val_key):
    fig = epoch_figure(METRICS, metric)
    train, val = fig.data
    assert (train.name, val.name) == ("train", "validation")
    assert list(train.x) == [1, 2, 3]
    assert list(train.y) == [m[train_key] for m in METRICS]
    assert list(val.y) == [m[val_key] for m in METRICS]


def test_accuracy_axis_is_a_fixed_percentage_range():
    fig = epoch_figure(METRICS, "acc")
    assert list(fig.layout.yaxis.range) == [0, 1]
    assert fig.layout.yaxis.tickformat == ".0%"


def test_the_first_batch_loss_point_is_drawn_as_a_marker():
    (trace,) = batch_loss_figure([(1, 2.3)]).data
    assert "markers" in trace.mode and list(trace.y) == [2.3]


def test_epoch_figure_names_the_valid_metrics():
    with pytest.raises(ValueError, match="acc, loss"):
        epoch_figure(METRICS, "f1")


def test_figures_are_compact():
    for fig in (batch_loss_figure([(1, 1.0)]), epoch_figure(METRICS, "loss")):
        assert fig.layout.height <= 300


def _polyline(svg: str) -> list[tuple[float, float]]:
    points = ElementTree.fromstring(svg).find(f"{SVG}polyline").get("points")
    return [tuple(map(float, pair.split(","))) for pair in points.split()]


def test_the_live_batch_loss_svg_is_thinned_and_falls_left_to_right():
    svg = batch_loss_svg([(step, 1.0 / step) for step in range(1, 5001)])
    line = _polyline(svg)
    assert len(line) == MAX_LOSS_POINTS
    xs, ys = zip(*line)
    assert list(xs) == sorted(xs) and ys[-1] > ys[0]  # SVG y grows downwards: a falling loss
    labels = [t.text for t in ElementTree.fromstring(svg).iter(f"{SVG}text")]
    assert labels[0] == "Training loss per batch" and "5e+03" not in labels and "5000" in labels


def test_the_live_batch_loss_svg_leaves_out_non_finite_losses():
    line = _polyline(batch_loss_svg([(1, 2.0), (2, float("nan")), (3, float("inf")), (4, 1.0)]))
    assert len(line) == 2
    only_nan = ElementTree.fromstring(batch_loss_svg([(1, float("nan"))]))
    assert only_nan.find(f"{SVG}polyline") is None and only_nan.find(f"{SVG}circle") is None


def test_a_lone_batch_loss_is_a_dot_between_ticks_around_it():
    svg = ElementTree.fromstring(batch_loss_svg([(1, 2.3)]))
    assert svg.find(f"{SVG}circle") is not None
    ticks = sorted(float(t.text) for t in svg.iter(f"{SVG}text") if t.get("text-anchor") == "end" and "." in t.text)
    assert ticks[0] < 2.3 < ticks[-1]
