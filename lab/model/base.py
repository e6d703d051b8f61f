"""What every layer type is: the error a spec raises, a parameter's schema, and the
:class:`LayerType` base that the plain layers (:mod:`lab.model.layers`), the
blocks (:mod:`lab.model.blocks`) and the pretrained backbones
(:mod:`lab.model.backbone`) fill in.

A layer type answers from numbers alone (shape, parameter count, cost, memory),
so the builder page can answer instantly; ``tests/test_spec.py`` proves the
answers equal the built modules. Everything that differs between types lives on
the type, so no other module asks "is this a residual block?".

Shapes are tuples: ``(C, H, W)`` for feature maps, ``(F,)`` for flat vectors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from lab.registry import Registry, fold

Shape = tuple[int, ...]


class SpecError(ValueError):
    """The one error a model spec can raise: names the layer and what to change."""

    def __init__(self, message: str, index: int | None = None, layer_type: str | None = None):
        self.index = index  # 1-based position in the spec's layer list, None for the whole spec
        self.layer_type = layer_type
        self.reason = message
        where = f"layer {index} ({layer_type}): " if index is not None else ""
        super().__init__(where + message)


# ---------------------------------------------------------------- activations

ACTIVATIONS: Registry[Callable[[], nn.Module]] = Registry("activation", {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softmax": lambda: nn.Softmax(dim=1),
}, SpecError, aliases={"swish": "silu"}, also=("none",))
_LINEAR = ("none", "linear", "")  # no activation: a layer dict holds None, so these stay out of the table


def normalize_activation(name: Any) -> str | None:
    """Canonical activation name, ``None`` for linear; refuses unknown names."""
    if name is None:
        return None
    if not isinstance(name, str):
        raise SpecError(f"activation must be a name, got {name!r}")
    return None if fold(name) in _LINEAR else ACTIVATIONS.name_of(name)


def make_activation(name: str | None) -> nn.Module:
    """Module for a canonical activation name (identity for ``None``)."""
    return nn.Identity() if name is None else ACTIVATIONS[name]()


# ---------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Param:
    """One parameter of a layer type: its default, kind and the range it may take."""

    default: Any
    kind: str  # "int" | "float" | "bool" | "choice" | "activation" | "padding" | "custom"
    help: str
    low: float | None = None  # inclusive lower bound
    high: float | None = None  # exclusive upper bound (inclusive for ints)
    choices: tuple[str, ...] = ()  # the names a "choice" takes
    check: Callable[[str, Any], Any] | None = None  # a "custom" value's own rule: canonical value or SpecError


MAX_PADDING = 31  # as the largest kernel: more only adds a frame of zeros, and huge maps


def coerce(name: str, value: Any, param: Param) -> Any:
    """Check one parameter value against its schema; returns the canonical value."""
    if param.kind == "activation":
        return normalize_activation(value)
    if param.kind == "custom" and param.check is not None:
        return param.check(name, value)
    if param.kind == "bool":
        if not isinstance(value, bool):
            raise SpecError(f"{name} must be true or false, got {value!r}")
        return value
    if param.kind == "choice":
        match = next((c for c in param.choices if isinstance(value, str) and fold(value) == fold(c)), None)
        if match is None:
            raise SpecError(f"{name} must be one of {', '.join(c or repr(c) for c in param.choices)}; got {value!r}")
        return match
    if param.kind == "padding":
        if isinstance(value, str) and value.strip().lower() in ("same", "valid"):
            return value.strip().lower()
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PADDING:
            raise SpecError(f"padding must be 'same', 'valid' or a pixel count from 0 to {MAX_PADDING}, "
                            f"got {value!r}")
        return value
    if param.kind == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{name} must be a whole number, got {value!r}")
        if param.low is not None and value < param.low:
            raise SpecError(f"{name} must be at least {param.low:g}, got {value}")
        if param.high is not None and value > param.high:
            raise SpecError(f"{name} must be at most {param.high:g}, got {value}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(f"{name} must be a number, got {value!r}")
    if param.low is not None and value < param.low or param.high is not None and value >= param.high:
        raise SpecError(f"{name} must be in [{param.low:g}, {param.high:g}), got {value}")
    return float(value)


class LayerType:
    """Base: a layer type knows its parameters and how shapes, counts and modules follow.

    Subclasses override ``output_shape``, ``num_params`` and ``build``; ``macs``
    defaults to zero: only weight x input products count, so pooling, normalisation
    and activations are free (torchinfo also counts bias adds and batchnorm's 2*C;
    ``Summary.total_macs`` says how the two differ).
    """

    name: str = ""
    title: str = ""
    params: dict[str, Param] = {}
    needs_maps = True  # input must be (C, H, W)
    makes_features = False  # computes new feature maps (conv, blocks): what CAM and the map viewer look at
    takes_images = False  # works on the images themselves (a pretrained backbone), so only as the first layer

    def check_input(self, in_shape: Shape) -> None:
        if self.needs_maps and len(in_shape) != 3:
            raise SpecError(
                f"needs feature maps (C, H, W) but gets a flat vector of {in_shape[0]}; "
                "move it before the flatten / global_avg_pool layer"
            )

    def output_shape(self, in_shape: Shape, p: dict) -> Shape:
        return in_shape

    def num_params(self, in_shape: Shape, p: dict) -> int:
        return 0

    def macs(self, in_shape: Shape, out_shape: Shape, p: dict) -> int:
        return 0

    def kept_values(self, in_shape: Shape, out_shape: Shape, p: dict) -> int:
        """Values per image a training step keeps for this layer (lab.model.budget): its output, and for a
        block every inner map as well, since autograd saves them for backward."""
        return math.prod(out_shape)

    def weighted_outputs(self, in_shape: Shape, out_shape: Shape, p: dict) -> int:
        """Values per image torchinfo's "Forward/backward pass size" counts: the output of every module with
        weights (see lab.model.spec.activation_values)."""
        return math.prod(out_shape) if self.num_params(in_shape, p) else 0

    def notes(self, in_shape: Shape, p: dict, lang: str) -> list[str]:
        """What the model summary should tell about this layer beyond its numbers (in ``lang``), such as what a
        backbone does to the images; most layers have nothing to add."""
        return []

    def build(self, in_shape: Shape, p: dict) -> nn.Module:
        raise NotImplementedError


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same': output ceil(size/stride), extra pixel on the bottom/right. Shared by conv2d
    and the EfficientNet-Lite backbone, whose TensorFlow-trained weights expect exactly this padding."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def format_shape(shape: Shape) -> str:
    """'32x28x28' for maps, '100' for vectors."""
    return "x".join(str(d) for d in shape)
