"""Turn uint8 image tensors into pictures for the pages and reports."""

from __future__ import annotations

import numpy as np
import torch


def to_hwc(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) uint8 tensor -> (H, W, C) array, grey images expanded to RGB."""
    array = image.detach().cpu().numpy().transpose(1, 2, 0)
    return np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array


def upscale(array: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement, so 8x8 or 28x28 images stay crisp on screen."""
    return array.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else array


def display_scale(height: int, target: int = 96) -> int:
    """Whole-number zoom that brings an image of this height near ``target`` pixels."""
    return max(1, round(target / max(height, 1)))


def tile(images: torch.Tensor, ncols: int, pad: int = 2, scale: int | None = None) -> np.ndarray:
    """(N, C, H, W) uint8 -> one RGB grid image (rows of ``ncols``), white gaps between tiles."""
    n, _, h, w = images.shape
    scale = scale or display_scale(h)
    nrows = -(-n // ncols)
    th, tw = h * scale + pad, w * scale + pad
    grid = np.full((nrows * th + pad, ncols * tw + pad, 3), 255, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, ncols)
        grid[pad + r * th: pad + r * th + h * scale, pad + c * tw: pad + c * tw + w * scale] = upscale(
            to_hwc(images[i]), scale)
    return grid
