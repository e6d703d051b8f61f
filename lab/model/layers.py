"""Layer registry: one table from a layer type name to its parameters, shape rule,
parameter count, cost and ``nn.Module`` builder.

The spec module walks a model spec through this table. Shape inference and
parameter counts are computed here from numbers alone, so the builder page can
answer instantly; ``tests/test_spec.py`` proves they equal the built modules.

Shapes are tuples: ``(C, H, W)`` for feature maps, ``(F,)`` for flat vectors.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import torch
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
    kind: str  # "int" | "float" | "activation" | "padding"
    help: str
    low: float | None = None  # inclusive lower bound
    high: float | None = None  # exclusive upper bound (inclusive for ints)


MAX_PADDING = 31  # as the largest kernel: more only adds a frame of zeros, and huge maps


def _coerce(name: str, value: Any, param: Param) -> Any:
    """Check one parameter value against its schema; returns the canonical value."""
    if param.kind == "activation":
        return normalize_activation(value)
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


# ---------------------------------------------------------------- layer types


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

    def build(self, in_shape: Shape, p: dict) -> nn.Module:
        raise NotImplementedError


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same': output ceil(size/stride), extra pixel on the bottom/right."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + pad - kernel) // stride + 1


class Conv2d(LayerType):
    name, title = "conv2d", "Convolution"
    params = {
        "filters": Param(32, "int", "number of output channels", 1, 4096),
        "kernel": Param(3, "int", "kernel side in pixels", 1, 31),
        "stride": Param(1, "int", "step between kernel positions", 1, 16),
        "padding": Param("same", "padding", "'same' keeps the size (at stride 1), 'valid' adds none, or pixels"),
        "activation": Param("relu", "activation", "applied after the convolution"),
    }

    def _pads(self, in_shape: Shape, p: dict) -> tuple[tuple[int, int], tuple[int, int]]:
        """(top, bottom), (left, right) padding in pixels."""
        _, h, w = in_shape
        if p["padding"] == "same":
            return _same_padding(h, p["kernel"], p["stride"]), _same_padding(w, p["kernel"], p["stride"])
        pad = 0 if p["padding"] == "valid" else p["padding"]
        return (pad, pad), (pad, pad)

    def output_shape(self, in_shape: Shape, p: dict) -> Shape:
        _, h, w = in_shape
        (top, bottom), (left, right) = self._pads(in_shape, p)
        k, s = p["kernel"], p["stride"]
        if h + top + bottom < k or w + left + right < k:
            raise SpecError(
                f"kernel {k}x{k} is larger than its {h}x{w} input (padding {p['padding']!r}); "
                "use a smaller kernel, padding 'same', or fewer pooling layers before it"
            )
        return (p["filters"], _conv_out(h, k, s, top + bottom), _conv_out(w, k, s, left + right))

    def num_params(self, in_shape: Shape, p: dict) -> int:
        return in_shape[0] * p["kernel"] ** 2 * p["filters"] + p["filters"]

    def macs(self, in_shape: Shape, out_shape: Shape, p: dict) -> int:
        return out_shape[1] * out_shape[2] * p["filters"] * in_shape[0] * p["kernel"] ** 2

    def build(self, in_shape: Shape, p: dict) -> nn.Module:
        (top, bottom), (left, right) = self._pads(in_shape, p)
        parts: OrderedDict[str, nn.Module] = OrderedDict()
        symmetric = top == bottom and left == right
        if not symmetric:
            parts["pad"] = nn.ZeroPad2d((left, right, top, bottom))
        parts["conv"] = nn.Conv2d(
            in_shape[0], p["filters"], p["kernel"], p["stride"], padding=(top, left) if symmetric else 0
        )
        parts["act"] = make_activation(p["activation"])
        return nn.Sequential(parts)


class _Pool2d(LayerType):
    params = {
        "size": Param(2, "int", "window side in pixels", 1, 64),
        "stride": Param(None, "int", "step between windows (default: the window size)", 1, 64),
    }
    module: type[nn.Module] = nn.MaxPool2d

    def output_shape(self, in_shape: Shape, p: dict) -> Shape:
        c, h, w = in_shape
        size, stride = p["size"], p["stride"] or p["size"]
        if h < size or w < size:
            raise SpecError(
                f"pools a {h}x{w} map with a {size}x{size} window; "
                "remove this pooling layer, use a smaller size, or pool less before it"
            )
        return (c, (h - size) // stride + 1, (w - size) // stride + 1)

    def build(self, in_shape: Shape, p: dict) -> nn.Module:
        return self.module(p["size"], p["stride"] or p["size"])


class MaxPool2d(_Pool2d):
    name, title, module = "maxpool2d", "Max pooling", nn.MaxPool2d


class AvgPool2d(_Pool2d):
    name, title, module = "avgpool2d", "Average pooling", nn.AvgPool2d


class BatchNorm(LayerType):
    name, title = "batchnorm", "Batch normalisation"
    needs_maps = False

    def num_params(self, in_shape: Shape, p: dict) -> int:
        return 2 * in_shape[0]

    def build(self, in_shape: Shape, p: dict) -> nn.Module:
        return nn.BatchNorm2d(in_shape[0]) if len(in_shape) == 3 else nn.BatchNorm1d(in_shape[0])


class Dropout(LayerType):
    name, title = "dropout", "Dropout"
    params = {"rate": Param(0.5, "float", "fraction of activations zeroed while training", 0.0, 1.0)}
    needs_maps = False

    def build(self, in_shape: Shape, p: dict) -> nn.Module:
        return nn.Dropout(p["rate"])


class Flatten(LayerType):
    name, title = "flatten", "Flatten"
    needs_maps = False

    def output_shape(self, in_shape: Shape, p: dict) -> Shape:
        return (math.prod(in_shape),)

    def build(self, in_shape: Shape, p: dict) -> nn.Module:
        return nn.Flatten()


class GlobalAvgPool(LayerType):
    name, title = "global_avg_pool", "Global average pooling"

    def output_shape(self, in_shape: Shape, p: dict) -> Shape:
        return (in_shape[0],)

    def build(self, in_shape: Shape, p: dict) -> nn.Module:
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())


class Dense(LayerType):
    name, title = "dense", "Dense (fully connected)"
    params = {
        "units": Param(128, "int", "number of output units", 1, 65536),
        "activation": Param("relu", "activation", "applied after the layer (never on the output layer)"),
    }
    needs_maps = False

    def check_input(self, in_shape: Shape) -> None:
        if len(in_shape) != 1:
            raise SpecError(
                f"needs a flat vector but gets feature maps {format_shape(in_shape)}; "
                "add a flatten or global_avg_pool layer before it"
            )

    def output_shape(self, in_shape: Shape, p: dict) -> Shape:
        return (p["units"],)

    def num_params(self, in_shape: Shape, p: dict) -> int:
        return in_shape[0] * p["units"] + p["units"]

    def macs(self, in_shape: Shape, out_shape: Shape, p: dict) -> int:
        return in_shape[0] * p["units"]

    def build(self, in_shape: Shape, p: dict) -> nn.Module:
        parts = OrderedDict(linear=nn.Linear(in_shape[0], p["units"]), act=make_activation(p["activation"]))
        return nn.Sequential(parts)


class Activation(LayerType):
    name, title = "activation", "Activation"
    params = {"function": Param("relu", "activation", "the non-linearity")}
    needs_maps = False

    def build(self, in_shape: Shape, p: dict) -> nn.Module:
        return make_activation(p["function"])


class ResidualBlock(nn.Module):
    """Two 3x3 conv + batchnorm with a skip connection (He et al., 2016)."""

    def __init__(self, in_ch: int, filters: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, filters, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(filters)
        self.conv2 = nn.Conv2d(filters, filters, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(filters)
        self.shortcut = nn.Identity()
        if stride != 1 or in_ch != filters:  # 1x1 projection so the sum has matching shapes
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, filters, 1, stride, bias=False), nn.BatchNorm2d(filters))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))  # (B, F, H/s, W/s)
        out = self.bn2(self.conv2(out))  # (B, F, H/s, W/s)
        return torch.relu(out + self.shortcut(x))


class Residual(LayerType):
    name, title = "residual", "Residual block"
    params = {
        "filters": Param(64, "int", "output channels of both convolutions", 1, 4096),
        "stride": Param(1, "int", "2 halves the map size (first conv and the projection)", 1, 4),
    }

    def output_shape(self, in_shape: Shape, p: dict) -> Shape:
        _, h, w = in_shape
        s = p["stride"]
        return (p["filters"], (h - 1) // s + 1, (w - 1) // s + 1)

    def _projects(self, in_shape: Shape, p: dict) -> bool:
        return p["stride"] != 1 or in_shape[0] != p["filters"]

    def num_params(self, in_shape: Shape, p: dict) -> int:
        c, f = in_shape[0], p["filters"]
        convs = c * 9 * f + f * 9 * f + 4 * f  # two convs without bias, two batchnorms
        return convs + (c * f + 2 * f if self._projects(in_shape, p) else 0)

    def macs(self, in_shape: Shape, out_shape: Shape, p: dict) -> int:
        c, f = in_shape[0], p["filters"]
        pixels = out_shape[1] * out_shape[2]
        return pixels * f * (9 * c + 9 * f + (c if self._projects(in_shape, p) else 0))

    def build(self, in_shape: Shape, p: dict) -> nn.Module:
        return ResidualBlock(in_shape[0], p["filters"], p["stride"])


LAYER_TYPES: Registry[LayerType] = Registry("layer type", {
    t.name: t
    for t in (
        Conv2d(), MaxPool2d(), AvgPool2d(), BatchNorm(), Dropout(), Flatten(),
        GlobalAvgPool(), Dense(), Activation(), Residual(),
    )
}, SpecError, aliases={  # the names Keras and PyTorch users bring along
    "conv": "conv2d", "convolution": "conv2d", "maxpool": "maxpool2d", "max_pooling2d": "maxpool2d",
    "avgpool": "avgpool2d", "average_pooling2d": "avgpool2d", "bn": "batchnorm", "batch_normalization": "batchnorm",
    "linear": "dense", "fc": "dense", "gap": "global_avg_pool", "global_average_pooling2d": "global_avg_pool",
    "res": "residual",
})


def get_layer_type(name: Any) -> LayerType:
    """Layer type for a name (case, '-', '_', spaces and aliases such as 'conv' or 'fc' accepted)."""
    return LAYER_TYPES.lookup(name)


def normalize_layer(raw: Any) -> dict:
    """Canonical layer dict: known type name, every parameter present and valid."""
    if not isinstance(raw, dict):
        raise SpecError(f"a layer must be an object like {{'type': 'conv2d'}}, got {raw!r}")
    kind = get_layer_type(raw.get("type"))
    unknown = sorted(set(raw) - set(kind.params) - {"type"})
    if unknown:
        valid = ", ".join(kind.params) or "none"
        raise SpecError(f"unknown parameter(s) {', '.join(unknown)}; {kind.name} takes: {valid}")
    layer = {"type": kind.name}
    for key, param in kind.params.items():
        value = raw.get(key, param.default)
        layer[key] = None if value is None and param.default is None else _coerce(key, value, param)
    return layer


def format_shape(shape: Shape) -> str:
    """'32x28x28' for maps, '100' for vectors."""
    return "x".join(str(d) for d in shape)
