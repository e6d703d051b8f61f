"""Trainer: learns, stops, diverges cleanly, reproduces, records a readable run."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from lab.model.presets import get_preset
from lab.model.spec import SpecError, build_model
from lab.runs.store import RunStore
from lab.train.engine import Callback, ConfigError, RunRecorder, TrainConfig, Trainer, lr_factor, run_record
from lab.train.ranges import Range, setting_ranges

SMALL_CNN = {"name": "small", "layers": [
    {"type": "conv2d", "filters": 16}, {"type": "maxpool2d"},
    {"type": "conv2d", "filters": 32}, {"type": "batchnorm"}, {"type": "global_avg_pool"},
    {"type": "dense", "units": 10},
]}


def config(**overrides) -> TrainConfig:
    values = dict(spec=SMALL_CNN, dataset="digits", epochs=3, batch_size=64, lr=3e-3, device="cpu")
    values.update(overrides)
    return TrainConfig.from_dict(values)


class Events(Callback):
    def __init__(self):
        self.names: list[str] = []
        self.batches: list[dict] = []

    def on_run_start(self, trainer):
        self.names.append("start")

    def on_batch_end(self, trainer, info):
        self.batches.append(info)

    def on_epoch_end(self, trainer, metrics):
        self.names.append("epoch")

    def on_run_end(self, trainer, status, message):
        self.names.append(status)


def test_digits_learns_well_above_chance():
    events = Events()
    result = Trainer(config(), [events]).run()
    assert result.status == "finished"
    assert events.names == ["start", "epoch", "epoch", "epoch", "finished"]
    assert result.best["val_acc"] > 0.8  # chance is 0.1
    assert events.batches and all(math.isfinite(b["loss"]) for b in events.batches)
    keys = {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_sec"}
    assert keys <= set(result.history[0])


def test_shapes_learns_above_chance_with_augmentation():
    result = Trainer(config(spec=get_preset("gap_cam"), dataset="shapes", epochs=2, train_limit=3000,
                            augment="cifar_standard")).run()
    assert result.status == "finished"
    assert result.best["val_acc"] > 0.3  # 8 classes: chance is 0.125


def test_same_seed_same_numbers_on_cpu():
    a = Trainer(config(epochs=1, augment="keras_basic")).run().history
    b = Trainer(config(epochs=1, augment="keras_basic")).run().history
    assert a[0]["train_loss"] == b[0]["train_loss"] and a[0]["val_acc"] == b[0]["val_acc"]


class StopAfter(Callback):
    def __init__(self, batches: int):
        self.left = batches

    def on_batch_end(self, trainer, info):
        self.left -= 1
        if self.left <= 0:
            trainer.stop()


def test_stop_is_honoured_within_a_batch():
    trainer = Trainer(config(epochs=50, batch_size=8), [StopAfter(1)])
    trainer.log_interval_s = 0.0  # a batch event after every batch
    result = trainer.run()
    assert result.status == "stopped"
    assert trainer.step <= 2 and result.history == []


def test_huge_learning_rate_diverges_with_advice():
    result = Trainer(config(lr=100.0, optimizer="sgd", epochs=3, spec={"layers": [
        {"type": "flatten"}, {"type": "dense", "units": 64}, {"type": "dense", "units": 10}]})).run()
    assert result.status == "diverged"
    assert "lower the learning rate" in result.message


def test_exception_in_a_run_ends_it_failed():
    class Boom(Callback):
        def on_epoch_end(self, trainer, metrics):
            raise RuntimeError("disk full")

    result = Trainer(config(epochs=2), [Boom()]).run()
    assert result.status == "failed" and "disk full" in result.message


def test_out_of_memory_gives_a_batch_size_advice(monkeypatch):
    trainer = Trainer(config(batch_size=256))
    monkeypatch.setattr(trainer, "_train_epoch", lambda: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError("oom")))
    result = trainer.run()
    assert result.status == "failed" and "batch size 128" in result.message


def test_recorder_writes_a_complete_reloadable_run(tmp_path):
    store = RunStore(tmp_path)
    cfg = config(epochs=2)
    trainer = Trainer(cfg)
    run_id = store.create(run_record(cfg, trainer))
    trainer.callbacks = [RunRecorder(store, run_id)]
    result = trainer.run()
    info = store.get(run_id)
    assert info.state == "finished" and len(info.metrics) == 2
    assert info.status["best_val_acc"] == result.best["val_acc"]
    rebuilt = TrainConfig.from_dict({k: v for k, v in info.config.items() if k != "resolved"})
    assert rebuilt.to_dict() == {**cfg.to_dict(), "augment": rebuilt.augment}
    model = Trainer(rebuilt).summary
    best = store.load_checkpoint(run_id, "best")
    from lab.model.spec import build_model

    net = build_model(info.config["spec"], tuple(info.config["resolved"]["input"]), 10)
    net.load_state_dict(best["model"])
    assert sum(p.numel() for p in net.parameters()) == model.total_params


@pytest.mark.parametrize("bad,fragment", [
    (dict(epochs=0), "epochs"), (dict(batch_size=10**7), "batch_size"), (dict(lr=0), "lr"),
    (dict(optimizer="lion"), "optimizer"), (dict(schedule="warp"), "schedule"), (dict(device="tpu"), "device"),
    (dict(label_smoothing=1.5), "label_smoothing"), (dict(augment="wild"), "wild"),
])
def test_bad_settings_raise_config_error(bad, fragment):
    with pytest.raises(ConfigError, match=fragment):
        Trainer(config(**bad))


def _just_outside(allowed: Range) -> tuple:
    """Values one step (or, for a float, a hair) beyond each end of a range."""
    below = allowed.low if allowed.low_open else allowed.low - (1 if allowed.whole else 1e-9)
    return below, allowed.high + (1 if allowed.whole else 1e-9)


@pytest.mark.parametrize("name", list(setting_ranges()))
def test_validate_takes_each_range_end_and_refuses_just_outside_it(name):
    allowed = setting_ranges()[name]
    assert name in {f.name for f in dataclasses.fields(TrainConfig)}
    for value in [allowed.high] + ([] if allowed.low_open else [allowed.low]):
        config(**{name: value}).validate()
    for value in _just_outside(allowed):
        with pytest.raises(ConfigError, match=f"{name} must be"):
            config(**{name: value}).validate()


def test_the_servers_limits_are_the_upper_bounds_where_they_apply(monkeypatch):
    for name, value in [("EPOCHS", 7), ("BATCH_SIZE", 100), ("PROBE_SIZE", 300)]:
        monkeypatch.setenv(f"LAB_MAX_{name}", str(value))
    ranges = setting_ranges()
    assert (ranges["epochs"].high, ranges["batch_size"].high, ranges["probe_size"].high) == (7, 100, 300)
    with pytest.raises(ConfigError, match="epochs must be a whole number from 1 to 7"):
        config(epochs=8).validate()


@pytest.mark.parametrize("name", [name for name, allowed in setting_ranges().items() if not allowed.whole])
def test_a_float_setting_refuses_a_bool_and_not_a_number(name):
    for value in (True, math.nan, math.inf, "0.1"):
        with pytest.raises(ConfigError, match=name):
            config(**{name: value}).validate()


def test_evaluate_runs_in_eval_mode_and_puts_back_the_mode_it_found():
    trainer = Trainer(config(epochs=1, train_limit=128))
    trainer._setup()
    seen = []

    def forward(x):
        seen.append(trainer.model.training)
        return trainer.model(x)

    trainer.forward = forward
    for training in (True, False):
        trainer.model.train(training)
        trainer.evaluate(trainer.val_x[:8], trainer.val_y[:8])
        assert trainer.model.training is training
    assert seen == [False, False]


def test_evaluate_puts_train_mode_back_when_the_model_fails():
    trainer = Trainer(config(epochs=1, train_limit=128))
    trainer._setup()
    trainer.forward = lambda x: 1 / 0
    with pytest.raises(ZeroDivisionError):
        trainer.evaluate(trainer.val_x[:8], trainer.val_y[:8])
    assert trainer.model.training


def test_unknown_setting_is_refused():
    with pytest.raises(ConfigError, match="unknown setting"):
        TrainConfig.from_dict({"epochz": 3})


def test_model_over_the_parameter_limit_is_refused_before_it_is_built(monkeypatch):
    monkeypatch.setenv("LAB_MAX_PARAMS", "1000")
    with pytest.raises(SpecError, match="limit of 1,000"):
        Trainer(config())
    with pytest.raises(SpecError, match="use fewer filters or units"):
        build_model(SMALL_CNN, (1, 8, 8), 10)  # the export and explain pages build models too


def test_a_batch_over_the_activation_memory_limit_is_refused_with_a_batch_that_fits(monkeypatch):
    monkeypatch.setenv("LAB_MAX_ACTIVATION_MB", "1")
    with pytest.raises(ConfigError, match="limit of 1 MB") as refused:
        Trainer(config(batch_size=4096))
    fits = int(str(refused.value).split("use batch size ")[1].split()[0])
    Trainer(config(batch_size=fits))  # the advice is true
    with pytest.raises(ConfigError):
        Trainer(config(batch_size=fits + 1))


@pytest.mark.parametrize("schedule", ["none", "step", "cosine", "onecycle"])
def test_schedules_start_and_end_where_documented(schedule):
    factors = [lr_factor(schedule, s, 100) for s in range(101)]
    assert max(factors) <= 1.0 and min(factors) >= 0.0
    if schedule == "none":
        assert set(factors) == {1.0}
    if schedule == "step":
        assert factors[0] == 1.0 and factors[60] == pytest.approx(0.1) and factors[90] == pytest.approx(0.01)
    if schedule in ("cosine", "onecycle"):
        assert factors[-1] == pytest.approx(0.0, abs=1e-9)
    if schedule == "onecycle":
        assert factors[0] == 0.0 and factors[25] == 1.0


# ---------------------------------------------------------------- CUDA graph (runs where there is a GPU)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


class ClearsGradients(Callback):
    """A listener that clears the gradients, as a careless probe might."""

    def on_epoch_end(self, trainer, metrics):
        trainer.model.zero_grad(set_to_none=True)


@needs_cuda
@pytest.mark.parametrize("optimizer, lr", [("adam", 3e-3), ("sgd", 0.05), ("rmsprop", 1e-3)])
def test_cuda_graph_replays_the_eager_step_exactly(optimizer, lr):
    """Without random augmentation a replayed graph computes what the eager loop does.

    Measured on an H100: equal to the last digit for four seeds and two optimizers. The
    listener that clears the gradients checks that the graph's gradients are put back.
    """
    results = {}
    for graph in (True, False):
        trainer = Trainer(config(device="cuda", cuda_graph=graph, optimizer=optimizer, lr=lr, epochs=3,
                                 schedule="onecycle"), [ClearsGradients()])
        results[graph] = trainer.run()
        assert trainer.graph_status == ("captured" if graph else "off")
    graphed, eager = ([(m["train_loss"], m["val_acc"]) for m in results[g].history] for g in (True, False))
    assert graphed == pytest.approx(eager, rel=1e-4)
    assert results[True].history[-1]["val_acc"] > 0.8


@needs_cuda
def test_cuda_graph_draws_new_augmentation_every_replay():
    """Augmentation runs inside the graph on the default generator: training still learns.

    Eager and graphed runs then differ only by their random streams (H100, four seeds:
    0.89-0.93 with the graph, 0.90-0.92 without).
    """
    trainer = Trainer(config(device="cuda", epochs=4, augment='{"rotation": 5, "shift": 0.05, "cutout": 2}'))
    result = trainer.run()
    assert trainer.graph_status == "captured"
    assert result.history[-1]["val_acc"] > 0.8


@needs_cuda
def test_two_runs_at_once_on_one_gpu_both_learn():
    """Only a run training alone captures a graph; two at once both train (eagerly)."""
    import threading

    results = []
    trainers = [Trainer(config(device="cuda", seed=seed, epochs=4)) for seed in (1, 2)]
    threads = [threading.Thread(target=lambda t=t: results.append(t.run())) for t in trainers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status for r in results] == ["finished", "finished"], [r.message for r in results]
    assert all(r.history[-1]["val_acc"] > 0.8 for r in results), [r.history for r in results]
    assert all(t.graph_status in ("captured", "not captured: another run is training on this GPU")
               for t in trainers), [t.graph_status for t in trainers]


def test_a_train_limit_keeps_every_class_when_the_images_come_class_by_class():
    """A folder lists its images class by class: the first 30 would all be one class."""
    from lab.data import load_dataset

    digits = load_dataset("digits")
    order = torch.argsort(digits.train_y, stable=True)
    by_class = dataclasses.replace(digits, train_x=digits.train_x[order], train_y=digits.train_y[order])
    trainer = Trainer(config(epochs=1, train_limit=30), dataset=by_class)
    trainer._setup()
    assert torch.bincount(trainer.train_y.cpu(), minlength=10).tolist() == [3] * 10


def test_a_run_puts_the_threads_subnormal_floats_back():
    """Flushing subnormals speeds frozen random backbones up; left on, it breaks whatever runs next
    in the thread (hypothesis refuses to draw floats)."""
    Trainer(config(epochs=1, train_limit=64)).run()
    assert (torch.tensor([1e-40]) * 1.0).item() != 0.0
