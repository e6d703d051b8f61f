"""The write-ups as named experiments (lab.runs.experiment): each plans the runs its write-up ran, with their
exact settings; an epochs scale shrinks them alike for a demo; seeds repeat each run; what cannot run is
refused before anything runs, saying what to do; `python -m lab experiments` and `sweep --experiment` run them."""

from __future__ import annotations

import re

import pytest
from support.cli import lab
from support.files import image_bytes

import lab.runs.experiment as experiment_module
from lab.i18n import strings, text
from lab.model.presets import get_preset
from lab.model.spec import summarize
from lab.registry import Registry
from lab.runs.compare import group_key
from lab.runs.experiment import (
    BACKBONE,
    EXPERIMENTS,
    Experiment,
    ExperimentRun,
    plan_named_experiment,
    scaled_epochs,
    transfer_vs_scratch,
)
from lab.runs.store import RunStore
from lab.train.engine import ConfigError, TrainConfig


def settings(configs: list[TrainConfig], *names: str) -> list[tuple]:
    return [tuple(getattr(c, name) for name in names) for c in configs]


@pytest.fixture
def cifar_here(tmp_path):
    """A data dir where CIFAR-10 counts as downloaded: its python batches are there (planning never reads them)."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"):
        (folder / name).write_bytes(b"")
    return tmp_path


@pytest.fixture
def galaxy_folder(tmp_path):
    """A user's folder of two classes of small colour images, as the Data page's upload leaves it."""
    for label, colour in (("spiral", (200, 200, 250)), ("elliptical", (250, 200, 120))):
        (tmp_path / "galaxies" / label).mkdir(parents=True)
        for i in range(8):
            (tmp_path / "galaxies" / label / f"{i}.png").write_bytes(image_bytes((80, 80), colour=colour))
    return tmp_path / "galaxies"


# ---------------------------------------------------------------- the write-ups' settings


def test_cifar10_writeup_is_its_four_runs_on_cifar10_when_it_is_here(cifar_here):
    configs = plan_named_experiment("cifar10-writeup", data_dir=cifar_here)
    assert settings(configs, "batch_size", "epochs") == [(32, 30), (50, 30), (128, 30), (32, 50)]
    assert {(c.dataset, c.optimizer, c.lr, c.augment) for c in configs} == {("cifar10", "adam", 1e-3, "keras_basic")}
    assert all(c.spec == get_preset("cifar_vgg") for c in configs)
    assert [c.sweep["index"] for c in configs] == [1, 2, 3, 4] and len({c.sweep["id"] for c in configs}) == 1
    assert {c.sweep["name"] for c in configs} == {"cifar10-writeup"}


def test_fashion_writeup_is_the_keras_tutorials_run_of_the_333526_parameter_net():
    (config,) = plan_named_experiment("fashion-writeup", "digits")
    assert summarize(config.spec, (1, 28, 28), 10).total_params == 333_526
    assert (config.optimizer, config.lr, config.epochs, config.batch_size, config.augment) == ("adam", 1e-3, 10, 32,
                                                                                                "none")
    assert "Keras tutorial" in text("experiment.fashion-writeup.description")


def test_galaxy_writeup_trains_the_tutorial_cnn_two_deeper_ones_and_a_frozen_backbone_on_a_folder(galaxy_folder):
    configs = plan_named_experiment("galaxy-writeup", f"folder:{galaxy_folder}")
    assert {c.dataset for c in configs} == {f"folder:{galaxy_folder}"}
    tutorial, bn_gap, deeper, transfer = (c.spec for c in configs)
    assert (tutorial, bn_gap, deeper) == tuple(get_preset(name) for name in (
        "galaxy_tutorial", "galaxy_bn_gap", "galaxy_bn_gap_deep"))
    assert all(spec["input"] == [3, 64, 64] for spec in (tutorial, bn_gap, deeper))
    types = [[layer["type"] for layer in spec["layers"]] for spec in (tutorial, bn_gap, deeper)]
    assert "batchnorm" not in types[0] and types[0].count("maxpool2d") == 3 and "dense" in types[0]
    assert all({"batchnorm", "global_avg_pool"} <= set(kinds) for kinds in types[1:])
    assert summarize(deeper).total_params > summarize(bn_gap).total_params
    backbone = transfer["layers"][0]
    assert (backbone["model"], backbone["weights"], backbone["trainable"], backbone["size"]) == (
        BACKBONE, "imagenet", "none", 224)
    assert settings(configs, "image_size", "epochs") == [(64, 20), (64, 20), (64, 20), (128, 10)]
    assert {(c.optimizer, c.lr, c.batch_size) for c in configs} == {("adam", 1e-3, 32)}


def test_transfer_vs_scratch_is_in_the_registry_with_the_benchmarks_few_images():
    configs = plan_named_experiment("transfer_vs_scratch", "shapes")  # any spelling of its name
    assert [c.sweep["values"]["run"] for c in configs] == [run.label for run in transfer_vs_scratch()]
    assert settings(configs, "train_limit", "epochs", "batch_size") == [(500, 8, 64)] * 4


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_run_says_its_own_settings_and_every_experiment_is_written_up_in_both_languages(name):
    experiment = EXPERIMENTS[name]
    for run in experiment.runs:
        assert {"epochs", "batch_size", "optimizer", "lr"} <= {**experiment.shared, **run.settings}.keys(), run.label
    for lang in ("en", "ko"):
        assert strings(lang)[f"experiment.{name}.title"] and strings(lang)[f"experiment.{name}.description"]


# ---------------------------------------------------------------- epochs scale and seeds


@pytest.mark.parametrize("scale, epochs", [(1, [30, 30, 30, 50]), (0.5, [15, 15, 15, 25]), (0.2, [6, 6, 6, 10]),
                                           (0.1, [3, 3, 3, 5]), (0.01, [1, 1, 1, 1])])
def test_an_epochs_scale_keeps_the_ratios_and_leaves_every_run_an_epoch(scale, epochs):
    configs = plan_named_experiment("cifar10-writeup", "shapes", epochs_scale=scale)
    assert [c.epochs for c in configs] == epochs == EXPERIMENTS["cifar10-writeup"].epochs(scale)
    assert [c.batch_size for c in configs] == [32, 50, 128, 32]  # only the epochs shrink


def test_scaled_epochs_rounds_and_floors_at_one():
    assert [scaled_epochs(e, 0.1) for e in (1, 4, 5, 10, 30, 50)] == [1, 1, 1, 1, 3, 5]


@pytest.mark.parametrize("scale", [0, -0.5, 1.5, True, "0.1", float("nan")])
def test_an_epochs_scale_out_of_range_is_refused(scale):
    with pytest.raises(ConfigError, match="epochs scale must be a number above 0 and at most 1"):
        plan_named_experiment("fashion-writeup", "digits", epochs_scale=scale)


def test_seeds_repeat_each_run_as_one_configuration():
    configs = plan_named_experiment("cifar10-writeup", "shapes", epochs_scale=0.1, seeds=(0, 1, 2))
    assert len(configs) == 12 and [c.seed for c in configs[:3]] == [0, 1, 2]
    groups = [group_key(c.sweep) for c in configs]
    assert len(set(groups)) == 4 and groups[:3] == [groups[0]] * 3
    assert configs[0].name == "cifar10-writeup: batch 32-s0" and configs[0].sweep["repeats"] == 3


def test_what_the_write_up_leaves_open_comes_from_the_caller_and_its_own_settings_stay():
    (config,) = plan_named_experiment("fashion-writeup", "digits", owner="ana", device="cpu", insight=False,
                                      batch_size=500)
    assert (config.owner, config.device, config.insight, config.batch_size) == ("ana", "cpu", False, 32)


# ---------------------------------------------------------------- refusals


def test_an_unknown_experiment_is_refused_with_the_list():
    with pytest.raises(ConfigError, match="unknown experiment 'mnist-writeup'; use one of: cifar10-writeup, "
                                          "fashion-writeup, galaxy-writeup, transfer-vs-scratch"):
        plan_named_experiment("mnist-writeup")


def test_missing_data_says_how_to_get_it(tmp_path):
    with pytest.raises(ConfigError) as refused:
        plan_named_experiment("cifar10-writeup", data_dir=tmp_path)  # no system-wide copy, as Fashion-MNIST has
    message = str(refused.value)
    assert "cifar10-writeup trains on cifar10, which is not on this server yet" in message
    assert "Data page's download button" in message and "`python -m lab datasets --download cifar10`" in message
    assert "such as shapes" in message


def test_the_galaxy_writeup_asks_for_a_folder_and_an_unknown_data_set_is_refused():
    with pytest.raises(ConfigError, match=r"galaxy-writeup trains on a folder of your own images: give it as "
                                          r"folder:PATH .* such as cifar10 or shapes"):
        plan_named_experiment("galaxy-writeup")
    with pytest.raises(ConfigError, match="unknown dataset 'galaxies'; use one of: shapes"):
        plan_named_experiment("galaxy-writeup", "galaxies")
    with pytest.raises(ConfigError, match="nowhere not found"):
        plan_named_experiment("galaxy-writeup", "folder:nowhere")


def test_a_model_that_does_not_fit_the_images_is_refused_before_anything_runs(monkeypatch):
    """LeNet-5's valid 5x5 convolution has nothing left of 8x8 digits once pooled: the run is named."""
    runs = (ExperimentRun("fits", get_preset("fashion_cnn"), {"epochs": 1}),
            ExperimentRun("lenet", get_preset("lenet5"), {"epochs": 1}))
    table = Registry("experiment", {"mixed": Experiment(runs, "digits", ())}, ConfigError)
    monkeypatch.setattr(experiment_module, "EXPERIMENTS", table)
    with pytest.raises(ConfigError, match=r"^lenet: layer 3 \(conv2d\)"):
        plan_named_experiment("mixed")


# ---------------------------------------------------------------- the commands


def test_cli_lists_the_experiments(tmp_path):
    out = lab("experiments", runs_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].split() == ["name", "dataset", "runs", "epochs", "description"]
    assert re.search(r"^cifar10-writeup\s+cifar10\s+4\s+140\s+The CIFAR-10 write-up", out.stdout, re.M)
    assert re.search(r"^fashion-writeup\s+fashion-mnist\s+1\s+10\s+The classic Keras", out.stdout, re.M)
    assert re.search(r"^galaxy-writeup\s+folder:PATH\s+4\s+70\s", out.stdout, re.M)
    assert re.search(r"^transfer-vs-scratch\s+cifar10\s+4\s+32\s", out.stdout, re.M)


def test_cli_sweep_runs_a_scaled_down_experiment_end_to_end(tmp_path):
    out = lab("sweep", "--experiment", "fashion-writeup", "--dataset", "digits", "--epochs-scale", "0.1",
              "--device", "cpu", "--no-insight", runs_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("experiment fashion-writeup: 1 runs on digits")
    (run,) = RunStore(tmp_path).list()
    assert run.state == "finished" and run.name == "fashion-writeup: two conv layers"
    assert (run.config["epochs"], run.config["batch_size"], run.config["lr"]) == (1, 32, 1e-3)
    assert run.config["sweep"]["name"] == "fashion-writeup"
    table = out.stdout[out.stdout.index("\nsweep fashion-writeup"):].strip().splitlines()
    assert table[1].split()[:3] == ["batch", "epochs", "lr"] and table[2].split()[:2] == ["32", "1"]


@pytest.mark.parametrize("args, fragment", [
    (("--experiment", "cifar10-writeup"), "`python -m lab datasets --download cifar10`"),
    (("--experiment", "nope"), "unknown experiment 'nope'"),
    (("--experiment", "fashion-writeup", "--dataset", "digits", "--epochs-scale", "2"), "epochs scale must be"),
    ((), "a sweep needs --batch-sizes and --epochs (or --experiment NAME"),
])
def test_cli_sweep_refuses_in_one_line(tmp_path, args, fragment):
    out = lab("sweep", *args, runs_dir=tmp_path)
    assert out.returncode == 2 and fragment in out.stderr and "Traceback" not in out.stderr
    assert RunStore(tmp_path).list() == []
