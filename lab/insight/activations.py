"""What each convolution computes for one image, and what the first layer looks for.

    conv_feature_maps(model, x_norm)      # every conv layer's output maps for one image
    maps_grid(layer.maps)                 # those maps as one picture, a tile per channel
    filters_grid(model)                   # the first conv layer's kernels as little images

Pictures are RGB uint8 arrays ready for ``st.image``; every tile is enlarged with
nearest-neighbour so 4x4 maps and 3x3 kernels stay visible.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lab.insight.errors import InsightError
from lab.insight.hooks import capture, children, get_layer, makes_features
from lab.insight.overlay import colorize
from lab.model.spec import eval_mode
from lab.plots.images import display_scale, tile

MAX_MAPS = 16  # channels shown per layer: enough to see variety, few enough to read
GRID_COLUMNS = 8
TILE_SIDE = 64  # on-screen pixels a map or kernel is enlarged towards


@dataclass
class LayerMaps:
    """One conv layer's output for one image (the first ``MAX_MAPS`` channels of it)."""

    name: str  # layer name in the built model, e.g. 'conv2d_2'
    maps: np.ndarray  # float32 (k, h, w), k <= channels
    channels: int  # channels the layer has


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the model's layers that compute feature maps (convolutions and blocks), in order."""
    return [name for name in children(model) if makes_features(name)]


def conv_feature_maps(model: nn.Module, x_norm: torch.Tensor, max_maps: int = MAX_MAPS) -> list[LayerMaps]:
    """Each conv layer's output maps for one normalised image (1, C, H, W), after its activation.

    One forward pass with a hook on every conv layer; the hooks are released and the
    train mode restored whatever happens.
    """
    if x_norm.dim() != 4 or len(x_norm) != 1:
        raise InsightError(f"expected one image (1, C, H, W), got shape {tuple(x_norm.shape)}")
    names = conv_layers(model)
    device = next(model.parameters()).device
    with torch.inference_mode(), eval_mode(model), ExitStack() as hooks:
        seen = [hooks.enter_context(capture(get_layer(model, name))) for name in names]
        model(x_norm.to(device))
        outputs = [s.output[0].float().cpu() for s in seen]  # (channels, h, w) each
    return [LayerMaps(name, out[:max_maps].numpy(), int(out.shape[0])) for name, out in zip(names, outputs)]


def _tiles(images: np.ndarray, ncols: int) -> np.ndarray:
    """(N, H, W, 3) uint8 -> one grid picture, tiles enlarged towards ``TILE_SIDE`` pixels."""
    batch = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))  # (N, 3, H, W)
    return tile(batch, min(ncols, len(images)), scale=display_scale(images.shape[1], TILE_SIDE))


def maps_grid(maps: np.ndarray, ncols: int = GRID_COLUMNS, cmap: str = "viridis") -> np.ndarray:
    """A layer's maps (k, h, w) as one picture, coloured by magnitude on a scale shared by
    the layer: a dark tile is a channel this image hardly excites (after ReLU: a "dead" one)."""
    top = float(np.abs(maps).max()) if maps.size else 0.0
    scaled = np.abs(maps) / top if top > 0 else np.zeros_like(maps)
    return _tiles(np.stack([colorize(m, cmap) for m in scaled]), ncols)


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The convolution that looks at the pixels themselves."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise InsightError("the model has no convolution, so it has no filters to show")
    return conv


def filters_grid(model: nn.Module, ncols: int = GRID_COLUMNS) -> np.ndarray:
    """The first conv layer's kernels as little images, each stretched to its own [0, 1]
    range: RGB for colour input, grey otherwise (the channels averaged)."""
    weight = first_conv(model).weight.detach().float().cpu()  # (F, C, kh, kw)
    if weight.shape[1] != 3:
        weight = weight.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    low = weight.amin(dim=(1, 2, 3), keepdim=True)
    span = (weight.amax(dim=(1, 2, 3), keepdim=True) - low).clamp_min(1e-12)
    pictures = ((weight - low) / span * 255).round().to(torch.uint8)  # (F, 3, kh, kw)
    return _tiles(pictures.permute(0, 2, 3, 1).numpy(), ncols)
