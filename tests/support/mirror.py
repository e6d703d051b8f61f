"""A loopback HTTP server standing in for the hosts of MNIST, Fashion-MNIST and CIFAR-10, and small
files in their real formats to serve: the download tests point ``LAB_DATA_MIRROR`` at it and patch
lab.data.download's table to these files' checksums, so nothing in the suite leaves the machine."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import socket
import tarfile
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from lab.data import torchvision_files as tv
from lab.data.download import DOWNLOADS, DatasetFiles, RemoteFile

CIFAR_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


@dataclass
class Mirror:
    """What the server serves (file name -> bytes), its base URL, and the requests it answered per file.
    ``hold``, when set, is an event every request waits for before answering: a download kept under way."""

    files: dict[str, bytes]
    url: str = ""
    requests: Counter = field(default_factory=Counter)
    hold: threading.Event | None = None


@contextmanager
def loopback_mirror(files: dict[str, bytes], hold: threading.Event | None = None) -> Iterator[Mirror]:
    """An HTTP server on 127.0.0.1 (a free port) in a thread, serving ``files`` by name; 404 otherwise."""
    mirror = Mirror(dict(files), hold=hold)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = self.path.rsplit("/", 1)[-1]
            mirror.requests[name] += 1
            if mirror.hold is not None:
                mirror.hold.wait(timeout=30)
            body = mirror.files.get(name)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # no request lines in the test output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    mirror.url = f"http://127.0.0.1:{server.server_address[1]}/datasets/"
    try:
        yield mirror
    finally:
        if mirror.hold is not None:
            mirror.hold.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def closed_port_url() -> str:
    """An address on loopback where nothing listens: connecting is refused at once, as offline."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def checked(name: str, files: dict[str, bytes]) -> DatasetFiles:
    """lab.data.download's entry for ``name`` with ``files``' names, md5 checksums and sizes."""
    remote = tuple(RemoteFile(n, hashlib.md5(b).hexdigest(), len(b)) for n, b in files.items())
    return replace(DOWNLOADS[name], files=remote)


# --- files in the real formats -----------------------------------------------------------------


def idx_gz_files(n_train: int = 6, n_val: int = 3, seed: int = 0) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    """The four gzipped IDX files torchvision downloads (name -> bytes), and the arrays they hold by role."""
    rng = np.random.default_rng(seed)
    arrays = {"train_x": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train_y": rng.integers(0, 10, n_train, dtype=np.uint8),
              "val_x": rng.integers(0, 256, (n_val, 28, 28), dtype=np.uint8),
              "val_y": rng.integers(0, 10, n_val, dtype=np.uint8)}
    files = {}
    for role, name in tv.IDX_FILES.items():
        array = arrays[role]
        header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
        files[f"{name}.gz"] = gzip.compress(header + array.tobytes(), mtime=0)
    return files, arrays


def cifar_batches(per_batch: int = 2, seed: int = 0) -> dict[str, bytes]:
    """cifar-10-batches-py's files as the official pickles (protocol 2, bytes keys), ``per_batch`` images each."""
    rng = np.random.default_rng(seed)
    files = {}
    for name in tv.CIFAR_FILES[:-1]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        files[name] = pickle.dumps({b"batch_label": name.encode(), b"data": data,
                                    b"labels": [int(v) for v in rng.integers(0, 10, per_batch)]}, protocol=2)
    files["batches.meta"] = pickle.dumps({b"label_names": CIFAR_NAMES, b"num_vis": 3072}, protocol=2)
    return files


def tar_gz(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    """A gzipped tar of ``members`` (path -> content) and symbolic ``links`` (path -> target), as given:
    paths are not cleaned, so a crafted ``../`` survives."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, content in members.items():
            info = tarfile.TarInfo(path)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        for path, target in (links or {}).items():
            info = tarfile.TarInfo(path)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return buffer.getvalue()


def cifar_archive(per_batch: int = 2, extra: dict[str, bytes] | None = None,
                  links: dict[str, str] | None = None) -> dict[str, bytes]:
    """``cifar-10-python.tar.gz`` as the host serves it (file name -> bytes), with ``extra`` members and links."""
    members = {f"{tv.CIFAR_DIR}/{name}": data for name, data in cifar_batches(per_batch).items()}
    return {"cifar-10-python.tar.gz": tar_gz({**members, **(extra or {})}, links)}
