"""Maps made off the page's and the trainer's thread: the embedding worker and its child process.

    worker = EmbeddingWorker(); worker.request(run.layout, "tsne")   # returns at once
    worker.get(run.layout, 3, "tsne")                                # the map, or None and it is asked for

The child is ``python -m lab.insight.worker --serve NICE [--warm-up]``; it imports
numpy, :mod:`lab.insight.embed` and :mod:`lab.insight.maps`, never torch.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from collections import deque

import numpy as np

from lab.insight.embed import HEAVY, SEED, embed_epoch, normalize_method, umap
from lab.insight.errors import InsightError
from lab.insight.maps import ensure_maps, load_map
from lab.runs.layout import RunLayout

log = logging.getLogger(__name__)


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
    """One long-lived ``python -m lab.insight.worker --serve`` process computing maps.

    Requests and answers are ``.npy`` records on its stdin/stdout (no pickle). A plain
    subprocess rather than multiprocessing: a spawned multiprocessing child re-imports
    the parent's main script, which a user's unguarded script cannot survive.
    """

    def __init__(self, nice: int, warm_up: bool = False):
        import subprocess
        import sys

        self.proc = subprocess.Popen([sys.executable, "-m", "lab.insight.worker", "--serve", str(nice),
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


if __name__ == "__main__":  # the worker's child: python -m lab.insight.worker --serve NICE [--warm-up]
    import sys

    if sys.argv[1:2] != ["--serve"]:
        raise SystemExit("usage: python -m lab.insight.worker --serve [NICE] [--warm-up]")
    _serve(int(sys.argv[2]) if len(sys.argv) > 2 else 0, warm_up="--warm-up" in sys.argv[3:])
