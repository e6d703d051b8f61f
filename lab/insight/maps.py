"""The cache of a run's 2-D maps, one file an epoch in the run folder (``RunLayout.map``).

    ensure_maps(run.layout, "tsne")     # every recorded epoch, computed once, cached on disk
    load_map(run.layout, 3, "umap")     # (N, 2) or None when not computed yet

Each epoch's map is aligned to the one before (:mod:`lab.insight.embed`), so the
cached maps of a run are only valid as one chain from epoch 0: epochs are always
computed in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lab.durable import atomic_write
from lab.insight.embed import HEAVY, embed_epoch, normalize_method
from lab.insight.errors import InsightError
from lab.runs.layout import RunLayout


def load_map(run: RunLayout, epoch: int, method: str) -> np.ndarray | None:
    """The cached (N, 2) map, or None when it has not been computed yet."""
    try:
        return np.load(run.map(normalize_method(method), epoch))
    except (OSError, ValueError):
        return None


def mapped_epochs(run: RunLayout, method: str) -> list[int]:
    """Epochs whose ``method`` map is cached, ascending: a glob, cheap enough for a page
    to call every second to learn whether a new map has landed."""
    return run.map_epochs(normalize_method(method))


def _save_map(path: Path, points: np.ndarray) -> None:
    atomic_write(path, lambda f: np.save(f, points))


def ensure_maps(run: RunLayout, method: str, upto: int | None = None,
                should_stop: Callable[[], bool] | None = None,
                compute: Callable[[np.ndarray, str, np.ndarray | None], np.ndarray] = embed_epoch,
                ) -> dict[int, np.ndarray]:
    """Maps of every recorded epoch (up to ``upto``), computing the missing ones in order.

    Each epoch is aligned to the one before, so a missing epoch is computed from its
    predecessor's cached map; ``should_stop`` is checked between epochs. ``compute`` is
    :func:`embed_epoch` or a stand-in that runs it elsewhere (the worker's child process).
    """
    from lab.insight.probe import load_probe  # torch: not in the worker's child

    method = normalize_method(method)
    epochs = [e for e in run.probe_epochs() if upto is None or e <= upto]
    maps: dict[int, np.ndarray] = {}
    previous = None
    for epoch in epochs:
        cached = load_map(run, epoch, method)
        if cached is None:
            if should_stop is not None and should_stop():
                break
            cached = compute(load_probe(run, epoch).features, method, previous)
            _save_map(run.map(method, epoch), cached)
        maps[epoch] = previous = cached
    return maps


@dataclass
class MapFrame:
    """One epoch of the feature-space picture: where each probe point lies and what the net said."""

    epoch: int
    points: np.ndarray  # float32 (N, 2), aligned to the epoch before
    labels: np.ndarray  # int64 (N,)
    preds: np.ndarray  # int64 (N,)
    confidence: np.ndarray  # float32 (N,)
    indices: np.ndarray  # int64 (N,) positions in the val split: the same points every epoch
    knn_acc: float


def map_frames(run: RunLayout, method: str, epochs: Sequence[int]) -> list[MapFrame]:
    """The frames of ``epochs`` (ascending), for a picture or an animation.

    PCA maps missing from the cache are made here (milliseconds an epoch); t-SNE and
    UMAP maps must already be cached (:func:`mapped_epochs` says which are), because
    making them takes seconds and belongs to the :class:`~lab.insight.worker.EmbeddingWorker`.
    """
    from lab.insight.probe import load_probe  # torch: not in the worker's child

    method = normalize_method(method)
    if method not in HEAVY and epochs:
        ensure_maps(run, method, upto=max(epochs))
    frames = []
    for epoch in sorted(epochs):
        points = load_map(run, epoch, method)
        if points is None:
            raise InsightError(f"the {method} map of epoch {epoch} is not made yet; ask the embedding worker")
        probe = load_probe(run, epoch)
        frames.append(MapFrame(epoch, points, probe.labels, probe.preds, probe.confidence, probe.indices,
                               probe.knn_acc))
    return frames
