"""A folder of class folders as a Dataset: the user's own images, and CIFAR-10 as JPEGs.

Accepted layouts (names compared case-insensitively):

    ROOT/<class>/**/<image>                      20% of each class held out (seed 0)
    ROOT/train/<class>/...  + ROOT/test|val/<class>/...   the given split
    ROOT/<one wrapper folder>/...                what zipping a folder produces

All images get one channel count (1 if every image is greyscale, else 3) and one
size (the most common, fitted into 8..``side`` px: 64 unless a run's ``image_size``
asks for up to 224), so they stack into a uint8 tensor. Headers are read first to
choose those (small images are decoded in the same pass, so a folder of CIFAR-sized
JPEGs opens each file once); then the rest are decoded straight to the target size,
a JPEG reduced by libjpeg while it is decoded (:func:`lab.data.images.decode`), so a
4000x3000 photo is never decoded at full size.

What decoding will cost is summed from the headers and refused over the server's
``max_decode_megapixels`` before any pixel is decoded (a zip of tiny files can hold
huge images), and the decoded arrays are kept beside the folder
(:func:`decoded_dir`), one file per size, so a folder is decoded once per content and
size, not once per load. What the decoded images will take in memory is checked
(``max_data_mb``) before decoding too.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from lab import settings
from lab.data import images
from lab.data.cache import LoadCache
from lab.data.dataset import Dataset, DatasetError, check_data_memory, stratified_split
from lab.durable import atomic_write, remove_stale_temps

TRAIN_NAMES = ("train",)
VAL_NAMES = ("test", "val", "valid", "validation")
OUTSIDE = "file outside the class folders"
UNKNOWN_CLASS = "class not in train/"
_DECODE_CHUNK = 512  # files per thread-pool task
# Threads pay off only when decoding itself dominates (PIL releases the GIL there).
# Measured on 2 busy cores: 400x300 JPEGs 1050 -> 840 us each with 2 threads, but
# CIFAR's 32x32 JPEGs 160 -> 200 us, as their time is Python header parsing.
_THREADS_FROM_PIXELS = 128 * 128

_CACHE: LoadCache[Dataset] = LoadCache(maxsize=8)
_DECODED_VERSION = 3  # bump when decoding changes what the arrays hold or how their files are named
_SIZES_KEPT = 3  # decoded sizes kept per folder: a student trying 64, 128 and 224 px decodes each once


@dataclass
class FolderScan:
    """What a folder holds, from file names and image headers only."""

    root: Path  # the folder holding the class folders (or train/ and test/)
    classes: list[str]
    train: list[tuple[images.Found, int]]  # (image, label)
    val: list[tuple[images.Found, int]]  # empty: hold out part of train instead
    channels: int
    size: tuple[int, int]  # (width, height) every image is resized to
    kept: dict[str, int]  # usable images per class, train and val together
    source_pixels: int  # median width * height before resizing
    skipped: Counter[str]  # reason -> files
    dropped: list[str]  # class folders without a usable image


def scan_folder(path: Path, keep_pixels: bool = False, shown: str = "", side: int = images.MAX_SIDE) -> FolderScan:
    """Find the layout, classes and usable images under path; fewer than two classes
    is a DatasetError that shows the layout expected. keep_pixels: also decode the
    images that are small enough to need no resizing, for the load that follows.
    ``shown`` names the folder in messages (default: its own name; never its server path);
    ``side`` bounds the common size (:func:`lab.data.images.target_size`)."""
    root = _unwrap(Path(path))
    train_dir, val_dir = _split_dirs(root)
    skipped: Counter[str] = Counter()
    probe = partial(images.probe, max_side=settings.limits().max_image_side,
                    # Held until the memory check: 64 px bounds that (50,000 images: 614 MB) at any side.
                    keep_pixels_up_to=images.MAX_SIDE if keep_pixels else 0)
    train_files = _class_files(train_dir, skipped, probe)
    val_files = _class_files(val_dir, skipped, probe) if val_dir else {}
    classes = sorted(c for c, files in train_files.items() if files)
    if len(classes) < 2:
        raise DatasetError(_too_few_classes(shown or Path(path).name, classes, skipped))
    label = {c: i for i, c in enumerate(classes)}
    for c, files in val_files.items():
        if c not in label:
            skipped[UNKNOWN_CLASS] += len(files)
    found = [f for c in classes for f in train_files[c] + val_files.get(c, [])]
    size = images.target_size([f.size for f in found], largest=side)
    _check_decode_cost(found, size)
    return FolderScan(
        root=root, classes=classes,
        train=[(f, label[c]) for c in classes for f in train_files[c]],
        val=[(f, label[c]) for c in classes for f in val_files.get(c, [])],
        channels=1 if all(f.mode in images.GREY_MODES for f in found) else 3,
        size=size,
        kept={c: len(train_files[c]) + len(val_files.get(c, [])) for c in classes},
        source_pixels=int(np.median([w * h for w, h in (f.size for f in found)])),
        skipped=skipped,
        dropped=sorted(c for c, files in train_files.items() if not files),
    )


def _check_decode_cost(found: list[images.Found], size: tuple[int, int]) -> None:
    """DatasetError when decoding every image would take more pixels than this server allows."""
    limit = settings.limits().max_decode_megapixels
    cost = sum(images.decode_pixels(f, size) for f in found) / 1e6
    if cost > limit:
        raise DatasetError(f"decoding these {len(found):,} images means {cost:,.0f} megapixels, over this server's "
                           f"limit of {limit:,} (LAB_MAX_DECODE_MEGAPIXELS): they are shrunk to "
                           f"{size[0]}x{size[1]} anyway, so shrink them before zipping (256 px a side is plenty), "
                           "or upload fewer")


def load_folder(path: Path, name: str | None = None, side: int = images.MAX_SIDE) -> Dataset:
    """The folder as a Dataset with images at most ``side`` px a side, cached per folder and side.

    The cache key includes the folder's inode and the mtimes of it and the folders in it: an upload
    re-imported under the same name is a new folder (renamed into place), and an image added to or
    removed from a class folder changes that folder's mtime; either is read afresh.
    """
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise DatasetError(f"{Path(path).name} is not a folder. Give a folder of class folders "
                           "(e.g. cats/*.jpg, dogs/*.jpg) or a .zip of one.")
    key = (root, root.stat().st_ino, _folder_mtimes(root), name, side)
    return _CACHE.get(key, lambda: _load(root, name or f"folder:{root}", side))


def _folder_mtimes(root: Path, depth: int = 2) -> tuple[int, ...]:
    """The mtimes of ``root`` and the folders ``depth`` levels below it (class folders, and train/ and val/
    ones with class folders in them): a stat per folder, no file read, cheap enough for every load."""
    stamps, level = [], [root]
    for _ in range(depth + 1):
        stamps += [folder.stat().st_mtime_ns for folder in level]
        level = [child for folder in level for child in sorted(folder.iterdir()) if child.is_dir()
                 and not images.is_hidden((child.name,))]
    return tuple(stamps)


def _load(root: Path, name: str, side: int) -> Dataset:
    """The decoded dataset from ``.lab-decoded/`` when the folder's files are unchanged and were decoded at
    this side, else decoded (and kept)."""
    content = _content_key(root)
    cached = decoded_dir(root) / f"{content}-{side}px.npz"
    try:
        with np.load(cached) as arrays:
            ds = Dataset(name, [str(c) for c in arrays["classes"]],
                         *(torch.from_numpy(arrays[k]) for k in ("train_x", "train_y", "val_x", "val_y")),
                         train_files=tuple(map(str, arrays["train_files"])),
                         val_files=tuple(map(str, arrays["val_files"])))
    except (OSError, KeyError, ValueError):
        pass  # not decoded yet, or unreadable: decode again
    else:
        with contextlib.suppress(OSError):  # a read-only folder
            os.utime(cached)  # recently used: the last of this folder's sizes to be dropped
        return ds
    ds = _decode_folder(root, name, side)
    _keep_decoded(cached, content, ds)
    return ds


def decoded_dir(root: Path) -> Path:
    """Where a folder's decoded arrays are kept: a hidden sibling, so writing them changes neither the
    folder (whose mtime keys the in-memory cache) nor what a scan of it finds."""
    return root.parent / f".{root.name}.lab-decoded"


def _content_key(root: Path) -> str:
    """A digest of every file's path, size and mtime under root (stat only, no reads), with the limits and
    version that shape decoding: equal keys mean the same decoded arrays."""
    digest = hashlib.sha256(f"{_DECODED_VERSION} {settings.limits().max_image_side}".encode())
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def _keep_decoded(path: Path, content: str, ds: Dataset) -> None:
    """Write the arrays beside the images (atomically); other contents' files go, and this content's sizes
    beyond the _SIZES_KEPT most recently used. A read-only folder keeps none."""
    try:
        path.parent.mkdir(exist_ok=True)
        sizes = sorted(path.parent.glob(f"{content}-*px.npz"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
        for old in set(path.parent.glob("*.npz")) - set(sizes[:_SIZES_KEPT - 1]):
            old.unlink()
        remove_stale_temps([path.parent])  # a load killed mid-write
        atomic_write(path, lambda f: np.savez(f, classes=np.array(ds.classes), train_x=ds.train_x.numpy(),
                                              train_y=ds.train_y.numpy(), val_x=ds.val_x.numpy(),
                                              val_y=ds.val_y.numpy(), train_files=np.array(ds.train_files),
                                              val_files=np.array(ds.val_files)))
    except OSError:
        pass


def _decode_folder(root: Path, name: str, side: int) -> Dataset:
    scan = scan_folder(root, keep_pixels=True, side=side)
    check_data_memory(len(scan.train) + len(scan.val), (scan.channels, scan.size[1], scan.size[0]))
    threads = min(8, os.cpu_count() or 1) if scan.source_pixels >= _THREADS_FROM_PIXELS else 1
    train_x, train_y, train_files = _decode_all(scan.train, scan.channels, scan.size, threads, scan.root)
    if scan.val:
        val_x, val_y, val_files = _decode_all(scan.val, scan.channels, scan.size, threads, scan.root)
    else:
        train_idx, val_idx = stratified_split(train_y.numpy(), val_fraction=0.2, seed=0)
        train_x, train_y, val_x, val_y = (train_x[train_idx], train_y[train_idx],
                                          train_x[val_idx], train_y[val_idx])
        train_files, val_files = [train_files[i] for i in train_idx], [train_files[i] for i in val_idx]
    return Dataset(name, scan.classes, train_x, train_y, val_x, val_y,
                   train_files=tuple(train_files), val_files=tuple(val_files))


def _unwrap(root: Path) -> Path:
    """Step into a lone wrapper folder (zip of 'pets/' holding 'cat/' and 'dog/')."""
    while True:
        children = [c for c in root.iterdir() if not images.is_hidden((c.name,))]
        dirs = [c for c in children if c.is_dir()]
        if len(children) != 1 or not dirs or not any(g.is_dir() for g in dirs[0].iterdir()):
            return root
        root = dirs[0]


def _split_dirs(root: Path) -> tuple[Path, Path | None]:
    """(train folder, val folder) when both exist; else (root, None) for a hold-out."""
    dirs = {c.name.lower(): c for c in root.iterdir() if c.is_dir()}
    train = next((dirs[n] for n in TRAIN_NAMES if n in dirs), None)
    val = next((dirs[n] for n in VAL_NAMES if n in dirs), None)
    return (train, val) if train and val else (root, None)


def _class_files(root: Path, skipped: Counter[str],
                 probe: Callable[[Path], images.Found]) -> dict[str, list[images.Found]]:
    """Usable images per class folder (searched recursively), counting what is skipped."""
    found: dict[str, list[images.Found]] = {}
    for child in sorted(root.iterdir()):
        if images.is_hidden((child.name,)):
            skipped[images.HIDDEN] += 1 if child.is_file() else 0
        elif child.is_dir():
            files = sorted(p for p in child.rglob("*") if p.is_file())
            found[child.name] = _probe_all(files, child, skipped, probe)
        else:
            skipped[OUTSIDE] += 1
    return found


def _probe_all(files: list[Path], class_dir: Path, skipped: Counter[str],
               probe: Callable[[Path], images.Found]) -> list[images.Found]:
    kept = []
    depth = len(class_dir.parts)
    for path in files:
        if images.is_hidden(path.parts[depth:]):
            skipped[images.HIDDEN] += 1
            continue
        try:
            kept.append(probe(path))
        except images.SkipImage as reason:
            skipped[str(reason)] += 1
    return kept


def _decode_all(items: list[tuple[images.Found, int]], channels: int, size: tuple[int, int],
                threads: int, root: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Stack every image into one preallocated array, decoding those the scan did not
    keep; files that fail to decode (a header can look fine over a truncated body)
    are left out. Also each kept image's file, relative to ``root`` (POSIX separators)."""
    out = np.empty((len(items), channels, size[1], size[0]), dtype=np.uint8)
    ok = np.ones(len(items), dtype=bool)

    def work(start: int) -> None:
        for i in range(start, min(start + _DECODE_CHUNK, len(items))):
            found = items[i][0]
            try:
                if found.pixels is not None and found.size == size:
                    out[i] = found.pixels  # a grey (1, H, W) broadcasts to RGB when needed
                else:
                    out[i] = images.decode(found.path, channels, size)
            except images.SkipImage:
                ok[i] = False

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(work, range(0, len(items), _DECODE_CHUNK)))
    labels = np.array([label for _, label in items], dtype=np.int64)
    files = [found.path.relative_to(root).as_posix() for (found, _), kept in zip(items, ok) if kept]
    return torch.from_numpy(out[ok]), torch.from_numpy(labels[ok]), files


def _too_few_classes(shown: str, classes: list[str], skipped: Counter[str]) -> str:
    found = ", ".join(classes) if classes else "none"
    notes = "; ".join(f"{n} {reason}" for reason, n in skipped.most_common())
    return (f"{shown} needs at least two class folders with images; usable classes found: "
            f"{found}{f' (skipped: {notes})' if notes else ''}. Put each class's images in "
            "its own folder, e.g. cat/*.jpg and dog/*.jpg (optionally under train/ and test/).")
