"""The layer registry: one table from a layer type name to its parameters, shape rule,
parameter count, cost and ``nn.Module`` builder, with the plain layers defined here.

The spec module walks a model spec through this table. The base class and the
parameter schema are in :mod:`lab.model.base`; blocks (residual, inception,
dense) in :mod:`lab.model.blocks`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

from torch import nn

from lab.model.backbone import Backbone
from lab.model.base import (
    ACTIVATIONS,
    LayerType,
    Param,
    Shape,
    SpecError,
    coerce,
    format_shape,
    make_activation,
    normalize_activation,
    same_padding,
)
from lab.model.blocks import (
    DenseBlock,
    DenseBlockType,
    Inception,
    InceptionBlock,
    Residual,
    ResidualBlock,
    Transition,
    conv_bn_relu,
    dense_layer,
)
from lab.model.init import INITS, RUN_CHOICE
from lab.registry import Registry

__all__ = ["ACTIVATIONS", "LAYER_TYPES", "DenseBlock", "InceptionBlock", "LayerType", "Param", "ResidualBlock", "Shape",
           "SpecError", "conv_bn_relu", "dense_layer", "format_shape", "get_layer_type", "make_activation",
           "normalize_activation", "normalize_layer", "pool_out"]


# A conv2d's or dense layer's own weight initialisation (lab.model.init); "" leaves it to the run's.
INIT_PARAM = Param(RUN_CHOICE, "choice", "how its weights start: the run's choice (empty), or default (PyTorch's), "
                   "kaiming (He, for ReLU), xavier (Glorot), normal (std 0.01) or zeros (to see why not)",
                   choices=(RUN_CHOICE, *INITS))


def _conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + pad - kernel) // stride + 1


class Conv2d(LayerType):
    name, title = "conv2d", "Convolution"
    makes_features = True
    params = {
        "filters": Param(32, "int", "number of output channels", 1, 4096),
        "kernel": Param(3, "int", "kernel side in pixels", 1, 31),
        "stride": Param(1, "int", "step between kernel positions", 1, 16),
        "padding": Param("same", "padding", "'same' keeps the size (at stride 1), 'valid' adds none, or pixels"),
        "activation": Param("relu", "activation", "applied after the convolution"),
        "bias": Param(True, "bool", "one learned bias per filter; off before a batchnorm, whose β does that job"),
        "init": INIT_PARAM,
    }

    def _pads(self, in_shape: Shape, p: dict) -> tuple[tuple[int, int], tuple[int, int]]:
        """(top, bottom), (left, right) padding in pixels."""
        _, h, w = in_shape
        if p["padding"] == "same":
            return same_padding(h, p["kernel"], p["stride"]), same_padding(w, p["kernel"], p["stride"])
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
        return in_shape[0] * p["kernel"] ** 2 * p["filters"] + (p["filters"] if p["bias"] else 0)

    def macs(self, in_shape: Shape, out_shape: Shape, p: dict) -> int:
        return out_shape[1] * out_shape[2] * p["filters"] * in_shape[0] * p["kernel"] ** 2

    def build(self, in_shape: Shape, p: dict) -> nn.Module:
        (top, bottom), (left, right) = self._pads(in_shape, p)
        parts: OrderedDict[str, nn.Module] = OrderedDict()
        symmetric = top == bottom and left == right
        if not symmetric:
            parts["pad"] = nn.ZeroPad2d((left, right, top, bottom))
        parts["conv"] = nn.Conv2d(
            in_shape[0], p["filters"], p["kernel"], p["stride"], padding=(top, left) if symmetric else 0, bias=p["bias"]
        )
        parts["act"] = make_activation(p["activation"])
        return nn.Sequential(parts)


def pool_out(size: int, window: int, stride: int, pad: int, ceil: bool) -> int:
    """PyTorch's pooling output side (``pooling_output_shape``): floor, or with ``ceil`` a last partial
    window too, unless that window would start in the right-hand padding."""
    span = size + 2 * pad - window
    out = (-(-span // stride) if ceil else span // stride) + 1
    return out - 1 if ceil and (out - 1) * stride >= size + pad else out


class _Pool2d(LayerType):
    params = {
        "size": Param(2, "int", "window side in pixels", 1, 64),
        "stride": Param(None, "int", "step between windows (default: the window size)", 1, 64),
        "padding": Param(0, "int", "pixels added on each side (at most half the window)", 0, 32),
        "ceil": Param(False, "bool", "round the output size up: a last, partial window counts (ceil_mode)"),
    }
    module: type[nn.Module] = nn.MaxPool2d

    def output_shape(self, in_shape: Shape, p: dict) -> Shape:
        c, h, w = in_shape
        size, stride, pad = p["size"], p["stride"] or p["size"], p["padding"]
        if pad > size // 2:
            raise SpecError(f"padding {pad} is more than half the {size}x{size} window; use at most {size // 2}")
        out_h, out_w = pool_out(h, size, stride, pad, p["ceil"]), pool_out(w, size, stride, pad, p["ceil"])
        if out_h < 1 or out_w < 1:  # without ceil: the window is larger than the padded map
            raise SpecError(
                f"pools a {h}x{w} map with a {size}x{size} window; "
                "remove this pooling layer, use a smaller size, or pool less before it"
            )
        return (c, out_h, out_w)

    def build(self, in_shape: Shape, p: dict) -> nn.Module:
        return self.module(p["size"], p["stride"] or p["size"], p["padding"], ceil_mode=p["ceil"])


class MaxPool2d(_Pool2d):
    name, title, module = "maxpool2d", "Max pooling", nn.MaxPool2d


class AvgPool2d(_Pool2d):
    name, title, module = "avgpool2d", "Average pooling", nn.AvgPool2d


class AdaptiveAvgPool(LayerType):
    name, title = "adaptive_avg_pool", "Adaptive average pooling"
    params = {"size": Param(2, "int", "output side in pixels, whatever the input's", 1, 64)}

    def output_shape(self, in_shape: Shape, p: dict) -> Shape:
        return (in_shape[0], p["size"], p["size"])

    def build(self, in_shape: Shape, p: dict) -> nn.Module:
        return nn.AdaptiveAvgPool2d(p["size"])


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
        "init": INIT_PARAM,
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


LAYER_TYPES: Registry[LayerType] = Registry("layer type", {
    t.name: t
    for t in (
        Conv2d(), MaxPool2d(), AvgPool2d(), AdaptiveAvgPool(), BatchNorm(), Dropout(), Flatten(),
        GlobalAvgPool(), Dense(), Activation(), Residual(), Inception(), DenseBlockType(), Transition(), Backbone(),
    )
}, SpecError, aliases={  # the names Keras and PyTorch users bring along
    "conv": "conv2d", "convolution": "conv2d", "maxpool": "maxpool2d", "max_pooling2d": "maxpool2d",
    "avgpool": "avgpool2d", "average_pooling2d": "avgpool2d", "bn": "batchnorm", "batch_normalization": "batchnorm",
    "linear": "dense", "fc": "dense", "gap": "global_avg_pool", "global_average_pooling2d": "global_avg_pool",
    "res": "residual", "adaptiveavgpool2d": "adaptive_avg_pool", "inception_module": "inception",
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
        layer[key] = None if value is None and param.default is None else coerce(key, value, param)
    return layer
