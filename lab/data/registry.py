"""Dataset names -> loaders, in one table.

Names are looked up as every table's are (lab.registry: case, spaces, '_' and '-' ignored,
a few aliases); an unknown name is refused with the list of valid ones. 'folder:PATH' loads a user's folder (or zip) of
class folders. Loaded datasets are cached per process: they are read-only and
shared by every session of a server.

A run's ``image_size`` (lab.train.engine.TrainConfig) bounds the longer side of its
images: a folder is decoded at it (64 px by default, up to 224), a built-in data set
is shrunk to it when smaller than its own side and never enlarged (28 px MNIST at
224 would take 49 times the memory and hold no more detail; a backbone resizes each
batch on the device instead). A dataset's title, description and how-to-get hint
are in lab/locales (``dataset.<name>.title`` ...), given in the ``lang`` asked for.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab import settings
from lab.data import digits, shapes
from lab.data import torchvision_files as tv
from lab.data.cache import LoadCache
from lab.data.corrections import corrected, split_name
from lab.data.dataset import Dataset, DatasetError, DatasetInfo, shrunk
from lab.data.download import download_dataset
from lab.data.folder import load_folder
from lab.data.images import MAX_SIDE
from lab.data.upload import import_zip, upload_path
from lab.i18n import DEFAULT as DEFAULT_LANG
from lab.i18n import text
from lab.registry import Registry

FOLDER_PREFIX = "folder:"
DEFAULT = "shapes"


@dataclass(frozen=True)
class _Entry:
    """One named dataset: what the picker shows, how to load it, how to get its files.

    Its title and description are ``dataset.<name>.title`` / ``.description`` in lab/locales."""

    name: str
    shape: tuple[int, int, int]
    num_classes: int
    train_size: int
    val_size: int
    offline: bool
    load: Callable[[Path], Dataset]  # (data dir) -> Dataset
    how_to_get: Callable[[Path, str], str]  # (data dir, language) -> '' when loadable now


def _always(_root: Path, _lang: str) -> str:
    return ""


_ENTRIES = [
    _Entry("shapes", (3, 32, 32), len(shapes.CLASSES), shapes.TRAIN_PER_CLASS * len(shapes.CLASSES),
           shapes.VAL_PER_CLASS * len(shapes.CLASSES), True,
           lambda root: shapes.load(seed=0), _always),
    _Entry("digits", (1, 8, 8), 10, 1438, 359, True, lambda root: digits.load(), _always),
    _Entry("mnist", (1, 28, 28), 10, 60_000, 10_000, False,
           lambda root: tv.load_idx(tv.MNIST, root),
           lambda root, lang: tv.idx_how_to_get(tv.MNIST, root, lang)),
    _Entry("fashion-mnist", (1, 28, 28), 10, 60_000, 10_000, False,
           lambda root: tv.load_idx(tv.FASHION_MNIST, root),
           lambda root, lang: tv.idx_how_to_get(tv.FASHION_MNIST, root, lang)),
    _Entry("cifar10", (3, 32, 32), 10, 50_000, 10_000, False, tv.load_cifar10, tv.cifar_how_to_get),
]
DATASETS: Registry[_Entry] = Registry(
    "dataset", {entry.name: entry for entry in _ENTRIES}, DatasetError,
    aliases={"fmnist": "fashion-mnist", "sklearn-digits": "digits"},
    also=(f"{FOLDER_PREFIX}PATH (a folder or .zip of class folders)",))

_NAMED: LoadCache[Dataset] = LoadCache(maxsize=len(_ENTRIES) * 2)
_ZIP_LOCK = threading.Lock()  # one import at a time: a re-import renames the folder away


def normalise(name: str) -> str:
    """Canonical registry name ('Fashion_MNIST' -> 'fashion-mnist'), or DatasetError."""
    return DATASETS.name_of(name)


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *,
                 download: bool = False, image_size: int = 0) -> Dataset:
    """The named dataset (or 'folder:PATH'), loaded once per process, data dir and image size.

    download: fetch missing MNIST / Fashion-MNIST / CIFAR-10 files (lab.data.download);
    without it a missing file is a DatasetError saying where to put it. image_size: the
    most pixels a side has (0: the data set's default), as a run's setting of that name.
    'NAME@fixes:VERSION' is NAME with a version of its corrections applied (lab.data.corrections).
    """
    root = settings.data_dir(data_dir).expanduser().resolve()
    base, version = split_name(name)
    if version:
        return corrected(load_dataset(base, root, download=download, image_size=image_size), version, root).dataset
    folder = folder_of(name, root)
    if folder is not None:
        return load_folder(folder, side=image_size or MAX_SIDE)
    entry = DATASETS.lookup(name)
    cache_key = (entry.name, None if entry.offline else root)  # built-ins ignore the data dir
    ds = _NAMED.get(cache_key, lambda: _load_named(entry, root, download))
    if not image_size or image_size >= max(ds.shape[1:]):
        return ds
    return _NAMED.get((*cache_key, image_size), lambda: shrunk(ds, image_size))


def _load_named(entry: _Entry, root: Path, download: bool) -> Dataset:
    if download and not entry.offline:
        download_dataset(entry.name, root)  # returns at once when the files are there
    return entry.load(root)


def list_datasets(data_dir: str | os.PathLike | None = None, lang: str = DEFAULT_LANG) -> list[DatasetInfo]:
    """Every named dataset with whether it can be loaded now; checks files, loads nothing.
    Titles, descriptions and hints are in ``lang``."""
    root = settings.data_dir(data_dir).expanduser().resolve()
    infos = []
    for e in sorted(_ENTRIES, key=lambda e: not e.offline):
        hint = e.how_to_get(root, lang)
        infos.append(DatasetInfo(e.name, text(f"dataset.{e.name}.title", lang),
                                 text(f"dataset.{e.name}.description", lang), e.shape, e.num_classes,
                                 e.train_size, e.val_size, e.offline, not hint, hint))
    return infos


def folder_of(name: str, data_dir: str | os.PathLike | None = None) -> Path | None:
    """The folder of class folders that 'folder:PATH' loads (a zip is imported into data_dir/uploads first);
    None for a named data set. A relative PATH is tried from the working directory, then from the data dir.
    The Ray executor ships this folder to its workers (lab.jobs.ray_executor)."""
    if not name.strip().lower().startswith(FOLDER_PREFIX):
        return None
    raw = name.strip()[len(FOLDER_PREFIX):]
    root = settings.data_dir(data_dir).expanduser().resolve()
    path = Path(raw).expanduser()
    if not path.is_absolute() and not path.exists():
        path = root / path
    if not path.exists():
        raise DatasetError(f"{raw} not found (also looked in {root}). Give a folder of class "
                           "folders or a .zip of one.")
    return _imported(path, root) if path.is_file() else path


def _imported(archive: Path, root: Path) -> Path:
    """The zip's folder under root/uploads, imported only when missing or older than
    the zip, so a restart or a second session reuses it."""
    target = upload_path(root, archive.stem)
    with _ZIP_LOCK:
        if not (target.is_dir() and target.stat().st_mtime_ns >= archive.stat().st_mtime_ns):
            import_zip(archive, root, name=archive.stem)
    return target
