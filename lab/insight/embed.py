"""2-D maps of the probe's features, epoch after epoch, that move instead of jump.

    ensure_maps(run_dir, "tsne")        # every recorded epoch, computed once, cached on disk
    load_map(run_dir, 3, "umap")        # (N, 2) or None when not computed yet
    worker = EmbeddingWorker(); worker.request(run_dir, "tsne")   # the same, off this thread

Methods: ``pca`` (a numpy SVD: instant, no scikit-learn), ``tsne`` (scikit-learn)
and ``umap`` (umap-learn); both heavy libraries are imported only when used.

Consecutive epochs are aligned: epoch e starts from epoch e-1's layout (t-SNE
and UMAP take it as their initialisation) and every map is then rotated or
reflected onto the previous one by orthogonal Procrustes, after centring and
scaling to unit RMS radius. So the maps of a run form one chain from epoch 0,
and the cache files ``probe/map_<method>_NNN.npy`` are only valid in that chain:
epochs are always computed in order.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lab.insight.errors import InsightError
from lab.insight.probe import PROBE_DIR, load_probe, recorded_epochs

log = logging.getLogger(__name__)

METHODS = ("pca", "tsne", "umap")
_ALIASES = {"t-sne": "tsne", "t_sne": "tsne"}
PRE_PCA_DIMS = 50  # t-SNE and UMAP see the top 50 principal components (the usual recipe; faster kNN)
SEED = 0


def normalize_method(name: str) -> str:
    """Canonical embedding method name; refuses unknown names listing the valid ones."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in METHODS:
        raise InsightError(f"unknown embedding method {name!r}; use one of: {', '.join(METHODS)}")
    return key


# ---------------------------------------------------------------- geometry

def standardize(points: np.ndarray) -> np.ndarray:
    """Centre on the origin and scale to unit RMS distance from it, so maps of
    different epochs and methods share one scale."""
    centred = points - points.mean(axis=0)
    rms = np.sqrt((centred ** 2).sum(axis=1).mean())
    return centred / rms if rms > 0 else centred


def procrustes(moving: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``moving`` rotated (or reflected) to lie as close as possible to ``reference``.

    Both are standardised first; the orthogonal R minimising ||moving R - reference||
    is U V^T from the SVD of moving^T reference (Schönemann, 1966).
    """
    a, b = standardize(moving), standardize(reference)
    u, _, vt = np.linalg.svd(a.T @ b)
    return a @ (u @ vt)


def displacement(a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance a point moves between two maps of the same points."""
    return float(np.linalg.norm(a - b, axis=1).mean())


def pca(features: np.ndarray, components: int = 2) -> np.ndarray:
    """Projection on the top principal components (SVD of the centred data).

    Signs follow the largest-magnitude loading, as scikit-learn's ``svd_flip`` does,
    so the same data gives the same picture.
    """
    x = np.asarray(features, dtype=np.float64)
    x = x - x.mean(axis=0)
    components = min(components, *x.shape)
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
    signs[signs == 0] = 1
    out = (u[:, :components] * s[:components]) * signs[:components]
    if out.shape[1] < 2:  # a 1-D feature space: lay it on the x axis
        out = np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    return out


def _reduced(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    return pca(x, PRE_PCA_DIMS) if x.shape[1] > PRE_PCA_DIMS else x - x.mean(axis=0)


def tsne(features: np.ndarray, init: np.ndarray | None = None, seed: int = SEED) -> np.ndarray:
    """Barnes-Hut t-SNE (scikit-learn); ``init`` (N, 2) warm-starts from a previous layout.

    A warm start keeps the layout and skips most of the exploration: early exaggeration
    is lower and the run shorter, which is also what makes it fast.
    """
    from sklearn.manifold import TSNE  # heavy, and absent where only training runs

    x = _reduced(features)
    n = len(x)
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3.5)))
    if init is None:
        start, exaggeration, iterations = "pca", 12.0, 1000
    else:  # t-SNE wants a small initial spread (std 1e-4 as sklearn's PCA init); keep the shape
        start = standardize(init)[:, :2] * 1e-4 / max(float(np.std(standardize(init)[:, 0])), 1e-12)
        exaggeration, iterations = 4.0, 500
    model = TSNE(n_components=2, perplexity=perplexity, init=start, learning_rate="auto",
                 early_exaggeration=exaggeration, max_iter=iterations, random_state=seed, n_jobs=1)
    return model.fit_transform(x.astype(np.float32))


def umap(features: np.ndarray, init: np.ndarray | None = None, seed: int = SEED) -> np.ndarray:
    """UMAP (umap-learn); ``init`` (N, 2) warm-starts from a previous layout."""
    import umap as umap_learn  # heavy (numba), and absent where only training runs

    x = _reduced(features)
    n = len(x)
    model = umap_learn.UMAP(n_components=2, n_neighbors=min(15, max(2, n - 1)), min_dist=0.1,
                            init="spectral" if init is None else standardize(init),
                            n_epochs=None if init is None else 200, random_state=seed, n_jobs=1)
    return model.fit_transform(x.astype(np.float32))


def embed_epoch(features: np.ndarray, method: str, previous: np.ndarray | None = None,
                seed: int = SEED) -> np.ndarray:
    """One epoch's (N, 2) map, standardised and aligned to ``previous`` when given."""
    method = normalize_method(method)
    if method == "pca":
        points = pca(features)
    elif method == "tsne":
        points = tsne(features, previous, seed)
    else:
        points = umap(features, previous, seed)
    points = standardize(np.asarray(points, dtype=np.float64))
    if previous is not None and len(previous) == len(points):
        points = procrustes(points, previous)
    return points.astype(np.float32)


# ---------------------------------------------------------------- the cache

def map_path(run_dir: Path, method: str, epoch: int) -> Path:
    return Path(run_dir) / PROBE_DIR / f"map_{normalize_method(method)}_{epoch:03d}.npy"


def load_map(run_dir: Path, epoch: int, method: str) -> np.ndarray | None:
    """The cached (N, 2) map, or None when it has not been computed yet."""
    try:
        return np.load(map_path(run_dir, method, epoch))
    except (OSError, ValueError):
        return None


def _save_map(path: Path, points: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, points)
    os.replace(tmp, path)


def ensure_maps(run_dir: Path, method: str, upto: int | None = None,
                should_stop: Callable[[], bool] | None = None,
                on_epoch: Callable[[int], None] | None = None) -> dict[int, np.ndarray]:
    """Maps of every recorded epoch (up to ``upto``), computing the missing ones in order.

    Each epoch is aligned to the one before, so a missing epoch is computed from its
    predecessor's cached map; ``should_stop`` is checked between epochs.
    """
    method = normalize_method(method)
    epochs = [e for e in recorded_epochs(run_dir) if upto is None or e <= upto]
    maps: dict[int, np.ndarray] = {}
    previous = None
    for epoch in epochs:
        cached = load_map(run_dir, epoch, method)
        if cached is None:
            if should_stop is not None and should_stop():
                break
            cached = embed_epoch(load_probe(run_dir, epoch).features, method, previous)
            _save_map(map_path(run_dir, method, epoch), cached)
            if on_epoch is not None:
                on_epoch(epoch)
        maps[epoch] = previous = cached
    return maps


# ---------------------------------------------------------------- off the training thread

class EmbeddingWorker:
    """One background thread making maps for (run, method) requests, oldest first.

    ``request`` returns at once; ``get`` reads the cache (and asks for the map when it
    is missing), so a page polls it without ever waiting. The thread runs at a lower
    CPU priority (Linux ``setpriority`` on the thread), so a training run in the same
    process keeps the CPU when the two compete. A failure is logged and kept in
    ``errors`` for the page to show; the worker carries on with the next request.
    """

    def __init__(self, nice: int = 10):
        self.nice = nice
        self.errors: dict[tuple[Path, str], str] = {}
        self._pending: deque[tuple[Path, str]] = deque()
        self._cond = threading.Condition()
        self._busy: tuple[Path, str] | None = None
        self._closing = False
        self._thread: threading.Thread | None = None

    def request(self, run_dir: Path | str, method: str) -> None:
        """Make (or finish) every recorded epoch's map of this run with this method."""
        key = (Path(run_dir).resolve(), normalize_method(method))
        with self._cond:
            if self._closing:
                raise RuntimeError("the embedding worker is closed")
            if key not in self._pending:
                self._pending.append(key)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True, name="lab-embedding")
                self._thread.start()
            self._cond.notify_all()

    def get(self, run_dir: Path | str, epoch: int, method: str) -> np.ndarray | None:
        """The map if it is ready; otherwise None, and it is requested."""
        points = load_map(Path(run_dir), epoch, method)
        if points is None and epoch in recorded_epochs(Path(run_dir)):
            self.request(run_dir, method)
        return points

    def busy(self) -> bool:
        with self._cond:
            return bool(self._pending) or self._busy is not None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every request is done; False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending or self._busy is not None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float | None = 10.0) -> None:
        """Drop pending requests and stop after the epoch in progress."""
        with self._cond:
            self._closing = True
            self._pending.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _loop(self) -> None:
        self._lower_priority()
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                self._busy = key = self._pending.popleft()
            try:
                ensure_maps(key[0], key[1], should_stop=lambda: self._closing)
                self.errors.pop(key, None)
            except Exception as err:  # keep serving other runs; the page shows the message
                log.exception("embedding %s of %s failed", key[1], key[0])
                self.errors[key] = f"{type(err).__name__}: {err}"
            finally:
                with self._cond:
                    self._busy = None
                    self._cond.notify_all()

    def _lower_priority(self) -> None:
        if self.nice and hasattr(os, "setpriority"):
            try:  # Linux: the thread's own id; OpenMP threads it starts inherit the priority
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
            except OSError as err:
                log.info("could not lower the embedding thread's priority: %s", err)
