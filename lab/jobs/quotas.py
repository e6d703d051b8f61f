"""The shared server's quotas on new runs, checked when a run is submitted.

A refusal (:class:`QuotaExceeded`) names the limit, its setting and what to do: wait, stop a run, or
delete old runs. Teachers and headless callers (the command line) are held only to what protects the
server itself: the class-wide cap. The numbers are lab.settings.Limits fields, so an exercise file's
``[limits]`` or ``LAB_MAX_...`` set them like every other limit.
"""

from __future__ import annotations

from lab import settings
from lab.data.upload import disk_usage, upload_path
from lab.runs.store import RunStore, is_run_id
from lab.runs.view import read_json


class QuotaExceeded(ValueError):
    """A quota of the shared server refuses a new run; the message says which and what to do."""


def check_quotas(*, adding: int, live_runs: int, queued_mine: int, owner_key: str, exempt: bool,
                 store: RunStore, data_dir=None) -> None:
    """Raise QuotaExceeded when ``adding`` more runs (a run, or a whole sweep at once) would pass a quota.

    ``live_runs``: runs waiting or training on the server; ``queued_mine``: this person's runs waiting
    to start; ``exempt``: a teacher or the command line, held to the class-wide cap only."""
    limits = settings.limits()
    if live_runs + adding > limits.max_class_runs:
        raise QuotaExceeded(f"The server has {live_runs} runs waiting or training; {adding} more would pass its "
                            f"limit for the whole class (max_class_runs, LAB_MAX_CLASS_RUNS = "
                            f"{limits.max_class_runs}). Wait until some of them finish, then start yours.")
    if exempt or not owner_key:
        return
    if queued_mine + adding > limits.max_queued_runs:
        raise QuotaExceeded(f"You have {queued_mine} runs waiting to start; {adding} more would pass the most one "
                            f"person may queue (max_queued_runs, LAB_MAX_QUEUED_RUNS = {limits.max_queued_runs}). "
                            "Wait until yours start, stop a queued run on the Train page, or start fewer at once.")
    used = person_disk_bytes(store, owner_key, data_dir)
    if used >= limits.max_person_disk_mb * 2**20:
        raise QuotaExceeded(f"Your uploads and runs take {used / 2**20:,.0f} MB on the server, the most one "
                            f"person may use (max_person_disk_mb, LAB_MAX_PERSON_DISK_MB = "
                            f"{limits.max_person_disk_mb:,} MB). Delete old runs on Compare, or uploads you "
                            "no longer use, then start again.")


def person_disk_bytes(store: RunStore, owner_key: str, data_dir=None) -> int:
    """Bytes of one browser session's runs and uploads (lab.data.upload keeps those per session)."""
    uploads = upload_path(data_dir, "any", owner_key).parent
    return disk_usage(uploads) + sum(disk_usage(store.path(run_id)) for run_id in owned_runs(store, owner_key))


def owned_runs(store: RunStore, owner_key: str) -> list[str]:
    """Ids of the runs a browser session started, read from their status files only (cheap for a class)."""
    if not owner_key or not store.root.is_dir():
        return []
    return sorted(folder.name for folder in store.root.iterdir()
                  if is_run_id(folder.name)
                  and read_json(store.layout(folder.name).status, {}).get("owner_key") == owner_key)
