"""RunStore: one folder per run, written so that no crash leaves it unreadable (read back as a RunInfo).

The folder's files are named by :mod:`lab.runs.layout`. metrics.jsonl gets one
line per finished epoch, flushed and fsynced; the JSON files and checkpoints are
replaced atomically and durably (:func:`lab.durable.atomic_write`); checkpoints are
loaded with ``weights_only=True``. A run still marked ``queued``/``running`` whose
owning process is gone is reported ``interrupted``, and the temp files a killed
writer left are removed when the run is next read: nothing needs to clean up after
a killed server.

The owner is recognised by its pid and the pid's start time (:func:`process_identity`),
not by the pid alone: after a container restart the pids start over, and the
process now holding a dead server's pid is not the lab. The start time was chosen
over a lock file held with ``flock``: it is read, never held, so a reader needs no
write access to the run folder, nothing is kept open per queued run, and it works
the same on network file systems, where ``flock`` may not.

User edits live in their own ``meta.json`` rather than in ``status.json``: the
training process rewrites status.json (read, update, replace) every epoch, so
an edit made there while a run is live could be lost to that race, and
``set_status`` would make the editing process the run's owner.
"""

from __future__ import annotations

import json
import os
import pickle
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import torch

from lab import settings
from lab.durable import STALE_AFTER_S, atomic_write, fsync_dir, remove_stale_temps
from lab.runs import access
from lab.runs.access import Visitor
from lab.runs.layout import RunLayout
from lab.runs.view import NoCheckpoint, RunInfo, read_json, read_jsonl
from lab.train.engine import MAX_NAME, MAX_OWNER, ConfigError, text_problem
from lab.train.finetune import SourceWeights

STATUSES = ("queued", "running", "finished", "stopped", "failed", "diverged", "interrupted")
LIVE_STATUSES = ("queued", "running")
MAX_TAG, MAX_TAGS, MAX_NOTE = 30, 10, 2000  # what a table cell and a tooltip can show (names: lab.train.engine)


class AnnotationError(ValueError):
    """A name, tag or note a run cannot take; the message says what to change."""


class RunNotFound(KeyError):
    """No run with that id (or folder) exists in the store."""

    def __str__(self) -> str:
        return f"no run {self.args[0]!r:.{MAX_ID_SHOWN}} in the runs dir"


MAX_ID_BYTES = 200  # a folder name has at most 255 bytes; the lab's ids have 22 characters
MAX_ID_SHOWN = 60  # characters of an unknown id a message repeats: it may be 5,000 long, from a URL


def is_run_id(run_id: Any) -> bool:
    """Whether a run folder can have this name: one printable name in the runs dir, never '..' or a hidden
    file, short enough for the file system. Anything else is no run at all, not an OSError (ENAMETOOLONG)."""
    return (isinstance(run_id, str) and run_id.isprintable() and not run_id.startswith(".") and "/" not in run_id
            and "\\" not in run_id and 0 < len(run_id.encode("utf-8")) <= MAX_ID_BYTES)


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON so readers see the old or the new file, never half of one."""
    text = json.dumps(data, indent=1, default=str).encode("utf-8")
    atomic_write(path, lambda f: f.write(text))


def atomic_save_torch(path: Path, obj: Any) -> None:
    """``torch.save`` through a temp file, so a crash never leaves a truncated checkpoint."""
    atomic_write(path, lambda f: torch.save(obj, f))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):  # gone, or not a pid at all
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def process_identity(pid: int) -> str | None:
    """'<boot id>/<start time>' of a running process: the same pid with another identity is another process.

    The start time is field 22 of ``/proc/<pid>/stat``, in clock ticks since boot; the boot id makes it
    unique across reboots too. None where it cannot be read (the process is gone, or the system has no
    /proc, as on macOS and Windows, where the pid alone decides).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    after_name = stat[stat.rindex(")") + 2:].split()  # field 2, the name, may hold spaces and ")"
    return f"{boot}/{after_name[19]}"  # after_name starts at field 3


def _owner_alive(pid: int, identity: str | None) -> bool:
    """Whether ``pid`` is still the process that wrote the status; ``identity`` None (a status from
    before identities were recorded, or from a system without /proc) trusts the pid."""
    if not _pid_alive(pid):
        return False
    return identity is None or process_identity(pid) == identity


class RunStore:
    """All runs under one directory; safe to share between processes and threads."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = settings.runs_dir(root)
        self._swept: dict[str, float] = {}  # run id -> when its stale temp files were last removed

    def path(self, run_id: str) -> Path:
        """Folder of a run; refuses ids that would leave the runs dir or that no folder can have."""
        if not is_run_id(run_id):
            raise RunNotFound(run_id)
        return self.root / run_id

    def layout(self, run_id: str) -> RunLayout:
        """The names of a run's files (no file is read)."""
        return RunLayout(self.path(run_id))

    def create(self, config: dict, name: str = "", owner: str = "", owner_key: str = "") -> str:
        """Make a new run folder in state ``queued``; returns its id.

        ``owner_key`` identifies the browser session that may change the run (lab.runs.access).
        A name or owner too long for a table is refused (AnnotationError) before anything is written."""
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
        name = _checked_text("name", name or config.get("name") or run_id, MAX_NAME)
        owner = _checked_text("owner", owner, MAX_OWNER)
        self.root.mkdir(parents=True, exist_ok=True)
        layout = self.layout(run_id)
        layout.root.mkdir()
        fsync_dir(self.root)
        atomic_write_json(layout.config, config)
        self.set_status(run_id, "queued", name=name, owner=owner, owner_key=owner_key, created=time.time())
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
                    pid_identity=process_identity(os.getpid()), updated=time.time())
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
        try:
            pid = int(status.get("pid", -1))
        except (TypeError, ValueError):
            return True
        return not _owner_alive(pid, status.get("pid_identity"))

    def get(self, run_id: str) -> RunInfo:
        """The run as it is on disk now; RunNotFound when there is no such run."""
        layout = self._existing(run_id)
        self._remove_stale_temps(run_id, layout)
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
        if not ref:  # the prefix of every id
            raise RunNotFound(ref)
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

    def source_weights(self, ref: str) -> SourceWeights | None:
        """The best weights of run ``ref`` (id, id prefix or name), for a run that starts from them
        (``TrainConfig.init_from``; lab.train.finetune says why best); None for ''. ConfigError when
        there is no such run or it has no weights yet."""
        if not ref:
            return None
        try:
            run = self.get(self.resolve(ref))
            state = run.load_checkpoint("best")
        except RunNotFound:
            raise ConfigError(f"init_from: there is no run {ref!r} in this lab; give the id or name of a run "
                              "listed on Compare (or by python -m lab runs)") from None
        except NoCheckpoint:
            raise ConfigError(f"init_from: run {run.name!r} has no saved weights yet (it saves them after its "
                              "first epoch); wait for that, or start from another run") from None
        except (OSError, RuntimeError, pickle.UnpicklingError) as err:  # torch.load of a damaged file
            raise ConfigError(f"init_from: the weights of run {run.name!r} cannot be read ({err}); "
                              "start from another run") from None
        return SourceWeights(run.id, int(state.get("epoch", 0)), state["model"], run.classes)

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

    def _remove_stale_temps(self, run_id: str, layout: RunLayout) -> None:
        """Delete the temp files a killed writer left in the run's folders, at most once per
        STALE_AFTER_S per run: pages read a live run every second, and a younger temp file is
        never removed anyway."""
        now = time.time()
        if now - self._swept.get(run_id, 0.0) < STALE_AFTER_S:
            return
        self._swept[run_id] = now
        remove_stale_temps(layout.folders, now)

    def _existing(self, run_id: str) -> RunLayout:
        layout = self.layout(run_id)
        if not layout.config.exists():
            raise RunNotFound(run_id)
        return layout


def _checked_text(what: str, text: str, limit: int, required: bool = False) -> str:
    """``text`` stripped; AnnotationError when it is not text, too long, or empty but ``required``."""
    text = text.strip() if isinstance(text, str) else text
    problem = text_problem(f"a run's {what}", text, limit)
    if not problem and required and not text:
        problem = f"a run's {what} cannot be empty"
    if problem:
        raise AnnotationError(problem)
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
    if is_run_id(folder.name) and RunLayout(folder).config.is_file():
        folder = folder.resolve()
        return RunStore(folder.parent), folder.name
    store = RunStore(runs_dir)
    return store, store.resolve(ref)
