"""`python -m lab ...` as a user types it: output, exit codes, no tracebacks."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from support.cli import lab


def test_summary_of_fashion_cnn_prints_the_keras_table(tmp_path):
    out = lab("summary", "fashion_cnn", runs_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    for number in ("320", "18,496", "313,700", "1,010", "Total params: 333,526"):
        assert number in out.stdout


def test_summary_follows_a_dataset(tmp_path):
    out = lab("summary", "gap_cam", "--dataset", "digits", runs_dir=tmp_path)
    assert out.returncode == 0 and "input 1x8x8" in out.stdout


def test_datasets_lists_offline_ones(tmp_path):
    out = lab("datasets", runs_dir=tmp_path)
    assert out.returncode == 0
    assert re.search(r"^shapes\s+3x32x32\s+8", out.stdout, re.M)
    assert re.search(r"^digits\s+1x8x8\s+10", out.stdout, re.M)


def test_train_then_runs_in_every_format(tmp_path):
    out = lab("train", "--spec", "fashion_cnn", "--dataset", "digits", "--epochs", "2", "--batch-size", "32",
              "--name", "cli-run", "--augment", '{"shift": 0.1}', runs_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert sum(line.startswith("epoch") for line in lines) == 2
    match = re.fullmatch(r"run (\S+) finished best_val_acc=(\d\.\d{4}) epoch=(\d+)", lines[-1])
    assert match and float(match[2]) > 0.5
    run_id = match[1]

    table = lab("runs", runs_dir=tmp_path)
    assert run_id in table.stdout and "cli-run" in table.stdout
    rows = list(csv.DictReader(io.StringIO(lab("runs", "--format", "csv", runs_dir=tmp_path).stdout)))
    assert rows[0]["id"] == run_id and rows[0]["batch_size"] == "32" and rows[0]["augment"] == "custom"
    assert {"id", "name", "status", "dataset", "spec", "batch_size", "epochs", "lr", "optimizer", "augment",
            "best_val_acc", "best_epoch", "seconds_per_epoch"} <= set(rows[0])
    data = json.loads(lab("runs", "--format", "json", runs_dir=tmp_path).stdout)
    assert data[0]["status"] == "finished" and data[0]["best_epoch"] in (1, 2)


@pytest.mark.parametrize("args,fragment", [
    (("summary", "no_such_preset"), "neither a preset"),
    (("train", "--dataset", "nope"), "nope"),
    (("train", "--dataset", "digits", "--epochs", "0"), "epochs"),
    (("train", "--dataset", "digits", "--spec", "lenet5"), "layer 3 (conv2d)"),
    (("train", "--dataset", "digits", "--augment", '{"spin": 3}'), "spin"),
    (("train", "--dataset", "mnist"), "mnist"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, args, fragment):
    out = lab(*args, runs_dir=tmp_path, data_dir=tmp_path / "empty")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and fragment in out.stderr


def test_diverging_run_exits_1(tmp_path):
    out = lab("train", "--dataset", "digits", "--spec", '{"layers": [{"type": "flatten"}, {"type": "dense"}]}',
              "--optimizer", "sgd", "--lr", "100", "--epochs", "2", runs_dir=tmp_path)
    assert out.returncode == 1
    assert re.search(r"^run \S+ diverged", out.stdout, re.M)


def test_bench_quick_runs_both_configs_and_prints_the_speedup(tmp_path):
    """The CI smoke test of ``lab bench --quick``: figures are read by people, not asserted."""
    out = lab("bench", "--quick", "--device", "cpu", "--json", runs_dir=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr
    *report_lines, last = out.stdout.strip().splitlines()
    report = json.loads("\n".join(report_lines))
    assert [c["preset"] for c in report["cases"]] == ["fashion_cnn", "cifar_vgg"]
    for case in report["cases"]:
        assert case["engine_images_per_sec"] > 0 and case["baseline_images_per_sec"] > 0
        assert set(case["time_split_ms"]) == {"data_augment", "forward_backward", "optimizer"}
    assert re.fullmatch(r"speedup vs baseline: \d+\.\d\dx", last)


@pytest.mark.parametrize("args, fragment", [
    (["--preset", "lenet5"], "no time-to-accuracy recipe for 'lenet5'"),
    (["--preset", "speedrun", "--dataset", "fashion-mnist"], "speedrun is timed on cifar10"),
])
def test_time_to_accuracy_refuses_what_it_cannot_time(tmp_path, args, fragment):
    out = lab("bench", "--time-to-accuracy", *args, runs_dir=tmp_path)
    assert out.returncode == 2 and fragment in out.stderr


def test_export_writes_each_kind_of_file_named_after_the_run(tmp_path, copy_gap_cam_run):
    runs_dir = tmp_path / "runs"
    run_id = copy_gap_cam_run(runs_dir)
    out = tmp_path / "out"
    expected = {"code": "run_.*\\.py", "weights": "run_.*_last\\.pt", "onnx": "run_.*_last\\.onnx",
                "config": "run_.*_config\\.json", "report": "run_.*_report_last\\.html"}
    for what, pattern in expected.items():
        done = lab("export", run_id[:12], "--what", what, "--checkpoint", "last", "--out", f"{out}/",
                   runs_dir=runs_dir)
        assert done.returncode == 0, done.stderr
        match = re.fullmatch(r"wrote (\S+) \(([\d,]+) bytes\)", done.stdout.strip())
        path = match and Path(match[1])
        assert path and path.parent == out and re.fullmatch(pattern, path.name)
        assert path.stat().st_size == int(match[2].replace(",", "")) > 0
    single = lab("export", run_id, "--what", "config", "--out", str(tmp_path / "c.json"), runs_dir=runs_dir)
    assert single.returncode == 0 and json.loads((tmp_path / "c.json").read_text())["dataset"] == "shapes"


def test_export_of_a_checkpoint_not_written_exits_2(tmp_path, copy_gap_cam_run):
    runs_dir = tmp_path / "runs"
    run_id = copy_gap_cam_run(runs_dir)
    (runs_dir / run_id / "last.pt").unlink()
    out = lab("export", run_id, "--what", "weights", "--checkpoint", "last", "--out", str(tmp_path / "w.pt"),
              runs_dir=runs_dir)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == ["error: the run has no last.pt yet (it saves best after its first "
                                               "epoch, last when it ends)"]
    assert not (tmp_path / "w.pt").exists()


def test_an_exported_config_trains_the_same_run_again(tmp_path):
    first = lab("train", "--spec", "gap_cam", "--dataset", "digits", "--epochs", "1", "--batch-size", "32",
                "--lr", "0.004", "--device", "cpu", "--seed", "3", "--name", "original", runs_dir=tmp_path)
    assert first.returncode == 0, first.stderr
    run_id = first.stdout.split("run ")[-1].split()[0]
    config = tmp_path / "config.json"
    assert lab("export", run_id, "--what", "config", "--out", str(config), runs_dir=tmp_path).returncode == 0
    again = lab("train", "--config", str(config), runs_dir=tmp_path)
    assert again.returncode == 0, again.stderr
    assert first.stdout.split("best_val_acc=")[1] == again.stdout.split("best_val_acc=")[1]  # same seed, same numbers


def test_a_config_file_that_is_not_settings_exits_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('["not", "settings"]')
    out = lab("train", "--config", str(bad), runs_dir=tmp_path)
    assert out.returncode == 2 and out.stderr.strip().startswith("error: --config") and "Traceback" not in out.stderr
