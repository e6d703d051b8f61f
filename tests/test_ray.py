"""The Ray executor on a head on loopback: runs end with the same files as local ones, stop within a run,
a killed worker ends its run failed (or starts it again), uploads ship once per content, the CLI sweep and
the Train page work with ``LAB_EXECUTOR=ray``.

One Ray head serves the whole module (started by the first JobManager, ~3 s); each run's actor is its own
worker process (~3 s to import torch and the lab on 2 cores).
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from support.apptest import button, ok, page, tiny_draft
from support.files import image_bytes

from lab.cli import main as cli_main
from lab.data.corrections import Change, corrected_name, write_corrections
from lab.data.registry import load_dataset
from lab.jobs import JobManager
from lab.model.presets import get_preset
from lab.runs.store import RunStore
from lab.train.engine import TrainConfig
from lab.ui.state import job_manager

ray = pytest.importorskip("ray")
RUN_S = 180  # a run with its worker's start-up, on a busy 2-core machine


def shapes_config(**changes) -> TrainConfig:
    settings = dict(spec=get_preset("lenet5"), dataset="shapes", epochs=2, batch_size=64, train_limit=256,
                    probe_size=64, name="ray-run")
    return TrainConfig(**{**settings, **changes})


def files_of(store: RunStore, run_id: str) -> set[str]:
    root = store.path(run_id)
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def running(manager: JobManager, run_id: str, epochs_done: int = 0) -> None:
    """Wait until the run trains on its worker (and has finished ``epochs_done`` epochs)."""
    deadline = time.monotonic() + RUN_S
    while time.monotonic() < deadline:
        state = manager.state(run_id)
        if state.status == "running" and state.epoch > epochs_done and manager.executor.actors.get(run_id):
            return
        assert state.live, state
        time.sleep(0.1)
    raise TimeoutError(f"run {run_id} never started on Ray")


def test_a_run_on_ray_ends_with_the_files_of_the_same_run_trained_locally(tmp_path):
    local, remote = JobManager(tmp_path / "local", executor="local"), JobManager(tmp_path / "ray", executor="ray")
    local_id, ray_id = local.submit(shapes_config()), remote.submit(shapes_config())
    local_state, ray_state = local.wait(local_id, RUN_S), remote.wait(ray_id, RUN_S)
    assert (local_state.status, ray_state.status) == ("finished", "finished")
    assert files_of(remote.store, ray_id) == files_of(local.store, local_id)
    assert [m["epoch"] for m in ray_state.metrics] == [1, 2]
    ray_status = remote.store.read_status(ray_id)
    assert ray_status["pid"] == os.getpid()  # the server writes the status: it, not the worker, owns the run
    assert ray_status["best_epoch"] in (1, 2) and ray_status["params"] == local.store.read_status(local_id)["params"]
    assert remote.store.get(ray_id).config["resolved"] == local.store.get(local_id).config["resolved"]
    assert len(ray_state.batch_losses) >= 1  # the live curve came through the events
    assert not remote.executor.actors  # the worker is gone


def test_stop_ends_a_ray_run_within_its_epoch(tmp_path):
    manager = JobManager(tmp_path, executor="ray")
    run_id = manager.submit(shapes_config(epochs=200, train_limit=2048, batch_size=16))
    running(manager, run_id)
    assert manager.stop(run_id)
    state = manager.wait(run_id, 60)
    assert state.status == "stopped" and state.epoch < 200
    assert manager.store.read_status(run_id)["status"] == "stopped"


def test_a_killed_worker_ends_its_run_failed_with_the_reason(tmp_path):
    manager = JobManager(tmp_path, executor="ray")
    run_id = manager.submit(shapes_config(epochs=200))
    running(manager, run_id, epochs_done=1)
    os.kill(manager.executor.worker_pid(run_id), signal.SIGKILL)
    state = manager.wait(run_id, 60)
    assert state.status == "failed" and "Ray worker training this run stopped" in state.message
    assert manager.store.read_status(run_id)["status"] == "failed"
    assert manager.store.get(run_id).metrics  # the epochs shipped before it died stay


def test_with_retries_a_run_whose_worker_died_starts_again_and_finishes(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RETRIES", "1")
    manager = JobManager(tmp_path, executor="ray")
    run_id = manager.submit(shapes_config(epochs=3))
    running(manager, run_id)
    os.kill(manager.executor.worker_pid(run_id), signal.SIGKILL)
    state = manager.wait(run_id, RUN_S)
    assert state.status == "finished", state.message
    assert [m["epoch"] for m in manager.store.get(run_id).metrics] == [1, 2, 3]  # the second attempt's, whole


def test_an_upload_is_shipped_once_per_content_and_trains_on_the_worker(tmp_path):
    folder = tmp_path / "pets"
    for label, colour in (("cat", (200, 0, 0)), ("dog", (0, 0, 200))):
        (folder / label).mkdir(parents=True)
        for i in range(6):
            (folder / label / f"{i}.png").write_bytes(image_bytes(size=(32, 32), colour=colour))
    manager = JobManager(tmp_path / "runs", executor="ray")
    config = dict(spec=get_preset("lenet5"), dataset=f"folder:{folder}", epochs=1, batch_size=4, train_limit=0)
    first, second = manager.submit_all([shapes_config(**config), shapes_config(**config, seed=1)])
    states = [manager.wait(run_id, RUN_S) for run_id in (first, second)]
    assert [s.status for s in states] == ["finished", "finished"], [s.message for s in states]
    assert len(manager.executor.uploads) == 1  # one object in Ray's store for both runs
    assert manager.store.get(first).config["dataset"] == f"folder:{folder}"  # as the user named it
    assert manager.store.get(first).config["resolved"]["classes"] == ["cat", "dog"]

    base = load_dataset(f"folder:{folder}", tmp_path)
    version = write_corrections(base, [Change("train", 0, "drop")], tmp_path)  # beside the folder, on the server
    fixed = manager.submit(shapes_config(**{**config, "dataset": corrected_name(f"folder:{folder}", version)}))
    state = manager.wait(fixed, RUN_S)
    assert state.status == "finished", state.message
    images = manager.store.get(first).config["resolved"]["images"]
    assert manager.store.get(fixed).config["resolved"]["images"] == images - 1  # the worker applied the fixes
    assert len(manager.executor.uploads) == 1  # the same folder: not shipped again


def test_a_run_the_worker_refuses_fails_with_the_trainers_message(tmp_path):
    manager = JobManager(tmp_path, executor="ray")
    run_id = manager.submit(shapes_config(dataset="folder:/no/such/folder"))
    state = manager.wait(run_id, RUN_S)
    assert state.status == "failed" and "/no/such/folder not found" in state.message


def test_sweep_with_the_ray_executor_runs_every_combination_and_prints_the_same_table(tmp_path, capsys):
    code = cli_main(["--runs-dir", str(tmp_path), "sweep", "--spec", "lenet5", "--dataset", "shapes",
                     "--batch-sizes", "32,64", "--epochs", "1", "--train-limit", "128", "--executor", "ray"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "queued 2 runs on Ray" in out
    table = out[out.index("\nsweep lenet5-shapes ("):]
    assert "lenet5-shapes-bs32-ep1" in table and "lenet5-shapes-bs64-ep1" in table and table.count("finished") == 2


def test_the_train_page_trains_on_ray_as_it_does_locally(isolated_lab, monkeypatch):
    monkeypatch.setenv("LAB_EXECUTOR", "ray")
    at = page("train", draft=tiny_draft())
    button(at, "Start training").click().run()
    run_id = ok(at).query_params["run"]
    assert job_manager().executor.name == "ray"
    assert job_manager().wait(run_id, RUN_S).status == "finished"
    at = ok(page("train", run=run_id))
    assert "Finished" in at.success[0].value
    assert at.get("plotly_chart")  # curves and insight from the files shipped back


def test_an_address_with_no_cluster_is_refused_with_what_to_set(monkeypatch):
    from lab.jobs.ray_executor import ExecutorError, connect

    def no_cluster(address=None, **options):  # what ray.init says after its client's 30 s of retries
        raise ConnectionError("ray client connection timeout")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as a server that has not joined yet
    monkeypatch.setattr(ray, "init", no_cluster)
    monkeypatch.setenv("LAB_RAY_ADDRESS", "ray://head.school.lan:10001")
    with pytest.raises(ExecutorError, match=r"LAB_RAY_ADDRESS=ray://head.school.lan:10001: cannot join that Ray "
                                            r"cluster \(ray client connection timeout\). Give auto"):
        connect()
