"""A server killed with SIGKILL mid-training loses no completed epoch and leaves no broken file.

The "server" is a real subprocess running the JobManager the app uses (with its
insight callbacks), training a small net on `digits` for far more epochs than it
gets: it writes metrics, status, checkpoints, probe and CAM files all the time, so
a kill lands in the middle of writes. After it, a fresh JobManager (the restarted
server) and the Train page must read the run as ``interrupted`` with every epoch
that completed and a best checkpoint that loads.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from lab.jobs import JobManager
from lab.model.spec import build_model

REPO = Path(__file__).resolve().parents[1]
TINY = {"name": "tiny", "layers": [{"type": "conv2d", "filters": 4}, {"type": "global_avg_pool"},
                                   {"type": "dense", "units": 10}]}
WAIT_S = 120  # a guard against hanging, never a measure of speed
SERVER = textwrap.dedent("""
    import json, sys
    from lab.train.engine import TrainConfig
    from lab.jobs import JobManager
    manager = JobManager(sys.argv[1], sys.argv[2])
    config = TrainConfig.from_dict(dict(json.loads(sys.argv[3]), dataset="digits", epochs=200, batch_size=64,
                                        device="cpu", probe_size=200, name="doomed"))
    run_id = manager.submit(config)
    print(run_id, flush=True)
    manager.wait(run_id, 3600)
""")


def kill_after_epochs(runs: Path, data: Path, epochs: int) -> str:
    """Start the server, SIGKILL it once ``epochs`` epochs are on disk; the run's id."""
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(runs), str(data), json.dumps({"spec": TINY})],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        run_id = server.stdout.readline().strip()
        metrics, deadline = runs / run_id / "metrics.jsonl", time.monotonic() + WAIT_S
        while metrics.read_text().count("\n") < epochs and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(server.pid, signal.SIGKILL)
    finally:
        server.kill()
        server.wait(WAIT_S)
    assert server.returncode == -signal.SIGKILL
    return run_id


def every_file_reads_whole(folder: Path) -> None:
    """Every file a reader would open parses; a writer's leftover temp file is hidden, never read."""
    for path in folder.rglob("*"):
        if path.is_dir() or path.name.startswith("."):
            continue
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".npz":
            dict(np.load(path))
        elif path.suffix == ".npy":
            np.load(path)
        elif path.suffix == ".pt":
            torch.load(path, weights_only=True)


@pytest.mark.parametrize("epochs", [1, 3, 6])
def test_sigkill_mid_training_keeps_every_completed_epoch(isolated_lab, data_dir, epochs):
    runs, data = isolated_lab.root, data_dir
    run_id = kill_after_epochs(runs, data, epochs)

    restarted = JobManager(runs, data)
    state = restarted.state(run_id)
    assert state.status == "interrupted"
    done = [m["epoch"] for m in state.metrics]
    assert done[:epochs] == list(range(1, epochs + 1)) and done == list(range(1, len(done) + 1))
    every_file_reads_whole(runs / run_id)
    best = isolated_lab.load_checkpoint(run_id, "best")
    assert best["epoch"] in done
    build_model(TINY, (1, 8, 8), 10).load_state_dict(best["model"])

    page = AppTest.from_file(str(REPO / "app_pages" / "train.py"), default_timeout=WAIT_S)
    page.query_params["run"] = run_id
    page.run()
    assert not page.exception
    assert page.warning[0].value.startswith("**Interrupted**: best validation accuracy")
    assert "of 200" in page.warning[0].value
