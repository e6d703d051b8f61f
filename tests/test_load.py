"""A classroom at once: 20 sessions each build a model and train it on one server.

Twenty AppTest sessions share this process's job manager, as browsers share a
server: every run must finish, each with its owner and its own model, queued runs
show their place, and pages keep rendering while jobs train in the manager's
threads. The sessions take turns (AppTest installs one process-wide mock runtime
per script run, so two cannot run at once); the training does not wait for them.
Render times under load and peak memory are written to ``artifacts/load.json``
(figures for the notes, never assertions).
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lab.bench.live_ui import rss_mb
from lab.ui.state import default_draft, job_manager

ROOT = Path(__file__).resolve().parents[1]
SESSIONS = 20
WAIT_S = 600  # a guard against hanging, never a measure of speed


class Student:
    """One browser session: builds its own variant of the default model, trains it, watches it."""

    def __init__(self, number: int):
        self.number, self.render_s, self.saw_queue = number, [], False
        self.at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=WAIT_S)
        draft = default_draft() | {"dataset": "digits"}  # small images: the load is the sessions, not the maths
        draft["train"].update(epochs=1, batch_size=64, device="cpu", train_limit=320, probe_size=64)
        self.at.session_state["draft"] = draft
        self.at.session_state["owner"] = f"student {number}"

    def _run(self) -> None:
        started = time.perf_counter()
        self.at.run()
        self.render_s.append(time.perf_counter() - started)
        assert not self.at.exception, [e.value for e in self.at.exception]

    def build(self) -> None:
        self._run()
        self.at.switch_page("app_pages/build.py")
        self._run()
        filters = next(w for w in self.at.number_input if w.key and w.key.endswith(".0.filters"))
        filters.set_value(4 + self.number)
        self._run()

    def start(self) -> None:
        self.at.switch_page("app_pages/train.py")
        self._run()
        next(b for b in self.at.button if b.label == "Start training").click()
        self._run()
        self.run_id = self.at.query_params["run"]

    def watch(self) -> bool:
        """One look at the page, as its polling does; whether the run is still live."""
        self._run()
        self.saw_queue |= any("Queued:" in p.proto.text for p in self.at.get("progress"))
        return job_manager().state(self.run_id).live


@pytest.mark.usefixtures("isolated_lab")  # tests/conftest.py
def test_twenty_sessions_build_and_train_at_once():
    peak, done = [rss_mb(os.getpid())], threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak.append(rss_mb(os.getpid()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    students = [Student(i) for i in range(SESSIONS)]
    for student in students:
        student.build()
    for student in students:
        student.start()
    watching, deadline = list(students), time.monotonic() + WAIT_S
    while watching and time.monotonic() < deadline:
        watching = [s for s in watching if s.watch()]
    done.set()
    run_ids = [s.run_id for s in students]

    runs = {r.id: r for r in job_manager().store.list()}
    assert sorted(runs) == sorted(run_ids)  # one run each, none lost
    assert all(runs[i].state == "finished" for i in run_ids), {i: runs[i].status for i in run_ids}
    assert {runs[i].status["owner"] for i in run_ids} == {f"student {n}" for n in range(SESSIONS)}
    assert len({runs[i].config["resolved"]["params"] for i in run_ids}) == SESSIONS  # each its own model
    assert any(s.saw_queue for s in students)  # runs behind others showed their place
    renders = sorted(t for s in students for t in s.render_s)
    figures = {"sessions": SESSIONS, "renders": len(renders), "render_median_s": statistics.median(renders),
               "render_p95_s": renders[int(0.95 * len(renders))], "render_max_s": renders[-1],
               "rss_start_mb": peak[0], "rss_peak_mb": max(peak), "cpus": os.cpu_count()}
    (ROOT / "artifacts").mkdir(exist_ok=True)
    (ROOT / "artifacts" / "load.json").write_text(json.dumps(figures, indent=1))
    print(figures)
