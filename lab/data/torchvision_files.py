"""MNIST, Fashion-MNIST and CIFAR-10 from the files torchvision downloads.

The files are parsed here with numpy (whole arrays, no PIL per image), so loading
works offline from files put in place by hand, by torchvision, by the lab's own
downloader (lab.data.download) or by Debian's dataset-fashion-mnist package. The hints
on how to get missing files are in lab/locales (``dataset.how.*``): English in errors,
any language on a page.
"""

from __future__ import annotations

import gzip
import importlib
import importlib.util
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lab.data.dataset import Dataset, DatasetError
from lab.data.folder import load_folder
from lab.i18n import DEFAULT, text

IDX_FILES = {  # role -> file name; each may also be gzipped (name + '.gz')
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "val_x": "t10k-images-idx3-ubyte",
    "val_y": "t10k-labels-idx1-ubyte",
}
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
CIFAR_JPG_DIRS = ("cifar10", "cifar10-jpg")  # folders of train/<class>/*.jpg and test/<class>/*.jpg
CLI_DOWNLOAD = "python -m lab datasets --download {name}"


@dataclass(frozen=True)
class IdxSource:
    """Where one IDX dataset lives: its torchvision folder and any system-wide copies."""

    name: str  # registry name, e.g. 'fashion-mnist'
    title: str
    folder: str  # torchvision's folder under the data dir, e.g. 'FashionMNIST'
    classes: tuple[str, ...]
    system_dirs: tuple[Path, ...] = ()  # read-only copies installed by a package
    system_package: str = ""  # the Debian package that installs the first system copy

    @property
    def raw_folder(self) -> Path:
        """Where the files go, relative to the data dir: torchvision's place, which the downloader fills."""
        return Path(self.folder, "raw")

    def search_dirs(self, root: Path) -> list[Path]:
        return [root / self.raw_folder, *self.system_dirs]


MNIST = IdxSource("mnist", "MNIST", "MNIST", tuple(str(d) for d in range(10)))
FASHION_MNIST = IdxSource(
    "fashion-mnist", "Fashion-MNIST", "FashionMNIST",
    ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
     "Bag", "Ankle boot"),
    system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
    system_package="dataset-fashion-mnist",
)


# --- IDX (MNIST, Fashion-MNIST) ------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (plain or gzipped) as an array of its stated shape."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError(f"{path} is a damaged gzip file; delete it and get it again") from exc
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
        raise DatasetError(f"{path} is not an IDX file of unsigned bytes; delete it and get it again")
    ndim, header = raw[3], 4 + 4 * raw[3]
    if len(raw) < header:
        raise DatasetError(f"{path} is truncated; delete it and get it again")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    if len(raw) - header != int(np.prod(dims)):
        raise DatasetError(f"{path} is truncated (its header says {dims}); delete it and get it again")
    return np.frombuffer(bytearray(raw), np.uint8, offset=header).reshape(dims)


def find_idx_files(source: IdxSource, root: Path) -> dict[str, Path] | None:
    """The four files from the first folder that has all of them, plain preferred."""
    for folder in source.search_dirs(root):
        found = {}
        for role, name in IDX_FILES.items():
            candidates = [folder / name, folder / f"{name}.gz"]
            found[role] = next((p for p in candidates if p.is_file()), None)
        if all(found.values()):
            return found
    return None


def idx_how_to_get(source: IdxSource, root: Path, lang: str = DEFAULT) -> str:
    """'' when the files are there, else which folders were searched and how to fill one."""
    if find_idx_files(source, root):
        return ""
    searched = ", ".join(str(d) for d in source.search_dirs(root))
    names = ", ".join(f"{n}[.gz]" for n in IDX_FILES.values())
    ways = [text("dataset.how.download", lang, command=CLI_DOWNLOAD.format(name=source.name))]
    if source.system_package:
        ways.append(text("dataset.how.apt", lang, package=source.system_package, folder=source.system_dirs[0]))
    ways.append(text("dataset.how.put", lang, names=names, folder=root / source.raw_folder))
    return text("dataset.how.idx", lang, title=source.title, searched=searched,
                ways=text("dataset.how.or", lang).join(ways))


def load_idx(source: IdxSource, root: Path) -> Dataset:
    """MNIST-format dataset from the data dir (or a system copy)."""
    files = find_idx_files(source, root)
    if files is None:
        raise DatasetError(idx_how_to_get(source, root))
    arrays = {role: read_idx(path) for role, path in files.items()}
    for split in ("train", "val"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        labels_ok = y.ndim == 1 and len(x) == len(y) and (not len(y) or y.max() < len(source.classes))
        if x.ndim != 3 or not labels_ok:
            raise DatasetError(f"{files[split + '_x']} and {files[split + '_y']} do not match "
                               f"({x.shape} images, {y.shape} labels); get both files again")
    x = {role: torch.from_numpy(a[:, None]) for role, a in arrays.items() if role.endswith("_x")}
    y = {role: torch.from_numpy(a.astype(np.int64)) for role, a in arrays.items() if role.endswith("_y")}
    return Dataset(source.name, list(source.classes), x["train_x"], y["train_y"], x["val_x"], y["val_y"])


# --- CIFAR-10 ------------------------------------------------------------------------


class _ArrayUnpickler(pickle.Unpickler):
    """Builds only numpy arrays: the CIFAR batches need nothing else, and refusing every
    other global means a tampered batch file cannot run code. Batches are only read
    from the lab's own data dir, never from uploads (those go to data_dir/uploads)."""

    _CORE = "numpy._core" if importlib.util.find_spec("numpy._core") else "numpy.core"
    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype"),
                ("numpy.core.numeric", "_frombuffer"),
                ("_codecs", "encode")}  # protocol 2 from Python 3 spells bytes this way

    def find_class(self, module: str, name: str) -> object:
        canonical = module.replace("numpy._core", "numpy.core")  # numpy 2 pickles say _core
        if (canonical, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")
        return getattr(importlib.import_module(canonical.replace("numpy.core", self._CORE)), name)


def _read_pickle(path: Path) -> dict:
    try:
        with path.open("rb") as f:
            content = _ArrayUnpickler(f, encoding="bytes").load()  # the official format
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise DatasetError(f"{path} is not a CIFAR-10 batch ({exc}); delete it and get it again") from exc
    if not isinstance(content, dict):
        raise DatasetError(f"{path} is not a CIFAR-10 batch; delete it and get it again")
    return content


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 3, 32, 32) and labels int64 (N,) from one batch file."""
    batch = _read_pickle(path)
    data, labels = batch.get(b"data"), batch.get(b"labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3072 or labels is None or len(labels) != len(data):
        raise DatasetError(f"{path} does not hold uint8 (N, 3072) data with N labels; "
                           "delete it and get it again")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def cifar_how_to_get(root: Path, lang: str = DEFAULT) -> str:
    """'' when the pickles or a JPEG folder are there, else where to put them."""
    if cifar_present(root):
        return ""
    return text("dataset.how.cifar10", lang, pickles=root / CIFAR_DIR, files=", ".join(CIFAR_FILES),
                jpg=text("dataset.or", lang).join(str(root / d) for d in CIFAR_JPG_DIRS),
                command=CLI_DOWNLOAD.format(name="cifar10"), jpg_dir=root / CIFAR_JPG_DIRS[0])


def cifar_present(root: Path) -> bool:
    """Whether CIFAR-10 can be loaded from root: all the python batches, or a JPEG folder copy."""
    return _cifar_pickles(root) or _cifar_jpg_dir(root) is not None


def load_cifar10(root: Path) -> Dataset:
    """CIFAR-10 from torchvision's python batches, else from a JPEG folder copy."""
    if _cifar_pickles(root):
        return _load_cifar_pickles(root / CIFAR_DIR)
    jpg_dir = _cifar_jpg_dir(root)
    if jpg_dir:
        return load_folder(jpg_dir, name="cifar10")
    raise DatasetError(cifar_how_to_get(root))


def _load_cifar_pickles(folder: Path) -> Dataset:
    train = [read_cifar_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
    val_x, val_y = read_cifar_batch(folder / "test_batch")
    names = _read_pickle(folder / "batches.meta").get(b"label_names")
    if not names:
        raise DatasetError(f"{folder / 'batches.meta'} has no label_names; get it again")
    return Dataset("cifar10", [n.decode() if isinstance(n, bytes) else str(n) for n in names],
                   torch.from_numpy(np.concatenate([x for x, _ in train])),
                   torch.from_numpy(np.concatenate([y for _, y in train])),
                   torch.from_numpy(np.array(val_x)), torch.from_numpy(val_y))


def _cifar_pickles(root: Path) -> bool:
    return all((root / CIFAR_DIR / name).is_file() for name in CIFAR_FILES)


def _cifar_jpg_dir(root: Path) -> Path | None:
    return next((root / d for d in CIFAR_JPG_DIRS
                 if (root / d / "train").is_dir() and (root / d / "test").is_dir()), None)

