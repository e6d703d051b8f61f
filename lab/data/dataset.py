"""The in-memory dataset every loader returns, and small helpers on its labels.

Images stay uint8 (N, C, H, W) on the CPU so a whole dataset fits on the device
as-is; conversion to float and normalisation happen there, batch by batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from lab import settings
from lab.data.images import MIN_SIDE


class DatasetError(ValueError):
    """A problem the user can fix; the message says what to do."""


@dataclass(eq=False)
class Dataset:
    """Train and validation images with labels, ready to move to a device."""

    name: str
    classes: list[str]
    train_x: torch.Tensor  # uint8 (N, C, H, W), CPU, contiguous
    train_y: torch.Tensor  # int64 (N,)
    val_x: torch.Tensor  # uint8 (M, C, H, W)
    val_y: torch.Tensor  # int64 (M,)
    train_boxes: torch.Tensor | None = None  # float32 (N, 4) x0, y0, x1, y1 in pixels (shapes only)
    val_boxes: torch.Tensor | None = None  # float32 (M, 4)
    # Each image's file under the data set's folder (folder data sets; None for built-in ones): what a
    # correction (lab.data.corrections) and a list of mistakes name, to find the image again.
    train_files: tuple[str, ...] | None = None
    val_files: tuple[str, ...] | None = None
    _stats: tuple[list[float], list[float]] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.train_x, self.val_x = self.train_x.contiguous(), self.val_x.contiguous()
        _check_split("train", self.train_x, self.train_y, self.train_boxes, len(self.classes))
        _check_split("val", self.val_x, self.val_y, self.val_boxes, len(self.classes))
        for split, files, y in (("train", self.train_files, self.train_y), ("val", self.val_files, self.val_y)):
            if files is not None and len(files) != len(y):
                raise ValueError(f"{split}_files names {len(files)} files for {len(y)} images")
        if self.train_x.shape[1:] != self.val_x.shape[1:]:
            raise ValueError(f"train images {tuple(self.train_x.shape[1:])} and val images "
                             f"{tuple(self.val_x.shape[1:])} differ in shape")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image: the input shape a model spec starts from."""
        c, h, w = self.train_x.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of train_x on the [0, 1] scale, for normalisation.

        Computed in chunks in float64 so 50,000 CIFAR images need no large float copy;
        cached because every run on this dataset asks for the same numbers.
        """
        if self._stats is None:
            total = torch.zeros(self.shape[0], dtype=torch.float64)
            total_sq = torch.zeros_like(total)
            for chunk in self.train_x.split(4096):
                values = chunk.to(torch.float64).div_(255.0)
                total += values.sum(dim=(0, 2, 3))
                total_sq += values.square_().sum(dim=(0, 2, 3))
            count = self.train_x.shape[0] * self.shape[1] * self.shape[2]
            mean = total / count
            std = (total_sq / count - mean.square()).clamp_min(0).sqrt()
            self._stats = (mean.tolist(), std.tolist())
        return self._stats

    def __repr__(self) -> str:
        c, h, w = self.shape
        boxes = ", boxes" if self.train_boxes is not None else ""
        return (f"Dataset({self.name!r}, {self.num_classes} classes, {c}x{h}x{w}, "
                f"train {len(self.train_y)}, val {len(self.val_y)}{boxes})")


def _check_split(split: str, x: torch.Tensor, y: torch.Tensor, boxes: torch.Tensor | None,
                 num_classes: int) -> None:
    """Refuse malformed tensors at construction, where the loader that made them is known."""
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise ValueError(f"{split}_x must be uint8 (N, C, H, W), got {x.dtype} {tuple(x.shape)}")
    if y.dtype != torch.int64 or y.shape != (x.shape[0],):
        raise ValueError(f"{split}_y must be int64 ({x.shape[0]},), got {y.dtype} {tuple(y.shape)}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"{split}_y has labels outside 0..{num_classes - 1}")
    if boxes is not None and (boxes.dtype != torch.float32 or boxes.shape != (x.shape[0], 4)):
        raise ValueError(f"{split}_boxes must be float32 ({x.shape[0]}, 4), got {tuple(boxes.shape)}")


def data_megabytes(images: int, shape: tuple[int, int, int]) -> float:
    """MB (2**20 bytes) that ``images`` uint8 images of ``shape`` (C, H, W) take: what a run puts on its device."""
    c, h, w = shape
    return images * c * h * w / 2**20


def check_data_memory(images: int, shape: tuple[int, int, int]) -> float:
    """The images' MB on the device; DatasetError over this server's ``max_data_mb``, naming the image size
    that would fit. Checked before a folder is decoded and before a run copies its data to the device."""
    limit = settings.limits().max_data_mb
    needed = data_megabytes(images, shape)
    if needed <= limit:
        return needed
    c, h, w = shape
    side = int(max(h, w) * math.sqrt(limit / needed))
    smaller = f"choose an image size of {side} px or less, or " if side >= MIN_SIDE else ""
    raise DatasetError(f"{images:,} images of {c}x{h}x{w} take {needed:,.1f} MB on the device, over this server's "
                       f"limit of {limit:,} MB (LAB_MAX_DATA_MB): {smaller}use fewer images (a train limit, or a "
                       "smaller folder)")


def shrunk_shape(shape: tuple[int, int, int], side: int) -> tuple[int, int, int]:
    """The (C, H, W) images of ``shape`` have once :func:`shrunk` to ``side`` (0: as they are), known without
    loading them: what the Build page sizes a model at."""
    c, h, w = shape
    scale = side / max(h, w) if side else 1
    return shape if scale >= 1 else (c, max(1, round(h * scale)), max(1, round(w * scale)))


def shrunk(ds: Dataset, side: int) -> Dataset:
    """``ds`` with the longer side of its images brought down to ``side`` (antialiased bilinear, boxes scaled
    alike); ``ds`` itself when it is no larger. Never enlarged: more pixels hold no more detail, and a
    backbone that wants 224 px resizes each batch on the device, where it costs no stored memory."""
    _, h, w = ds.shape
    size = shrunk_shape(ds.shape, side)[1:]
    if size == (h, w):
        return ds

    def resize(x: torch.Tensor) -> torch.Tensor:
        chunks = [F.interpolate(chunk.float(), size=size, mode="bilinear", antialias=True, align_corners=False)
                  .round_().clamp_(0, 255).to(torch.uint8) for chunk in x.split(4096)]
        return torch.cat(chunks) if chunks else x.new_empty((0, x.shape[1], *size))

    factor = torch.tensor([size[1] / w, size[0] / h] * 2)
    return Dataset(ds.name, ds.classes, resize(ds.train_x), ds.train_y, resize(ds.val_x), ds.val_y,
                   None if ds.train_boxes is None else ds.train_boxes * factor,
                   None if ds.val_boxes is None else ds.val_boxes * factor, ds.train_files, ds.val_files)


@dataclass(frozen=True)
class DatasetInfo:
    """What the dataset picker shows, known without loading the data."""

    name: str
    title: str
    description: str
    shape: tuple[int, int, int]  # (C, H, W)
    num_classes: int
    train_size: int
    val_size: int
    offline: bool  # built in: no files, no network
    available: bool  # loadable now without downloading
    how_to_get: str  # '' when available


def classes_in_turn(labels: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of ``n`` images taken one class after another, each class's in data set order, returned in data
    set order: a train limit then keeps every class, even where a folder lists its images class by class."""
    order = torch.argsort(labels, stable=True)  # grouped by class, each group in data set order
    grouped = labels[order]
    counts = torch.bincount(grouped)
    rank = torch.arange(len(labels)) - (torch.cumsum(counts, 0) - counts)[grouped]  # position within its class
    return order[torch.argsort(rank, stable=True)[:n]].sort().values


def class_counts(labels: torch.Tensor, num_classes: int) -> list[int]:
    """Images per class, for balance charts and the per-class accuracy table."""
    if len(labels) and int(labels.max()) >= num_classes:
        raise DatasetError(f"label {int(labels.max())} is outside 0..{num_classes - 1}")
    return torch.bincount(labels.to(torch.int64), minlength=num_classes).tolist()


def examples_per_class(ds: Dataset, k: int, split: str = "val", seed: int = 0) -> dict[int, list[int]]:
    """Up to k random indices per class (sorted), so a sample grid is stable across reruns."""
    if split not in ("train", "val"):
        raise DatasetError(f"split must be 'train' or 'val', not {split!r}")
    labels = (ds.train_y if split == "train" else ds.val_y).numpy()
    rng = np.random.default_rng(seed)
    picks = {}
    for c in range(ds.num_classes):
        members = np.flatnonzero(labels == c)
        chosen = rng.choice(members, size=min(k, len(members)), replace=False)
        picks[c] = sorted(int(i) for i in chosen)
    return picks


def stratified_split(labels: np.ndarray, val_fraction: float = 0.2,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train and val indices holding out val_fraction of every class (at least one
    image of each class with two or more), so small classes still get validated."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_val = max(1, round(len(members) * val_fraction)) if len(members) > 1 else 0
        val.append(members[:n_val])
        train.append(members[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
