"""A tiny model to train in tests, and a listener that holds its run at the start."""

from __future__ import annotations

import threading

from lab.train.engine import Callback

TINY = {"name": "tiny", "layers": [{"type": "conv2d", "filters": 4}, {"type": "global_avg_pool"},
                                   {"type": "dense", "units": 10}]}
WAIT_S = 120  # a guard against hanging, never a measure of speed


class Gate(Callback):
    """Holds its run at the start until released, so the runs behind it stay queued."""

    def __init__(self):
        self.started, self.release = threading.Event(), threading.Event()

    def on_run_start(self, trainer):
        self.started.set()
        assert self.release.wait(WAIT_S)
