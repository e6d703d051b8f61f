"""The learning-rate finder (lab.train.lr_find): its rules on curves of known shape, its stop when the loss
blows up, the state it leaves alone, its figure and command, and the issue's bar: on fashion_cnn / digits the
suggested rate's 3-epoch run is within a point of the best of a five-rate grid."""

from __future__ import annotations

import csv
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
from support.cli import lab

from lab.model.presets import get_preset
from lab.plots.lr_find import lr_find_figure
from lab.train.engine import ConfigError, TrainConfig, Trainer
from lab.train.lr_find import DIVERGED, LrFindResult, lr_find, smooth, suggest

LINEAR = {"layers": [{"type": "flatten"}, {"type": "dense"}]}


def digits_config(**changes) -> TrainConfig:
    """fashion_cnn on digits (8x8 images: the preset's convolutions keep their padding, 45,526 params) with
    Adam at batch 64: the lab's usual start, at a size that trains 3 epochs in under a second."""
    settings = dict(spec=get_preset("fashion_cnn"), dataset="digits", batch_size=64, device="cpu", insight=False)
    return TrainConfig.from_dict({**settings, **changes})


def test_smoothing_is_a_bias_corrected_moving_average():
    # By hand, beta 0.98: averages 0.02 and 0.98 * 0.02 + 0.02 * 2 = 0.0596, divided by 1 - 0.98**n.
    assert smooth([1.0, 2.0]) == pytest.approx([1.0, 0.0596 / 0.0396])
    assert smooth([3.0] * 50) == pytest.approx([3.0] * 50)  # no pull towards the zero it starts from


def test_steepest_is_where_the_loss_falls_fastest_per_decade():
    lrs = np.geomspace(1e-6, 1, 121)  # 20 points a decade
    losses = 2 - np.tanh(2 * (np.log10(lrs) + 3))  # falls fastest at 1e-3
    index = suggest(lrs.tolist(), losses.tolist(), "steepest")
    assert lrs[index] == pytest.approx(1e-3, rel=0.15)


def test_valley_is_the_middle_of_the_longest_descending_stretch():
    lrs = np.geomspace(1e-7, 10, 121).tolist()
    flat = [2.0] * 41  # points 0-40: equal values do not descend
    descent = list(np.linspace(2.0, 0.5, 61)[1:])  # points 41-100, each lower than the one before
    rise = list(np.linspace(0.6, 3.0, 20))  # points 101-120: the blow-up
    index = suggest(lrs, flat + descent + rise, "valley")
    assert index == 70  # the stretch runs from point 40 (its start) to 100 (its bottom)


def test_a_blow_up_stops_the_test_at_the_first_smoothed_loss_four_times_its_best():
    result = lr_find(TrainConfig.from_dict(dict(spec=LINEAR, dataset="digits", optimizer="sgd", device="cpu")),
                     start=1e-4, end=100, steps=100)
    s = result.smoothed
    assert result.stopped_early and len(result.lrs) < 100
    assert s[-1] > DIVERGED * min(s[:-1])
    assert all(s[i] <= DIVERGED * min(s[:i]) for i in range(1, len(s) - 1))
    assert result.suggestion < result.lrs[-1] / 10  # well below where it blew up


def test_a_loss_that_blows_up_at_once_is_refused_with_what_to_change():
    config = TrainConfig.from_dict(dict(spec=LINEAR, dataset="digits", optimizer="sgd", device="cpu"))
    with pytest.raises(ConfigError, match="too soon to suggest a rate: start lower"):
        lr_find(config, start=50, end=100, steps=100)


@pytest.mark.parametrize("changes,fragment", [
    (dict(rule="nope"), "use one of: steepest, valley"),
    (dict(steps=5), "steps must be a whole number from 20"),
    (dict(start=1e-2, end=1e-3), "rise from start to end"),
    (dict(end=1000.0), "within (0, 100]"),
])
def test_bad_settings_are_refused_before_any_training(changes, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        lr_find(digits_config(), **changes)


def test_it_leaves_the_random_state_as_it_found_it_and_records_no_run(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path / "runs"))
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    lr_find(digits_config(seed=3), steps=20)
    assert torch.equal(torch.rand(3), expected)
    assert not (tmp_path / "runs").exists()


def test_the_suggested_rate_trains_within_a_point_of_the_best_of_a_grid():
    """The issue's bar. Measured here (2 CPU cores): the finder suggests 3.8e-3 (steepest) and its run reaches
    95.3% against the grid's best 94.7% (3.2e-3 and 1.8e-2); the whole test takes about 10 s."""
    config = digits_config()
    result = lr_find(config)
    assert min(result.smoothed) < 0.75 * result.smoothed[0]  # the ramp really raised the rate: the loss fell

    def three_epochs(lr: float) -> float:
        return Trainer(replace(config, lr=float(lr), epochs=3)).run().best["val_acc"]

    grid = {f"{lr:.2g}": three_epochs(lr) for lr in np.geomspace(1e-4, 1e-1, 5)}
    assert three_epochs(result.suggestion) >= max(grid.values()) - 0.01, (result.suggestion, grid)


def test_the_figure_has_a_log_rate_axis_the_curves_and_the_suggestion_named():
    lrs = np.geomspace(1e-5, 1, 50).tolist()
    losses = [2.3] * 20 + [2.3 - 0.06 * i for i in range(25)] + [50.0, 3.0, 3.0, 3.0, 3.0]
    result = LrFindResult(lrs, losses, smooth(losses), "valley", suggestion_index=30, stopped_early=True)
    figure = lr_find_figure(result, lang="ko")
    assert figure.layout.xaxis.type == "log"
    raw, smoothed, star = figure.data
    assert list(raw.y) == losses and list(smoothed.y) == result.smoothed
    assert star.x == (lrs[30],) and star.y == (result.smoothed[30],)
    assert star.name == f"추천 {lrs[30]:.2g} (골짜기)"
    assert figure.layout.yaxis.range[1] < 50  # one blown-up step does not flatten the curve


def test_cli_prints_the_suggestion_and_writes_the_curve_and_the_plot(tmp_path):
    out = lab("lr-find", "--spec", "fashion_cnn", "--dataset", "digits", "--steps", "60", "--rule", "valley",
              "--out", str(tmp_path / "curve.csv"), "--plot", str(tmp_path / "plots" / "lr.html"), runs_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"suggested lr (\S+) \(rule valley\)", last)
    assert match and 1e-7 < float(match[1]) < 10
    rows = list(csv.DictReader((tmp_path / "curve.csv").read_text(encoding="utf-8").splitlines()))
    assert list(rows[0]) == ["step", "lr", "loss", "smoothed_loss"] and 20 < len(rows) <= 60
    assert float(rows[0]["lr"]) == pytest.approx(1e-7)
    assert (tmp_path / "plots" / "lr.html").stat().st_size > 0


@pytest.mark.parametrize("args,fragment", [
    (("--rule", "nope"), "steepest, valley"),
    (("--steps", "5"), "steps"),
    (("--dataset", "nope"), "nope"),
])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, args, fragment):
    out = lab("lr-find", "--dataset", "digits", *args, runs_dir=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and fragment in out.stderr
