"""RunStore: one folder per run, written so that no crash leaves it unreadable.

Layout of ``<runs_dir>/<run_id>/``::

    config.json     everything needed to rerun (TrainConfig + resolved dataset facts)
    status.json     status, message, timestamps, owner pid/host, best epoch
    metrics.jsonl   one JSON line per finished epoch, flushed and fsynced
    batch_losses.json  the live page's per-batch loss curve, written when the run ends
    meta.json       the user's edits: name, tags, note (only once someone edits them)
    best.pt         state_dict of the best validation epoch
    last.pt         state_dict at the end of the run

JSON files are replaced atomically (temp file + ``os.replace``); checkpoints are
loaded with ``weights_only=True``. A run still marked ``queued``/``running``
whose owning process is gone is reported ``interrupted``: nothing needs to
clean up after a killed server.

User edits live in their own ``meta.json`` rather than in ``status.json``: the
training process rewrites status.json (read, update, replace) every epoch, so
an edit made there while a run is live could be lost to that race, and
``set_status`` would make the editing process the run's owner.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lab import settings
from lab.runs import access
from lab.runs.access import Visitor

STATUSES = ("queued", "running", "finished", "stopped", "failed", "diverged", "interrupted")
LIVE_STATUSES = ("queued", "running")
MAX_NAME, MAX_TAG, MAX_TAGS, MAX_NOTE = 80, 30, 10, 2000  # what a table cell and a tooltip can show


class AnnotationError(ValueError):
    """A name, tag or note a run cannot take; the message says what to change."""


class RunNotFound(KeyError):
    """No run with that id (or folder) exists in the store."""

    def __str__(self) -> str:
        return f"no run {self.args[0]!r} in the runs dir"


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON so readers see the old or the new file, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_save_torch(path: Path, obj: Any) -> None:
    """``torch.save`` through a temp file, so a crash never leaves a truncated checkpoint."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@dataclass
class RunInfo:
    """What the pages and CLI need of a run, read from its folder."""

    id: str
    path: Path
    config: dict
    status: dict
    metrics: list[dict] = field(default_factory=list)
    meta: dict = field(default_factory=dict)  # meta.json: the user's name, tags and note

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
        """The metrics row with the highest validation accuracy (first one on ties)."""
        return max(self.metrics, key=lambda m: m.get("val_acc", -1), default=None)

    @property
    def best_val_acc(self) -> float | None:
        return self.best["val_acc"] if self.best else None

    @property
    def best_epoch(self) -> int | None:
        return self.best["epoch"] if self.best else None


class RunStore:
    """All runs under one directory; safe to share between processes and threads."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = settings.runs_dir(root)

    def path(self, run_id: str) -> Path:
        """Folder of a run; refuses ids that would leave the runs dir."""
        if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
            raise RunNotFound(run_id)
        return self.root / run_id

    def create(self, config: dict, name: str = "", owner: str = "", owner_key: str = "") -> str:
        """Make a new run folder in state ``queued``; returns its id.

        ``owner_key`` identifies the browser session that may change the run (lab.runs.access)."""
        self.root.mkdir(parents=True, exist_ok=True)
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
        folder = self.path(run_id)
        folder.mkdir()
        atomic_write_json(folder / "config.json", config)
        self.set_status(run_id, "queued", name=name or config.get("name") or run_id, owner=owner,
                        owner_key=owner_key, created=time.time())
        (folder / "metrics.jsonl").touch()
        return run_id

    def set_status(self, run_id: str, status: str, message: str = "", **extra: Any) -> dict:
        """Update ``status.json``; the calling process becomes the run's owner."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        path = self.path(run_id) / "status.json"
        data = read_json(path, {}) or {}
        data.update(extra, status=status, message=message, pid=os.getpid(), host=socket.gethostname(),
                    updated=time.time())
        atomic_write_json(path, data)
        return data

    def append_metrics(self, run_id: str, row: dict) -> None:
        """Append one epoch's metrics line, on disk before this returns."""
        with open(self.path(run_id) / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read_metrics(self, run_id: str) -> list[dict]:
        """Every complete metrics line; a torn last line (killed mid-write) is ignored."""
        rows = []
        try:
            lines = (self.path(run_id) / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        except OSError:
            return rows
        for line in lines:
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
        return rows

    def read_status(self, run_id: str) -> dict:
        """``status.json`` with dead owners turned into ``interrupted``."""
        data = read_json(self.path(run_id) / "status.json", None)
        if data is None:
            return {"status": "interrupted", "message": "status.json is missing or unreadable"}
        if data.get("status") in LIVE_STATUSES and self._owner_gone(data):
            data = dict(data, status="interrupted",
                        message="the process running this run stopped before it finished")
        return data

    @staticmethod
    def _owner_gone(status: dict) -> bool:
        if status.get("host") != socket.gethostname():
            return time.time() - status.get("updated", 0) > 3600  # another machine: trust a recent heartbeat
        return not _pid_alive(int(status.get("pid", -1)))

    def get(self, run_id: str) -> RunInfo:
        folder = self._existing(run_id)
        return RunInfo(run_id, folder, read_json(folder / "config.json", {}), self.read_status(run_id),
                       self.read_metrics(run_id), read_json(folder / "meta.json", {}) or {})

    def list(self) -> list[RunInfo]:
        """All runs, newest first."""
        if not self.root.is_dir():
            return []
        ids = sorted((p.name for p in self.root.iterdir() if (p / "config.json").exists()), reverse=True)
        return [self.get(i) for i in ids]

    def resolve(self, ref: str) -> str:
        """Run id from an id, a unique id prefix or a run name."""
        runs = self.list()
        for match in ([r for r in runs if r.id == ref], [r for r in runs if r.id.startswith(ref)],
                      [r for r in runs if r.name == ref]):
            if len(match) == 1:
                return match[0].id
        raise RunNotFound(ref)

    def save_batch_losses(self, run_id: str, points: list[tuple[int, float]]) -> None:
        """The live page's per-batch loss curve, (step, loss) thinned, kept once the run ends."""
        atomic_write_json(self.path(run_id) / "batch_losses.json", [[step, loss] for step, loss in points])

    def read_batch_losses(self, run_id: str) -> list[tuple[int, float]]:
        """The saved curve; empty for a run that never trained a batch or ended before it was kept."""
        try:
            return [(int(step), float(loss)) for step, loss in read_json(self.path(run_id) / "batch_losses.json", [])]
        except (TypeError, ValueError):  # not a list of pairs: written by something else
            return []

    def checkpoint_path(self, run_id: str, which: str = "best") -> Path:
        return self.path(run_id) / f"{which}.pt"

    def save_checkpoint(self, run_id: str, which: str, state: dict) -> None:
        atomic_save_torch(self.checkpoint_path(run_id, which), state)

    def load_checkpoint(self, run_id: str, which: str = "best") -> dict:
        """A checkpoint dict; ``weights_only`` so a crafted pickle cannot run code."""
        path = self.checkpoint_path(run_id, which)
        if not path.exists():
            raise FileNotFoundError(f"run {run_id} has no {which}.pt checkpoint yet")
        return torch.load(path, map_location="cpu", weights_only=True)

    def annotate(self, run_id: str, name: str | None = None, tags: list[str] | None = None,
                 note: str | None = None, by: Visitor | None = None) -> dict:
        """Rename, tag or annotate a run (None leaves a field as it is); returns the new meta.json.

        Works on live runs too: the trainer never writes meta.json. ``by`` is the
        session asking (lab.runs.access); it must own the run or be a teacher's.
        """
        folder = self._existing(run_id)
        access.check(self.read_status(run_id), by, "rename or annotate")
        meta = read_json(folder / "meta.json", {}) or {}
        if name is not None:
            meta["name"] = _checked_text("name", name, MAX_NAME, required=True)
        if tags is not None:
            meta["tags"] = _checked_tags(tags)
        if note is not None:
            meta["note"] = _checked_text("note", note, MAX_NOTE)
        atomic_write_json(folder / "meta.json", meta)
        return meta

    def delete(self, run_id: str, by: Visitor | None = None) -> None:
        """Remove one run's folder, and nothing else; ``by`` as for :meth:`annotate`."""
        folder = self._existing(run_id)
        access.check(self.read_status(run_id), by, "delete")
        shutil.rmtree(folder)

    def _existing(self, run_id: str) -> Path:
        folder = self.path(run_id)
        if not (folder / "config.json").exists():
            raise RunNotFound(run_id)
        return folder


def _checked_text(what: str, text: str, limit: int, required: bool = False) -> str:
    text = text.strip()
    if required and not text:
        raise AnnotationError(f"a run's {what} cannot be empty")
    if len(text) > limit:
        raise AnnotationError(f"a run's {what} can have at most {limit} characters, this one has {len(text)}")
    return text


def _checked_tags(tags: list[str]) -> list[str]:
    """Tags stripped, empty ones dropped, duplicates removed in order; refused when too long or too many."""
    clean = list(dict.fromkeys(t.strip() for t in tags if t.strip()))
    for tag in clean:
        if len(tag) > MAX_TAG or "," in tag:
            raise AnnotationError(f"tag {tag!r}: a tag has at most {MAX_TAG} characters and no comma")
    if len(clean) > MAX_TAGS:
        raise AnnotationError(f"a run can have at most {MAX_TAGS} tags, got {len(clean)}")
    return clean


def open_run(ref: str, runs_dir: str | os.PathLike | None = None) -> tuple[RunStore, str]:
    """The store and id for a run reference: a run folder path, or an id/prefix/name in ``runs_dir``."""
    folder = Path(ref)
    if (folder / "config.json").is_file():
        folder = folder.resolve()
        return RunStore(folder.parent), folder.name
    store = RunStore(runs_dir)
    return store, store.resolve(ref)
