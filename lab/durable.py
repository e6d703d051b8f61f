"""Files that survive a crash: written whole or not at all, and still there after a power cut.

Every write under lab/ that replaces a file goes through :func:`atomic_write`. The
bytes go to a temp file beside the target; the temp file is fsynced, renamed over
the target (``os.replace``, atomic on POSIX and Windows), and then its folder is
fsynced. Without the first fsync a crash just after the rename can leave the new
name on an empty file (ext4's delayed allocation); without the second the rename
itself can be lost, leaving the old file or none.

A process killed between making the temp file and renaming it leaves the temp file
behind. Temp names start with a dot (readers listing a folder skip them) and end in
:data:`TEMP_SUFFIX`; :func:`remove_stale_temps` removes those older than
:data:`STALE_AFTER_S`, so a writer still at work keeps its file.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"
# A temp file lives for one write (a checkpoint of at most a few hundred MB: seconds); one untouched
# for a minute belongs to a writer that died.
STALE_AFTER_S = 60.0


def temp_path(path: Path) -> Path:
    """A fresh hidden name beside ``path`` for writing it: unique per call, so two threads or processes
    writing the same file never share a temp file."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def fsync_dir(folder: Path) -> None:
    """Put a folder's entries (a rename, a new file or subfolder) on disk.

    Skipped where the system cannot: Windows does not open folders (NTFS journals the
    rename), and some network or FUSE file systems refuse fsync on a folder (EINVAL).
    """
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def make_dirs(folder: Path) -> None:
    """``mkdir -p`` whose new folders are on disk: the parent of each created folder is fsynced, so a
    file written into it after a crash is not lost with its folder."""
    folder = Path(folder)
    if folder.is_dir():
        return
    make_dirs(folder.parent)
    try:
        folder.mkdir()
    except FileExistsError:  # made by another writer meanwhile
        return
    fsync_dir(folder.parent)


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Replace ``path`` with what ``write(file)`` writes, so readers see the old or the new file, never
    half of one, and a crash or power cut after this returns keeps the new one.

    A ``write`` that raises leaves ``path`` as it was and no temp file.
    """
    path = Path(path)
    make_dirs(path.parent)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def remove_stale_temps(folders: Iterable[Path], now: float | None = None) -> list[Path]:
    """Delete the temp files that crashed writers left in ``folders`` (not below them); returns what went.

    Only files untouched for :data:`STALE_AFTER_S`: a younger one may be a live writer's.
    """
    cutoff = (time.time() if now is None else now) - STALE_AFTER_S
    removed = []
    for folder in folders:
        for tmp in Path(folder).glob(f".*{TEMP_SUFFIX}"):
            try:
                if tmp.is_file() and tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    removed.append(tmp)
            except OSError:  # removed by someone else meanwhile, or a read-only folder: readers never fail on it
                continue
    return removed
