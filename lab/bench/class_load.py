"""``python -m lab bench --class N``: a class of N students pressing Start together on one server.

Each student is a browser session of its own (a ``Visitor``, so the fair queue takes turns between them
and the per-person quotas apply) starting the Home page's Fashion-MNIST quick start (``fashion_cnn``
with its recipe, no augmentation, the feature-space probe and CAM samples on, as the Train page runs
it) through one ``JobManager``, all at once. What a teacher wants to know: how long until every run
has finished, how long a student waits between Start and the run training, and what the server holds
in memory meanwhile.

Each executor is measured in a fresh server process (``python -m lab.bench.class_load``), so the
memory one leaves behind does not count against the next, with runs in a temporary folder.
"""

from __future__ import annotations

import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass

from lab.bench.live_ui import _children, rss_mb
from lab.data.registry import list_datasets, normalise
from lab.model.presets import get_preset_info
from lab.train.engine import ConfigError, TrainConfig

QUICK_START = "fashion_cnn"  # the Home page's Fashion-MNIST quick start (lab.ui.home.QUICK_STARTS)
STAND_INS = ("digits", "shapes")  # the quick start's own fallbacks when its data set is not on the server
EXECUTORS = ("local", "ray")
SAMPLE_SECONDS = 0.5  # how often the server's child processes are weighed
WAIT_HOURS = 6  # a class that has not finished by then is reported as a hang, not waited on forever


@dataclass(frozen=True)
class ClassLoad:
    """What the class does: how many press Start, on what, and how long each run is."""

    students: int = 40
    dataset: str = "fashion-mnist"
    epochs: int = 1
    train_limit: int = 0  # training images per run (0 = all)
    concurrent: int = 0  # runs training at once; 0 = the executor's own (LAB_CONCURRENT_RUNS, else its default)
    data_dir: str | None = None


def class_dataset(wanted: str, data_dir=None) -> tuple[str, str]:
    """The data set the class trains on, and a note when it is a stand-in for ``wanted`` (missing here)."""
    wanted = normalise(wanted)
    infos = {info.name: info for info in list_datasets(data_dir)}
    if infos[wanted].available:
        return wanted, ""
    stand_in = next(name for name in STAND_INS if infos[name].available)
    return stand_in, f"{wanted} is not on this server ({infos[wanted].how_to_get}); the class trains on {stand_in}."


def student_config(load: ClassLoad, student: int) -> TrainConfig:
    """One student's run: the quick start's model and recipe, at the class's length."""
    info = get_preset_info(QUICK_START)
    config = TrainConfig(spec=info.spec, dataset=load.dataset, augment=info.augment, **info.train,
                         epochs=load.epochs, train_limit=load.train_limit, name=f"student-{student}",
                         owner=f"student {student}")
    config.validate()
    return config


def run_class_bench(load: ClassLoad, executors: list[str]) -> dict:
    """Every executor's figures, each from its own server process, on the same data set."""
    unknown = sorted(set(executors) - set(EXECUTORS))
    if unknown or not executors:
        raise ConfigError(f"unknown executor(s) {', '.join(unknown) or '(none given)'}; "
                          f"use one or more of {','.join(EXECUTORS)}")
    if load.students < 1:
        raise ConfigError(f"--class must be at least 1 student, got {load.students}")
    dataset, note = class_dataset(load.dataset, load.data_dir)
    load = ClassLoad(**{**asdict(load), "dataset": dataset})
    student_config(load, 1)  # settings out of range are refused here, before any server starts
    return {"load": asdict(load), "note": note, "date": time.strftime("%Y-%m-%d"),
            "executors": [_measure_in_child(load, executor) for executor in executors]}


def _measure_in_child(load: ClassLoad, executor: str) -> dict:
    """Run :func:`measure` in a fresh ``python`` (its figures on stdout, as JSON)."""
    env = dict(os.environ)
    if load.concurrent:
        env["LAB_CONCURRENT_RUNS"] = str(load.concurrent)
    job = {"load": asdict(load), "executor": executor}
    done = subprocess.run([sys.executable, "-m", "lab.bench.class_load", json.dumps(job)], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return {"executor": executor, "error": reason}
    return json.loads(done.stdout.strip().splitlines()[-1])  # the last line: Ray may print its workers' output


def measure(load: ClassLoad, executor: str) -> dict:
    """The class in this process: N sessions submit at once, then every run is waited for."""
    from lab.jobs import JobManager, QuotaExceeded
    from lab.runs.access import Visitor

    configs = [student_config(load, student) for student in range(1, load.students + 1)]
    with tempfile.TemporaryDirectory(prefix="lab-class-bench-") as runs_dir:
        manager = JobManager(runs_dir, load.data_dir, executor=executor)
        children = _ChildMemory()
        try:
            at_rest = rss_mb(os.getpid())
            pressed = time.time()
            run_ids, refusals = _press_start_together(manager, configs, Visitor, QuotaExceeded)
            deadline = time.monotonic() + WAIT_HOURS * 3600
            for run_id in run_ids:
                manager.wait(run_id, timeout=max(1.0, deadline - time.monotonic()))
            statuses = [manager.store.read_status(run_id) for run_id in run_ids]
            slots = manager.executor.slots()
        finally:
            children.stop()
            manager.executor.close()
    return _figures(executor, load, slots, pressed, statuses, refusals, at_rest, children.peak_mb)


def _press_start_together(manager, configs: list[TrainConfig], visitor, refused) -> tuple[list[str], list[str]]:
    """Each config submitted by its own session from its own thread, released by one barrier; the run
    ids, and the quota messages of the submits refused."""
    barrier = threading.Barrier(len(configs))
    run_ids: list[str] = []
    refusals: list[str] = []

    def press(config: TrainConfig) -> None:
        barrier.wait()
        try:
            run_ids.append(manager.submit(config, by=visitor()))
        except refused as err:
            refusals.append(str(err))

    threads = [threading.Thread(target=press, args=(config,)) for config in configs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return run_ids, refusals


class _ChildMemory:
    """Samples the resident memory of every process this one started (a Ray head and its workers),
    summed; the peak is kept. Shared pages (torch's libraries) count once per process."""

    def __init__(self):
        self.peak_mb = 0.0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True, name="lab-bench-memory")
        self.thread.start()

    def _sample(self) -> None:
        while not self.stopped.wait(SAMPLE_SECONDS):
            total = 0.0
            for pid in _children(os.getpid()):
                try:
                    rss = rss_mb(pid)
                except OSError:  # ended between the listing and the read
                    continue
                total += 0.0 if math.isnan(rss) else rss  # a zombie has no resident memory
            self.peak_mb = max(self.peak_mb, total)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


def _figures(executor: str, load: ClassLoad, slots: int, pressed: float, statuses: list[dict],
             refusals: list[str], at_rest_mb: float, children_mb: float) -> dict:
    waits = [s["started"] - s["created"] for s in statuses if "started" in s and "created" in s]
    ends = [s["ended"] for s in statuses if "ended" in s]
    failed = [s for s in statuses if s.get("status") != "finished"]
    return {
        "executor": executor, "students": load.students, "slots": slots,
        "all_done_seconds": max(ends) - pressed if ends else None,
        "longest_wait_seconds": max(waits, default=None),
        "mean_wait_seconds": statistics.fmean(waits) if waits else None,
        "started": len(waits),
        "server_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux reports KiB
        "server_at_rest_mb": at_rest_mb,
        "child_processes_peak_mb": children_mb,
        "finished": len(statuses) - len(failed), "failed": len(failed), "refused": len(refusals),
        "first_problem": (failed[0].get("message", failed[0].get("status", "")) if failed
                          else refusals[0] if refusals else ""),
    }


def format_class(report: dict) -> str:
    """One paragraph per executor, then the ratios of the others to the first."""
    load = report["load"]
    limit = f"{load['train_limit']:,} training images" if load["train_limit"] else "every training image"
    lines = [f"{load['students']} students press Start together: {QUICK_START} on {load['dataset']}, "
             f"{load['epochs']} epoch(s) of {limit} each ({report['date']})"]
    if report["note"]:
        lines.append(report["note"])
    for r in report["executors"]:
        if "error" in r:
            lines.append(f"{r['executor']}: could not run: {r['error']}")
            continue
        lines += [
            f"{r['executor']}: {r['students']} runs, {r['slots']} at once",
            f"  every run finished after {_seconds(r['all_done_seconds'])}",
            f"  wait from Start to training: longest {_seconds(r['longest_wait_seconds'])}, "
            f"mean {_seconds(r['mean_wait_seconds'])} ({r['started']} runs started)",
            f"  server memory: peak {r['server_peak_mb']:,.0f} MB ({r['server_at_rest_mb']:,.0f} MB before the class)"
            + (f"; processes it started (Ray's head and workers), summed: peak {r['child_processes_peak_mb']:,.0f} MB"
               if r["child_processes_peak_mb"] else ""),
            f"  runs: {r['finished']} finished, {r['failed']} failed, {r['refused']} refused"
            + (f" (first: {r['first_problem']})" if r["first_problem"] else ""),
        ]
    lines += _ratios([r for r in report["executors"] if "error" not in r])
    return "\n".join(lines)


def _ratios(results: list[dict]) -> list[str]:
    """Each executor's figures over the first's, measured in the same bench."""
    if len(results) < 2:
        return []
    base, lines = results[0], []
    for other in results[1:]:
        pairs = [(label, other[key], base[key]) for label, key in (
            ("every run finished", "all_done_seconds"), ("longest wait", "longest_wait_seconds"),
            ("mean wait", "mean_wait_seconds"), ("server peak memory", "server_peak_mb"))]
        lines.append(f"{other['executor']} / {base['executor']}: " + ", ".join(
            f"{label} {mine / theirs:.2f}x" for label, mine, theirs in pairs if mine is not None and theirs))
    return lines


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} s"


if __name__ == "__main__":  # one executor's measurement, in its own server process (see _measure_in_child)
    job = json.loads(sys.argv[1])
    print(json.dumps(measure(ClassLoad(**job["load"]), job["executor"])))
