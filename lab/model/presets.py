"""Named model specs: the architectures students meet in write-ups and courses.

Each preset is a plain spec dict (see :mod:`lab.model.spec`) plus a line saying where
it comes from (``preset.<name>`` in lab/locales, in English and Korean) and training
settings that suit it. ``input`` and ``num_classes``
are the natural dataset's; training on another dataset replaces them.

The lecture's zoo comes twice. The reference presets (``alexnet``, ``vgg16``, ``resnet18``,
``googlenet``, ``densenet121``) are torchvision's nets layer for layer at 3x224x224 and 1,000
classes, with its exact parameter counts (tests/test_zoo.py loads torchvision's weights into
them); alexnet and vgg16 are over a classroom server's parameter limit, so they are for reading
and ``python -m lab summary``. The minis (``alexnet_mini`` ... ``densenet_mini``) keep each
architecture's idea at 28-64 px and train on a CPU; what is new in each family is
``preset.idea.<family>`` in lab/locales.
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


def _conv_bn_relu(filters: int, kernel: int, stride: int = 1, padding: int | str = "same") -> list[dict]:
    """A convolution without bias, its batchnorm and ReLU: the stem of the torchvision nets."""
    conv = {"type": "conv2d", "filters": filters, "kernel": kernel, "stride": stride, "padding": padding,
            "activation": None, "bias": False}
    return [conv, {"type": "batchnorm"}, {"type": "activation", "function": "relu"}]


def _classifier(units: int, classes: int, dropout_first: bool = False) -> list[dict]:
    """AlexNet's and VGG's head: flatten, two wide ReLU dense layers with dropout, the output layer."""
    hidden = [{"type": "dense", "units": units, "activation": "relu"} for _ in range(2)]
    drop = [{"type": "dropout", "rate": 0.5} for _ in range(2)]
    pairs = zip(drop, hidden) if dropout_first else zip(hidden, drop)
    return [{"type": "flatten"}, *(layer for pair in pairs for layer in pair), {"type": "dense", "units": classes}]


def _vgg(widths: list[int | str]) -> list[dict]:
    """VGG's feature stack: 'M' is a 2x2 max pool, a number a 3x3 'same' ReLU convolution."""
    return [_pool() if w == "M" else _conv(int(w)) for w in widths]


def _inception(*widths: int, wide_kernel: str = "5x5") -> dict:
    """An inception module: ch1x1, ch3x3_reduce, ch3x3, wide_reduce, wide, pool_proj, in torchvision's order."""
    names = ("ch1x1", "ch3x3_reduce", "ch3x3", "wide_reduce", "wide", "pool_proj")
    return {"type": "inception", **dict(zip(names, widths)), "wide_kernel": wide_kernel}


def _ceil_pool(size: int = 3) -> dict:
    return {"type": "maxpool2d", "size": size, "stride": 2, "ceil": True}


def _torchvision(name: str, layers: list[dict], family: str) -> Preset:
    """A reference preset: torchvision's net at ImageNet size."""
    spec = {"name": name, "input": [3, 224, 224], "num_classes": 1000, "layers": layers}
    return Preset(spec, family=family, reference=True)


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
    family: str = ""  # the architecture it shows (preset.idea.<family> says what is new in it); "" = none
    reference: bool = False  # torchvision's full-size net, for its numbers: may be over the server's limits
    idea: str = ""  # preset.idea.<family>: filled in by get_preset_info, in the language asked for


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
        family="vgg",
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
        family="resnet",
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
        family="vgg",
    ),
    # -- the galaxy write-up's small CNNs at 64 px (lab.runs.experiment's galaxy-writeup puts them side by side)
    "galaxy_tutorial": Preset(
        {
            "name": "galaxy_tutorial", "input": [3, 64, 64], "num_classes": 10,
            "layers": [
                _conv(16), _pool(), _conv(32), _pool(), _conv(64), _pool(), {"type": "flatten"},
                {"type": "dense", "units": 128, "activation": "relu"},
                {"type": "dense", "units": 10},
            ],
        },
    ),
    "galaxy_bn_gap": Preset(
        {
            "name": "galaxy_bn_gap", "input": [3, 64, 64], "num_classes": 10,
            "layers": [
                *(layer for filters in (32, 64, 128) for layer in (_conv(filters), {"type": "batchnorm"}, _pool())),
                _conv(256), {"type": "batchnorm"},
                {"type": "global_avg_pool"}, {"type": "dropout", "rate": 0.3}, {"type": "dense", "units": 10},
            ],
        },
    ),
    "galaxy_bn_gap_deep": Preset(
        {
            "name": "galaxy_bn_gap_deep", "input": [3, 64, 64], "num_classes": 10,
            "layers": [
                *(layer for filters in (32, 64, 128) for layer in (
                    _conv(filters), {"type": "batchnorm"}, _conv(filters), {"type": "batchnorm"}, _pool())),
                _conv(256), {"type": "batchnorm"}, _conv(256), {"type": "batchnorm"},
                {"type": "global_avg_pool"}, {"type": "dropout", "rate": 0.3}, {"type": "dense", "units": 10},
            ],
        },
    ),
    # -- the minis: each architecture's idea at 28-64 px, trainable on a CPU
    "alexnet_mini": Preset(
        {
            "name": "alexnet_mini", "input": [3, 32, 32], "num_classes": 10,
            "layers": [
                _conv(64, 5, stride=2), {"type": "maxpool2d", "size": 3, "stride": 2},
                _conv(192, 5), {"type": "maxpool2d", "size": 3, "stride": 2},
                _conv(384), _conv(256), _conv(256),
                {"type": "adaptive_avg_pool", "size": 2},
                *_classifier(1024, 10, dropout_first=True),
            ],
        },
        family="alexnet",
    ),
    "vgg11_mini": Preset(
        {
            "name": "vgg11_mini", "input": [3, 32, 32], "num_classes": 10,
            "layers": [
                *_vgg([32, "M", 64, "M", 128, 128, "M", 256, 256, "M", 256, 256]),
                {"type": "adaptive_avg_pool", "size": 2},
                *_classifier(256, 10),
            ],
        },
        family="vgg",
    ),
    "googlenet_mini": Preset(
        {
            "name": "googlenet_mini", "input": [3, 32, 32], "num_classes": 10,
            "layers": [
                *_conv_bn_relu(64, 3),
                _inception(32, 48, 64, 8, 16, 16), _inception(64, 64, 96, 16, 48, 32),
                {"type": "maxpool2d", "size": 3, "stride": 2, "padding": 1},
                _inception(96, 48, 104, 8, 24, 32), _inception(80, 56, 112, 12, 32, 32),
                {"type": "maxpool2d", "size": 3, "stride": 2, "padding": 1},
                _inception(128, 80, 160, 16, 64, 64),
                {"type": "global_avg_pool"}, {"type": "dropout", "rate": 0.4}, {"type": "dense", "units": 10},
            ],
        },
        family="googlenet",
    ),
    "resnet18_cifar": Preset(
        {
            "name": "resnet18_cifar", "input": [3, 32, 32], "num_classes": 10,
            "layers": [
                *_conv_bn_relu(64, 3),
                *({"type": "residual", "filters": f, "stride": s}
                  for f in (64, 128, 256, 512) for s in ((1, 1) if f == 64 else (2, 1))),
                {"type": "global_avg_pool"}, {"type": "dense", "units": 10},
            ],
        },
        train={"optimizer": "sgd", "lr": 0.05, "schedule": "onecycle", "weight_decay": 5e-4},
        family="resnet",
    ),
    "densenet_mini": Preset(
        {
            "name": "densenet_mini", "input": [3, 32, 32], "num_classes": 10,
            "layers": [
                *_conv_bn_relu(24, 3),
                {"type": "dense_block", "layers": 6, "growth_rate": 12, "bn_size": 4},
                {"type": "transition", "compression": 0.5},
                {"type": "dense_block", "layers": 6, "growth_rate": 12, "bn_size": 4},
                {"type": "transition", "compression": 0.5},
                {"type": "dense_block", "layers": 6, "growth_rate": 12, "bn_size": 4},
                {"type": "batchnorm"}, {"type": "activation", "function": "relu"},
                {"type": "global_avg_pool"}, {"type": "dense", "units": 10},
            ],
        },
        family="densenet",
    ),
    # -- the references: torchvision's nets, layer for layer, at ImageNet size
    "alexnet": _torchvision("alexnet", [
        _conv(64, 11, stride=4, padding=2), {"type": "maxpool2d", "size": 3, "stride": 2},
        _conv(192, 5, padding=2), {"type": "maxpool2d", "size": 3, "stride": 2},
        _conv(384), _conv(256), _conv(256), {"type": "maxpool2d", "size": 3, "stride": 2},
        {"type": "adaptive_avg_pool", "size": 6},
        *_classifier(4096, 1000, dropout_first=True),
    ], "alexnet"),
    "vgg16": _torchvision("vgg16", [
        *_vgg([64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]),
        {"type": "adaptive_avg_pool", "size": 7},
        *_classifier(4096, 1000),
    ], "vgg"),
    "resnet18": _torchvision("resnet18", [
        *_conv_bn_relu(64, 7, stride=2, padding=3), {"type": "maxpool2d", "size": 3, "stride": 2, "padding": 1},
        *({"type": "residual", "filters": f, "stride": s}
          for f in (64, 128, 256, 512) for s in ((1, 1) if f == 64 else (2, 1))),
        {"type": "global_avg_pool"}, {"type": "dense", "units": 1000},
    ], "resnet"),
    "googlenet": _torchvision("googlenet", [  # no auxiliary heads; torchvision's 3x3 in the 'wide' branch
        *_conv_bn_relu(64, 7, stride=2, padding=3), _ceil_pool(),
        *_conv_bn_relu(64, 1), *_conv_bn_relu(192, 3), _ceil_pool(),
        *(_inception(*widths, wide_kernel="3x3") for widths in [
            (64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64)]),
        _ceil_pool(),
        *(_inception(*widths, wide_kernel="3x3") for widths in [
            (192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64),
            (112, 144, 288, 32, 64, 64), (256, 160, 320, 32, 128, 128)]),
        _ceil_pool(2),
        *(_inception(*widths, wide_kernel="3x3") for widths in [
            (256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)]),
        {"type": "global_avg_pool"}, {"type": "dropout", "rate": 0.2}, {"type": "dense", "units": 1000},
    ], "googlenet"),
    "densenet121": _torchvision("densenet121", [
        *_conv_bn_relu(64, 7, stride=2, padding=3), {"type": "maxpool2d", "size": 3, "stride": 2, "padding": 1},
        *(layer for i, n in enumerate((6, 12, 24, 16)) for layer in [
            {"type": "dense_block", "layers": n, "growth_rate": 32, "bn_size": 4},
            *([{"type": "transition", "compression": 0.5}] if i < 3 else []),
        ]),
        {"type": "batchnorm"}, {"type": "activation", "function": "relu"},
        {"type": "global_avg_pool"}, {"type": "dense", "units": 1000},
    ], "densenet"),
}, SpecError)


def get_preset_info(name: str, lang: str = DEFAULT) -> Preset:
    """The preset entry for a name ('fashion-cnn' and 'Fashion_CNN' both work), its
    description in ``lang``."""
    key = PRESETS.name_of(name)
    preset = PRESETS[key]
    idea = text(f"preset.idea.{preset.family}", lang) if preset.family else ""
    return replace(preset, description=text(f"preset.{key}", lang), idea=idea)


def get_preset(name: str) -> dict:
    """A fresh copy of a preset's spec, safe to edit."""
    return copy.deepcopy(get_preset_info(name).spec)
