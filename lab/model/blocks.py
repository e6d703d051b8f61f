"""Layers that are small networks of their own: the residual block (ResNet), and the
ideas the lecture's later architectures add. Each is one spec layer with exact
shape, parameter and memory rules, built as one module."""

from __future__ import annotations

import math

import torch
from torch import nn

from lab.model.base import LayerType, Param, Shape


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
