"""Jobs: training runs queued fairly, run off the UI thread (here or on a Ray cluster), observable, stoppable.

    manager.py        JobManager: submit, stop, state; the teacher's pause, stop-all, clear
    queue.py          the fair order (priority, then turns between owners) and start estimates
    quotas.py         the shared server's limits on new runs
    state.py          Job (a live run's record, fed by Trainer events) and RunState (what pages read)
    local.py          executor: a thread of this process per run (default)
    ray_executor.py   executor: a Ray task per run, events and files shipped back (LAB_EXECUTOR=ray)
"""

from lab.jobs.manager import JobManager
from lab.jobs.quotas import QuotaExceeded
from lab.jobs.state import RunState

__all__ = ["JobManager", "QuotaExceeded", "RunState"]
