"""Finished runs written straight to disk, for the tests that list, compare and rank runs without training."""

from __future__ import annotations

import json

from lab.runs.store import RunStore
from lab.train.engine import TrainConfig

TINY = '{"layers": [{"type": "flatten"}, {"type": "dense", "units": 32}]}'


def base_config(**changes) -> TrainConfig:
    return TrainConfig.from_dict({"spec": json.loads(TINY), "dataset": "digits", "device": "cpu", **changes})


def fake_run(store: RunStore, name: str, accs: list[float], sweep: dict | None = None, **config) -> str:
    """A finished run on disk without training: config as run_record writes it, one metrics row per acc."""
    cfg = {**base_config(name=name, epochs=len(accs), **config).to_dict(), "sweep": sweep or {},
           "resolved": {"spec_name": "tiny", "params": 2410}}
    run_id = store.create(cfg, name=name, owner="kim")
    for epoch, acc in enumerate(accs, 1):
        store.append_metrics(run_id, {"epoch": epoch, "train_acc": acc + 0.05, "val_acc": acc,
                                      "train_loss": 1 - acc, "val_loss": 1.1 - acc + (epoch > 2) * 0.3,
                                      "seconds": 2.0, "images_per_sec": 500.0})
    store.set_status(run_id, "finished", created=1_700_000_000.0)
    return run_id
