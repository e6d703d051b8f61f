"""What a crash, a reboot or a hostile name can do to the run store (issue 16 items 8, 10, 14 and the
per-epoch weights' disk): writes are fsynced, a killed writer's temp files go, a reused pid is not the
lab, every name is capped where it is made, and a run's per-epoch weights stay within a budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lab.cli import main
from lab.durable import STALE_AFTER_S, atomic_write
from lab.insight import probe
from lab.insight.probe import atomic_save_npz, epochs_to_drop
from lab.runs.layout import RunLayout
from lab.runs.store import AnnotationError, RunStore, atomic_save_torch, atomic_write_json, process_identity
from lab.runs.sweep import SweepError, plan_sweep
from lab.train.engine import MAX_NAME, MAX_OWNER, ConfigError, TrainConfig

TINY = {"name": "tiny", "layers": [{"type": "flatten"}, {"type": "dense", "units": 16}]}
HUGE = "x" * 100_000
has_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process start times come from /proc")


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


# ---------------------------------------------------------------- fsync


@pytest.fixture
def fsynced(monkeypatch) -> list[tuple[int, int]]:
    """(device, inode) of everything fsynced, in order; the real fsync still runs."""
    seen, real = [], os.fsync

    def record(fd):
        stat = os.fstat(fd)
        seen.append((stat.st_dev, stat.st_ino))
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    return seen


def identity(path: Path) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


@pytest.mark.parametrize("write", [
    lambda path: atomic_write_json(path, {"epoch": 3}),
    lambda path: atomic_save_torch(path, {"epoch": 3}),
    lambda path: atomic_save_npz(path, epoch=np.int32(3)),
], ids=["json", "torch", "npz"])
def test_every_atomic_write_fsyncs_the_file_then_its_folder(tmp_path, fsynced, write):
    path = tmp_path / "run" / "probe" / "file"  # folders that do not exist yet
    write(path)
    assert fsynced.index(identity(path)) < fsynced.index(identity(path.parent))
    assert identity(tmp_path / "run") in fsynced and identity(tmp_path) in fsynced  # the new folders' entries
    assert [p.name for p in path.parent.iterdir()] == ["file"]


def test_a_write_that_fails_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "status.json"
    atomic_write_json(path, {"status": "running"})

    def broken(f):
        f.write(b'{"sta')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, broken)
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]
    assert json.loads(path.read_text()) == {"status": "running"}


def test_a_new_run_folder_is_fsynced_into_the_runs_dir(store, fsynced):
    run_id = store.create({})
    assert identity(store.root) in fsynced and identity(store.path(run_id)) in fsynced


# ---------------------------------------------------------------- leftover temp files


def leave_temp(folder: Path, name: str, age_s: float) -> Path:
    """A temp file as a writer killed mid-save leaves it, last written ``age_s`` ago."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(b"half a checkpoint")
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))
    return path


def test_reading_a_run_removes_temp_files_older_than_a_minute_only(store):
    run_id = store.create({})
    layout = store.layout(run_id)
    stale = [leave_temp(layout.root, ".last.pt.4242.tmp", 2 * STALE_AFTER_S),
             leave_temp(layout.probe_dir, ".epoch_003.npz.4242.1f2e.tmp", 2 * STALE_AFTER_S),
             leave_temp(layout.weights_dir, ".epoch_003.pt.4242.tmp", 10 * STALE_AFTER_S),
             leave_temp(layout.cams_dir, ".epoch_002.npz.4242.tmp", 2 * STALE_AFTER_S)]
    live = leave_temp(layout.probe_dir, ".epoch_004.npz.4243.aa.tmp", 1)  # a writer still at work
    own = leave_temp(layout.root, "notes.tmp", 2 * STALE_AFTER_S)  # not a temp file of ours

    assert RunStore(store.root).list()[0].id == run_id
    assert not any(path.exists() for path in stale)
    assert live.exists() and own.exists()


# ---------------------------------------------------------------- whose pid is it


def status_file(store: RunStore, run_id: str) -> Path:
    return store.layout(run_id).status


@has_proc
def test_a_live_pid_that_is_not_the_runs_process_reads_interrupted(store):
    """After a container restart the pid in status.json can belong to any process: here a `sleep`."""
    run_id = store.create({})
    store.set_status(run_id, "running")
    other = subprocess.Popen(["sleep", "60"])
    try:
        status = json.loads(status_file(store, run_id).read_text())
        status_file(store, run_id).write_text(json.dumps({**status, "pid": other.pid}))
        assert store.get(run_id).state == "interrupted"
        assert "stopped before it finished" in store.get(run_id).status["message"]
    finally:
        other.kill()
        other.wait()


@has_proc
def test_this_processs_pid_with_another_start_time_reads_interrupted(store):
    run_id = store.create({})
    store.set_status(run_id, "running")
    status = json.loads(status_file(store, run_id).read_text())
    assert status["pid_identity"] == process_identity(os.getpid())
    boot, started = status["pid_identity"].split("/")
    status_file(store, run_id).write_text(json.dumps({**status, "pid_identity": f"{boot}/{int(started) - 1}"}))
    assert store.get(run_id).state == "interrupted"


def test_a_genuinely_live_run_in_another_process_reads_running_until_it_dies(store):
    code = (f"import sys, time; from lab.runs.store import RunStore; "
            f"RunStore({str(store.root)!r}).set_status(sys.argv[1], 'running'); print(flush=True); time.sleep(60)")
    run_id = store.create({})
    child = subprocess.Popen([sys.executable, "-c", code, run_id], stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parents[1])
    try:
        child.stdout.readline()  # the status is written
        assert store.get(run_id).state == "running"
    finally:
        child.kill()
        child.wait()
    assert store.get(run_id).state == "interrupted"


def test_a_status_from_before_identities_still_trusts_a_live_pid(store):
    run_id = store.create({})
    store.set_status(run_id, "running")
    status = json.loads(status_file(store, run_id).read_text())
    del status["pid_identity"]
    status_file(store, run_id).write_text(json.dumps(status))
    assert store.get(run_id).state == "running"


# ---------------------------------------------------------------- names, capped where they are made


@pytest.mark.parametrize("field, limit", [("name", MAX_NAME), ("owner", MAX_OWNER)])
def test_run_store_refuses_a_long_name_or_owner_before_writing_anything(store, field, limit):
    store.create({}, **{field: "y" * limit})  # the limit itself is fine
    with pytest.raises(AnnotationError, match=f"{field} can have at most {limit} characters, this one has 100,000"):
        store.create({}, **{field: HUGE})
    assert len(store.list()) == 1


def test_run_store_checks_the_name_a_config_carries(store):
    with pytest.raises(AnnotationError, match=f"name can have at most {MAX_NAME}"):
        store.create({"name": HUGE})
    assert store.list() == []


@pytest.mark.parametrize("field, value, fragment", [
    ("name", HUGE, f"name can have at most {MAX_NAME} characters"),
    ("owner", HUGE, f"owner can have at most {MAX_OWNER} characters"),
    ("name", ["a"], "name must be text, got list"),
    ("owner", 7, "owner must be text, got int"),
], ids=["long-name", "long-owner", "list-name", "number-owner"])
def test_train_config_refuses_a_long_or_odd_name_or_owner(field, value, fragment):
    with pytest.raises(ConfigError, match=fragment):
        TrainConfig.from_dict({"spec": TINY, "dataset": "digits", field: value}).validate()


def test_cli_train_with_a_huge_name_exits_2_with_one_line_and_no_run(tmp_path, capsys):
    code = main(["train", "--spec", json.dumps(TINY), "--dataset", "digits", "--epochs", "1", "--name", HUGE,
                 "--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and f"at most {MAX_NAME} characters" in err
    assert RunStore(tmp_path / "runs").list() == []


def test_a_sweep_name_typed_too_long_is_refused():
    base = TrainConfig.from_dict({"spec": TINY, "dataset": "digits"})
    with pytest.raises(SweepError, match=f"sweep's name can have at most {MAX_NAME} characters"):
        plan_sweep(base, {"batch_size": [16, 32]}, name=HUGE)


def test_generated_sweep_names_are_cut_with_an_ellipsis_keeping_the_combination():
    """The default name comes from the spec and the data set (a folder path can be long): no one typed
    it, so it is cut, not refused; the combination stays whole, as it tells the runs apart."""
    base = TrainConfig.from_dict({"spec": {**TINY, "name": "n" * 300}, "dataset": "digits"})
    configs = plan_sweep(base, {"batch_size": [16, 32], "lr": [0.001, 0.01]})
    names = [config.name for config in configs]
    assert all(len(name) <= MAX_NAME and "…" in name for name in names)
    assert names[0].endswith("…-bs16-ep5-lr0.001") and len(set(names)) == 4
    assert len(configs[0].sweep["name"]) == MAX_NAME and configs[0].sweep["name"].endswith("…")
    exact = plan_sweep(base, {"batch_size": [16]}, name="s" * MAX_NAME)[0].name
    assert len(exact) == MAX_NAME and exact.endswith("…-bs16-ep5")


# ---------------------------------------------------------------- per-epoch weights within a budget


def thinned_run(epochs: int, slots: int, best: int | None = None) -> list[int]:
    """The epochs whose weights a run of ``epochs`` epochs ends with, thinning after each one as the
    probe does; the best epoch is pinned from the epoch it is reached."""
    kept = []
    for epoch in range(epochs + 1):
        kept.append(epoch)
        pinned = {best} if best is not None and best <= epoch else set()
        kept = [e for e in kept if e not in epochs_to_drop(kept, slots, pinned)]
        assert len(kept) <= max(slots, 3)  # within budget at every epoch, not only at the end
    return kept


def test_thinning_keeps_the_ends_the_best_and_an_even_spread():
    assert thinned_run(200, 8) == [0, 32, 64, 96, 128, 160, 192, 200]
    assert thinned_run(200, 8, best=37) == [0, 37, 64, 128, 192, 200]
    assert thinned_run(5, 8) == [0, 1, 2, 3, 4, 5]  # in budget: every epoch
    assert thinned_run(10, 1, best=4) == [0, 4, 10]  # never fewer than the ends and the best


def test_per_epoch_weights_are_thinned_to_the_budget_keeping_untrained_best_and_last(tmp_path, monkeypatch):
    monkeypatch.setattr(probe, "KEEP_WEIGHTS_TOTAL_BYTES", 1)  # room for nothing but what is always kept
    code = main(["train", "--spec", json.dumps(TINY), "--dataset", "digits", "--epochs", "6", "--train-limit", "256",
                 "--probe-size", "50", "--device", "cpu", "--runs-dir", str(tmp_path / "runs"),
                 "--data-dir", str(tmp_path / "data")])
    assert code == 0
    run = RunStore(tmp_path / "runs").list()[0]
    assert RunLayout(run.path).weight_epochs() == sorted({0, run.best_epoch, 6})
    assert run.probe_meta["weights_per_epoch"] is True
