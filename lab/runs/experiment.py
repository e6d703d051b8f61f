"""Experiments: a write-up's study as a list of runs with their exact settings, queued together.

A sweep (:mod:`lab.runs.sweep`) varies settings over one model on a grid; an
experiment is what a write-up actually ran: "cifar_vgg at batch 32, 50 and 128
for 30 epochs, and batch 32 for 50", or different models side by side on the same
data ("transfer learning vs from scratch"). :data:`EXPERIMENTS` names them;
:func:`plan_named_experiment` turns one into ordinary, validated TrainConfigs
carrying the same ``sweep`` record a sweep's runs carry (id, name, position, and
``values`` = which run of the experiment it is), so the Compare page groups, tables
and plots them with no code of its own, repeats go through
:func:`lab.runs.sweep.with_repeats`, and each run's config.json alone redoes it.
An experiment's title and description are ``experiment.<name>.title`` and
``.description`` in lab/locales.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from lab.data import DatasetError, list_datasets, load_dataset
from lab.data.dataset import shrunk_shape
from lab.data.registry import DATASETS, FOLDER_PREFIX
from lab.model.presets import get_preset, get_preset_info
from lab.model.spec import analyze
from lab.registry import Registry
from lab.runs.sweep import shortened, with_repeats
from lab.train.engine import ConfigError, TrainConfig

BACKBONE = "efficientnet_lite0"  # its ImageNet weights install from the package registry: offline everywhere
UPLOAD = ""  # an experiment's data set when the write-up trained on the user's own images: a folder they upload
ADAM = {"optimizer": "adam", "lr": 1e-3}  # Keras's default optimizer, which every write-up here kept


@dataclass(frozen=True)
class ExperimentRun:
    """One run of an experiment: a short label, its model and the settings that differ from the base."""

    label: str
    spec: dict
    settings: dict


@dataclass(frozen=True)
class Experiment:
    """A write-up's study: its runs, the data set it trained on and what a demo may use instead."""

    runs: tuple[ExperimentRun, ...]
    dataset: str  # the write-up's data set (a registry name), or UPLOAD: a folder of the user's own images
    stand_ins: tuple[str, ...]  # what a demo trains on when that data is not here, preferred first, offline last
    shared: dict = field(default_factory=dict)  # settings every run has, under each run's own

    def epochs(self, scale: float = 1.0) -> list[int]:
        """Each run's epochs, shrunk by ``scale`` as :func:`plan_named_experiment` does."""
        return [scaled_epochs({**self.shared, **run.settings}["epochs"], scale) for run in self.runs]


def backbone_spec(weights: str, trainable: str, size: int = 224, model: str = BACKBONE) -> dict:
    """A pretrained backbone with the textbook new head: global average pooling, then the output layer."""
    return {"name": f"{model}-{weights}-{trainable}", "layers": [
        {"type": "backbone", "model": model, "weights": weights, "trainable": trainable, "size": size},
        {"type": "global_avg_pool"}, {"type": "dense", "units": 10}]}


def transfer_vs_scratch(scratch_preset: str = "gap_cam", size: int = 224) -> list[ExperimentRun]:
    """The galaxy write-up's comparison: a from-scratch preset, a frozen ImageNet backbone with a new head,
    the backbone fine-tuned (a tenth of the learning rate, so the pretrained features are adjusted rather than
    overwritten), and the frozen probe on random weights, which tells the weights' share from the design's."""
    preset = get_preset_info(scratch_preset)
    tuned = {key: value for key, value in preset.train.items() if key not in ("epochs", "batch_size")}
    return [
        ExperimentRun("from scratch", preset.spec, {**tuned, "augment": preset.augment}),
        ExperimentRun("frozen backbone", backbone_spec("imagenet", "none", size), {"lr": 1e-3}),
        ExperimentRun("fine-tuned backbone", backbone_spec("imagenet", "all", size), {"lr": 1e-4}),
        ExperimentRun("random frozen backbone", backbone_spec("none", "none", size), {"lr": 1e-3}),
    ]


def _cifar10_writeup() -> Experiment:
    """The CIFAR-10 write-up's four runs: three batch sizes at 30 epochs, then batch 32 trained for 50."""
    spec = get_preset("cifar_vgg")
    runs = [ExperimentRun(label, spec, {**ADAM, "augment": "keras_basic", "batch_size": batch, "epochs": epochs})
            for label, batch, epochs in (("batch 32", 32, 30), ("batch 50", 50, 30), ("batch 128", 128, 30),
                                         ("batch 32, longer", 32, 50))]
    return Experiment(tuple(runs), "cifar10", ("shapes",))


def _fashion_writeup() -> Experiment:
    """The classic Keras tutorial's Fashion-MNIST run: the two-conv net, Adam, 10 epochs at batch 32."""
    run = ExperimentRun("two conv layers", get_preset("fashion_cnn"),
                        {**ADAM, "augment": "none", "batch_size": 32, "epochs": 10})
    return Experiment((run,), "fashion-mnist", ("mnist", "digits"))


def _galaxy_writeup() -> Experiment:
    """The galaxy write-up on the user's images: the tutorial's CNN, its two deeper CNNs with batchnorm and
    global average pooling, and a frozen ImageNet backbone. The CNNs see the images at 64 px as the write-up's
    did; the backbone gets 128 px (more detail to enlarge to the 224 its weights were trained at) and fewer
    epochs, since only its new head trains."""
    scratch = {**ADAM, "augment": "none", "batch_size": 32, "epochs": 20, "image_size": 64}
    runs = [ExperimentRun(label, get_preset(preset), scratch) for label, preset in (
        ("tutorial CNN", "galaxy_tutorial"), ("CNN with batchnorm + GAP", "galaxy_bn_gap"),
        ("deeper CNN with batchnorm + GAP", "galaxy_bn_gap_deep"))]
    runs.append(ExperimentRun(f"frozen {BACKBONE}", backbone_spec("imagenet", "none", 224),
                              {**ADAM, "augment": "none", "batch_size": 32, "epochs": 10, "image_size": 128}))
    return Experiment(tuple(runs), UPLOAD, ("cifar10", "shapes"))


# The benchmark's few images and epochs (python -m lab bench --transfer): the question is about little data.
TRANSFER_SHARED = {**ADAM, "train_limit": 500, "epochs": 8, "batch_size": 64}

EXPERIMENTS: Registry[Experiment] = Registry("experiment", {
    "cifar10-writeup": _cifar10_writeup(),
    "fashion-writeup": _fashion_writeup(),
    "galaxy-writeup": _galaxy_writeup(),
    "transfer-vs-scratch": Experiment(tuple(transfer_vs_scratch()), "cifar10", ("shapes",), TRANSFER_SHARED),
}, ConfigError)


def scaled_epochs(epochs: int, scale: float) -> int:
    """``epochs`` times ``scale``, rounded and at least 1: 30 and 50 epochs stay 3 and 5 at 0.1."""
    return max(1, round(epochs * scale))


def _check_scale(scale: float) -> None:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 1:
        raise ConfigError(f"epochs scale must be a number above 0 and at most 1 (such as 0.1 for a classroom "
                          f"demo: a tenth of every run's epochs); got {scale!r}")


def plan_experiment(base: TrainConfig, runs: Sequence[ExperimentRun], name: str) -> list[TrainConfig]:
    """One validated TrainConfig per run, ``base`` giving what they share (data set, epochs, images, owner).

    Raises ConfigError naming the run whose settings are out of range, before anything is queued.
    """
    experiment_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    created = time.strftime("%Y-%m-%d %H:%M")
    configs = []
    for index, run in enumerate(runs, 1):
        config = dataclasses.replace(
            base, spec=copy.deepcopy(run.spec), **run.settings, name=shortened(f"{name}: {run.label}"), sweep={
                "id": experiment_id, "name": name, "created": created, "index": index, "total": len(runs),
                "values": {"run": run.label}})
        try:
            config.validate()
        except ConfigError as err:
            raise ConfigError(f"{run.label}: {err}") from None
        configs.append(config)
    return configs


def _wanted_dataset(name: str, experiment: Experiment) -> str:
    """The write-up's data set, or what to give when it was the user's own images."""
    if experiment.dataset == UPLOAD:
        raise ConfigError(f"{name} trains on a folder of your own images: give it as {FOLDER_PREFIX}PATH (a folder "
                          "or .zip of class folders, such as one uploaded on the Data page); any data set in colour "
                          f"works for a demo, such as {' or '.join(experiment.stand_ins)}")
    return experiment.dataset


def _checked_dataset(name: str, experiment: Experiment, dataset: str, data_dir) -> str:
    """``dataset``'s canonical name once it is known to be here; a ConfigError saying how to get it otherwise."""
    if dataset.strip().lower().startswith(FOLDER_PREFIX):
        return dataset.strip()
    try:
        dataset = DATASETS.name_of(dataset)
    except DatasetError as err:
        raise ConfigError(str(err)) from None
    if not next(info.available for info in list_datasets(data_dir) if info.name == dataset):
        raise ConfigError(f"{name} trains on {dataset}, which is not on this server yet: download it with the "
                          f"Data page's download button, or run `python -m lab datasets --download {dataset}` "
                          "(needs internet; `python -m lab datasets` says where to put files copied by hand). "
                          f"For a quick demo, give another data set, such as {experiment.stand_ins[-1]}.")
    return dataset


def _geometry(dataset: str, image_size: int, data_dir) -> tuple[tuple[int, int, int], int]:
    """(image shape, class count) a run sees: from the registry without loading, else from the loaded folder."""
    info = next((info for info in list_datasets(data_dir) if info.name == dataset), None)
    if info is not None:
        return shrunk_shape(info.shape, image_size), info.num_classes
    try:
        ds = load_dataset(dataset, data_dir, image_size=image_size)
    except DatasetError as err:
        raise ConfigError(str(err)) from None
    return ds.shape, ds.num_classes


def _check_models(configs: Sequence[TrainConfig], data_dir) -> None:
    """Each run's model on its images, as a run would check it (a backbone without its weights is refused here,
    naming how to get them): before anything is queued, not when the third run starts."""
    for config in configs:
        summary = analyze(config.spec, *_geometry(config.dataset, config.image_size, data_dir))
        if not summary.ok:
            raise ConfigError(f"{config.sweep['values']['run']}: {summary.problems[0]}")


def plan_named_experiment(name: str, dataset: str | None = None, *, epochs_scale: float = 1.0,
                          seeds: Sequence[int] = (0,), data_dir: str | os.PathLike | None = None,
                          **shared) -> list[TrainConfig]:
    """The runs of the experiment ``name`` (any spelling) as validated TrainConfigs, ready to queue or train.

    ``dataset`` replaces the write-up's (None: the write-up's own, which must be here); ``epochs_scale``
    (above 0, at most 1) shrinks every run's epochs alike for a classroom demo; each run is repeated once per
    seed (:func:`lab.runs.sweep.with_repeats`); ``shared`` sets TrainConfig fields the write-up leaves open
    (owner, device, insight...), never a run's own settings. Raises ConfigError, saying what to change, for
    an unknown name, missing data, or a run whose model does not fit the images, before anything runs.
    """
    _check_scale(epochs_scale)
    key = EXPERIMENTS.name_of(name)
    experiment = EXPERIMENTS[key]
    dataset = _checked_dataset(key, experiment, dataset or _wanted_dataset(key, experiment), data_dir)
    base = TrainConfig.from_dict({**experiment.shared, **shared, "dataset": dataset})
    configs = [dataclasses.replace(config, epochs=scaled_epochs(config.epochs, epochs_scale))
               for config in plan_experiment(base, experiment.runs, key)]
    _check_models(configs, data_dir)
    return with_repeats(configs, seeds)
