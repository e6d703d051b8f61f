"""Named model specs: the architectures students meet in write-ups and courses.

Each preset is a plain spec dict (see :mod:`lab.model.spec`) plus a line saying where
it comes from (``preset.<name>`` in lab/locales, in English and Korean) and training
settings that suit it. ``input`` and ``num_classes``
are the natural dataset's; training on another dataset replaces them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

from lab.i18n import DEFAULT, text
from lab.model.layers import SpecError
from lab.registry import Registry


def _conv(filters: int, kernel: int = 3, **extra) -> dict:
    return {"type": "conv2d", "filters": filters, "kernel": kernel, "padding": "same", "activation": "relu", **extra}


def _pool(size: int = 2) -> dict:
    return {"type": "maxpool2d", "size": size}


def _conv_pool_bn_gelu(filters: int) -> list[dict]:
    """airbench's conv group: the pool before batchnorm halves the normalisation's work."""
    def conv_bn_gelu() -> list[dict]:  # fresh dicts: a layer edited in the builder must be one layer
        return [_conv(filters, activation=None), {"type": "batchnorm"}, {"type": "activation", "function": "gelu"}]

    first, second = conv_bn_gelu(), conv_bn_gelu()
    return [first[0], _pool(), *first[1:], *second]


@dataclass(frozen=True)
class Preset:
    """A named spec with its origin and the training settings it was tuned with."""

    spec: dict
    train: dict = field(default_factory=dict)  # TrainConfig overrides, e.g. {"optimizer": "sgd"}
    augment: str = "none"
    description: str = ""  # where it comes from: filled in by get_preset_info, in the language asked for


PRESETS: Registry[Preset] = Registry("preset", {
    "lenet5": Preset(
        {
            "name": "lenet5", "input": [1, 28, 28], "num_classes": 10,
            "layers": [
                {"type": "conv2d", "filters": 6, "kernel": 5, "padding": "same", "activation": "tanh"},
                {"type": "avgpool2d", "size": 2},
                {"type": "conv2d", "filters": 16, "kernel": 5, "padding": "valid", "activation": "tanh"},
                {"type": "avgpool2d", "size": 2},
                {"type": "flatten"},
                {"type": "dense", "units": 120, "activation": "tanh"},
                {"type": "dense", "units": 84, "activation": "tanh"},
                {"type": "dense", "units": 10},
            ],
        },
    ),
    "fashion_cnn": Preset(
        {
            "name": "fashion_cnn", "input": [1, 28, 28], "num_classes": 10,
            "layers": [
                _conv(32), _pool(), _conv(64), _pool(), {"type": "flatten"},
                {"type": "dense", "units": 100, "activation": "relu"},
                {"type": "dense", "units": 10},
            ],
        },
    ),
    "cifar_vgg": Preset(
        {
            "name": "cifar_vgg", "input": [3, 32, 32], "num_classes": 10,
            "layers": [
                _conv(32), {"type": "batchnorm"}, _conv(32), {"type": "batchnorm"}, _pool(),
                {"type": "dropout", "rate": 0.2},
                _conv(64), {"type": "batchnorm"}, _conv(64), {"type": "batchnorm"}, _pool(),
                {"type": "dropout", "rate": 0.3},
                _conv(128), {"type": "batchnorm"}, _conv(128), {"type": "batchnorm"}, _pool(),
                {"type": "dropout", "rate": 0.4},
                {"type": "flatten"},
                {"type": "dense", "units": 10},
            ],
        },
        augment="keras_basic",
    ),
    "gap_cam": Preset(
        {
            "name": "gap_cam", "input": [3, 32, 32], "num_classes": 10,
            "layers": [
                _conv(32), {"type": "batchnorm"}, _pool(),
                _conv(64), {"type": "batchnorm"}, _pool(),
                _conv(128), {"type": "batchnorm"},
                {"type": "global_avg_pool"},
                {"type": "dense", "units": 10},
            ],
        },
    ),
    "mini_resnet": Preset(
        {
            "name": "mini_resnet", "input": [3, 32, 32], "num_classes": 10,
            "layers": [
                _conv(32), {"type": "batchnorm"},
                {"type": "residual", "filters": 32, "stride": 1},
                {"type": "residual", "filters": 64, "stride": 2},
                {"type": "residual", "filters": 128, "stride": 2},
                {"type": "global_avg_pool"},
                {"type": "dense", "units": 10},
            ],
        },
        train={"optimizer": "sgd", "lr": 0.05, "schedule": "onecycle", "weight_decay": 5e-4},
    ),
    "speedrun": Preset(
        {
            "name": "speedrun", "input": [3, 32, 32], "num_classes": 10,
            "layers": [
                {"type": "conv2d", "filters": 24, "kernel": 2, "padding": "valid", "activation": "gelu"},
                *_conv_pool_bn_gelu(64), *_conv_pool_bn_gelu(256), *_conv_pool_bn_gelu(256),
                {"type": "maxpool2d", "size": 3},
                {"type": "flatten"},
                {"type": "dense", "units": 10},
            ],
        },
        train={"epochs": 40, "batch_size": 512, "optimizer": "sgd", "lr": 0.4, "momentum": 0.9, "nesterov": True,
               "weight_decay": 5e-4, "schedule": "onecycle", "label_smoothing": 0.2, "eval_flip": True},
        augment="speedrun",
    ),
    "tiny_vgg": Preset(
        {
            "name": "tiny_vgg", "input": [3, 64, 64], "num_classes": 10,
            "layers": [
                _conv(10), _conv(10), _pool(), _conv(10), _conv(10), _pool(),
                {"type": "flatten"}, {"type": "dense", "units": 10},
            ],
        },
    ),
}, SpecError)


def get_preset_info(name: str, lang: str = DEFAULT) -> Preset:
    """The preset entry for a name ('fashion-cnn' and 'Fashion_CNN' both work), its
    description in ``lang``."""
    key = PRESETS.name_of(name)
    return replace(PRESETS[key], description=text(f"preset.{key}", lang))


def get_preset(name: str) -> dict:
    """A fresh copy of a preset's spec, safe to edit."""
    return copy.deepcopy(get_preset_info(name).spec)
