"""Sweeps and comparison, headless: planning, the `sweep` command, the run table,
run edits (meta.json) and the comparison figures."""

from __future__ import annotations

import csv
import io
import re

import pytest
from support.cli import lab
from support.runs import TINY, base_config, fake_run

from lab.cli import main
from lab.plots.compare import best_acc_figure, curves_figure, figures_html, gap_figure, sweep_figure
from lab.runs.compare import RUN_COLUMNS, elapsed, filter_rows, overfit_epoch, rows_to_csv, run_row
from lab.runs.store import AnnotationError, RunNotFound, RunStore
from lab.runs.sweep import (
    MAX_SWEEP_RUNS,
    SweepError,
    describe_plan,
    group_sweeps,
    parse_values,
    plan_sweep,
    summarize_sweep,
    varied_axes,
)
from lab.train.engine import TrainConfig

CSV_COLUMNS = {"id", "name", "status", "dataset", "spec", "batch_size", "epochs", "lr", "optimizer", "augment",
               "best_val_acc", "best_epoch", "seconds_per_epoch"}


# ---------------------------------------------------------------- planning


@pytest.mark.parametrize("axis, text, expected", [
    ("batch_size", "32, 50,128", [32, 50, 128]),
    ("epochs", "30,", [30]),
    ("lr", "1e-3, 0.0003", [1e-3, 3e-4]),
    ("optimizer", "Adam, sgd", ["adam", "sgd"]),
    ("augment", '{"hflip": 0.5, "shift": 0.1}', ['{"hflip": 0.5, "shift": 0.1}']),
])
def test_parse_values_reads_comma_separated_lists(axis, text, expected):
    assert parse_values(axis, text) == expected


@pytest.mark.parametrize("axis, text, fragment", [
    ("batch_size", "16, x", "batch sizes: 'x' is not a whole number"),
    ("lr", "fast", "learning rates: 'fast' is not a number"),
    ("epochs", " , ", "epochs: give at least one value"),
])
def test_parse_values_names_the_list_and_the_bad_value(axis, text, fragment):
    with pytest.raises(SweepError, match=re.escape(fragment)):
        parse_values(axis, text)


def test_plan_sweep_makes_every_combination_named_and_recorded():
    base = base_config(lr=3e-3)
    configs = plan_sweep(base, {"batch_size": [32, 50], "epochs": [30, 50]}, "study")
    assert [c.name for c in configs] == ["study-bs32-ep30", "study-bs32-ep50", "study-bs50-ep30", "study-bs50-ep50"]
    assert [(c.batch_size, c.epochs) for c in configs] == [(32, 30), (32, 50), (50, 30), (50, 50)]
    assert all(c.lr == 3e-3 and c.dataset == "digits" for c in configs)  # the rest comes from the base
    records = [c.sweep for c in configs]
    assert len({r["id"] for r in records}) == 1 and {r["name"] for r in records} == {"study"}
    assert [r["index"] for r in records] == [1, 2, 3, 4] and {r["total"] for r in records} == {4}
    assert records[1]["values"] == {"batch_size": 32, "epochs": 50, "lr": 3e-3, "optimizer": "adam",
                                    "augment": "none"}
    assert base.sweep == {} and base.name == ""  # the base is not touched
    assert describe_plan(configs) == "4 runs: 2 batch sizes × 2 epochs"


def test_varied_lr_optimizer_and_augment_join_the_name_and_the_default_name_is_spec_dataset():
    configs = plan_sweep(base_config(), {"batch_size": [64], "epochs": [2], "lr": [1e-3, 1e-2],
                                         "optimizer": ["adam", "sgd"], "augment": ["none", "mnist_basic"]})
    assert len(configs) == 8
    assert configs[-1].name == "model-digits-bs64-ep2-lr0.01-sgd-aug-mnist_basic"


def test_repeated_values_count_once():
    configs = plan_sweep(base_config(), {"batch_size": [16, 16, 32], "epochs": [1],
                                         "augment": ["none", {"preset": "none"}]})
    assert [c.batch_size for c in configs] == [16, 32]


@pytest.mark.parametrize("values, fragment", [
    ({"epochs": [1, 0]}, "combination epochs=0: epochs must be"),
    ({"optimizer": ["adam", "nadam"]}, "combination optimizer=nadam: unknown optimizer 'nadam'"),
    ({"augment": ["spin"]}, "augmentations: unknown augmentation preset 'spin'"),
    ({"batch_size": []}, "batch sizes: give at least one value"),
    ({"momentum": [0.5, 0.9]}, "cannot sweep over momentum"),
    ({"batch_size": list(range(1, 9)), "epochs": list(range(1, 10))}, f"at most {MAX_SWEEP_RUNS}"),
])
def test_plan_sweep_refuses_what_cannot_run_before_anything_runs(values, fragment):
    with pytest.raises(SweepError, match=re.escape(fragment)):
        plan_sweep(base_config(), values)


# ---------------------------------------------------------------- the sweep command


@pytest.fixture(scope="module")
def cli_sweep(tmp_path_factory):
    """`python -m lab sweep` 2x2 on digits, run once for the module: (completed process, runs dir)."""
    runs_dir = tmp_path_factory.mktemp("sweep")
    out = lab("sweep", "--spec", TINY, "--dataset", "digits", "--batch-sizes", "32,64", "--epochs", "1,2",
              "--train-limit", "256", "--device", "cpu", "--name", "bsxep", "--runs-dir", str(runs_dir),
              runs_dir=runs_dir)
    return out, runs_dir


def test_cli_sweep_gives_four_complete_runs_with_the_right_settings(cli_sweep):
    out, runs_dir = cli_sweep
    assert out.returncode == 0, out.stderr
    runs = RunStore(runs_dir).list()
    assert sorted(r.name for r in runs) == ["bsxep-bs32-ep1", "bsxep-bs32-ep2", "bsxep-bs64-ep1", "bsxep-bs64-ep2"]
    for run in runs:
        bs, ep = map(int, re.fullmatch(r"bsxep-bs(\d+)-ep(\d+)", run.name).groups())
        assert (run.config["batch_size"], run.config["epochs"], run.config["train_limit"]) == (bs, ep, 256)
        assert run.config["sweep"]["values"]["batch_size"] == bs and run.config["sweep"]["total"] == 4
        assert run.state == "finished" and [m["epoch"] for m in run.metrics] == list(range(1, ep + 1))
        assert (run.path / "best.pt").is_file() and (run.path / "last.pt").is_file()
        rebuilt = TrainConfig.from_dict({k: v for k, v in run.config.items() if k != "resolved"})
        rebuilt.validate()  # config.json alone redoes the run
        assert rebuilt.epochs == ep and rebuilt.sweep == run.config["sweep"]
    assert len(group_sweeps(runs)) == 1


def test_cli_sweep_runs_share_nothing_but_their_seed(cli_sweep):
    """A 2-epoch run is not the 1-epoch run continued: both start from scratch, so with the same seed
    and a constant lr their first epochs are the same numbers (on CPU)."""
    runs = {r.name: r for r in RunStore(cli_sweep[1]).list()}
    one, two = runs["bsxep-bs32-ep1"].metrics, runs["bsxep-bs32-ep2"].metrics
    assert two[0]["val_loss"] == pytest.approx(one[0]["val_loss"], abs=1e-5)


def test_cli_sweep_prints_the_summary_table(cli_sweep):
    out, _ = cli_sweep
    table = out.stdout[out.stdout.index("\nsweep bsxep"):].strip().splitlines()
    assert table[1].split()[:5] == ["batch", "epochs", "lr", "optimizer", "augment"]
    rows = [line.split() for line in table[2:]]
    assert [(r[0], r[1]) for r in rows] == [("32", "1"), ("32", "2"), ("64", "1"), ("64", "2")]
    assert all(0 < float(r[5]) <= 1 and r[-2] == "finished" for r in rows)


def test_runs_csv_has_the_issue_columns(cli_sweep, capsys):
    assert main(["runs", "--format", "csv", "--runs-dir", str(cli_sweep[1])]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 4 and CSV_COLUMNS <= set(rows[0])
    assert {(r["batch_size"], r["epochs"]) for r in rows} == {("32", "1"), ("32", "2"), ("64", "1"), ("64", "2")}
    assert {r["sweep"] for r in rows} == {"bsxep"}


@pytest.mark.parametrize("args, fragment", [
    (["--batch-sizes", "16,x", "--epochs", "1"], "'x' is not a whole number"),
    (["--batch-sizes", "16", "--epochs", "1,0"], "epochs must be"),
    (["--batch-sizes", "16", "--epochs", "1", "--optimizers", "adam,nadam"], "nadam"),
    (["--batch-sizes", "16", "--epochs", "1", "--dataset", "nope"], "nope"),
])
def test_cli_sweep_bad_input_exits_2_with_one_line_and_no_run(tmp_path, capsys, args, fragment):
    code = main(["sweep", "--spec", TINY, "--dataset", "digits", *args, "--runs-dir", str(tmp_path / "runs"),
                 "--data-dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and fragment in err
    assert RunStore(tmp_path / "runs").list() == []


def test_cli_sweep_with_a_diverging_run_finishes_the_others_and_exits_1(tmp_path, capsys):
    code = main(["sweep", "--spec", TINY, "--dataset", "digits", "--batch-sizes", "32", "--epochs", "1",
                 "--train-limit", "256", "--optimizers", "sgd", "--lrs", "0.01,100", "--device", "cpu",
                 "--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data")])
    out = capsys.readouterr().out
    assert code == 1
    assert re.search(r"^\s+32\s+1\s+0.01\s.*finished\s+model-digits-bs32-ep1-lr0.01$", out, re.M)
    assert re.search(r"^\s+32\s+1\s+100\s.*diverged\s+model-digits-bs32-ep1-lr100$", out, re.M)


# ---------------------------------------------------------------- summaries and the run table


def test_summarize_sweep_lists_combinations_in_plan_order(tmp_path):
    store = RunStore(tmp_path)
    configs = plan_sweep(base_config(), {"batch_size": [16, 32], "epochs": [2, 3]}, "s")
    for config in reversed(configs):  # created out of order
        fake_run(store, config.name, [0.5] * config.epochs, config.sweep, batch_size=config.batch_size)
    fake_run(store, "single", [0.9])
    groups = group_sweeps(store.list())
    assert list(groups) == [configs[0].sweep["id"]]
    rows = summarize_sweep(groups[configs[0].sweep["id"]])
    assert [r["name"] for r in rows] == [c.name for c in configs]
    assert [(r["batch_size"], r["epochs"]) for r in rows] == [(16, 2), (16, 3), (32, 2), (32, 3)]
    assert varied_axes(rows) == ["batch_size", "epochs"]


def test_run_row_has_the_table_columns_and_the_gap(tmp_path):
    store = RunStore(tmp_path)
    row = run_row(store.get(fake_run(store, "a", [0.5, 0.8, 0.7], batch_size=50, augment="mnist_basic")))
    assert list(row) == RUN_COLUMNS
    assert (row["best_val_acc"], row["best_epoch"], row["final_val_acc"]) == (0.8, 2, 0.7)
    assert row["train_val_gap"] == pytest.approx(0.05) and row["epochs_done"] == 3
    assert (row["batch_size"], row["augment"], row["owner"], row["seconds_per_epoch"]) == (50, "mnist_basic", "kim", 2)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row["created"])
    assert rows_to_csv([row]).splitlines()[0] == ",".join(RUN_COLUMNS)


def test_filter_rows_matches_every_word_and_the_choices():
    rows = [{"id": "1", "name": "bs32 baseline", "owner": "kim", "tags": "write-up", "dataset": "digits",
             "spec": "tiny", "optimizer": "adam", "augment": "none", "sweep": "", "note": "", "status": "finished"},
            {"id": "2", "name": "bs128", "owner": "lee", "tags": "", "dataset": "shapes", "spec": "tiny",
             "optimizer": "sgd", "augment": "none", "sweep": "", "note": "too big", "status": "failed"}]
    assert [r["id"] for r in filter_rows(rows, "KIM write")] == ["1"]
    assert [r["id"] for r in filter_rows(rows, "big")] == ["2"]
    assert [r["id"] for r in filter_rows(rows, statuses=["failed", "stopped"])] == ["2"]
    assert [r["id"] for r in filter_rows(rows, datasets=["digits"])] == ["1"]
    assert len(filter_rows(rows)) == 2


@pytest.mark.parametrize("val_losses, expected", [
    ([1.0, 0.8, 0.9, 1.1], 2),  # lowest at 2, every later epoch worse
    ([1.0, 0.8, 0.7], None),  # still improving
    ([1.0], None),
])
def test_overfit_epoch_is_the_lowest_validation_loss_before_the_end(val_losses, expected):
    assert overfit_epoch([{"epoch": i, "val_loss": v} for i, v in enumerate(val_losses, 1)]) == expected


# ---------------------------------------------------------------- run edits


def test_annotate_renames_tags_and_notes_in_meta_json_only(tmp_path):
    store = RunStore(tmp_path)
    run_id = fake_run(store, "first", [0.5])
    status_before = (store.path(run_id) / "status.json").read_text()
    store.annotate(run_id, name=" batch 32 ", tags=["baseline", " write-up ", "", "baseline"], note="from the blog")
    run = store.get(run_id)
    assert (run.name, run.tags, run.note) == ("batch 32", ["baseline", "write-up"], "from the blog")
    assert (store.path(run_id) / "status.json").read_text() == status_before  # the trainer's file is untouched
    store.annotate(run_id, note="")  # None leaves the others as they are
    assert (store.get(run_id).name, store.get(run_id).note) == ("batch 32", "")
    assert store.resolve("batch 32") == run_id and run_row(store.get(run_id))["tags"] == "baseline, write-up"


@pytest.mark.parametrize("edit, fragment", [
    ({"name": "  "}, "name cannot be empty"),
    ({"name": "x" * 81}, "at most 80 characters"),
    ({"tags": ["t" * 31]}, "at most 30 characters"),
    ({"tags": [f"t{i}" for i in range(11)]}, "at most 10 tags"),
])
def test_annotate_refuses_bad_edits(tmp_path, edit, fragment):
    store = RunStore(tmp_path)
    run_id = fake_run(store, "a", [0.5])
    with pytest.raises(AnnotationError, match=fragment):
        store.annotate(run_id, **edit)
    with pytest.raises(RunNotFound):
        store.annotate("20990101-000000-abcdef", name="x")


# ---------------------------------------------------------------- figures


METRICS = [{"epoch": e, "train_acc": a + 0.1, "val_acc": a, "train_loss": 1 - a, "val_loss": v, "seconds": 3.0}
           for e, a, v in ((1, 0.5, 0.9), (2, 0.7, 0.6), (3, 0.72, 0.7))]


def test_curves_overlay_two_traces_per_run_against_epoch_or_time():
    series = [("a", METRICS), ("b", METRICS[:2])]
    fig = curves_figure(series, "acc")
    assert [(t.name, t.line.dash) for t in fig.data] == [("a", "solid"), ("a", "dash"), ("b", "solid"), ("b", "dash")]
    assert list(fig.data[0].x) == [1, 2, 3] and list(fig.data[0].y) == [0.5, 0.7, 0.72]
    assert fig.data[0].line.color != fig.data[2].line.color
    assert list(curves_figure(series, "loss", "time").data[0].x) == elapsed(METRICS) == [3.0, 6.0, 9.0]
    with pytest.raises(ValueError, match="x axis"):
        curves_figure(series, "acc", "step")


def test_best_bars_and_the_gap_with_its_overfitting_star():
    bars = best_acc_figure([("a", METRICS), ("empty", [])])
    assert [list(t.y) for t in bars.data] == [[0.72], [None]] and bars.data[0].text == ("72.0% (epoch 3)",)
    gap = gap_figure([("a", METRICS)])
    line, star = gap.data
    assert list(line.y) == pytest.approx([0.1, 0.1, 0.1]) and list(star.x) == [2]  # val loss lowest at epoch 2


def sweep_rows(**axes) -> list[dict]:
    import itertools

    base = {"batch_size": 32, "epochs": 1, "lr": 1e-3, "optimizer": "adam", "augment": "none", "name": "r"}
    return [{**base, **dict(zip(axes, combo)), "best_val_acc": 0.5} for combo in itertools.product(*axes.values())]


def test_sweep_figure_is_a_heatmap_for_two_settings_and_bars_otherwise():
    heat = sweep_figure(sweep_rows(batch_size=[32, 50, 128], epochs=[30, 50]))
    assert heat.data[0].type == "heatmap" and list(heat.data[0].y) == ["bs32", "bs50", "bs128"]
    assert list(heat.data[0].x) == ["ep30", "ep50"] and heat.data[0].text[0][0] == "50.0%"
    bars = sweep_figure(sweep_rows(batch_size=[32, 64], epochs=[1, 2], optimizer=["adam", "sgd"]))
    assert {t.type for t in bars.data} == {"bar"} and [t.name for t in bars.data] == \
        ["ep1 · adam", "ep1 · sgd", "ep2 · adam", "ep2 · sgd"]
    assert list(sweep_figure(sweep_rows(batch_size=[32, 64])).data[0].x) == ["bs32", "bs64"]


def test_figures_html_is_one_offline_page():
    page = figures_html({"Accuracy": curves_figure([("a", METRICS)], "acc"), "Gap <1>": gap_figure([("a", METRICS)])})
    assert page.startswith("<!DOCTYPE html>") and "<h2>Gap &lt;1&gt;</h2>" in page
    assert page.count("plotly.js v") == 1  # the library inlined once, no CDN needed
