"""Named model specs: the architectures students meet in write-ups and courses.

Each preset is a plain spec dict (see :mod:`lab.spec`) plus a line saying where
it comes from and training settings that suit it. ``input`` and ``num_classes``
are the natural dataset's; training on another dataset replaces them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field


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
    description: str
    train: dict = field(default_factory=dict)  # TrainConfig overrides, e.g. {"optimizer": "sgd"}
    augment: str = "none"


PRESETS: dict[str, Preset] = {
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
        "LeCun et al. (1998): two conv + average-pool stages, three dense layers, tanh.",
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
        "The two-conv Fashion-MNIST CNN of the classic write-ups: 333,526 parameters.",
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
        "VGG-style blocks (conv-conv-pool at 32/64/128) with batchnorm and dropout, "
        "as the CIFAR-10 write-ups build it in Keras.",
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
        "Conv blocks -> global average pooling -> dense: the architecture CAM "
        "(Zhou et al., 2016) explains exactly.",
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
        "A small ResNet: three residual blocks with skip connections, then global average pooling.",
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
        "The net of the airbench CIFAR-10 speed runs (Jordan, 2024): three blocks of conv-pool-batchnorm-GELU "
        "and conv-batchnorm-GELU at 64/256/256 filters. Nesterov SGD, one-cycle, label smoothing 0.2, crop + "
        "flip + cutout, flip averaging at evaluation. About 91% on CIFAR-10 in 15 s on a GPU.",
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
        "TinyVGG of the CNN Explainer: two blocks of two 10-filter convs and a pool.",
    ),
}


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def get_preset_info(name: str) -> Preset:
    """The preset entry for a name ('fashion-cnn' and 'Fashion_CNN' both work)."""
    from lab.layers import SpecError

    if _key(name) not in PRESETS:
        raise SpecError(f"unknown preset {name!r}; use one of: {', '.join(PRESETS)}")
    return PRESETS[_key(name)]


def get_preset(name: str) -> dict:
    """A fresh copy of a preset's spec, safe to edit."""
    return copy.deepcopy(get_preset_info(name).spec)
