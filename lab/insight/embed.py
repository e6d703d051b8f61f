"""2-D maps of the probe's features that move from epoch to epoch instead of jumping: the math.

    embed_epoch(features, "tsne", previous)   # (N, 2), standardised and aligned to ``previous``

Methods: ``pca`` (a numpy SVD: instant, no scikit-learn), ``tsne`` (scikit-learn)
and ``umap`` (umap-learn); both heavy libraries are imported only when used.

Consecutive epochs are aligned: epoch e starts from epoch e-1's layout (t-SNE
and UMAP take it as their initialisation) and every map is then rotated or
reflected onto the previous one by orthogonal Procrustes, after centring and
scaling to unit RMS radius. :mod:`lab.insight.maps` caches the maps of a run as
one such chain; :mod:`lab.insight.worker` makes the heavy ones off the page's thread.
This module imports neither torch nor the run store: the worker's child process runs it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lab.insight.errors import InsightError
from lab.registry import Registry

HEAVY = ("tsne", "umap")  # run in the worker's child process; PCA is a millisecond SVD
PRE_PCA_DIMS = 50  # t-SNE and UMAP see the top 50 principal components (the usual recipe; faster kNN)
SEED = 0


def normalize_method(name: str) -> str:
    """Canonical embedding method name ('t-SNE' is 'tsne'); refuses unknown names listing the valid ones."""
    return EMBEDDINGS.name_of(name)


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
    """Projection on the top principal components of the centred data.

    From the eigenvectors of the D x D scatter matrix when there are more points than
    dimensions (the probe: 1,000 x at most 512): the same components as an SVD of the
    data, several times faster, and the Train page makes a PCA map per epoch on its
    script thread, beside a training run. Signs follow the largest-magnitude loading,
    as scikit-learn's ``svd_flip`` does, so the same data gives the same picture.
    """
    x = np.asarray(features, dtype=np.float64)
    x = x - x.mean(axis=0)
    components = min(components, *x.shape)
    if x.shape[0] >= x.shape[1]:
        _, vectors = np.linalg.eigh(x.T @ x)  # ascending eigenvalues
        vt = vectors[:, ::-1][:, :components].T
    else:
        vt = np.linalg.svd(x, full_matrices=False)[2][:components]
    signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
    signs[signs == 0] = 1
    out = (x @ vt.T) * signs
    if out.shape[1] < 2:  # a 1-D feature space: lay it on the x axis
        out = np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    return out


def _reduced(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    return pca(x, PRE_PCA_DIMS) if x.shape[1] > PRE_PCA_DIMS else x - x.mean(axis=0)


def tsne(features: np.ndarray, init: np.ndarray | None = None, seed: int = SEED) -> np.ndarray:
    """Barnes-Hut t-SNE (scikit-learn); ``init`` (N, 2) warm-starts from a previous layout.

    A warm start keeps the layout and skips most of the exploration: early exaggeration
    is lower and the run shorter, which is also what makes it fast. Measured for the
    1,000-point probe of gap_cam on shapes, 2 CPU cores: 2.3 s cold, 1.0-1.1 s warm
    (plus 1 s to import scikit-learn's manifold module once).
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
    steps = "max_iter" if "max_iter" in TSNE().get_params() else "n_iter"  # renamed in scikit-learn 1.5
    model = TSNE(n_components=2, perplexity=perplexity, init=start, learning_rate="auto",
                 early_exaggeration=exaggeration, random_state=seed, n_jobs=1, **{steps: iterations})
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


# Every method as (features, previous map or None, seed) -> (N, 2); PCA needs neither warm start nor seed.
EMBEDDINGS: Registry[Callable[[np.ndarray, np.ndarray | None, int], np.ndarray]] = Registry(
    "embedding method", {"pca": lambda features, previous, seed: pca(features), "tsne": tsne, "umap": umap},
    InsightError)
METHODS = tuple(EMBEDDINGS)


def embed_epoch(features: np.ndarray, method: str, previous: np.ndarray | None = None,
                seed: int = SEED) -> np.ndarray:
    """One epoch's (N, 2) map, standardised and aligned to ``previous`` when given."""
    points = EMBEDDINGS.lookup(method)(features, previous, seed)
    points = standardize(np.asarray(points, dtype=np.float64))
    if previous is not None and len(previous) == len(points):
        points = procrustes(points, previous)
    return points.astype(np.float32)
