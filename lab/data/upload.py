"""Importing a user's zip of class folders into data_dir/uploads/<name>/.

A classroom server takes uploads from anyone, so the zip is treated as hostile:
entries with absolute or '..' paths and symbolic links are skipped, every
destination is resolved and checked to lie inside the staging folder, sizes are
counted from the bytes actually inflated (never from the headers), and a file
count (read from the zip's last record before the directory is parsed), a total
size, a compression ratio per entry and for the whole zip, and the disk each person
and the server may fill bound the work. An image file much larger than its pixels
hides data and is skipped. Extraction goes to a hidden staging folder that is
renamed into place only when the import succeeded, so a failed import leaves
nothing behind; :func:`prune_uploads` removes old uploads no run uses.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import struct
import tempfile
import time
import uuid
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from lab import settings
from lab.data import images
from lab.data.corrections import split_name
from lab.data.dataset import DatasetError
from lab.data.folder import decoded_dir, scan_folder

UNSAFE = "unsafe path (absolute or '..')"
SYMLINK = "symbolic link"
ENCRYPTED = "encrypted entry"
UNREADABLE = "damaged or unsupported zip entry"
CLASH = "name clashes with another entry"
LONG_NAME = "file or folder name over 255 bytes"
PADDED = "file far larger than its image (hidden data)"
MARKER = ".lab-upload"  # in every imported folder: what prune_uploads may remove, and since when
_MAX_NAME_BYTES = 255  # a file name's limit on Linux filesystems
_METADATA_BYTES = 64 << 10  # what an image file may hold beyond its raw pixels (EXIF's segment limit)
_CHUNK = 1 << 20
# Tiny files can legitimately compress a thousandfold (a blank BMP); a bomb is big,
# so the ratio is only enforced once an entry has inflated past this many bytes.
_RATIO_FROM_BYTES = 1 << 20

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class ImportReport:
    """What an import kept and skipped, for the upload page to show."""

    name: str  # folder name under data_dir/uploads
    path: Path  # that folder
    dataset_name: str  # 'folder:<path>', for load_dataset
    classes: list[str]
    kept: dict[str, int]  # class -> usable images (train and test together)
    skipped: dict[str, int]  # reason -> files
    total_kept: int
    dropped_classes: list[str]  # class folders without a usable image


def import_zip(source: str | os.PathLike | BinaryIO, data_dir: str | os.PathLike | None = None, *,
               name: str | None = None, owner: str = "", progress: Progress | None = None) -> ImportReport:
    """Extract a zip (path or binary file-like, e.g. a Streamlit UploadedFile) of class
    folders into data_dir/uploads/[<owner>/]<name>/, replacing an earlier upload of that
    name by the same owner. The app passes each browser session's key as ``owner``, so
    two students who both upload ``flowers.zip`` never replace each other's images.

    Raises DatasetError, with nothing written, when the file is not a zip, breaks a
    limit, or holds fewer than two classes of usable images.
    """
    limits = settings.limits()
    final = upload_path(data_dir, name or _source_name(source), owner)
    name, uploads = final.name, final.parent
    report = _throttled(progress)
    _check_entry_count(source, limits)
    with _open_zip(source) as archive:
        entries = [info for info in archive.infolist() if not info.is_dir()]
        _check_claims(entries, limits)
        _check_disk(final, sum(info.file_size for info in entries), limits)
        uploads.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=uploads)).resolve()
        try:
            skipped = _extract(archive, entries, staging, limits, report)
            report(0.95, "checking classes")
            scan = scan_folder(staging, shown=_source_name(source) or "the zip")
            (staging / MARKER).touch()
            _replace(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    report(1.0, "done")
    skipped.update(scan.skipped)
    return ImportReport(name=name, path=final, dataset_name=f"folder:{final}", classes=scan.classes,
                        kept=scan.kept, skipped=dict(skipped), total_kept=sum(scan.kept.values()),
                        dropped_classes=scan.dropped)


def upload_path(data_dir: str | os.PathLike | None, name: str, owner: str = "") -> Path:
    """Where an upload called name lives: data_dir/uploads/[<owner>/]<name made safe>."""
    uploads = settings.data_dir(data_dir).expanduser().resolve() / "uploads"
    return (uploads / _safe_name(owner) if owner else uploads) / _safe_name(name)


def _source_name(source: str | os.PathLike | BinaryIO) -> str:
    raw = source if isinstance(source, (str, os.PathLike)) else getattr(source, "name", "")
    return Path(str(raw)).name


def _safe_name(raw: str) -> str:
    """A folder name that cannot escape uploads/ or hide: letters, digits, '-' and '_'."""
    stem = raw[:-4] if raw.lower().endswith(".zip") else raw
    return re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:64] or "upload"


def _open_zip(source: str | os.PathLike | BinaryIO) -> zipfile.ZipFile:
    label = source if isinstance(source, (str, os.PathLike)) else _source_name(source) or "the upload"
    try:
        if hasattr(source, "seek"):
            source.seek(0)
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"{label} is not a zip file. Upload a .zip holding one folder of images "
                           "per class (e.g. cat/*.jpg, dog/*.jpg).") from exc
    except OSError as exc:
        raise DatasetError(f"cannot read {label}: {exc.strerror or exc}") from exc


def _check_entry_count(source: str | os.PathLike | BinaryIO, limits: settings.Limits) -> None:
    """Refuse a zip with too many entries from its end record alone: zipfile builds an object per entry
    before anything can be counted (300,000 entries: +145 MB, 2.7 s)."""
    count = _entry_count(source)
    if count is not None and count > limits.max_upload_files:
        raise DatasetError(f"the zip holds {count:,} files, more than the limit of {limits.max_upload_files:,} "
                           "(LAB_MAX_UPLOAD_FILES). Upload fewer images, or ask whoever runs the server to raise "
                           "the limit.")


def _entry_count(source: str | os.PathLike | BinaryIO) -> int | None:
    """Entries the zip's end-of-central-directory record declares (zip64 too); None when there is none,
    which zipfile then reports as not a zip."""
    own = isinstance(source, (str, os.PathLike))
    stream = open(source, "rb") if own else source
    try:
        size = stream.seek(0, os.SEEK_END)
        start = max(0, size - (1 << 16) - 22)  # the record is 22 bytes, plus a comment of up to 64 KiB
        stream.seek(start)
        tail = stream.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) < at + 22:
            return None
        count = struct.unpack_from("<H", tail, at + 10)[0]
        locator = tail.rfind(b"PK\x06\x07", 0, at)
        if count == 0xFFFF and locator >= 0:  # zip64: the count is in the zip64 end record
            stream.seek(struct.unpack_from("<Q", tail, locator + 8)[0] + 32)
            count = struct.unpack("<Q", stream.read(8))[0]
        return count
    except (OSError, struct.error):
        return None
    finally:
        if own:
            stream.close()
        else:
            stream.seek(0)


def _check_disk(final: Path, incoming: int, limits: settings.Limits) -> None:
    """Refuse an upload that would take this person's or the server's uploads over their disk limit; an
    upload it replaces does not count."""
    uploads = final.parent.parent if final.parent.name != "uploads" else final.parent
    mine = disk_usage(final.parent) - disk_usage(final)
    everyone = disk_usage(uploads) - disk_usage(final)
    for used, limit_mb, whose, env in ((mine, limits.max_upload_disk_mb, "your uploads", "LAB_MAX_UPLOAD_DISK_MB"),
                                       (everyone, limits.max_server_disk_mb, "this server's uploads",
                                        "LAB_MAX_SERVER_DISK_MB")):
        if used + incoming > limit_mb * 2**20:
            raise DatasetError(f"this upload ({incoming / 2**20:,.0f} MB unpacked) would take {whose} over "
                               f"{limit_mb:,} MB ({env}); {used / 2**20:,.0f} MB are in use. Replace an earlier "
                               "upload by giving it the same name, or upload fewer or smaller images.")


def disk_usage(path: Path) -> int:
    """Bytes in the files under ``path`` (0 when it does not exist); links are not followed."""
    if not path.exists():
        return 0
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def prune_uploads(data_dir: str | os.PathLike | None, in_use: set[str], older_than_s: float) -> list[Path]:
    """Remove upload folders untouched for ``older_than_s`` that no run's dataset names (``in_use``: the
    runs' ``folder:PATH`` datasets); each page reload is a new session, hence a new upload folder. Returns
    what was removed."""
    uploads = settings.data_dir(data_dir).expanduser().resolve() / "uploads"
    bases = (split_name(name)[0] for name in in_use)  # a corrected version (lab.data.corrections) uses its folder
    used = {Path(name.split(":", 1)[1]).resolve() for name in bases if name.startswith("folder:")}
    cutoff = time.time() - older_than_s
    removed = []
    for marker in sorted([*uploads.glob(f"*/{MARKER}"), *uploads.glob(f"*/*/{MARKER}")]):
        folder = marker.parent
        if folder.resolve() not in used and marker.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            shutil.rmtree(decoded_dir(folder), ignore_errors=True)
            removed.append(folder)
            if folder.parent != uploads and not any(folder.parent.iterdir()):
                folder.parent.rmdir()  # the session's own folder, now empty
    return removed


def _check_claims(entries: list[zipfile.ZipInfo], limits: settings.Limits) -> None:
    """Refuse before writing anything when the zip's own directory already breaks a limit.
    The sizes it states are claims; _copy counts the real bytes."""
    if len(entries) > limits.max_upload_files:
        raise DatasetError(f"the zip holds {len(entries)} files, more than the limit of "
                           f"{limits.max_upload_files} (LAB_MAX_UPLOAD_FILES). Upload fewer images, "
                           "or ask whoever runs the server to raise the limit.")
    claimed = sum(info.file_size for info in entries)
    if claimed > limits.max_upload_bytes:
        raise DatasetError(_too_big(limits))
    for info in entries:
        if info.file_size > max(_RATIO_FROM_BYTES, limits.max_zip_ratio * info.compress_size):
            raise DatasetError(_bomb(info, limits))


def _too_big(limits: settings.Limits) -> str:
    return (f"the zip unpacks to more than {limits.max_upload_bytes:,} bytes, the limit "
            "(LAB_MAX_UPLOAD_BYTES). Upload fewer or smaller images (64 px is plenty here), "
            "or ask whoever runs the server to raise the limit.")


def _bomb(info: zipfile.ZipInfo, limits: settings.Limits, whole: bool = False) -> str:
    what = "the zip's files inflate" if whole else f"{info.filename} inflates"
    return (f"{what} more than {limits.max_zip_ratio} times their compressed size "
            "(the zip-bomb limit), so the upload was refused. Zip ordinary image files.")


def _extract(archive: zipfile.ZipFile, entries: list[zipfile.ZipInfo], staging: Path,
             limits: settings.Limits, report: Progress) -> Counter[str]:
    """Write each acceptable image entry under staging; return the skip reasons."""
    skipped: Counter[str] = Counter()
    budget = [limits.max_upload_bytes]  # bytes still allowed, shared by all entries
    compressed = 0
    for done, info in enumerate(entries, 1):
        reason = _problem(info) or _write(archive, info, staging, limits, budget)
        compressed += info.compress_size
        inflated = limits.max_upload_bytes - budget[0]
        if inflated > max(_RATIO_FROM_BYTES, limits.max_zip_ratio * compressed):  # many small bombs
            raise DatasetError(_bomb(info, limits, whole=True))
        if reason:
            skipped[reason] += 1
        report(0.9 * done / len(entries), f"extracting {done}/{len(entries)}")
    return skipped


def _problem(info: zipfile.ZipInfo) -> str | None:
    """Why an entry must not be written at all, judged from its header."""
    name = info.filename.replace("\\", "/")
    parts = tuple(p for p in name.split("/") if p)
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in parts or not parts:
        return UNSAFE
    if stat.S_ISLNK(info.external_attr >> 16):
        return SYMLINK
    if info.flag_bits & 0x1:
        return ENCRYPTED
    if any(len(part.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES for part in parts):
        return LONG_NAME
    if images.is_hidden(parts):
        return images.HIDDEN
    if Path(parts[-1]).suffix.lower() not in images.IMAGE_SUFFIXES:
        return images.NOT_IMAGE
    return None


def _write(archive: zipfile.ZipFile, info: zipfile.ZipInfo, staging: Path,
           limits: settings.Limits, budget: list[int]) -> str | None:
    """Stream one entry to disk, then keep it only if it is a usable image."""
    dest = staging.joinpath(*(p for p in info.filename.replace("\\", "/").split("/") if p)).resolve()
    if not dest.is_relative_to(staging) or dest == staging:
        return UNSAFE
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _copy(archive, info, dest, limits, budget)
    except (NotADirectoryError, IsADirectoryError, FileExistsError):
        return CLASH
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError):
        dest.unlink(missing_ok=True)
        return UNREADABLE
    try:
        found = images.probe(dest, max_side=limits.max_image_side)
    except images.SkipImage as reason:
        dest.unlink()
        return str(reason)
    if dest.stat().st_size > found.size[0] * found.size[1] * 4 + _METADATA_BYTES:
        dest.unlink()
        return PADDED
    return None


def _copy(archive: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path,
          limits: settings.Limits, budget: list[int]) -> None:
    """Copy in chunks, counting the bytes really inflated against both limits."""
    written = 0
    with archive.open(info) as src, dest.open("xb") as out:
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise DatasetError(_too_big(limits))
            if written > max(_RATIO_FROM_BYTES, limits.max_zip_ratio * info.compress_size):
                raise DatasetError(_bomb(info, limits))
            out.write(chunk)


def _replace(staging: Path, final: Path) -> None:
    """Move the finished import into place; an older upload of that name goes only
    after the new one is there."""
    if final.exists():
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        final.rename(old)
        staging.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(final)


def _throttled(progress: Progress | None) -> Progress:
    """Forward at most about a hundred updates, so a page's progress bar stays cheap."""
    last = [-1.0]

    def report(fraction: float, message: str) -> None:
        if progress and (fraction - last[0] >= 0.01 or fraction >= 1.0):
            last[0] = fraction
            progress(fraction, message)

    return report
