"""RunStore: atomic files, torn lines, interrupted detection, safe checkpoints."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import pytest
import torch

from lab.runs.store import RunNotFound, RunStore, atomic_write_json, open_run


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


def test_create_writes_config_status_and_metrics(store):
    run_id = store.create({"epochs": 3, "name": "a"}, owner="kim")
    info = store.get(run_id)
    assert info.config["epochs"] == 3 and info.state == "queued" and info.name == "a"
    assert info.status["owner"] == "kim" and info.metrics == []


def test_metrics_survive_a_torn_last_line(store):
    run_id = store.create({})
    store.append_metrics(run_id, {"epoch": 1, "val_acc": 0.5})
    store.append_metrics(run_id, {"epoch": 2, "val_acc": 0.7})
    with open(store.path(run_id) / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 3, "val_a')  # killed mid-write
    info = store.get(run_id)
    assert [m["epoch"] for m in info.metrics] == [1, 2]
    assert info.best_val_acc == 0.7 and info.best_epoch == 2


def test_atomic_write_leaves_no_temp_files(tmp_path):
    path = tmp_path / "x.json"
    for i in range(5):
        atomic_write_json(path, {"i": i})
    assert json.loads(path.read_text()) == {"i": 4}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_run_of_a_dead_process_reads_interrupted(store):
    run_id = store.create({})
    # a child process marks the run running and exits without finishing it
    code = (f"from lab.runs.store import RunStore; RunStore({str(store.root)!r}).set_status({run_id!r}, 'running')")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.getcwd())
    assert json.loads((store.path(run_id) / "status.json").read_text())["status"] == "running"
    assert store.get(run_id).state == "interrupted"


def test_run_of_this_process_stays_running(store):
    run_id = store.create({})
    store.set_status(run_id, "running")
    assert store.get(run_id).state == "running"


def test_checkpoints_load_weights_only_and_refuse_pickles(store, tmp_path):
    run_id = store.create({})
    store.save_checkpoint(run_id, "best", {"model": {"w": torch.ones(2)}, "epoch": 1})
    assert torch.equal(store.load_checkpoint(run_id)["model"]["w"], torch.ones(2))

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    with open(store.layout(run_id).checkpoint("last"), "wb") as f:
        pickle.dump(Evil(), f)
    with pytest.raises(pickle.UnpicklingError):
        store.load_checkpoint(run_id, "last")
    assert not (tmp_path / "pwned").exists()


def test_delete_removes_only_that_run(store):
    a, b = store.create({"name": "a"}), store.create({"name": "b"})
    store.delete(a)
    assert [r.id for r in store.list()] == [b]
    with pytest.raises(RunNotFound):
        store.delete("../" + b)
    assert store.path(b).exists()


def test_resolve_by_prefix_name_and_folder(store):
    run_id = store.create({}, name="my-run")
    assert store.resolve(run_id[:18]) == run_id
    assert store.resolve("my-run") == run_id
    other_store, same_id = open_run(str(store.path(run_id)))
    assert same_id == run_id and other_store.root == store.root.resolve()
    with pytest.raises(RunNotFound):
        store.resolve("nope")
