"""Repeats: each configuration trained once per seed, grouped, and read back as mean ± std.

The write-ups' own limitation ("each experiment ran once") as tests: ``--seeds`` on
``train`` and ``sweep``, the aggregation and the "smaller than the spread" rule on
hand-computed numbers, and the figures' bands and error bars.
"""

from __future__ import annotations

import csv
import io

import pytest
from support.cli import lab
from support.runs import TINY, base_config, fake_run

from lab.cli import main
from lab.plots.compare import spread_best_figure, spread_curves_figure, sweep_figure
from lab.runs.compare import (
    GROUP_COLUMNS,
    aggregate_rows,
    close_pairs,
    configuration_labels,
    epoch_spread,
    group_key,
    group_rows,
    has_repeats,
    mean_std,
    run_row,
    with_spread,
    within_spread,
)
from lab.runs.store import RunStore
from lab.runs.sweep import describe_plan, plan_repeats, plan_sweep, summarize_sweep, with_repeats

# ---------------------------------------------------------------- the commands


@pytest.fixture(scope="module")
def repeated_sweep(tmp_path_factory):
    """The issue's line, made fast (a quarter of digits, no probe): (completed process, runs dir)."""
    runs_dir = tmp_path_factory.mktemp("repeats")
    out = lab("sweep", "--spec", "fashion_cnn", "--dataset", "digits", "--epochs", "1", "--seeds", "0,1,2",
              "--train-limit", "256", "--no-insight", "--device", "cpu", runs_dir=runs_dir)
    return out, runs_dir


def test_sweep_with_seeds_makes_three_runs_grouped_as_one_configuration(repeated_sweep):
    out, runs_dir = repeated_sweep
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("sweep fashion_cnn-digits: 3 runs: 3 seeds")
    runs = sorted(RunStore(runs_dir).list(), key=lambda r: r.config["seed"])
    assert [r.config["seed"] for r in runs] == [0, 1, 2] and all(r.state == "finished" for r in runs)
    assert [r.name for r in runs] == [f"fashion_cnn-digits-bs64-ep1-s{seed}" for seed in (0, 1, 2)]
    assert len({group_key(r.config["sweep"]) for r in runs}) == 1 and group_key(runs[0].config["sweep"])
    assert {r.config["sweep"]["repeats"] for r in runs} == {3}


def test_runs_csv_has_a_seed_and_a_group_column(repeated_sweep, capsys):
    assert main(["runs", "--format", "csv", "--runs-dir", str(repeated_sweep[1])]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sorted(r["seed"] for r in rows) == ["0", "1", "2"]
    assert len({r["group"] for r in rows}) == 1 and rows[0]["group"].endswith("#1")
    assert all(r["final_train_loss"] and r["final_val_loss"] and r["final_train_acc"] for r in rows)


def test_the_summary_prints_one_line_per_configuration_with_mean_std_and_n(repeated_sweep):
    out, runs_dir = repeated_sweep
    table = out.stdout[out.stdout.index("\nsweep fashion_cnn-digits ("):].strip().splitlines()
    assert table[1].split()[:7] == ["batch", "epochs", "lr", "optimizer", "augment", "n", "best_val_acc"]
    (line,) = table[2:]
    accs = [r.best_val_acc for r in RunStore(runs_dir).list()]
    mean, std = mean_std(accs)
    assert line.split()[:8] == ["64", "1", "0.001", "adam", "none", "3", f"{mean:.4f}", "±"]
    assert line.split()[8] == f"{std:.4f}" and line.endswith("finished  fashion_cnn-digits-bs64-ep1")


def test_train_with_seeds_makes_its_repeats_the_same_way(tmp_path):
    out = lab("train", "--spec", TINY, "--dataset", "digits", "--epochs", "1", "--seeds", "4,5", "--name", "base",
              "--train-limit", "128", "--no-insight", "--device", "cpu", runs_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    runs = sorted(RunStore(tmp_path).list(), key=lambda r: r.name)
    assert [(r.name, r.config["seed"]) for r in runs] == [("base-s4", 4), ("base-s5", 5)]
    assert len({group_key(r.config["sweep"]) for r in runs}) == 1 and runs[0].config["sweep"]["name"] == "base"
    assert "sweep base: 2 runs: 2 seeds" in out.stdout and "± " in out.stdout.splitlines()[-1]


@pytest.mark.parametrize("command", [["sweep", "--batch-sizes", "32"], ["train"]])
def test_bad_seeds_exit_2_with_one_line_and_no_run(tmp_path, capsys, command):
    code = main([*command, "--spec", TINY, "--dataset", "digits", "--epochs", "1", "--seeds", "0,x",
                 "--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == "error: seeds: 'x' is not a whole number"
    assert RunStore(tmp_path / "runs").list() == []


# ---------------------------------------------------------------- plans


def test_describe_plan_counts_seeds():
    configs = with_repeats(plan_sweep(base_config(), {"batch_size": [32, 64], "epochs": [1]}, "s"), [0, 1, 2])
    assert describe_plan(configs) == "6 runs: 2 batch sizes × 3 seeds"
    assert len({group_key(c.sweep) for c in configs}) == 2


def test_plan_repeats_names_the_repeats_after_the_run_and_one_seed_is_a_plain_run():
    configs = plan_repeats(base_config(name="wide"), [0, 1])
    assert [(c.name, c.seed, c.sweep["name"]) for c in configs] == [("wide-s0", 0, "wide"), ("wide-s1", 1, "wide")]
    (single,) = plan_repeats(base_config(name="wide"), [7])
    assert (single.name, single.seed, single.sweep) == ("wide", 7, {})


# ---------------------------------------------------------------- aggregation


def row(run_id: str, group: str, seed: int, acc: float | None, epoch: int | None = 2, name: str = "") -> dict:
    """A made-up run row with the columns aggregation reads."""
    return {"id": run_id, "name": name or f"cfg-{group}-s{seed}", "group": group, "seed": seed, "status": "finished",
            "batch_size": 32, "epochs": 3, "lr": 1e-3, "optimizer": "adam", "augment": "none",
            "best_val_acc": acc, "best_epoch": epoch, "final_train_loss": 0.5, "final_train_acc": acc,
            "final_val_loss": 0.6, "final_val_acc": acc, "seconds_per_epoch": 2.0}


def test_aggregate_rows_gives_mean_sample_std_and_n_per_configuration():
    rows = [row("1", "a#1", 0, 0.7, 2), row("2", "b#1", 0, 0.5), row("3", "a#1", 1, 0.8, 3),
            row("4", "a#1", 2, 0.9, 4), row("5", "", 0, 0.6, name="single")]
    assert has_repeats(rows) and not has_repeats(rows[1:2] + rows[4:])
    assert [[r["id"] for r in group] for group in group_rows(rows)] == [["1", "3", "4"], ["2"], ["5"]]
    first, lone, single = aggregate_rows(rows)
    assert (first["name"], first["n"], first["seeds"], first["batch_size"]) == ("cfg-a#1", 3, "0, 1, 2", 32)
    assert first["best_val_acc"] == pytest.approx(0.8) and first["best_val_acc_std"] == pytest.approx(0.1)
    assert (first["best_epoch"], first["best_epoch_std"]) == (3, 1)  # sample std of 2, 3, 4
    assert first["seconds_per_epoch"] == 2 and first["seconds_per_epoch_std"] == 0
    assert (lone["n"], lone["best_val_acc"], lone["best_val_acc_std"]) == (1, 0.5, None)  # one run: no spread
    assert single["name"] == "single" and set(GROUP_COLUMNS) >= set(first) - {"group"}


def test_aggregate_skips_runs_without_a_result_and_reports_the_least_finished_status():
    rows = [row("1", "a#1", 0, 0.7), {**row("2", "a#1", 1, None, None), "status": "running"}]
    (config,) = aggregate_rows(rows)
    assert (config["n"], config["best_val_acc"], config["best_val_acc_std"], config["status"]) == \
        (2, 0.7, None, "running")


def test_configuration_labels_tell_same_named_configurations_apart():
    rows = aggregate_rows([row("1", "20260101-000000-ab12#1", 0, 0.7, name="s-s0"),
                           row("2", "20260101-000000-ab12#1", 1, 0.8, name="s-s1"),
                           row("3", "20260102-000000-cd34#1", 0, 0.7, name="s-s0"),
                           row("4", "20260102-000000-cd34#1", 1, 0.7, name="s-s1")])
    assert configuration_labels(rows) == ["s (ab12#1)", "s (cd34#1)"]


def config_row(mean: float, std: float | None) -> dict:
    return {"best_val_acc": mean, "best_val_acc_std": std}


@pytest.mark.parametrize("a, b, within", [
    (config_row(0.80, 0.05), config_row(0.83, 0.02), True),  # |0.03| < max(0.05, 0.02)
    (config_row(0.80, 0.05), config_row(0.90, 0.02), False),  # |0.10| > 0.05: more than the seed alone does
    (config_row(0.80, 0.01), config_row(0.81, 0.01), False),  # equal to the spread is not smaller
    (config_row(0.80, None), config_row(0.80, 0.05), False),  # one run has no spread to compare with
])
def test_within_spread_is_a_mean_difference_smaller_than_the_larger_std(a, b, within):
    assert within_spread(a, b) is within and within_spread(b, a) is within


def test_close_pairs_names_each_pair_once_in_table_order():
    rows = [config_row(0.80, 0.05), config_row(0.90, 0.02), config_row(0.83, 0.02), config_row(0.89, 0.03)]
    assert close_pairs(rows) == [(0, 2), (1, 3)]


def test_with_spread_and_epoch_spread():
    assert (with_spread(0.712, 0.013, ".1%"), with_spread(0.5, None), with_spread(None, None)) == \
        ("71.2% ± 1.3%", "0.5000", "-")
    runs = [[{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.7}, {"epoch": 3, "val_acc": 0.9}],
            [{"epoch": 1, "val_acc": 0.7}, {"epoch": 2, "val_acc": 0.9}]]  # still at epoch 2
    epochs, means, stds = epoch_spread(runs, "val_acc")
    assert epochs == [1, 2] and means == pytest.approx([0.6, 0.8]) and stds == pytest.approx([0.1414, 0.1414], abs=1e-4)


def test_run_row_and_the_sweep_summary_carry_seed_group_and_the_write_ups_columns(tmp_path):
    store = RunStore(tmp_path)
    configs = with_repeats(plan_sweep(base_config(), {"batch_size": [32], "epochs": [2]}, "s"), [1, 0])
    for config in configs:
        fake_run(store, config.name, [0.5, 0.6 + config.seed / 10], config.sweep, seed=config.seed)
    rows = summarize_sweep(store.list())
    assert [(r["name"], r["seed"]) for r in rows] == [("s-bs32-ep2-s0", 0), ("s-bs32-ep2-s1", 1)]  # by seed
    assert rows[0]["group"] == rows[1]["group"] == f"{configs[0].sweep['id']}#1"
    assert (rows[1]["final_train_loss"], rows[1]["final_train_acc"], rows[1]["final_val_loss"]) == \
        pytest.approx((0.3, 0.75, 0.4))  # 1 − acc, acc + 0.05, 1.1 − acc
    assert run_row(store.get(rows[0]["id"]))["seed"] == 0


# ---------------------------------------------------------------- figures


RUN = [{"epoch": e, "train_acc": a + 0.1, "val_acc": a, "train_loss": 1 - a, "val_loss": 1.2 - a, "seconds": 2.0}
       for e, a in ((1, 0.5), (2, 0.7), (3, 0.8))]
OTHER = [{**m, "val_acc": m["val_acc"] + 0.1, "seconds": 4.0} for m in RUN[:2]]  # a repeat still at epoch 2


def test_spread_curves_draw_the_mean_with_a_band_over_the_common_epochs():
    fig = spread_curves_figure([("cfg", [RUN, OTHER]), ("once", [RUN])], "acc")
    bands = [t for t in fig.data if t.fill == "toself"]
    assert [t.legendgroup for t in bands] == ["cfg", "cfg"]  # validation and train bands, none for a single run
    val_band, val_line = fig.data[0], fig.data[1]
    assert list(val_line.y) == pytest.approx([0.55, 0.75]) and list(val_line.x) == [1, 2]
    std = 0.1 / 2 ** 0.5
    assert list(val_band.x) == [1, 2, 2, 1]
    assert list(val_band.y) == pytest.approx([0.55 + std, 0.75 + std, 0.75 - std, 0.55 - std])
    assert "%{customdata:.2g}" in val_line.hovertemplate and "cfg" not in val_line.hovertemplate
    once = [t for t in fig.data if t.name == "once"]
    assert len(once) == 2 and list(once[0].y) == [0.5, 0.7, 0.8]
    timed = spread_curves_figure([("cfg", [RUN, OTHER])], "loss", "time")
    assert list(timed.data[1].x) == [3.0, 6.0]  # mean time at the end of each epoch


def test_spread_best_bars_carry_error_bars_and_n():
    fig = spread_best_figure([("cfg", [RUN, OTHER]), ("once", [RUN]), ("none", [[]])])
    repeated, once, none = fig.data
    assert list(repeated.y) == pytest.approx([0.8]) and repeated.error_y.visible
    assert list(repeated.error_y.array) == pytest.approx([0.0])  # both best at 0.8
    assert repeated.text == ("80.0% ± 0.0% (n=2)",) and once.text == ("80.0% (epoch 3)",)
    assert not once.error_y.visible and none.text == ("no epoch",)
    korean = spread_best_figure([("cfg", [RUN, OTHER])], "ko")
    assert korean.layout.title.text == "최고 검증 정확도, 반복의 평균 ± 표준편차"


def test_sweep_figure_of_repeated_configurations_shows_mean_and_std():
    rows = [row(str(i), f"a#{bs}", i, acc) | {"batch_size": bs, "epochs": ep}
            for i, (bs, ep, acc) in enumerate([(32, 1, 0.7), (32, 1, 0.9), (64, 1, 0.6), (64, 1, 0.6),
                                               (32, 2, 0.8), (64, 2, 0.5)])]
    for r in rows:
        r["group"] = f"g#{r['batch_size']}-{r['epochs']}"
    configurations = aggregate_rows(rows)
    heat = sweep_figure(configurations)
    assert heat.data[0].text[0][0] == "80.0% ± 14.1%" and heat.data[0].text[0][1] == "80.0%"
    bars = sweep_figure([r for r in configurations if r["epochs"] == 1])
    assert bars.data[0].error_y.visible and list(bars.data[0].error_y.array) == pytest.approx([0.1414, 0.0], abs=1e-4)
