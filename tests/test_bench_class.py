"""``python -m lab bench --class N``: a small class through the real job manager, figures that hang together.

No timed assertions: the figures are checked against each other (the longest wait is at least the mean,
every run ends after its own wait), never against the clock."""

from __future__ import annotations

import json
import re

import pytest
from support.cli import lab


def test_a_class_of_four_all_finish_and_the_figures_agree(tmp_path):
    out = lab("bench", "--class", "4", "--dataset", "digits", "--train-limit", "64", "--epochs", "1",
              "--executor", "local", "--json", runs_dir=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["load"]["dataset"] == "digits" and report["note"] == ""
    [local] = report["executors"]
    assert local["executor"] == "local" and local["students"] == 4 and local["slots"] >= 1
    assert (local["finished"], local["failed"], local["refused"], local["started"]) == (4, 0, 0, 4)
    assert 0 <= local["mean_wait_seconds"] <= local["longest_wait_seconds"] < local["all_done_seconds"]
    assert 0 < local["server_at_rest_mb"] <= local["server_peak_mb"]
    assert local["child_processes_peak_mb"] == 0  # threads of the server: no process of their own
    assert not list(tmp_path.glob("*/status.json")), "the bench's runs belong in a temporary folder"


def test_a_missing_data_set_is_replaced_by_a_named_stand_in_and_executors_are_compared(tmp_path):
    """cifar10 is never on a test machine; two measurements of the same executor give a ratio line."""
    out = lab("bench", "--class", "2", "--dataset", "cifar10", "--train-limit", "32", "--executor", "local,local",
              runs_dir=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr
    assert re.search(r"^cifar10 is not on this server \(.+\); the class trains on digits\.$", out.stdout, re.M)
    assert len(re.findall(r"^local: 2 runs, \d+ at once$", out.stdout, re.M)) == 2
    assert len(re.findall(r"^  runs: 2 finished, 0 failed, 0 refused$", out.stdout, re.M)) == 2
    assert re.search(r"^local / local: every run finished \d+\.\d\dx, longest wait \d+\.\d\dx", out.stdout, re.M)


@pytest.mark.parametrize("args, fragment", [
    (["--class", "3", "--executor", "slurm"], "unknown executor(s) slurm; use one or more of local,ray"),
    (["--class", "0"], "--class must be at least 1 student, got 0"),
    (["--class", "3", "--dataset", "imagenet"], "imagenet"),
    (["--class", "3", "--epochs", "0"], "epochs"),
])
def test_bad_class_settings_are_one_line_saying_what_to_change(tmp_path, args, fragment):
    out = lab("bench", *args, runs_dir=tmp_path)
    assert out.returncode == 2 and fragment in out.stderr and "Traceback" not in out.stderr
