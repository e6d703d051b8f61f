"""The built-in "shapes" dataset: synthetic 32x32 RGB images of eight geometric shapes.

It needs no files or network, and every image carries its object's bounding box, so
class-activation maps can be scored against where the object really is. Random
size, aspect, rotation, position, colour, gradient background, clutter (dots and
thin lines, never a whole shape) and pixel noise keep it from being trivially
separable: a small CNN needs a few epochs to get it right. Measured on one GPU,
Adam 1e-3, batch 64, two seeds each (validation accuracy after epochs 1 and 5):
logistic regression on raw pixels 15-16% both times (chance is 12.5%); LeNet-5
67-68% and 88-90%; conv32-conv64-dense128 69-75% and 88-95%; a 3-conv global-average-
pool net of width 16 19-24% and 79-83%. Generating all 14,400 images takes about 1.5 s
on 2 CPU cores.

Each shape is a signed distance function in the object's own unit frame; coverage
``clip(0.5 - distance_in_pixels, 0, 1)`` gives anti-aliased edges without
supersampling. Images are made per class in chunks of whole-array numpy operations,
chunks run on a thread pool (numpy releases the GIL) and each chunk has its own seed,
so the result is the same for a given seed however the chunks are scheduled.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from lab.data.dataset import Dataset

SIZE = 32
TRAIN_PER_CLASS = 1500
VAL_PER_CLASS = 300
_CHUNK = 300  # images per work item: big enough to amortise numpy call overhead
_REACH = 1.1  # every shape lies within this radius of its centre, in unit-frame coordinates

_Array = np.ndarray
_Sdf = Callable[[_Array, _Array], _Array]


def _box(u: _Array, v: _Array, half_w: float, half_h: float) -> _Array:
    """Signed distance to an axis-aligned rectangle (exact outside, and inside)."""
    qx, qy = np.abs(u) - half_w, np.abs(v) - half_h
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    return outside + np.minimum(np.maximum(qx, qy), 0)


def _polygon(u: _Array, v: _Array, corners: list[tuple[float, float]]) -> _Array:
    """Distance to a convex polygon as the largest distance to its edge lines: exact
    inside and along edges, which is all anti-aliasing needs."""
    mx, my = np.mean(corners, axis=0)
    dist = None
    for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1]):
        nx, ny = y1 - y0, x0 - x1
        norm = np.hypot(nx, ny) * np.sign((mx - x0) * nx + (my - y0) * ny) * -1  # point outward
        edge = ((u - x0) * nx + (v - y0) * ny) / norm
        dist = edge if dist is None else np.maximum(dist, edge)
    return dist


def _rotate(u: _Array, v: _Array, angle: float) -> tuple[_Array, _Array]:
    c, s = np.cos(angle), np.sin(angle)
    return c * u + s * v, -s * u + c * v


def _circle(u: _Array, v: _Array) -> _Array:
    return np.hypot(u, v) - 1.0


def _square(u: _Array, v: _Array) -> _Array:
    return _box(u, v, 0.75, 0.75)


_TRIANGLE = [(0.0, -1.0), (-0.87, 0.5), (0.87, 0.5)]  # pointing up (image y grows downward)
_DIAMOND = [(0.0, -1.0), (-0.7, 0.0), (0.0, 1.0), (0.7, 0.0)]


def _triangle(u: _Array, v: _Array) -> _Array:
    return _polygon(u, v, _TRIANGLE)


def _diamond(u: _Array, v: _Array) -> _Array:
    return _polygon(u, v, _DIAMOND)


def _ring(u: _Array, v: _Array) -> _Array:
    return np.abs(np.hypot(u, v) - 0.75) - 0.25


def _plus(u: _Array, v: _Array) -> _Array:
    return np.minimum(_box(u, v, 1.0, 0.28), _box(u, v, 0.28, 1.0))


def _cross(u: _Array, v: _Array) -> _Array:
    return _plus(*_rotate(u, v, np.pi / 4))


def _star_kites(points: int = 5, inner: float = 0.45) -> list[list[tuple[float, float]]]:
    """A star as the union of convex kites (back, inner, tip, inner), one per tip.

    Each kite's back corner lies a little past the centre (0.3 < the inner pentagon's
    apothem 0.36), so neighbouring kites overlap and their shared edges leave no seam.
    """
    step = np.pi / points

    def at(radius: float, angle: float) -> tuple[float, float]:
        return float(radius * np.cos(angle)), float(radius * np.sin(angle))

    kites = []
    for k in range(points):
        tip = 2 * k * step - np.pi / 2
        kites.append([at(-0.3, tip), at(inner, tip + step), at(1.0, tip), at(inner, tip - step)])
    return kites


_STAR = _star_kites()


def _star(u: _Array, v: _Array) -> _Array:
    return np.minimum.reduce([_polygon(u, v, kite) for kite in _STAR])


_WOBBLE = np.radians(15)
# name -> (signed distance, largest tilt): shapes with a right way up only wobble, so a
# square never turns into a diamond nor a plus into a cross.
_SHAPES: dict[str, tuple[_Sdf, float]] = {
    "circle": (_circle, np.pi),
    "square": (_square, _WOBBLE),
    "triangle": (_triangle, _WOBBLE),
    "diamond": (_diamond, _WOBBLE),
    "ring": (_ring, np.pi),
    "plus": (_plus, _WOBBLE),
    "cross": (_cross, _WOBBLE),
    "star": (_star, np.pi),
}
CLASSES = list(_SHAPES)


def _per_image(values: _Array) -> _Array:
    """(n,) -> (n, 1, 1), to broadcast one value per image against the pixel grid."""
    return values[:, None, None]


def _coverage(distance_px: _Array) -> _Array:
    return np.clip(0.5 - distance_px, 0.0, 1.0)


def _paint(image: _Array, alpha: _Array, colour: _Array) -> None:
    """Blend colour (n, 3) over image (n, 3, H, W) in place with coverage alpha (n, H, W)."""
    a = alpha[:, None]
    image *= 1.0 - a
    image += a * colour[:, :, None, None]


def _background(rng: np.random.Generator, n: int, grid: tuple[_Array, _Array]) -> _Array:
    """Two-colour linear gradients in random directions; about a third are flat."""
    xs, ys = grid
    start = rng.uniform(0, 255, (n, 3)).astype(np.float32)
    end = rng.uniform(0, 255, (n, 3)).astype(np.float32)
    flat = rng.random(n) < 0.3
    end[flat] = start[flat]
    angle = _per_image(rng.uniform(0, 2 * np.pi, n).astype(np.float32))
    t = ((xs - SIZE / 2) * np.cos(angle) + (ys - SIZE / 2) * np.sin(angle)) / SIZE + 0.5
    return start[:, :, None, None] + (end - start)[:, :, None, None] * t[:, None]


def _distinct_colour(rng: np.random.Generator, against: _Array) -> _Array:
    """For each row of against (n, 3), the farthest of four random colours: the object
    must stay visible on its background, but its colour must not give the class away."""
    candidates = rng.uniform(0, 255, (4,) + against.shape).astype(np.float32)
    best = np.linalg.norm(candidates - against, axis=2).argmax(axis=0)
    return candidates[best, np.arange(len(against))]


def _dots(rng: np.random.Generator, image: _Array, grid: tuple[_Array, _Array], count: int) -> None:
    """Small round blobs, each present in about half the images."""
    xs, ys = grid
    n = len(image)
    for _ in range(count):
        cx, cy = (_per_image(rng.uniform(0, SIZE, n).astype(np.float32)) for _ in range(2))
        radius = _per_image(rng.uniform(0.8, 2.0, n).astype(np.float32))
        present = _per_image(rng.random(n) < 0.5)
        alpha = _coverage(np.hypot(xs - cx, ys - cy) - radius) * present
        _paint(image, alpha, rng.uniform(0, 255, (n, 3)).astype(np.float32))


def _lines(rng: np.random.Generator, image: _Array, grid: tuple[_Array, _Array], count: int) -> None:
    """Thin straight strokes, each present in about half the images."""
    xs, ys = grid
    n = len(image)
    for _ in range(count):
        x0, y0 = (_per_image(rng.uniform(0, SIZE, n).astype(np.float32)) for _ in range(2))
        angle = _per_image(rng.uniform(0, 2 * np.pi, n).astype(np.float32))
        length = _per_image(rng.uniform(5, 14, n).astype(np.float32))
        dx, dy = np.cos(angle), np.sin(angle)
        along = np.clip((xs - x0) * dx + (ys - y0) * dy, 0, length)
        dist = np.hypot(xs - x0 - along * dx, ys - y0 - along * dy)
        present = _per_image(rng.random(n) < 0.5)
        alpha = _coverage(dist - 0.5) * present
        _paint(image, alpha, rng.uniform(0, 255, (n, 3)).astype(np.float32))


def _object(rng: np.random.Generator, label: int, n: int,
            grid: tuple[_Array, _Array]) -> tuple[_Array, _Array]:
    """Coverage (n, H, W) of n random instances of one shape, and their boxes (n, 4)."""
    xs, ys = grid
    scale = rng.uniform(6.5, 12.5, n).astype(np.float32)  # unit frame -> pixels
    stretch = rng.uniform(0.88, 1.12, (2, n)).astype(np.float32)
    sdf, max_tilt = _SHAPES[CLASSES[label]]
    tilt = rng.uniform(-max_tilt, max_tilt, n).astype(np.float32)
    margin = _REACH * scale * stretch.max(axis=0) + 0.5  # keeps the whole shape in frame
    cx, cy = (rng.uniform(margin, SIZE - margin).astype(np.float32) for _ in range(2))
    u, v = _rotate(xs - _per_image(cx), ys - _per_image(cy), _per_image(tilt))
    distance = sdf(u / _per_image(scale * stretch[0]), v / _per_image(scale * stretch[1]))
    alpha = _coverage(distance * _per_image(scale * stretch.min(axis=0)))
    return alpha, _boxes(alpha)


def _boxes(alpha: _Array) -> _Array:
    """Tight boxes (x0, y0, x1, y1) around the covered pixels, in pixel-edge coordinates."""
    cols, rows = alpha.max(axis=1) > 0, alpha.max(axis=2) > 0
    x0, y0 = cols.argmax(axis=1), rows.argmax(axis=1)
    x1, y1 = SIZE - cols[:, ::-1].argmax(axis=1), SIZE - rows[:, ::-1].argmax(axis=1)
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.float32)


def render(label: int, n: int, seed_key: list[int]) -> tuple[_Array, _Array, _Array]:
    """n images of one class: uint8 (n, 3, H, W), float32 boxes (n, 4), object coverage (n, H, W).

    seed_key seeds this chunk alone; the coverage is returned so tests can check that
    the object lies inside its box.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed_key))
    centres = np.arange(SIZE, dtype=np.float32) + 0.5
    grid = (centres[None, None, :], centres[None, :, None])
    image = _background(rng, n, grid)
    _dots(rng, image, grid, count=4)
    _lines(rng, image, grid, count=2)
    alpha, boxes = _object(rng, label, n, grid)
    _paint(image, alpha, _distinct_colour(rng, image.mean(axis=(2, 3))))
    _lines(rng, image, grid, count=1)  # one stroke may cross the object: partial occlusion
    noise = rng.uniform(0, 10, (n, 1, 1, 1)).astype(np.float32)  # per-image sigma, grey
    image += noise * rng.standard_normal((n, 1, SIZE, SIZE), dtype=np.float32)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), boxes, alpha


def _split(seed: int, split: int, per_class: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One split, classes interleaved by a seeded shuffle so any prefix is balanced-ish."""
    jobs = [(label, min(_CHUNK, per_class - start), [seed, split, label, start])
            for label in range(len(CLASSES)) for start in range(0, per_class, _CHUNK)]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        parts = list(pool.map(lambda job: render(*job)[:2], jobs))
    images = np.concatenate([p[0] for p in parts])
    boxes = np.concatenate([p[1] for p in parts])
    labels = np.concatenate([np.full(job[1], job[0], dtype=np.int64) for job in jobs])
    order = np.random.default_rng([seed, split]).permutation(len(labels))
    return (torch.from_numpy(images[order]), torch.from_numpy(labels[order]),
            torch.from_numpy(boxes[order]))


def load(seed: int = 0, train_per_class: int = TRAIN_PER_CLASS,
         val_per_class: int = VAL_PER_CLASS) -> Dataset:
    """Generate the shapes dataset; the same seed always gives the same images."""
    train_x, train_y, train_boxes = _split(seed, 0, train_per_class)
    val_x, val_y, val_boxes = _split(seed, 1, val_per_class)
    return Dataset("shapes", list(CLASSES), train_x, train_y, val_x, val_y, train_boxes, val_boxes)
