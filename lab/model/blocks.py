"""Layers that are small networks of their own: the residual block (ResNet), the inception
module (GoogLeNet), the dense block and transition layer (DenseNet). Each is one spec layer
with exact shape, parameter and memory rules, built as one module whose parameters come in
torchvision's order, so tests/test_zoo.py can load torchvision's weights into the lab's nets."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from lab.model.base import LayerType, Param, Shape, SpecError


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
    makes_features = True
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

    def kept_values(self, in_shape: Shape, out_shape: Shape, p: dict) -> int:
        """conv1, bn1, relu, conv2, bn2 and the shortcut, each as large as the block's output."""
        return 6 * math.prod(out_shape)

    def weighted_outputs(self, in_shape: Shape, out_shape: Shape, p: dict) -> int:
        """conv1, bn1, conv2, bn2 and, when it projects, a 1x1 conv and its bn."""
        return (6 if self._projects(in_shape, p) else 4) * math.prod(out_shape)

    def build(self, in_shape: Shape, p: dict) -> nn.Module:
        return ResidualBlock(in_shape[0], p["filters"], p["stride"])


def conv_bn_relu(in_ch: int, out_ch: int, kernel: int, padding: int = 0) -> nn.Sequential:
    """GoogLeNet's BasicConv2d: conv without bias (batchnorm's β is the bias), batchnorm with torchvision's
    eps 0.001, ReLU; named children so a torchvision checkpoint's tensors map one to one."""
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(in_ch, out_ch, kernel, padding=padding, bias=False),
        bn=nn.BatchNorm2d(out_ch, eps=0.001),
        relu=nn.ReLU(),
    ))


class InceptionBlock(nn.Module):
    """Four parallel branches over the same input, concatenated (Szegedy et al., 2015): 1x1, 1x1 -> 3x3,
    1x1 -> wide (5x5 in the paper, 3x3 in torchvision's GoogLeNet), and 3x3 max pool -> 1x1. Every branch
    keeps the map size, so only the channel counts add up."""

    def __init__(self, in_ch: int, ch1x1: int, ch3x3_reduce: int, ch3x3: int, wide_reduce: int, wide: int,
                 pool_proj: int, wide_kernel: int = 5):
        super().__init__()
        self.branch1 = conv_bn_relu(in_ch, ch1x1, 1)
        self.branch2 = nn.Sequential(conv_bn_relu(in_ch, ch3x3_reduce, 1),
                                     conv_bn_relu(ch3x3_reduce, ch3x3, 3, padding=1))
        self.branch3 = nn.Sequential(conv_bn_relu(in_ch, wide_reduce, 1),
                                     conv_bn_relu(wide_reduce, wide, wide_kernel, padding=wide_kernel // 2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     conv_bn_relu(in_ch, pool_proj, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]  # each (B, width, H, W)
        return torch.cat(branches, 1)  # (B, ch1x1 + ch3x3 + wide + pool_proj, H, W)


class Inception(LayerType):
    name, title = "inception", "Inception module"
    makes_features = True
    params = {
        "ch1x1": Param(64, "int", "output channels of the 1x1 branch", 1, 4096),
        "ch3x3_reduce": Param(96, "int", "channels of the 1x1 convolution before the 3x3 one", 1, 4096),
        "ch3x3": Param(128, "int", "output channels of the 3x3 branch", 1, 4096),
        "wide_reduce": Param(16, "int", "channels of the 1x1 convolution before the wide one", 1, 4096),
        "wide": Param(32, "int", "output channels of the wide branch", 1, 4096),
        "wide_kernel": Param("5x5", "choice", "the wide branch's kernel: 5x5 as in the paper, 3x3 as "
                             "torchvision's GoogLeNet", choices=("5x5", "3x3")),
        "pool_proj": Param(32, "int", "output channels of the 1x1 convolution after the 3x3 max pool", 1, 4096),
    }

    @staticmethod
    def kernel(p: dict) -> int:
        """The wide branch's kernel side: 5 for '5x5'."""
        return int(p["wide_kernel"][0])

    @staticmethod
    def widths(p: dict) -> tuple[int, ...]:
        """Output channels of the six conv-batchnorm-ReLU units, branch by branch."""
        return p["ch1x1"], p["ch3x3_reduce"], p["ch3x3"], p["wide_reduce"], p["wide"], p["pool_proj"]

    def output_shape(self, in_shape: Shape, p: dict) -> Shape:
        _, h, w = in_shape
        return (p["ch1x1"] + p["ch3x3"] + p["wide"] + p["pool_proj"], h, w)

    def _weights(self, in_ch: int, p: dict) -> int:
        """Convolution weights, which are also the multiply-accumulates per output position."""
        k = self.kernel(p)
        return (in_ch * p["ch1x1"] + in_ch * p["ch3x3_reduce"] + p["ch3x3_reduce"] * 9 * p["ch3x3"]
                + in_ch * p["wide_reduce"] + p["wide_reduce"] * k * k * p["wide"] + in_ch * p["pool_proj"])

    def num_params(self, in_shape: Shape, p: dict) -> int:
        return self._weights(in_shape[0], p) + 2 * sum(self.widths(p))  # six batchnorms: γ and β

    def macs(self, in_shape: Shape, out_shape: Shape, p: dict) -> int:
        return in_shape[1] * in_shape[2] * self._weights(in_shape[0], p)

    def kept_values(self, in_shape: Shape, out_shape: Shape, p: dict) -> int:
        """Conv, batchnorm and ReLU outputs of the six units, the branch's pooled input, the concatenation."""
        c, h, w = in_shape
        return h * w * (3 * sum(self.widths(p)) + c + out_shape[0])

    def weighted_outputs(self, in_shape: Shape, out_shape: Shape, p: dict) -> int:
        """Each unit's convolution and batchnorm."""
        return in_shape[1] * in_shape[2] * 2 * sum(self.widths(p))

    def build(self, in_shape: Shape, p: dict) -> nn.Module:
        return InceptionBlock(in_shape[0], *self.widths(p), wide_kernel=self.kernel(p))


def dense_layer(in_ch: int, growth_rate: int, bn_size: int) -> nn.Sequential:
    """DenseNet-BC's layer (torchvision's _DenseLayer): BN-ReLU-1x1 conv to bn_size*growth_rate maps (the
    bottleneck), BN-ReLU-3x3 conv to growth_rate new maps."""
    width = bn_size * growth_rate
    return nn.Sequential(OrderedDict(
        norm1=nn.BatchNorm2d(in_ch), relu1=nn.ReLU(), conv1=nn.Conv2d(in_ch, width, 1, bias=False),
        norm2=nn.BatchNorm2d(width), relu2=nn.ReLU(), conv2=nn.Conv2d(width, growth_rate, 3, padding=1, bias=False),
    ))


class DenseBlock(nn.Module):
    """Each layer sees every earlier map, concatenated, and adds growth_rate maps (Huang et al., 2017)."""

    def __init__(self, in_ch: int, layers: int, growth_rate: int, bn_size: int):
        super().__init__()
        self.layers = nn.ModuleList(dense_layer(in_ch + i * growth_rate, growth_rate, bn_size) for i in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]  # (B, in_ch, H, W), then (B, growth_rate, H, W) per layer
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)  # (B, in_ch + layers * growth_rate, H, W)


class DenseBlockType(LayerType):
    name, title = "dense_block", "Dense block"
    makes_features = True
    params = {
        "layers": Param(6, "int", "layers in the block, each adding growth_rate maps", 1, 64),
        "growth_rate": Param(32, "int", "new maps per layer", 1, 512),
        "bn_size": Param(4, "int", "bottleneck: the 1x1 convolution makes bn_size * growth_rate maps", 1, 16),
    }

    @staticmethod
    def summed_inputs(in_ch: int, p: dict) -> int:
        """Input channels of all layers together: in_ch + (in_ch + g) + ... + (in_ch + (layers-1)*g)."""
        layers, g = p["layers"], p["growth_rate"]
        return layers * in_ch + g * layers * (layers - 1) // 2

    def output_shape(self, in_shape: Shape, p: dict) -> Shape:
        c, h, w = in_shape
        return (c + p["layers"] * p["growth_rate"], h, w)

    def num_params(self, in_shape: Shape, p: dict) -> int:
        width, g = p["bn_size"] * p["growth_rate"], p["growth_rate"]
        per_layer = 2 * width + width * 9 * g  # norm2 and conv2, the same in every layer
        return (2 + width) * self.summed_inputs(in_shape[0], p) + p["layers"] * per_layer  # norm1, conv1: grow

    def macs(self, in_shape: Shape, out_shape: Shape, p: dict) -> int:
        width, g = p["bn_size"] * p["growth_rate"], p["growth_rate"]
        summed = self.summed_inputs(in_shape[0], p)
        return in_shape[1] * in_shape[2] * (width * summed + p["layers"] * width * 9 * g)

    def kept_values(self, in_shape: Shape, out_shape: Shape, p: dict) -> int:
        """Per layer its concatenated input, norm1 and relu1 (as wide), conv1, norm2 and relu2 (bottleneck
        wide), conv2; then the block's concatenation."""
        width, g = p["bn_size"] * p["growth_rate"], p["growth_rate"]
        per_layer_fixed = 3 * width + g
        h, w = in_shape[1:]
        return h * w * (3 * self.summed_inputs(in_shape[0], p) + p["layers"] * per_layer_fixed + out_shape[0])

    def weighted_outputs(self, in_shape: Shape, out_shape: Shape, p: dict) -> int:
        """norm1 (as wide as the layer's input), conv1 and norm2 (bottleneck wide), conv2 (growth_rate)."""
        width, g = p["bn_size"] * p["growth_rate"], p["growth_rate"]
        h, w = in_shape[1:]
        return h * w * (self.summed_inputs(in_shape[0], p) + p["layers"] * (2 * width + g))

    def build(self, in_shape: Shape, p: dict) -> nn.Module:
        return DenseBlock(in_shape[0], p["layers"], p["growth_rate"], p["bn_size"])


def _compression(name: str, value: Any) -> float:
    """A fraction in (0, 1]: 1 keeps every channel (DenseNet), 0.5 halves them (DenseNet-BC)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise SpecError(f"{name} must be a number above 0 and at most 1, got {value!r}")
    return float(value)


class Transition(LayerType):
    name, title = "transition", "Transition layer"
    makes_features = True
    params = {
        "compression": Param(0.5, "custom", "fraction of channels kept: 0.5 halves them (DenseNet-BC), 1 keeps all",
                             check=_compression),
    }

    @staticmethod
    def channels(in_ch: int, p: dict) -> int:
        return max(1, math.floor(in_ch * p["compression"]))

    def output_shape(self, in_shape: Shape, p: dict) -> Shape:
        c, h, w = in_shape
        if h < 2 or w < 2:
            raise SpecError(f"halves a {h}x{w} map with its 2x2 average pool; "
                            "remove this transition layer or pool less before it")
        return (self.channels(c, p), h // 2, w // 2)

    def num_params(self, in_shape: Shape, p: dict) -> int:
        c = in_shape[0]
        return 2 * c + c * self.channels(c, p)  # batchnorm, 1x1 conv without bias

    def macs(self, in_shape: Shape, out_shape: Shape, p: dict) -> int:
        c, h, w = in_shape
        return h * w * c * out_shape[0]  # the 1x1 conv runs at full size, before the pool

    def kept_values(self, in_shape: Shape, out_shape: Shape, p: dict) -> int:
        """batchnorm and ReLU (as wide as the input), the conv (before pooling), the pooled output."""
        c, h, w = in_shape
        return h * w * (2 * c + out_shape[0]) + math.prod(out_shape)

    def weighted_outputs(self, in_shape: Shape, out_shape: Shape, p: dict) -> int:
        c, h, w = in_shape
        return h * w * (c + out_shape[0])

    def build(self, in_shape: Shape, p: dict) -> nn.Module:
        c, out = in_shape[0], self.channels(in_shape[0], p)
        return nn.Sequential(OrderedDict(  # torchvision's _Transition, with its names
            norm=nn.BatchNorm2d(c), relu=nn.ReLU(), conv=nn.Conv2d(c, out, 1, bias=False), pool=nn.AvgPool2d(2, 2),
        ))
