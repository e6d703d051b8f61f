"""The lab's own downloader for MNIST, Fashion-MNIST and CIFAR-10: the Data page's Download button and
``python -m lab datasets --download NAME`` both call :func:`download_dataset`.

The files, their mirrors (tried in order) and md5 checksums are torchvision's (datasets/mnist.py and
cifar.py of torchvision 0.29), and they land where torchvision would leave them, so
lab.data.torchvision_files reads them and a folder filled by torchvision needs no second download.

A shared server downloads for everyone, so every step leaves the data folder whole:
- a file is streamed into a hidden temp file beside its place (lab.durable), never more bytes than the
  official file has, and renamed into place only once its md5 matches; a mismatch deletes it and says so;
- CIFAR-10's archive is unpacked only after its checksum passed, each member first checked to be a
  plain file or folder inside the staging folder (a ``../`` or a link refuses the whole archive), then
  extracted with tarfile's ``data`` filter, and the batches moved into place;
- one file lock per set in the data folder: a second session (or the CLI) asking meanwhile waits for
  the first download and then finds the files there;
- a file already in place with the right checksum (copied by hand) is not fetched again.

``LAB_DATA_MIRROR`` (lab.settings.data_mirror) replaces the official hosts with one base URL, for a
school's own copy or the tests' loopback server. Unreachable hosts give one message saying what to run
on a connected machine and which files to copy where. Messages come in the ``lang`` asked for.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import os
import secrets
import shutil
import tarfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lab import settings
from lab.data import torchvision_files as tv
from lab.data.dataset import DatasetError
from lab.durable import fsync_dir, make_dirs, temp_path
from lab.i18n import DEFAULT, text

Progress = Callable[[float, str], None]  # (fraction done, what is happening)
CHUNK = 1 << 20  # bytes read per step: one progress update per MiB
TIMEOUT_S = 30  # to connect, and between two reads: a stalled host fails instead of hanging a page
USER_AGENT = "cnn-lab"  # some hosts refuse urllib's default agent
MB = 1e6  # download sizes in decimal megabytes, as browsers and hosts state them


@dataclass(frozen=True)
class RemoteFile:
    """One file as its host serves it."""

    name: str  # on the host and on disk
    md5: str
    size: int  # bytes of the official file: the progress bar's total and the most a download may send


@dataclass(frozen=True)
class DatasetFiles:
    """What to fetch for one data set, from where, and where it goes."""

    name: str  # registry name
    title: str
    folder: Path  # where the files go, relative to the data dir
    mirrors: tuple[str, ...]  # base URLs, tried in order
    files: tuple[RemoteFile, ...]
    ready: Callable[[Path], bool]  # (data dir) -> whether the set loads now
    keeps: tuple[str, ...]  # what a copy from a connected machine must hold, relative to the data dir
    system_package: str = ""  # a Debian package that installs the set instead
    unpacks: bool = False  # the one file is a .tar.gz unpacked into the data dir

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def _idx_files(source: tv.IdxSource, mirrors: tuple[str, ...], checksums: dict[str, tuple[str, int]],
               ) -> DatasetFiles:
    files = tuple(RemoteFile(f"{name}.gz", *checksums[name]) for name in tv.IDX_FILES.values())
    return DatasetFiles(source.name, source.title, source.raw_folder, mirrors, files,
                        lambda root: tv.find_idx_files(source, root) is not None,
                        tuple(str(source.raw_folder / f.name) for f in files), source.system_package)


DOWNLOADS: dict[str, DatasetFiles] = {d.name: d for d in (
    _idx_files(tv.MNIST, ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"), {
        "train-images-idx3-ubyte": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", 9_912_422),
        "train-labels-idx1-ubyte": ("d53e105ee54ea40749a09fcbcd1e9432", 28_881),
        "t10k-images-idx3-ubyte": ("9fb629c4189551a2d022fa330f9573f3", 1_648_877),
        "t10k-labels-idx1-ubyte": ("ec29112dd5afa0611ce80d1b7f02629c", 4_542)}),
    _idx_files(tv.FASHION_MNIST, ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",), {
        "train-images-idx3-ubyte": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26_421_880),
        "train-labels-idx1-ubyte": ("25c81989df183df01b3e8a0aad5dffbe", 29_515),
        "t10k-images-idx3-ubyte": ("bef4ecab320f06d8554ea6380940ec79", 4_422_102),
        "t10k-labels-idx1-ubyte": ("bb300cfdad3c16e7a12a480ee83cd310", 5_148)}),
    DatasetFiles("cifar10", "CIFAR-10", Path("."), ("https://www.cs.toronto.edu/~kriz/",),
                 (RemoteFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", 170_498_071),),
                 tv.cifar_present, tuple(f"{tv.CIFAR_DIR}/{name}" for name in tv.CIFAR_FILES), unpacks=True),
)}


class _Unreachable(Exception):
    """A host that could not be reached or stopped answering: the next mirror is tried."""


def download_mb(name: str) -> int | None:
    """The download's size in MB for a page's button, or None for a set the lab does not download."""
    files = DOWNLOADS.get(name)
    return None if files is None else round(files.size / MB)


def download_dataset(name: str, data_dir: str | os.PathLike | None = None, progress: Progress | None = None,
                     lang: str = DEFAULT) -> None:
    """Fetch a registry data set's files into the data dir, unless it already loads from there.

    ``name`` is the registry's canonical name. Raises DatasetError (in ``lang``) saying what to do when the
    hosts are unreachable, a file is not the expected one, or the data dir cannot be written.
    """
    files = DOWNLOADS.get(name)
    if files is None:
        raise DatasetError(text("download.unknown", lang, name=name, names=", ".join(DOWNLOADS)))
    root = settings.data_dir(data_dir).expanduser().resolve()
    report = progress or (lambda fraction, message: None)
    if files.ready(root):
        return
    try:
        make_dirs(root / files.folder)
    except OSError as exc:
        raise DatasetError(text("download.write_failed", lang, folder=root, reason=exc)) from exc
    with _one_download_at_a_time(root / f".{name}.download.lock", files.title, report, lang):
        if files.ready(root):  # downloaded by the session we waited for
            return
        _fetch_all(files, root, _mirrors(files, lang), report, lang)
        if files.unpacks:
            _unpack(root / files.folder / files.files[0].name, root, report, lang)
    if not files.ready(root):
        raise DatasetError(text("download.incomplete", lang, title=files.title, paths=", ".join(files.keeps)))


def _mirrors(files: DatasetFiles, lang: str) -> tuple[str, ...]:
    """The official hosts, or only LAB_DATA_MIRROR when set (urllib would also open file:// and ftp://)."""
    mirror = settings.data_mirror()
    if not mirror:
        return files.mirrors
    if not mirror.startswith(("http://", "https://")):
        raise DatasetError(text("download.bad_mirror", lang, mirror=mirror))
    return (mirror.rstrip("/") + "/",)


@contextmanager
def _one_download_at_a_time(lock_path: Path, title: str, report: Progress, lang: str) -> Iterator[None]:
    """Hold the set's lock file; a second caller is told it waits, and waits. The kernel drops the lock
    of a killed process, so no stale lock outlives a crashed server."""
    try:
        handle = open(lock_path, "a+b")  # 'a': never truncates another holder's file
    except OSError as exc:
        raise DatasetError(text("download.write_failed", lang, folder=lock_path.parent, reason=exc)) from exc
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            report(0.0, text("download.waiting", lang, title=title))
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fetch_all(files: DatasetFiles, root: Path, mirrors: tuple[str, ...], report: Progress, lang: str) -> None:
    before = 0  # bytes of the files already in place: the bar runs over the whole set
    for remote in files.files:
        on_bytes = _file_progress(report, remote, before, files.size, lang)
        _fetch(files, remote, root / files.folder / remote.name, mirrors, on_bytes, lang, root)
        before += remote.size


def _file_progress(report: Progress, remote: RemoteFile, before: int, total: int,
                   lang: str) -> Callable[[int], None]:
    def on_bytes(got: int) -> None:
        report(min(1.0, (before + got) / total),
               text("download.progress", lang, file=remote.name, done=f"{got / MB:.1f}",
                    total=f"{remote.size / MB:.1f}"))

    return on_bytes


def _fetch(files: DatasetFiles, remote: RemoteFile, target: Path, mirrors: tuple[str, ...],
           on_bytes: Callable[[int], None], lang: str, root: Path) -> None:
    """One file into place from the first mirror that answers; a copy already there is kept if it checks out."""
    if target.is_file() and _md5(target) == remote.md5:
        return
    url, reason = "", ""
    for base in mirrors:
        url = base + remote.name
        try:
            _save(url, remote, target, on_bytes, lang)
            return
        except _Unreachable as exc:
            reason = str(exc)
        except OSError as exc:  # the data dir's disk or permissions, not the network
            raise DatasetError(text("download.write_failed", lang, folder=target.parent, reason=exc)) from exc
    raise DatasetError(_unreachable_message(files, url, reason, root, lang))


def _unreachable_message(files: DatasetFiles, url: str, reason: str, root: Path, lang: str) -> str:
    message = text("download.unreachable", lang, url=url, reason=reason, title=files.title,
                   command=tv.CLI_DOWNLOAD.format(name=files.name), paths=", ".join(files.keeps), root=root)
    if files.system_package:
        message += " " + text("download.apt", lang, package=files.system_package)
    return message


def _save(url: str, remote: RemoteFile, target: Path, on_bytes: Callable[[int], None], lang: str) -> None:
    """Stream url into a temp file beside target, checked for size and md5, then renamed over target."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError, HTTPError, timeouts
        plain_url_error = isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError)
        raise _Unreachable(exc.reason if plain_url_error else exc) from exc  # '[Errno 111] Connection refused'

    tmp = temp_path(target)
    try:
        with response, open(tmp, "wb") as out:
            digest = _stream(response, out, url, remote, on_bytes, lang)
            out.flush()
            os.fsync(out.fileno())
        if digest != remote.md5:
            raise DatasetError(text("download.checksum", lang, file=remote.name, url=url, got=digest,
                                    md5=remote.md5))
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _stream(response, out, url: str, remote: RemoteFile, on_bytes: Callable[[int], None], lang: str) -> str:
    """Copy the response into out, refusing more bytes than the official file has; its md5 in hex."""
    declared = response.headers.get("Content-Length", "")
    too_big = DatasetError(text("download.too_big", lang, url=url, size=f"{remote.size:,}"))
    if declared.isdigit() and int(declared) > remote.size:  # refused before a byte is written
        raise too_big
    digest, got = hashlib.md5(), 0
    while True:
        try:
            chunk = response.read(CHUNK)
        except (OSError, http.client.HTTPException) as exc:  # the connection dropped mid-file
            raise _Unreachable(exc) from exc
        if not chunk:
            return digest.hexdigest()
        got += len(chunk)
        if got > remote.size:
            raise too_big
        digest.update(chunk)
        out.write(chunk)
        on_bytes(got)


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --- CIFAR-10's archive ---------------------------------------------------------------------


def _unpack(archive: Path, root: Path, report: Progress, lang: str) -> None:
    """Unpack the checked archive into root through a hidden staging folder; the archive is deleted after,
    whether it unpacked or was refused."""
    report(1.0, text("download.unpacking", lang, file=archive.name))
    staging = root / f".{archive.name}.{secrets.token_hex(4)}.unpack"
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                if not _safe_member(member):
                    raise DatasetError(text("download.unsafe_archive", lang, file=archive.name,
                                            member=member.name, folder=root))
            tar.extractall(staging, members=members, filter="data")
        _move_into(staging / tv.CIFAR_DIR, root / tv.CIFAR_DIR)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DatasetError(text("download.bad_archive", lang, file=archive.name, reason=exc)) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        archive.unlink(missing_ok=True)


def _safe_member(member: tarfile.TarInfo) -> bool:
    """A plain file or folder with a relative path that never climbs out (no links, devices or '..')."""
    path = PurePosixPath(member.name)
    return (member.isfile() or member.isdir()) and not path.is_absolute() and ".." not in path.parts


def _move_into(source: Path, target: Path) -> None:
    """Each unpacked file renamed into target, so a partial copy already there is completed, not removed."""
    make_dirs(target)
    for path in sorted(source.iterdir()) if source.is_dir() else ():
        if path.is_file():
            os.replace(path, target / path.name)
    fsync_dir(target)
