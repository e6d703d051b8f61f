"""2-D maps of the probe's features, epoch after epoch, that move instead of jump.

    ensure_maps(run.layout, "tsne")     # every recorded epoch, computed once, cached on disk
    load_map(run.layout, 3, "umap")     # (N, 2) or None when not computed yet
    worker = EmbeddingWorker(); worker.request(run.layout, "tsne")   # the same, off this thread

Methods: ``pca`` (a numpy SVD: instant, no scikit-learn), ``tsne`` (scikit-learn)
and ``umap`` (umap-learn); both heavy libraries are imported only when used.

Consecutive epochs are aligned: epoch e starts from epoch e-1's layout (t-SNE
and UMAP take it as their initialisation) and every map is then rotated or
reflected onto the previous one by orthogonal Procrustes, after centring and
scaling to unit RMS radius. So the maps of a run form one chain from epoch 0,
and the cached maps (``RunLayout.map``) are only valid in that chain: epochs are
always computed in order.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lab.insight.errors import InsightError
from lab.registry import Registry
from lab.runs.layout import RunLayout

log = logging.getLogger(__name__)

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


# ---------------------------------------------------------------- the cache

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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, points)
    os.replace(tmp, path)


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
    making them takes seconds and belongs to the :class:`EmbeddingWorker`.
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


# ---------------------------------------------------------------- off the training thread

class _Stream:
    """A pipe as numpy's .npy reader needs it: ``read`` only (a real file object makes
    numpy use ``fromfile``, which needs a seekable file)."""

    def __init__(self, raw):
        self.raw = raw

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        if size and size > 0 and len(data) < size:
            raise EOFError("the other end closed the pipe")
        return data


def _send(stream, *arrays: np.ndarray) -> None:
    """.npy records through a pipe (numpy's writer would call ``tofile``, which needs a seekable file)."""
    buffer = io.BytesIO()
    for array in arrays:
        np.lib.format.write_array(buffer, array, allow_pickle=False)
    stream.write(buffer.getvalue())
    stream.flush()


class _Child:
    """One long-lived ``python -m lab.insight.embed --serve`` process computing maps.

    Requests and answers are ``.npy`` records on its stdin/stdout (no pickle). A plain
    subprocess rather than multiprocessing: a spawned multiprocessing child re-imports
    the parent's main script, which a user's unguarded script cannot survive.
    """

    def __init__(self, nice: int, warm_up: bool = False):
        import subprocess
        import sys

        self.proc = subprocess.Popen([sys.executable, "-m", "lab.insight.embed", "--serve", str(nice),
                                      *(["--warm-up"] if warm_up else [])],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def compute(self, features: np.ndarray, method: str, previous: np.ndarray | None) -> np.ndarray:
        fmt = np.lib.format
        try:
            _send(self.proc.stdin, np.array(method), np.asarray(features, dtype=np.float32),
                  np.zeros((0, 2), np.float32) if previous is None else np.asarray(previous, np.float32))
            answers = _Stream(self.proc.stdout)
            status = str(fmt.read_array(answers, allow_pickle=False))
            points = fmt.read_array(answers, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            raise RuntimeError(f"the embedding process ended ({err}); it restarts on the next request") from None
        if status != "ok":
            raise InsightError(status)
        return points

    def close(self) -> None:
        """End the child now: whatever it was making (or compiling) is not wanted any more."""
        try:
            self.proc.stdin.close()
            self.proc.terminate()
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001 - already gone or stuck: make sure it is gone
            self.proc.kill()
            self.proc.wait()


def _warm_up() -> None:
    """Compile UMAP's numba code before the first request: 19 s on the 2-core dev machine,
    paid here in the background rather than on a user's first click (then 2.4 s a map)."""
    try:
        umap(np.random.default_rng(SEED).normal(size=(64, 8)).astype(np.float32))
    except ImportError:
        pass  # no umap-learn here: nothing to compile


def _exit_with_parent(parent: int, every_s: float = 1.0) -> None:
    """End this process soon after ``parent`` does: a child busy compiling UMAP or making a map reads no
    EOF on stdin, and was seen running for minutes after its server had stopped. Polling the parent's pid
    (a child is re-parented when its parent dies) works on every OS, unlike Linux's parent-death signal."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _serve(nice: int, warm_up: bool = False) -> None:
    """The child's loop: read (method, features, previous), answer (status, points) until EOF."""
    import sys

    _exit_with_parent(os.getppid())
    if nice and hasattr(os, "nice"):
        os.nice(nice)  # lowest priority: training in the parent keeps the CPU it needs
    if warm_up:
        _warm_up()
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the answers
    sys.stdout = sys.stderr
    requests = _Stream(sys.stdin.buffer)
    fmt = np.lib.format
    while True:
        try:
            method = str(fmt.read_array(requests, allow_pickle=False))
        except (ValueError, EOFError):  # stdin closed: the parent is done
            return
        features = fmt.read_array(requests, allow_pickle=False)
        previous = fmt.read_array(requests, allow_pickle=False)
        try:
            points, status = embed_epoch(features, method, previous if len(previous) else None), "ok"
        except Exception as err:  # noqa: BLE001 - reported to the parent, which raises it
            points, status = np.zeros((0, 2), np.float32), f"{type(err).__name__}: {err}"
        _send(answers, np.array(status), np.asarray(points))


class EmbeddingWorker:
    """Makes maps for (run, method) requests in the background, oldest request first.

    ``request`` returns at once; ``get`` reads the cache (and asks for the map when it
    is missing), so a page polls it without ever waiting. A thread keeps the queue and
    the files; t-SNE and UMAP themselves run in one long-lived child process at the
    lowest CPU priority. A thread alone is not enough: measured on 2 cores, training
    next to a thread running t-SNE nonstop kept 60% of its speed (the two share the
    GIL) and 92% next to a niced process. PCA (milliseconds) stays in the thread.
    A failure is logged and kept in ``errors`` for the page to show; the worker
    carries on with the next request.
    """

    def __init__(self, nice: int = 19, processes: bool = True):
        self.nice, self.processes = nice, processes
        self.errors: dict[tuple[RunLayout, str], str] = {}  # keyed by :meth:`key`
        self._pending: deque[tuple[RunLayout, str]] = deque()
        self._cond = threading.Condition()
        self._busy: tuple[RunLayout, str] | None = None
        self._closing = False
        self._thread: threading.Thread | None = None
        self._child: _Child | None = None  # started on the first t-SNE/UMAP request

    def warm_up(self) -> None:
        """Start the child process now and have it compile UMAP while nobody waits.
        Otherwise the child starts on the first t-SNE/UMAP request, without the compile
        (a t-SNE must not wait for it)."""
        with self._cond:
            if self.processes and self._child is None:
                self._child = _Child(self.nice, warm_up=True)

    @staticmethod
    def key(run: RunLayout, method: str) -> tuple[RunLayout, str]:
        """How requests and ``errors`` name a (run, method): the same run however its folder was spelt."""
        return RunLayout(run.root.resolve()), normalize_method(method)

    def request(self, run: RunLayout, method: str) -> None:
        """Make (or finish) every recorded epoch's map of this run with this method."""
        key = self.key(run, method)
        with self._cond:
            if self._closing:
                raise RuntimeError("the embedding worker is closed")
            if key not in self._pending:  # a busy key may be asked again: a new epoch has come
                self._pending.append(key)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True, name="lab-embedding")
                self._thread.start()
            self._cond.notify_all()

    def get(self, run: RunLayout, epoch: int, method: str) -> np.ndarray | None:
        """The map if it is ready; otherwise None, and it is requested."""
        points = load_map(run, epoch, method)
        if points is None and epoch in run.probe_epochs():
            self.request(run, method)
        return points

    def busy(self) -> bool:
        with self._cond:
            return bool(self._pending) or self._busy is not None

    def pending(self, run: RunLayout, method: str) -> bool:
        """Whether this run's maps with this method are queued or being made now (a page
        polls while they are, and says "computing…")."""
        key = self.key(run, method)
        with self._cond:
            return key in self._pending or self._busy == key

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

    def close(self, timeout: float | None = 30.0) -> None:
        """Drop pending requests, stop after the epoch in progress, end the child process."""
        with self._cond:
            self._closing = True
            self._pending.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        if self._child is not None:
            self._child.close()
            self._child = None

    def _compute(self, features: np.ndarray, method: str, previous: np.ndarray | None) -> np.ndarray:
        if method not in HEAVY or not self.processes:
            return embed_epoch(features, method, previous)
        if self._child is None or not self._child.alive():
            self._child = _Child(self.nice)
        return self._child.compute(features, method, previous)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                self._busy = key = self._pending.popleft()
            try:
                ensure_maps(key[0], key[1], should_stop=lambda: self._closing, compute=self._compute)
                self.errors.pop(key, None)
            except Exception as err:  # keep serving other runs; the page shows the message
                log.exception("embedding %s of %s failed", key[1], key[0])
                self.errors[key] = f"{type(err).__name__}: {err}"
            finally:
                with self._cond:
                    self._busy = None
                    self._cond.notify_all()


if __name__ == "__main__":  # the worker's child: python -m lab.insight.embed --serve NICE [--warm-up]
    import sys

    if sys.argv[1:2] != ["--serve"]:
        raise SystemExit("usage: python -m lab.insight.embed --serve [NICE] [--warm-up]")
    _serve(int(sys.argv[2]) if len(sys.argv) > 2 else 0, warm_up="--warm-up" in sys.argv[3:])
