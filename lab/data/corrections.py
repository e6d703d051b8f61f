"""Corrected versions of a data set: images dropped or relabelled, the originals never touched.

A user who finds wrong labels (lab.insight.mistakes) marks images "drop" or "relabel as X". The marks
are written to a corrections file, one JSON file per version, named by a digest of its content, so a
version never changes once a run has trained on it:

    folder and upload data sets   <parent>/.<folder>.lab-corrections/<version>.json  (beside the folder,
                                  hidden as its decoded arrays are; the images stay as they are)
    built-in data sets            <data dir>/corrections/<name>/<version>.json

A run trains on a version by naming it in its data set: ``shapes@fixes:0123456789ab`` or
``folder:pets@fixes:...``. :func:`lab.data.registry.load_dataset` loads the base data set and applies
the file, so every reader of a run's ``dataset`` (the trainer, the Explain page, the report, an exported
config) gets the corrected images without knowing about corrections, and config.json still redoes the run.

A change names its image by split and index in the base data set (the ids ``python -m lab mistakes``
lists) and, for a folder data set, by its file too: the file is what is looked up, so a folder that gains
images since keeps its corrections on the right ones (one whose file is gone is skipped: nothing to fix).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import weakref
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from lab import settings
from lab.data.dataset import Dataset, DatasetError
from lab.durable import atomic_write
from lab.user_json import UserJSONError, loads

ACTIONS = ("drop", "relabel")
SPLITS = ("train", "val")
MARK = "@fixes:"
_NAME = re.compile(r"^(?P<base>.+)@fixes:(?P<version>[0-9a-f]{12})$", re.DOTALL)
_FOLDER = "folder:"
MAX_FILE_BYTES = 64 * 2**20  # a change is ~80 bytes: 800,000 changes, more than any data set here has images


@dataclass(frozen=True)
class Change:
    """One image dropped or relabelled; ``index`` is its position in the base data set's split."""

    split: str  # train | val
    index: int
    action: str  # drop | relabel
    label: str = ""  # the class name it gets, for relabel
    path: str = ""  # its file under the data set's folder, for folder data sets

    @property
    def key(self) -> tuple[str, int]:
        return self.split, self.index


@dataclass
class Corrected:
    """A data set with a version's changes applied, and where each of its images came from."""

    dataset: Dataset
    train_ids: np.ndarray  # int64: index in the base data set of each train image kept
    val_ids: np.ndarray
    version: str = ""  # '' for the base data set itself
    changes: tuple[Change, ...] = ()


def split_name(name: str) -> tuple[str, str]:
    """'shapes@fixes:0123456789ab' -> ('shapes', '0123456789ab'); a name without a version -> (name, '')."""
    found = _NAME.match(name.strip())
    return (found["base"], found["version"]) if found else (name, "")


def corrected_name(base: str, version: str) -> str:
    """The data set name a run gives to train on ``version`` of ``base``."""
    return f"{split_name(base)[0]}{MARK}{version}"


def corrections_dir(name: str, data_dir=None) -> Path:
    """Where the corrections of the data set loaded as ``name`` (a Dataset's ``name``) live: beside its folder,
    or under the data dir for a built-in data set."""
    if name.startswith(_FOLDER):
        folder = Path(name[len(_FOLDER):])
        return folder.parent / f".{folder.name}.lab-corrections"
    return settings.data_dir(data_dir).expanduser().resolve() / "corrections" / name


def uncorrected(ds: Dataset) -> Corrected:
    return Corrected(ds, np.arange(len(ds.train_y)), np.arange(len(ds.val_y)))


def checked_changes(ds: Dataset, changes: list[Change]) -> list[Change]:
    """``changes`` made complete and checked against the base data set ``ds``: a split, index and class
    that exist (DatasetError saying which does not), the file of each image filled in for a folder data
    set; the last change of an image wins. A change that names a file (one read back from an earlier
    version) is found by it, and left out when the file is gone."""
    where = {"train": _positions(ds.train_files), "val": _positions(ds.val_files)}
    latest: dict[tuple[str, int], Change] = {}
    for change in changes:
        if change.split not in SPLITS:
            raise DatasetError(f"split must be one of {', '.join(SPLITS)}, not {change.split!r}")
        if change.path and where[change.split]:
            if change.path not in where[change.split]:
                continue
            change = replace(change, index=where[change.split][change.path])
        size = len(ds.train_y if change.split == "train" else ds.val_y)
        if isinstance(change.index, bool) or not isinstance(change.index, int) or not 0 <= change.index < size:
            raise DatasetError(f"image {change.split}:{change.index} does not exist: {_shown(ds)}'s {change.split} "
                               f"split has ids 0 to {size - 1}")
        if change.action not in ACTIONS:
            raise DatasetError(f"unknown correction {change.action!r}; use one of: {', '.join(ACTIONS)}")
        if change.action == "relabel" and change.label not in ds.classes:
            raise DatasetError(f"unknown class {change.label!r} for {change.split}:{change.index}; "
                               f"use one of: {', '.join(ds.classes)}")
        files = ds.train_files if change.split == "train" else ds.val_files
        path = files[change.index] if files is not None else ""
        latest[change.key] = Change(change.split, change.index, change.action,
                                    change.label if change.action == "relabel" else "", path)
    return [latest[key] for key in sorted(latest)]


def write_corrections(ds: Dataset, changes: list[Change], data_dir=None, note: str = "") -> str:
    """Check ``changes`` against the base data set ``ds``, write them as a new version beside its data and
    return the version. The same changes give the same version (written once)."""
    checked = checked_changes(ds, changes)
    if not checked:
        raise DatasetError("no corrections given: mark at least one image to drop or relabel")
    body = {"classes": ds.classes, "changes": [asdict(change) for change in checked]}
    version = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
    path = corrections_dir(ds.name, data_dir) / f"{version}.json"
    if not path.exists():
        record = {"dataset": ds.name, "created": time.strftime("%Y-%m-%d %H:%M"), "note": note, **body}
        text = json.dumps(record, indent=1).encode()
        atomic_write(path, lambda f: f.write(text))
    return version


def read_corrections(ds: Dataset, version: str, data_dir=None) -> list[Change]:
    """The changes of ``version`` of ``ds``; DatasetError when the file is missing or not one of ours."""
    path = corrections_dir(ds.name, data_dir) / f"{version}.json"
    shown = f"corrections {version} of {_shown(ds)}"
    try:
        record = loads(path.read_bytes(), shown, MAX_FILE_BYTES)
        changes = [Change(**item) for item in record["changes"]]
    except FileNotFoundError:
        raise DatasetError(f"{shown} not found: they are written by `python -m lab mistakes RUN --drop ...` "
                           "beside the data; train on the data set without the @fixes: part, or write them "
                           "again") from None
    except (OSError, UserJSONError, ValueError, KeyError, TypeError) as err:
        raise DatasetError(f"{shown} cannot be read ({err}); write them again") from None
    if record.get("classes") != ds.classes:
        raise DatasetError(f"{shown} were written for the classes {record.get('classes')}, but the data set now "
                           f"has {ds.classes}; write them again")
    return changes


def _shown(ds: Dataset) -> str:
    """The data set's name as messages show it: a folder's own name, never its server path."""
    return Path(ds.name[len(_FOLDER):]).name if ds.name.startswith(_FOLDER) else ds.name


def apply_corrections(ds: Dataset, changes: list[Change], version: str = "") -> Corrected:
    """``ds`` with ``changes`` applied: dropped images left out, relabelled ones given their new class.

    A change is found by its file when it has one and the data set has files (else by its index);
    a file no longer in the folder is skipped."""
    keep = {"train": np.ones(len(ds.train_y), bool), "val": np.ones(len(ds.val_y), bool)}
    labels = {"train": ds.train_y.clone(), "val": ds.val_y.clone()}
    where = {split: _positions(files) for split, files in (("train", ds.train_files), ("val", ds.val_files))}
    for change in changes:
        position = where[change.split].get(change.path) if change.path and where[change.split] else change.index
        if position is None:
            continue
        if not 0 <= position < len(keep[change.split]):
            raise DatasetError(f"correction of {change.split}:{change.index} is outside {_shown(ds)}: "
                               "its corrections were written for other data; write them again")
        if change.action == "drop":
            keep[change.split][position] = False
        elif change.label in ds.classes:
            labels[change.split][position] = ds.classes.index(change.label)
        else:
            raise DatasetError(f"unknown class {change.label!r} in the corrections of {_shown(ds)}")
    train, val = (torch.from_numpy(np.flatnonzero(keep[split])) for split in SPLITS)
    if len(train) == 0 or len(val) == 0:
        raise DatasetError(f"these corrections drop every {'train' if len(train) == 0 else 'val'} image of "
                           f"{_shown(ds)}: keep some")

    def pick(values, rows):
        return None if values is None else values[rows]

    def files(names, rows):
        return None if names is None else tuple(names[i] for i in rows.tolist())

    fixed = Dataset(corrected_name(ds.name, version) if version else ds.name, ds.classes,
                    ds.train_x[train], labels["train"][train], ds.val_x[val], labels["val"][val],
                    pick(ds.train_boxes, train), pick(ds.val_boxes, val),
                    train_files=files(ds.train_files, train), val_files=files(ds.val_files, val))
    return Corrected(fixed, train.numpy(), val.numpy(), version, tuple(changes))


def _positions(files: tuple[str, ...] | None) -> dict[str, int]:
    return {name: i for i, name in enumerate(files)} if files is not None else {}


_APPLIED: weakref.WeakKeyDictionary[Dataset, dict[str, Corrected]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def corrected(ds: Dataset, version: str, data_dir=None) -> Corrected:
    """Version ``version`` of the base data set ``ds``, made once per loaded data set and version (loaded
    data sets are shared and read-only, so their corrected copies are too)."""
    if not version:
        return uncorrected(ds)
    with _LOCK:
        made = _APPLIED.get(ds, {}).get(version)
    if made is None:
        made = apply_corrections(ds, read_corrections(ds, version, data_dir), version)
        with _LOCK:
            _APPLIED.setdefault(ds, {})[version] = made
    return made
