"""Batched data augmentation on the device, random per sample, no per-sample Python.

The settings these operations read (``AugmentConfig``, presets, ``get_augment``) are in
:mod:`lab.train.augment`; this module applies them to a batch.

Training keeps whole datasets on the device as uint8 and augments each batch there,
so augmentation sits in the hot loop and must cost a small fraction of a training
step. Every operation here is a pure function of a batch tensor and a
``torch.Generator`` (in the style of airbench's ``batch_flip_lr`` / ``batch_crop``):
each sample gets its own random parameters, drawn as (B, ...) tensors, and the same
generator seed reproduces the same batch.

Why our own code rather than a library:

- ``torchvision.transforms.v2`` draws one set of random parameters per call, so
  per-sample randomness would need a Python loop over the batch.
- kornia does per-sample parameters but is not installed on our GPU machine.

Pipeline, in order (each step is skipped outright when its keys are off):

1. geometry: flips, rotation, shift and zoom folded into ONE affine grid per sample
   (``F.affine_grid`` + bilinear ``F.grid_sample``, ``padding_mode='border'``, which
   is Keras' default ``fill_mode='nearest'``). Flips alone are a cheap ``torch.where``.
2. random crop: zero padding (black, as torchvision ``RandomCrop(32, padding=4)`` in
   the common CIFAR recipes; airbench reflects instead) and a per-sample integer
   offset, done with one ``gather``.
3. contrast and brightness, per sample.
4. cutout: a square filled with 0 (black in [0, 1] space; the Cutout paper zeroes
   *normalised* pixels, i.e. paints the mean colour; for a CNN the difference is
   small and black is what a student expects to see in the preview). Its centre is
   uniform over the image, so near a border part of the square falls outside, as in
   the paper.
5. CutMix or MixUp with a permutation of the batch, one lambda per sample (timm's
   ``mode='elem'``); soft targets weighted by the pixel fraction actually taken
   from each image.

No step reads a tensor value back to Python (no ``.item()``, no boolean indexing):
per-batch coin flips (``mix_prob``, CutMix vs MixUp) are applied with
``torch.where`` so CUDA never stalls.

Beta(alpha, alpha) for the mixing lambdas is sampled from the generator's own
normals and uniforms (Marsaglia-Tsang gamma, vectorised), because
``torch.distributions.Beta`` / ``torch._standard_gamma`` take no generator and
would make runs irreproducible, and seeding a CPU generator from the device one
would need a host sync every batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from lab.train.augment import AugmentConfig

# ---------------------------------------------------------------- random draws
# Shapes are (B,) or broadcastable to (B,C,H,W); all on the generator's device.

Shape = int | tuple[int, ...]


def _uniform(
    shape: Shape, half_width: float, g: torch.Generator | None, device: torch.device
) -> Tensor:
    """Uniform in [-half_width, half_width)."""
    return (torch.rand(shape, generator=g, device=device) * 2 - 1) * half_width


def _coin(shape: Shape, p: float, g: torch.Generator | None, device: torch.device) -> Tensor:
    """Bool, True with probability p (always for p=1, since rand < 1)."""
    return torch.rand(shape, generator=g, device=device) < p


def _log_gamma(alpha: float, n: int, g: torch.Generator | None, device: torch.device) -> Tensor:
    """log of Gamma(alpha, 1) samples, shape (n,), from the generator only.

    Marsaglia-Tsang for Gamma(alpha + 1), whose acceptance rate is above 0.95, with 8
    proposals per sample taken in parallel and the first accepted one kept (all 8
    rejected: p < 1e-10, then the first proposal is used). Then the usual boost
    Gamma(alpha) = Gamma(alpha + 1) * U ** (1 / alpha), in log space so that small
    alphas (0.2 is common for MixUp) do not underflow.
    """
    d = alpha + 1 - 1 / 3
    c = 1 / math.sqrt(9 * d)
    tiny = torch.finfo(torch.float32).tiny
    z = torch.randn(n, 8, generator=g, device=device)
    u = torch.rand(n, 8, generator=g, device=device).clamp_min_(tiny)
    v = (1 + c * z) ** 3
    log_v = v.clamp_min(tiny).log()
    accepted = (v > 0) & (u.log() < 0.5 * z**2 + d - d * v + d * log_v)
    first = accepted.to(torch.uint8).argmax(dim=1, keepdim=True)  # (n, 1)
    log_g = math.log(d) + log_v.gather(1, first).squeeze(1)
    boost = torch.rand(n, generator=g, device=device).clamp_min_(tiny).log() / alpha
    return log_g + boost


def _beta(alpha: float, n: int, g: torch.Generator | None, device: torch.device) -> Tensor:
    """Beta(alpha, alpha) samples, shape (n,): X / (X + Y) = sigmoid(log X - log Y)."""
    log_xy = _log_gamma(alpha, 2 * n, g, device)  # X and Y in one draw
    return torch.sigmoid(log_xy[:n] - log_xy[n:])


# ---------------------------------------------------------------- batch operations


def affine_warp(
    x: Tensor, angle: Tensor, scale: Tensor, shift: Tensor, flip: Tensor
) -> Tensor:
    """Warp each image by its own flip, rotation, zoom and shift in one resampling.

    x: (B,C,H,W) float. angle: (B,) degrees. scale: (B,) content magnification.
    shift: (B,2) translation (x, y) as a fraction of (W, H). flip: (B,2) bool (x, y).
    The transform is composed in pixel units, so rotations stay rigid on non-square
    images; pixels that come from outside repeat the border ('nearest' in Keras).
    """
    b, _, h, w = x.shape
    # Output pixel p_out reads input p_in = F R(-angle) (p_out - t) / scale, all in
    # centred pixel units. In grid_sample's normalised coords x spans W pixels and y
    # spans H, which rescales the off-diagonal terms of the rotation by the aspect ratio.
    rad = torch.deg2rad(angle)
    cos, sin = rad.cos(), rad.sin()  # (B,)
    rot = torch.stack([cos, sin * (h / w), -sin * (w / h), cos], dim=1).view(b, 2, 2)
    row_scale = (1 - 2 * flip.to(rot.dtype)) / scale.unsqueeze(1)  # (B,2): F / scale
    a = rot * row_scale.unsqueeze(2)  # (B,2,2)
    t = -(a @ (2 * shift).unsqueeze(2))  # (B,2,1): a shift of 1 moves by a full side
    theta = torch.cat([a, t], dim=2).to(x.dtype)  # (B,2,3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B,H,W,2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _geometry(x: Tensor, cfg: AugmentConfig, g: torch.Generator | None) -> Tensor:
    """Flips (cheap path) or the full affine warp, with per-sample parameters."""
    b, dev = x.shape[0], x.device
    if not cfg.geometric:
        if cfg.hflip > 0:
            x = torch.where(_coin((b, 1, 1, 1), cfg.hflip, g, dev), x.flip(-1), x)
        if cfg.vflip > 0:
            x = torch.where(_coin((b, 1, 1, 1), cfg.vflip, g, dev), x.flip(-2), x)
        return x
    # One draw for all parameters: on CUDA each op costs a launch, whatever its size.
    u = torch.rand(b, 6, generator=g, device=dev)  # flip x, flip y, angle, zoom, shift x, shift y
    flip = torch.stack([u[:, 0] < cfg.hflip, u[:, 1] < cfg.vflip], dim=1)  # (B,2)
    sym = u[:, 2:] * 2 - 1  # (B,4) uniform in [-1, 1)
    angle, scale = sym[:, 0] * cfg.rotation, 1 + sym[:, 1] * cfg.zoom  # (B,), (B,)
    shift = sym[:, 2:] * cfg.shift  # (B,2)
    # Bilinear weights can sum to 1 + eps; clamp keeps the [0, 1] promise.
    return affine_warp(x, angle, scale, shift, flip).clamp_(0, 1)


def random_crop(x: Tensor, padding: int, g: torch.Generator | None = None) -> Tensor:
    """Random crop after zero-padding each side by ``padding``, one offset per sample.

    Same result as ``F.pad`` + slicing at a random offset, done as one ``gather`` of
    shifted pixel indices with the out-of-image ones set to 0: no padded copy, no loop,
    no boolean indexing (which would sync). Half the time of padding and gathering
    rows then columns (0.8 vs 1.6 ms for 128x3x32x32 on one CPU thread).
    x: (B,C,H,W) -> (B,C,H,W).
    """
    b, c, h, w = x.shape
    dy, dx = torch.randint(-padding, padding + 1, (2, b, 1, 1), generator=g, device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1) + dy  # (B,H,1) source row
    cols = torch.arange(w, device=x.device).view(1, 1, w) + dx  # (B,1,W) source column
    outside = (rows < 0) | (rows >= h) | (cols < 0) | (cols >= w)  # (B,H,W): padding
    src = rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)  # (B,H,W) flat source index
    out = x.flatten(2).gather(2, src.view(b, 1, h * w).expand(b, c, h * w))  # (B,C,H*W)
    return out.view(b, c, h, w).masked_fill_(outside.unsqueeze(1), 0)


def _photometric(x: Tensor, cfg: AugmentConfig, g: torch.Generator | None) -> Tensor:
    """Per-sample contrast (around each image's mean), then brightness; clamped to [0, 1]."""
    b, dev = x.shape[0], x.device
    if cfg.contrast > 0:
        factor = 1 + _uniform((b, 1, 1, 1), cfg.contrast, g, dev)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (B,1,1,1)
        x = (x - mean) * factor + mean
    if cfg.brightness > 0:
        x = x + _uniform((b, 1, 1, 1), cfg.brightness, g, dev)
    return x.clamp(0, 1)


def _box_mask(
    h: int, w: int, box_h: Tensor, box_w: Tensor, g: torch.Generator | None, device: torch.device
) -> Tensor:
    """Bool (B,1,H,W): a box_h x box_w box per sample centred uniformly, clipped by the border."""
    b = box_h.shape[0]
    cy = torch.randint(0, h, (b,), generator=g, device=device)
    cx = torch.randint(0, w, (b,), generator=g, device=device)
    top, left = (cy - box_h // 2).view(b, 1, 1), (cx - box_w // 2).view(b, 1, 1)
    ys = torch.arange(h, device=device).view(1, h, 1)
    xs = torch.arange(w, device=device).view(1, 1, w)
    inside_y = (ys >= top) & (ys < top + box_h.view(b, 1, 1))  # (B,H,1)
    inside_x = (xs >= left) & (xs < left + box_w.view(b, 1, 1))  # (B,1,W)
    return (inside_y & inside_x).unsqueeze(1)  # (B,1,H,W)


def _cutout(x: Tensor, size: int, g: torch.Generator | None) -> Tensor:
    """Set a size x size square (clipped at the border) to 0 in each image."""
    side = torch.full((x.shape[0],), size, device=x.device)
    return x.masked_fill(_box_mask(x.shape[2], x.shape[3], side, side, g, x.device), 0)


def _one_hot(y: Tensor, num_classes: int) -> Tensor:
    """(B,) int64 -> (B,K) float32. scatter_ rather than F.one_hot, whose range check syncs."""
    out = torch.zeros(y.shape[0], num_classes, device=y.device)
    return out.scatter_(1, y.unsqueeze(1), 1.0)


def _mix(
    x: Tensor, y: Tensor, cfg: AugmentConfig, num_classes: int, g: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """CutMix or MixUp each sample with a partner from a permutation of the batch.

    Both become one per-pixel weight ``keep`` (1 = own image): a box hole for CutMix,
    a constant lambda for MixUp. The per-batch choices (mix at all, which mix) select
    between weights with ``torch.where`` so no value is read back to Python.
    Targets: own class gets mean(keep), the partner's class the rest.
    """
    b, _, h, w = x.shape
    dev = x.device
    perm = torch.randperm(b, generator=g, device=dev)  # (B,)
    keep = None
    if cfg.cutmix > 0:
        ratio = (1 - _beta(cfg.cutmix, b, g, dev)).sqrt()  # box side / image side, (B,)
        box_h, box_w = (ratio * h).long(), (ratio * w).long()
        keep = (~_box_mask(h, w, box_h, box_w, g, dev)).to(x.dtype)  # (B,1,H,W)
    if cfg.mixup > 0:
        lam = _beta(cfg.mixup, b, g, dev).to(x.dtype).view(b, 1, 1, 1)  # (B,1,1,1)
        keep = lam if keep is None else torch.where(_coin(1, 0.5, g, dev), keep, lam)
    if cfg.mix_prob < 1:
        keep = torch.where(_coin(1, cfg.mix_prob, g, dev), keep, torch.ones_like(keep))
    mixed = torch.lerp(x[perm], x, keep).clamp_(0, 1)  # keep * x + (1 - keep) * x[perm]
    own = keep.float().mean(dim=(1, 2, 3)).unsqueeze(1)  # (B,1) area / weight of own image
    targets = torch.zeros(b, num_classes, device=dev)
    targets.scatter_add_(1, y.unsqueeze(1), own).scatter_add_(1, y[perm].unsqueeze(1), 1 - own)
    return mixed, targets


def augment_batch(
    x: Tensor,
    y: Tensor,
    cfg: AugmentConfig,
    num_classes: int,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Augment a training batch on its device with independent parameters per sample.

    x: (B,C,H,W) float in [0, 1] (float32/64, or fp16/bf16, which is computed in
    float32 and cast back). y: (B,) int64. Returns (x_aug like x, targets (B, K)
    float32 soft labels summing to 1; one-hot unless CutMix/MixUp fired).
    All randomness comes from ``generator`` (on x.device; None = torch's default).
    """
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"augment_batch expects a float (B,C,H,W) batch, got {x.dtype} {x.shape}")
    if y.shape != x.shape[:1]:
        raise ValueError(f"labels must have shape ({x.shape[0]},), got {tuple(y.shape)}")
    if cfg.is_identity:
        return x, _one_hot(y, num_classes)
    out = x if x.dtype in (torch.float32, torch.float64) else x.float()
    if cfg.hflip > 0 or cfg.vflip > 0 or cfg.geometric:
        out = _geometry(out, cfg, generator)
    if cfg.crop_padding > 0:
        out = random_crop(out, cfg.crop_padding, generator)
    if cfg.contrast > 0 or cfg.brightness > 0:
        out = _photometric(out, cfg, generator)
    if cfg.cutout > 0:
        out = _cutout(out, cfg.cutout, generator)
    if cfg.mixes_labels:
        out, targets = _mix(out, y, cfg, num_classes, generator)
    else:
        targets = _one_hot(y, num_classes)
    return out.to(x.dtype), targets


def preview(
    images: Tensor,
    labels: Tensor,
    cfg: AugmentConfig,
    num_classes: int,
    draws: int = 4,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """The same images under ``draws`` independent random draws, for the UI's grid.

    images: (n,C,H,W) uint8, labels: (n,) -> ((draws,n,C,H,W) uint8, (draws,n,K) float32).
    Each draw is its own batch, so the mix decision and partners vary between draws
    exactly as they do between training batches. Deterministic for a seed.
    """
    g = torch.Generator(device=images.device).manual_seed(seed)
    x = images.float() / 255
    outs = [augment_batch(x, labels, cfg, num_classes, g) for _ in range(draws)]
    pixels = torch.stack([o[0] for o in outs])  # (draws,n,C,H,W)
    targets = torch.stack([o[1] for o in outs])  # (draws,n,K)
    return (pixels * 255).round_().to(torch.uint8), targets
