"""Where each file of a run lives: the one module that knows the run folder's layout.

``<runs_dir>/<run_id>/``::

    config.json        everything needed to rerun (TrainConfig + resolved dataset facts)
    status.json        status, message, timestamps, owner pid/host, best epoch
    metrics.jsonl      one JSON line per finished epoch (val_class_acc: accuracy per class, since issue 19)
    batch_losses.json  the live page's per-batch loss curve, written when the run ends
    meta.json          the user's edits: name, tags, note (only once someone edits them)
    best.pt, last.pt   weights at the best validation epoch and at the end of the run
    probe/meta.json    probe layer, indices into the val split, classes, CAM settings
    probe/index.json   recorded epochs with their k-NN accuracy
    probe/epoch_NNN.npz         probe features, labels, predictions at epoch NNN (0 = untrained)
    probe/map_<method>_NNN.npy  the 2-D map of that epoch, cached by lab.insight.maps
    probe/val_labels.npy        the true class of every val image (int16), written when the run starts
    probe/val_preds_NNN.npy     the predicted class of every val image at epoch NNN (int16; 0 = untrained)
    probe/cam_images.npz        the CAM samples' images (uint8, at most 128 px a side), for the film
    cams/epoch_NNN.npz          heatmaps of one val image per class at epoch NNN
    film/epoch_NNN.json         the training film's frame of epoch NNN, made by lab.insight.film on first use
    weights/epoch_NNN.pt        the weights at epoch NNN, for small models
    label_issues.npz   out-of-sample probabilities of the training images from k-fold training, and the
                       settings they were made with (lab.insight.mistakes): made on request, reused after

Everything else reads and writes a run through a :class:`RunLayout`, so a file
moves or gains a sibling here and nowhere else. No I/O beyond listing a folder:
what the files hold is the business of lab.runs.store and lab.insight.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CHECKPOINTS = ("best", "last")  # the named weights files every trained run has


def _epoch_name(epoch: int, suffix: str) -> str:
    return f"epoch_{epoch:03d}{suffix}"


def _numbered(folder: Path, prefix: str, suffix: str) -> list[int]:
    """The numbers NNN of the files ``<prefix>NNN<suffix>`` in ``folder``, ascending; none for a missing folder.

    Temp files (hidden, lab.durable) never match, so a file being written is not listed before it is whole."""
    found = []
    for path in folder.glob(f"{prefix}*{suffix}"):
        digits = path.name[len(prefix):-len(suffix)]
        if digits.isdigit():
            found.append(int(digits))
    return sorted(found)


class _File:
    """A fixed place in every run folder: on a :class:`RunLayout`, the path under its ``root``."""

    def __init__(self, *parts: str):
        self.parts = parts

    def __get__(self, layout: RunLayout | None, owner: type | None = None) -> Path:
        if layout is None:  # looked up on the class itself (help(), introspection)
            return self
        return layout.root.joinpath(*self.parts)


@dataclass(frozen=True)
class RunLayout:
    """The file names of one run folder (``root``); hashable, so it can key a cache or a queue."""

    root: Path

    config = _File("config.json")
    status = _File("status.json")
    metrics = _File("metrics.jsonl")
    batch_losses = _File("batch_losses.json")
    meta = _File("meta.json")  # the user's edits: apart from status.json, which the trainer rewrites
    label_issues = _File("label_issues.npz")  # confident learning's k-fold probabilities (lab.insight.mistakes)
    # recorded per epoch by the probe (lab.insight.probe)
    probe_dir = _File("probe")
    cams_dir = _File("cams")
    weights_dir = _File("weights")
    probe_meta = _File("probe", "meta.json")
    probe_index = _File("probe", "index.json")
    val_labels = _File("probe", "val_labels.npy")
    cam_images = _File("probe", "cam_images.npz")
    film_dir = _File("film")

    @property
    def folders(self) -> tuple[Path, ...]:
        """Every folder the run's files are written into: where a crashed writer can have left a temp file."""
        return (self.root, self.probe_dir, self.cams_dir, self.weights_dir, self.film_dir)

    def checkpoint(self, which: str) -> Path:
        """``best.pt`` or ``last.pt``; a ValueError for any other name (an epoch's weights: :meth:`weights`)."""
        if which not in CHECKPOINTS:
            raise ValueError(f"unknown checkpoint {which!r}; use one of: {', '.join(CHECKPOINTS)}")
        return self.root / f"{which}.pt"

    def probe(self, epoch: int) -> Path:
        return self.probe_dir / _epoch_name(epoch, ".npz")

    def cams(self, epoch: int) -> Path:
        return self.cams_dir / _epoch_name(epoch, ".npz")

    def val_preds(self, epoch: int) -> Path:
        return self.probe_dir / f"val_preds_{epoch:03d}.npy"

    def film_frame(self, epoch: int) -> Path:
        return self.film_dir / _epoch_name(epoch, ".json")

    def weights(self, epoch: int) -> Path:
        return self.weights_dir / _epoch_name(epoch, ".pt")

    def map(self, method: str, epoch: int) -> Path:
        """The cached 2-D map of one epoch; ``method`` is a canonical name (lab.insight.embed.normalize_method)."""
        return self.probe_dir / f"map_{method}_{epoch:03d}.npy"

    def probe_epochs(self) -> list[int]:
        """Epochs with a complete probe file, ascending (0 = before training)."""
        return _numbered(self.probe_dir, "epoch_", ".npz")

    def cam_epochs(self) -> list[int]:
        return _numbered(self.cams_dir, "epoch_", ".npz")

    def val_pred_epochs(self) -> list[int]:
        return _numbered(self.probe_dir, "val_preds_", ".npy")

    def weight_epochs(self) -> list[int]:
        return _numbered(self.weights_dir, "epoch_", ".pt")

    def map_epochs(self, method: str) -> list[int]:
        """Epochs whose ``method`` map is cached: one glob, cheap enough for a page to call every second."""
        return _numbered(self.probe_dir, f"map_{method}_", ".npy")
