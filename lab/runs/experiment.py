"""Experiments: a write-up's comparison of different models as runs queued together.

A sweep (:mod:`lab.runs.sweep`) varies settings over one model; an experiment
puts different models side by side, each with the settings that suit it, on the
same data ("transfer learning vs from scratch on few images"). ``plan_experiment``
turns one into ordinary, validated TrainConfigs carrying the same ``sweep``
record a sweep's runs carry (id, name, position, and ``values`` = which run of
the experiment it is), so the Compare page groups, tables and plots them with no
code of its own, and each run's config.json alone redoes it.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from dataclasses import dataclass

from lab.model.presets import get_preset_info
from lab.runs.sweep import shortened
from lab.train.engine import ConfigError, TrainConfig

BACKBONE = "efficientnet_lite0"  # its ImageNet weights install from the package registry: offline everywhere


@dataclass(frozen=True)
class ExperimentRun:
    """One run of an experiment: a short label, its model and the settings that differ from the base."""

    label: str
    spec: dict
    settings: dict


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


EXPERIMENTS = {"transfer_vs_scratch": transfer_vs_scratch}


def plan_experiment(base: TrainConfig, runs: list[ExperimentRun], name: str) -> list[TrainConfig]:
    """One validated TrainConfig per run, ``base`` giving what they share (data set, epochs, images, owner).

    Raises ConfigError naming the run whose settings are out of range, before anything is queued.
    """
    experiment_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    created = time.strftime("%Y-%m-%d %H:%M")
    configs = []
    for index, run in enumerate(runs, 1):
        config = dataclasses.replace(base, spec=run.spec, **run.settings, name=shortened(f"{name}: {run.label}"), sweep={
            "id": experiment_id, "name": name, "created": created, "index": index, "total": len(runs),
            "values": {"run": run.label}})
        try:
            config.validate()
        except ConfigError as err:
            raise ConfigError(f"{run.label}: {err}") from None
        configs.append(config)
    return configs
