"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from lab.runs.store import RunStore


@dataclass
class TrainedRun:
    runs_dir: Path
    run_id: str
    run_dir: Path
    result: object  # lab.train.engine.RunResult


@pytest.fixture(scope="session")
def gap_cam_run(tmp_path_factory) -> TrainedRun:
    """gap_cam trained briefly on ``shapes`` with insight on, through the CLI's run_training,
    once per test session (tests/test_cam.py and tests/test_insight.py read it, never write it).

    3 epochs x 6,000 images, Adam 3e-3, batch 64, constant lr: val accuracy about 0.95 and
    about 20 s on 2 idle CPU cores. A constant lr localises better than onecycle at this
    length (pointing game 0.91 vs 0.85 in one try each), so the pointing game has a margin.
    """
    from lab.cli import run_training
    from lab.model.presets import get_preset
    from lab.train.engine import TrainConfig

    runs_dir = tmp_path_factory.mktemp("insight-runs")
    config = TrainConfig.from_dict(dict(spec=get_preset("gap_cam"), dataset="shapes", epochs=3, batch_size=64,
                                        lr=3e-3, device="cpu", train_limit=6000, probe_size=400, seed=0))
    run_id, result = run_training(config, runs_dir, runs_dir / "data")
    assert result.status == "finished", result.message
    return TrainedRun(runs_dir, run_id, runs_dir / run_id, result)


@pytest.fixture
def copy_gap_cam_run(gap_cam_run):
    """``copy(runs_dir, run_id=None) -> run id``: a copy of ``gap_cam_run`` in ``runs_dir`` (under
    ``run_id``, default its own id), for tests whose pages write into the run folder (cached
    maps); the shared run stays as trained. A fixture, not an importable helper: tests/ and
    tests/browser/ both have a conftest module, so ``import conftest`` is ambiguous."""
    import shutil

    def copy(runs_dir: Path, run_id: str | None = None) -> str:
        run_id = run_id or gap_cam_run.run_id
        shutil.copytree(gap_cam_run.run_dir, Path(runs_dir) / run_id)
        return run_id

    return copy


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """One data dir for the module: loaded datasets are cached per data dir, so shapes is made once."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def isolated_lab(tmp_path, data_dir, monkeypatch) -> Iterator[RunStore]:
    """The lab that pages, the job manager and ``python -m lab`` see, on its own: runs in
    ``tmp_path / "runs"`` (the store yielded), data in the module's ``data_dir``; a fresh job
    manager, so the cached one does not point elsewhere, and a fresh embedding worker (closed
    after the test: it may have a child process). Every test that runs a page or a job uses it."""
    from lab.runs.store import RunStore
    from lab.ui.state import embedding_worker, job_manager

    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("LAB_DATA_DIR", str(data_dir))
    job_manager.clear()
    yield RunStore(tmp_path / "runs")
    job_manager.clear()
    embedding_worker().close()
    embedding_worker.clear()
