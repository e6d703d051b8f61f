"""Heatmaps as pictures: colour maps and a heatmap blended over its image.

    overlay(image_uint8, heatmap, alpha=0.5, cmap="jet")   # RGB uint8 picture

Display only, apart from the raw maps of :mod:`lab.insight.cam`: CAM heatmaps and
activation maps are values in [0, 1] until one of these turns them into colour.
No matplotlib: the few colour maps are tables here.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lab.insight.errors import InsightError


def _listed(*hex_colours: str) -> list[tuple[list[float], list[float]]]:
    """Evenly spaced colour stops -> per-channel (positions, values in [0, 1])."""
    rgb = np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in hex_colours], dtype=float) / 255
    xs = np.linspace(0, 1, len(hex_colours)).tolist()
    return [(xs, rgb[:, c].tolist()) for c in range(3)]


# Per-channel piecewise-linear colour maps; jet is matplotlib's segment data, viridis and
# inferno are ten evenly spaced samples of matplotlib's tables (close enough for overlays).
COLORMAPS: dict[str, list[tuple[list[float], list[float]]]] = {
    "jet": [([0, 0.35, 0.66, 0.89, 1], [0, 0, 1, 1, 0.5]),
            ([0, 0.125, 0.375, 0.64, 0.91, 1], [0, 0, 1, 1, 0, 0]),
            ([0, 0.11, 0.34, 0.65, 1], [0.5, 1, 1, 0, 0])],
    "viridis": _listed("#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779",
                       "#6ece58", "#b5de2b", "#fde725"),
    "inferno": _listed("#000004", "#1b0c41", "#4a0c6b", "#781c6d", "#a52c60", "#cf4446", "#ed6925",
                       "#fb9b06", "#f7d13d", "#fcffa4"),
    "gray": [([0, 1], [0, 1])] * 3,
}


def colorize(heatmap: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 colours."""
    if cmap not in COLORMAPS:
        raise InsightError(f"unknown colour map {cmap!r}; use one of: {', '.join(COLORMAPS)}")
    values = np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float64)), 0, 1)
    channels = [np.interp(values, xs, ys) for xs, ys in COLORMAPS[cmap]]
    return np.round(np.stack(channels, axis=-1) * 255).astype(np.uint8)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """The heatmap in colour over the image: ``(1 - alpha) * image + alpha * colour``.

    image: uint8 (H, W), (H, W, 1) or (H, W, 3); heatmap: (H, W) in [0, 1], same H, W.
    Returns a new RGB uint8 (H, W, 3) array; the inputs are not changed.
    """
    if not 0 <= alpha <= 1:
        raise InsightError(f"alpha must be in [0, 1], got {alpha!r}")
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 3) or img.dtype != np.uint8:
        raise InsightError(f"image must be uint8 (H, W), (H, W, 1) or (H, W, 3), got {img.dtype} {img.shape}")
    heat = np.asarray(heatmap)
    if heat.shape != img.shape[:2]:
        raise InsightError(f"heatmap {heat.shape} and image {img.shape[:2]} differ in size")
    rgb = np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img
    blended = (1 - alpha) * rgb.astype(np.float32) + alpha * colorize(heat, cmap).astype(np.float32)
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def overlay_samples(images: torch.Tensor, heatmaps: np.ndarray | torch.Tensor, alpha: float = 0.5, scale: int = 1,
                    cmap: str = "jet") -> list[np.ndarray]:
    """Heatmaps (K, H, W) over uint8 images (K, C, H, W), both enlarged ``scale`` times for
    the screen: the images pixel by pixel (crisp), the heatmaps bilinearly (smooth)."""
    from lab.plots.images import to_hwc, upscale

    heat = torch.as_tensor(np.asarray(heatmaps, dtype=np.float32))[:, None]  # (K, 1, H, W)
    if scale > 1:
        heat = F.interpolate(heat, scale_factor=scale, mode="bilinear", align_corners=False)
    return [overlay(upscale(to_hwc(image), scale), h.clamp(0, 1).numpy(), alpha, cmap)
            for image, h in zip(images, heat[:, 0])]
