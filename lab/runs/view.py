"""RunInfo: one run read back from its folder, the one view of it that pages, the CLI, exports and
reports share.

It is the same for a live run, a finished one and one from before a restart:
everything comes from the folder (named by :mod:`lab.runs.layout`), written by
:class:`lab.runs.store.RunStore` and the trainer's listeners. Live progress within
an epoch is not on disk; ``lab.jobs.JobManager.state`` has it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lab.runs.layout import CHECKPOINTS, RunLayout
from lab.train.engine import best_row


class NoCheckpoint(ValueError):
    """Weights a run has not written (yet); the message says which it has."""


def read_json(path: Path, default: Any = None) -> Any:
    """The JSON in ``path``, or ``default`` when it is missing or unreadable: a reader never fails on a run."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def read_jsonl(path: Path) -> list[dict]:
    """Every complete line of a JSON-lines file; a torn last line (killed mid-write) is ignored."""
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return rows
    for line in lines:
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def load_weights(path: Path) -> dict:
    """A checkpoint dict (model, epoch, spec_name); ``weights_only`` so a crafted pickle cannot run code."""
    return torch.load(path, map_location="cpu", weights_only=True)


@dataclass
class RunInfo:
    """One run as its folder holds it (made by ``RunStore.get``).

    config, status, metrics and meta are read once, when the store makes this view; epochs,
    checkpoints and probe files are looked up on each call, so a live run's new ones show.
    """

    id: str
    path: Path
    config: dict
    status: dict
    metrics: list[dict] = field(default_factory=list)
    meta: dict = field(default_factory=dict)  # meta.json: the user's name, tags and note

    @property
    def layout(self) -> RunLayout:
        """Where the run's files are, for the loaders of their contents (lab.insight)."""
        return RunLayout(self.path)

    @property
    def state(self) -> str:
        return self.status.get("status", "interrupted")

    @property
    def name(self) -> str:
        return self.meta.get("name") or self.status.get("name") or self.config.get("name") or self.id

    @property
    def tags(self) -> list[str]:
        return list(self.meta.get("tags", []))

    @property
    def note(self) -> str:
        return self.meta.get("note", "")

    @property
    def best(self) -> dict | None:
        """The best epoch's metrics row (lab.train.engine.best_row)."""
        return best_row(self.metrics)

    @property
    def best_val_acc(self) -> float | None:
        return self.best["val_acc"] if self.best else None

    @property
    def best_epoch(self) -> int | None:
        return self.best["epoch"] if self.best else None

    @property
    def classes(self) -> list[str]:
        """The class names the run was trained on (its dataset's, resolved when it started)."""
        return list(self.config.get("resolved", {}).get("classes") or [])

    @property
    def batch_losses(self) -> list[tuple[int, float]]:
        """The per-batch loss curve kept when the run ended; empty before, or for a run that trained no batch."""
        try:
            return [(int(step), float(loss)) for step, loss in read_json(self.layout.batch_losses, [])]
        except (TypeError, ValueError):  # not a list of pairs: written by something else
            return []

    @property
    def probe_epochs(self) -> list[int]:
        """Epochs with the feature-space probe recorded (0 = untrained); none when trained with insight off."""
        return self.layout.probe_epochs()

    @property
    def cam_epochs(self) -> list[int]:
        """Epochs with CAM samples recorded, ascending."""
        return self.layout.cam_epochs()

    @property
    def probe_meta(self) -> dict:
        """``probe/meta.json``: the probe's layer, images and CAM settings, with ``cam_note`` saying why
        a model has no CAM samples; {} before the probe starts."""
        return read_json(self.layout.probe_meta, {}) or {}

    @property
    def probe_index(self) -> dict:
        """``probe/index.json``: layer, size and, per recorded epoch, its k-NN accuracy."""
        return read_json(self.layout.probe_index, {"epochs": []}) or {"epochs": []}

    @property
    def checkpoints(self) -> list[str]:
        """What :meth:`checkpoint` can open now: 'best', 'last' (once written) and every epoch with
        saved weights, for a checkpoint picker."""
        named = [name for name in CHECKPOINTS if self.layout.checkpoint(name).exists()]
        return named + [str(e) for e in self.layout.weight_epochs()]

    def checkpoint(self, which: str | int = "best") -> Path:
        """The weights file for 'best', 'last' or an epoch number; NoCheckpoint saying what exists."""
        key = str(which).strip().lower()
        if key in CHECKPOINTS:
            path = self.layout.checkpoint(key)
            if not path.exists():
                raise NoCheckpoint(f"the run has no {key}.pt yet (it saves best after its first epoch, "
                                   f"last when it ends)")
            return path
        if not key.isdigit():
            raise NoCheckpoint(f"epoch must be a number, 'best' or 'last', got {which!r}")
        number = int(key)
        path = self.layout.weights(number)
        if path.exists():
            return path
        for name in CHECKPOINTS:  # runs without per-epoch weights still have these two
            candidate = self.layout.checkpoint(name)
            if candidate.exists() and load_weights(candidate).get("epoch") == number:
                return candidate
        have = self.layout.weight_epochs()
        raise NoCheckpoint(f"no weights saved for epoch {number}; use best, last"
                           + (f" or one of epochs {', '.join(map(str, have))}" if have else ""))

    def load_checkpoint(self, which: str | int = "best") -> dict:
        """The checkpoint dict at :meth:`checkpoint`: the model's state_dict, its epoch and spec name."""
        return load_weights(self.checkpoint(which))
