"""RunStore: one folder per run, written so that no crash leaves it unreadable (read back as a RunInfo).

The folder's files are named by :mod:`lab.runs.layout`. metrics.jsonl gets one
line per finished epoch, flushed and fsynced; the JSON files are replaced
atomically (temp file + ``os.replace``); checkpoints are loaded with
``weights_only=True``. A run still marked ``queued``/``running`` whose owning
process is gone is reported ``interrupted``: nothing needs to clean up after a
killed server.

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
from pathlib import Path
from typing import Any

import torch

from lab import settings
from lab.runs import access
from lab.runs.access import Visitor
from lab.runs.layout import RunLayout
from lab.runs.view import RunInfo, read_json, read_jsonl

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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunStore:
    """All runs under one directory; safe to share between processes and threads."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = settings.runs_dir(root)

    def path(self, run_id: str) -> Path:
        """Folder of a run; refuses ids that would leave the runs dir."""
        if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
            raise RunNotFound(run_id)
        return self.root / run_id

    def layout(self, run_id: str) -> RunLayout:
        """The names of a run's files (no file is read)."""
        return RunLayout(self.path(run_id))

    def create(self, config: dict, name: str = "", owner: str = "", owner_key: str = "") -> str:
        """Make a new run folder in state ``queued``; returns its id.

        ``owner_key`` identifies the browser session that may change the run (lab.runs.access)."""
        self.root.mkdir(parents=True, exist_ok=True)
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
        layout = self.layout(run_id)
        layout.root.mkdir()
        atomic_write_json(layout.config, config)
        self.set_status(run_id, "queued", name=name or config.get("name") or run_id, owner=owner,
                        owner_key=owner_key, created=time.time())
        layout.metrics.touch()
        return run_id

    def write_config(self, run_id: str, config: dict) -> None:
        """Replace ``config.json``: the job queue creates a run with its settings and adds the
        data set's facts once its worker has loaded the data (lab.jobs)."""
        atomic_write_json(self.layout(run_id).config, config)

    def set_status(self, run_id: str, status: str, message: str = "", **extra: Any) -> dict:
        """Update ``status.json``; the calling process becomes the run's owner."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        path = self.layout(run_id).status
        data = read_json(path, {}) or {}
        data.update(extra, status=status, message=message, pid=os.getpid(), host=socket.gethostname(),
                    updated=time.time())
        atomic_write_json(path, data)
        return data

    def append_metrics(self, run_id: str, row: dict) -> None:
        """Append one epoch's metrics line, on disk before this returns."""
        with open(self.layout(run_id).metrics, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read_metrics(self, run_id: str) -> list[dict]:
        """Every complete metrics row; a torn last line (killed mid-write) is ignored."""
        return read_jsonl(self.layout(run_id).metrics)

    def read_status(self, run_id: str) -> dict:
        """``status.json`` with dead owners turned into ``interrupted``."""
        data = read_json(self.layout(run_id).status, None)
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
        """The run as it is on disk now; RunNotFound when there is no such run."""
        layout = self._existing(run_id)
        return RunInfo(run_id, layout.root, read_json(layout.config, {}), self.read_status(run_id),
                       self.read_metrics(run_id), read_json(layout.meta, {}) or {})

    def list(self) -> list[RunInfo]:
        """All runs, newest first."""
        if not self.root.is_dir():
            return []
        ids = sorted((p.name for p in self.root.iterdir() if RunLayout(p).config.exists()), reverse=True)
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
        atomic_write_json(self.layout(run_id).batch_losses, [[step, loss] for step, loss in points])

    def save_checkpoint(self, run_id: str, which: str, state: dict) -> None:
        """``best.pt`` or ``last.pt``."""
        atomic_save_torch(self.layout(run_id).checkpoint(which), state)

    def load_checkpoint(self, run_id: str, which: str | int = "best") -> dict:
        """A run's checkpoint dict (:meth:`RunInfo.load_checkpoint`)."""
        return self.get(run_id).load_checkpoint(which)

    def annotate(self, run_id: str, name: str | None = None, tags: list[str] | None = None,
                 note: str | None = None, by: Visitor | None = None) -> dict:
        """Rename, tag or annotate a run (None leaves a field as it is); returns the new meta.json.

        Works on live runs too: the trainer never writes meta.json. ``by`` is the
        session asking (lab.runs.access); it must own the run or be a teacher's.
        """
        layout = self._existing(run_id)
        access.check(self.read_status(run_id), by, "rename or annotate")
        meta = read_json(layout.meta, {}) or {}
        if name is not None:
            meta["name"] = _checked_text("name", name, MAX_NAME, required=True)
        if tags is not None:
            meta["tags"] = _checked_tags(tags)
        if note is not None:
            meta["note"] = _checked_text("note", note, MAX_NOTE)
        atomic_write_json(layout.meta, meta)
        return meta

    def delete(self, run_id: str, by: Visitor | None = None) -> None:
        """Remove one run's folder, and nothing else; ``by`` as for :meth:`annotate`."""
        layout = self._existing(run_id)
        access.check(self.read_status(run_id), by, "delete")
        shutil.rmtree(layout.root)

    def _existing(self, run_id: str) -> RunLayout:
        layout = self.layout(run_id)
        if not layout.config.exists():
            raise RunNotFound(run_id)
        return layout


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
    if RunLayout(folder).config.is_file():
        folder = folder.resolve()
        return RunStore(folder.parent), folder.name
    store = RunStore(runs_dir)
    return store, store.resolve(ref)
