"""JobManager: queue, stop (queued and running), failures that spare the worker, one state shape."""

from __future__ import annotations

import dataclasses
import gc
import os
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from support.jobs import TINY, WAIT_S, Gate

from lab.bench.live_ui import rss_mb
from lab.insight.probe import ProbeRecorder
from lab.jobs import JobManager
from lab.runs.store import RunNotFound
from lab.train import engine
from lab.train.device import return_freed_memory
from lab.train.engine import Callback, ConfigError, TrainConfig, Trainer


def config(**overrides) -> TrainConfig:
    values = dict(spec=TINY, dataset="digits", epochs=1, batch_size=64, lr=3e-3, device="cpu",
                  name="tiny-digits", owner="kim")
    values.update(overrides)
    return TrainConfig.from_dict(values)


@pytest.fixture
def manager(tmp_path):
    return JobManager(tmp_path / "runs")


class PauseAtFirstBatch(Callback):
    """Counts logged batches; waits at the first one until the test has asked the run to stop."""

    def __init__(self):
        self.batches = 0
        self.reached, self.go_on = threading.Event(), threading.Event()

    def on_batch_end(self, trainer, info):
        self.batches += 1
        if self.batches == 1:
            self.reached.set()
            assert self.go_on.wait(WAIT_S)


class Boom(Callback):
    def __init__(self, event: str):
        self.event = event

    def on_epoch_end(self, trainer, metrics):
        if self.event == "epoch":
            raise RuntimeError("listener broke at epoch end")

    def on_run_end(self, trainer, status, message):
        if self.event == "end":
            raise RuntimeError("listener broke at run end")


def test_a_submitted_run_finishes_and_is_on_disk(manager):
    run_id = manager.submit(config())
    state = manager.wait(run_id, WAIT_S)
    assert state.status == "finished" and state.epoch == 1
    assert state.name == "tiny-digits" and state.owner == "kim"
    assert [m["epoch"] for m in state.metrics] == [1]
    assert manager.store.get(run_id).state == "finished"


def test_queue_positions_follow_submission_order(manager):
    gate = Gate()
    first = manager.submit(config(), extra_callbacks=[gate])
    assert gate.started.wait(WAIT_S)
    second, third = manager.submit(config()), manager.submit(config())
    assert manager.state(first).queue_position == 0 and manager.state(first).status == "running"
    assert (manager.state(second).status, manager.state(second).queue_position) == ("queued", 1)
    assert (manager.state(third).status, manager.state(third).queue_position) == ("queued", 2)
    gate.release.set()
    assert manager.wait(third, WAIT_S).status == "finished"


def test_stop_while_queued_ends_it_at_once_and_it_never_runs(manager):
    gate = Gate()
    first = manager.submit(config(), extra_callbacks=[gate])
    assert gate.started.wait(WAIT_S)
    queued, behind = manager.submit(config()), manager.submit(config())
    assert manager.stop(queued) is True
    state = manager.state(queued)  # the worker is still busy with the first run
    assert state.status == "stopped" and "before it started" in state.message
    assert manager.state(behind).queue_position == 1  # the stopped run left the queue
    gate.release.set()
    assert manager.wait(behind, WAIT_S).status == "finished"
    assert manager.wait(first, WAIT_S).status == "finished"
    assert manager.state(queued).metrics == [] and manager.store.get(queued).state == "stopped"


def test_stop_while_running_ends_after_the_current_batch(manager, monkeypatch):
    monkeypatch.setattr(Trainer, "log_interval_s", 0.0)  # every batch is reported
    pause = PauseAtFirstBatch()
    run_id = manager.submit(config(epochs=50), extra_callbacks=[pause])
    assert pause.reached.wait(WAIT_S)
    assert manager.stop(run_id) is True
    pause.go_on.set()
    state = manager.wait(run_id, WAIT_S)
    assert state.status == "stopped" and "epoch 1" in state.message
    assert pause.batches == 1  # no batch ran after the stop
    assert manager.stop(run_id) is False  # nothing left to stop


@pytest.mark.parametrize("epoch", [0, 1])  # the untrained probe at the start, and after epoch 1
def test_stop_while_the_probe_and_cams_are_made_ends_once_they_are_on_disk(manager, monkeypatch, epoch):
    reached, go_on = threading.Event(), threading.Event()
    record_cams = ProbeRecorder._record_cams

    def slow_cams(self, trainer, at_epoch):
        if at_epoch == epoch:
            reached.set()
            assert go_on.wait(WAIT_S)
        record_cams(self, trainer, at_epoch)

    monkeypatch.setattr(ProbeRecorder, "_record_cams", slow_cams)
    run_id = manager.submit(config(epochs=50))
    assert reached.wait(WAIT_S)
    assert manager.stop(run_id) is True
    go_on.set()
    state = manager.wait(run_id, WAIT_S)
    assert state.status == "stopped"
    assert [m["epoch"] for m in state.metrics] == list(range(1, epoch + 1))  # no epoch after the stop
    cams = manager.store.layout(run_id).cams_dir
    assert sorted(p.name for p in cams.iterdir()) == [f"epoch_{e:03d}.npz" for e in range(epoch + 1)]


class OutOfMemoryAtFirstBatch(Callback):
    """What the GPU does to a batch too big for it, injected: CI has no GPU to fill."""

    def on_run_start(self, trainer):
        self.model = weakref.ref(trainer.model)

    def on_batch_end(self, trainer, info):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_out_of_memory_fails_the_run_with_advice_frees_it_and_the_queue_goes_on(manager, monkeypatch):
    monkeypatch.setattr(Trainer, "log_interval_s", 0.0)
    oom = OutOfMemoryAtFirstBatch()
    failed = manager.submit(config(batch_size=64, epochs=5), extra_callbacks=[oom])
    behind = manager.submit(config())
    state = manager.wait(failed, WAIT_S)
    assert state.status == "failed" and "try batch size 32" in state.message
    assert manager.wait(behind, WAIT_S).status == "finished"
    gc.collect()
    assert oom.model() is None  # the failed run's model (and data) are gone from memory


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads resident memory from /proc")
def test_freed_memory_goes_back_to_the_system_after_a_run():
    chunks = [np.ones(1000) for _ in range(40_000)]  # 320 MB in pieces small enough for the heap
    held = rss_mb(os.getpid())
    del chunks
    return_freed_memory()
    assert rss_mb(os.getpid()) < held - 200  # without the trim glibc keeps nearly all of it


@pytest.mark.parametrize("event", ["epoch", "end"])
def test_a_failing_run_does_not_take_the_worker_down(manager, event):
    broken = manager.submit(config(), extra_callbacks=[Boom(event)])
    healthy = manager.submit(config())
    assert manager.wait(healthy, WAIT_S).status == "finished"
    state = manager.state(broken)
    if event == "epoch":
        assert state.status == "failed" and "listener broke" in state.message
    else:  # the run itself had finished before the listener broke
        assert state.status == "finished"


def test_state_has_one_shape_live_finished_and_after_a_restart(manager, tmp_path):
    gate = Gate()
    run_id = manager.submit(config(epochs=2), extra_callbacks=[gate])
    assert gate.started.wait(WAIT_S)
    live = manager.state(run_id)
    gate.release.set()
    finished = manager.wait(run_id, WAIT_S)
    restarted = JobManager(tmp_path / "runs").state(run_id)  # a new server over the same runs dir
    assert live.live and not finished.live and not restarted.live
    shapes = {tuple(dataclasses.asdict(s)) for s in (live, finished, restarted)}
    assert len(shapes) == 1
    for key in ("status", "name", "owner", "epoch", "epochs", "metrics"):
        assert getattr(restarted, key) == getattr(finished, key), key
    assert [m["epoch"] for m in restarted.metrics] == [1, 2]
    assert finished.batch_losses and restarted.batch_losses == finished.batch_losses  # on disk, not in memory


def test_an_ended_run_leaves_nothing_in_the_servers_memory(manager):
    gate = Gate()
    running = manager.submit(config(), extra_callbacks=[gate])
    assert gate.started.wait(WAIT_S)
    stopped_in_queue = manager.submit(config())
    manager.stop(stopped_in_queue)
    gate.release.set()
    manager.wait(running, WAIT_S)
    assert manager.jobs == {}  # a class's hundredth run costs the server what its first did
    assert manager.state(running).batch_losses and manager.state(stopped_in_queue).status == "stopped"


def test_bad_settings_are_refused_before_anything_is_queued(manager):
    with pytest.raises(ConfigError, match="lr"):
        manager.submit(config(lr=0.0))
    assert manager.store.list() == []


class SlowData:
    """``load_dataset`` that waits for the test, noting the thread it was called on."""

    def __init__(self, monkeypatch):
        self.threads, self.release = [], threading.Event()
        self.real = engine.load_dataset
        monkeypatch.setattr(engine, "load_dataset", self)

    def __call__(self, name, data_dir=None, **options):
        self.threads.append(threading.current_thread())
        assert self.release.wait(WAIT_S)
        return self.real(name, data_dir, **options)


def test_submit_returns_before_the_data_is_loaded_which_the_worker_does(manager, monkeypatch):
    data = SlowData(monkeypatch)
    run_id = manager.submit(config())  # returns while the loader still waits: no page waits on it
    assert manager.state(run_id).status == "queued"
    assert "resolved" not in manager.store.get(run_id).config
    data.release.set()
    assert manager.wait(run_id, WAIT_S).status == "finished"
    assert data.threads and threading.current_thread() not in data.threads
    resolved = manager.store.get(run_id).config["resolved"]  # config.json gains the data set's facts
    assert resolved["input"] == [1, 8, 8] and resolved["num_classes"] == 10 and resolved["spec_name"] == "tiny"


@pytest.mark.parametrize("bad, message", [
    (dict(spec={"name": "bad", "layers": [{"type": "conv2d", "filters": 0}]}), "filters must be at least 1"),
    (dict(dataset="folder:/no/such/folder"), "not found"),
])
def test_a_model_or_data_set_the_trainer_refuses_ends_the_run_failed_and_the_queue_goes_on(manager, bad, message):
    broken = manager.submit(config(**bad))
    healthy = manager.submit(config())
    state = manager.wait(broken, WAIT_S)
    assert state.status == "failed" and message in state.message and "Error:" not in state.message
    assert manager.store.get(broken).state == "failed" and manager.jobs.get(broken) is None
    assert manager.wait(healthy, WAIT_S).status == "finished"


def test_stop_while_the_trainer_is_built_ends_it_before_it_trains(manager, monkeypatch):
    data = SlowData(monkeypatch)
    run_id = manager.submit(config())
    deadline = time.monotonic() + WAIT_S
    while not data.threads and time.monotonic() < deadline:  # the worker has taken it and is loading
        time.sleep(0.01)
    assert manager.stop(run_id) is True
    data.release.set()
    state = manager.wait(run_id, WAIT_S)
    assert state.status == "stopped" and "before it started" in state.message and state.metrics == []


def test_an_unknown_run_is_reported_not_found(manager):
    with pytest.raises(RunNotFound):
        manager.state("20990101-000000-abcdef")
