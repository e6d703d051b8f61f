"""The run API: one module names a run folder's files (lab.runs.layout), one view reads a run
(lab.runs.view.RunInfo) the same whether it is live, finished or from before a restart, and one
function says which epoch was best."""

from __future__ import annotations

import ast
import json
import re
import threading
from pathlib import Path

import pytest
import torch

from lab.jobs import JobManager, RunState
from lab.plots.compare import best_acc_figure
from lab.runs.store import RunStore
from lab.runs.view import NoCheckpoint, RunInfo
from lab.train.engine import Callback, RunResult, TrainConfig, best_row

LAB = Path(__file__).resolve().parents[1] / "lab"
WAIT_S = 120
SMALL_CNN = {"name": "small", "layers": [{"type": "conv2d", "filters": 8}, {"type": "maxpool2d"},
                                         {"type": "global_avg_pool"}, {"type": "dense", "units": 10}]}
ROWS = [{"epoch": 1, "val_acc": 0.5, "train_acc": 0.6}, {"epoch": 2, "val_acc": 0.8, "train_acc": 0.9},
        {"epoch": 3, "val_acc": 0.8, "train_acc": 0.95}]


# ---------------------------------------------------------------- the best epoch


def test_the_best_epoch_is_the_first_with_the_highest_val_acc_everywhere(tmp_path):
    assert best_row(ROWS)["epoch"] == 2 and best_row([]) is None  # a tie goes to the earlier epoch
    assert RunResult("finished", "", ROWS).best["epoch"] == 2
    assert RunState("r", "running", metrics=ROWS).best["epoch"] == 2
    run = RunInfo("r", tmp_path, {}, {}, ROWS)
    assert (run.best_epoch, run.best_val_acc) == (2, 0.8)
    bar = best_acc_figure([("r", ROWS)]).data[0]
    assert list(bar.y) == [0.8] and "epoch 2" in bar.text[0]


# ---------------------------------------------------------------- the files on disk


def _old_run(folder: Path) -> Path:
    """A run folder as every version of the lab has written it, file names spelt out by hand."""
    (folder / "probe").mkdir(parents=True)
    (folder / "cams").mkdir()
    (folder / "weights").mkdir()
    resolved = {"classes": ["cat", "dog"], "input": [1, 8, 8], "num_classes": 2}
    (folder / "config.json").write_text(json.dumps({"epochs": 3, "dataset": "digits", "resolved": resolved}))
    (folder / "status.json").write_text(json.dumps({"status": "finished", "name": "from status"}))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    (folder / "batch_losses.json").write_text("[[1, 2.5], [2, 1.5]]")
    (folder / "meta.json").write_text(json.dumps({"name": "renamed", "tags": ["a"], "note": "n"}))
    torch.save({"model": {}, "epoch": 2}, folder / "best.pt")
    torch.save({"model": {}, "epoch": 3}, folder / "last.pt")
    torch.save({"model": {}, "epoch": 1}, folder / "weights" / "epoch_001.pt")
    (folder / "probe" / "meta.json").write_text(json.dumps({"layer": "dense_1", "cam_note": "no maps"}))
    (folder / "probe" / "index.json").write_text(json.dumps({"epochs": [{"epoch": 0, "knn_acc": 0.5}]}))
    for name in ("probe/epoch_000.npz", "probe/epoch_001.npz", "probe/map_pca_000.npy", "cams/epoch_001.npz",
                 "probe/.epoch_002.npz.123.tmp"):  # a file still being written is not an epoch yet
        (folder / name).write_bytes(b"")
    return folder


def test_an_old_run_folder_reads_through_the_layout_and_the_view(tmp_path):
    _old_run(tmp_path / "runs" / "20250101-120000-abcdef")
    run = RunStore(tmp_path / "runs").get("20250101-120000-abcdef")
    assert (run.name, run.tags, run.note, run.state) == ("renamed", ["a"], "n", "finished")
    assert run.classes == ["cat", "dog"] and run.batch_losses == [(1, 2.5), (2, 1.5)]
    assert [m["epoch"] for m in run.metrics] == [1, 2, 3] and run.best_epoch == 2
    assert run.probe_epochs == [0, 1] and run.cam_epochs == [1] and run.layout.map_epochs("pca") == [0]
    assert run.probe_meta["cam_note"] == "no maps" and run.probe_index["epochs"][0]["knn_acc"] == 0.5
    assert run.checkpoints == ["best", "last", "1"]
    assert run.checkpoint("BEST").name == "best.pt" and run.checkpoint(" last ").name == "last.pt"
    assert run.checkpoint(1) == run.layout.weights(1)
    assert run.checkpoint("2").name == "best.pt" and run.load_checkpoint(3)["epoch"] == 3  # found by their epoch
    with pytest.raises(NoCheckpoint, match="no weights saved for epoch 9; use best, last or one of epochs 1"):
        run.checkpoint(9)
    with pytest.raises(NoCheckpoint, match="epoch must be a number, 'best' or 'last'"):
        run.checkpoint("first")


def test_the_store_writes_the_same_file_names(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.create({"epochs": 1})
    store.append_metrics(run_id, ROWS[0])
    store.save_checkpoint(run_id, "best", {"model": {}, "epoch": 1})
    store.save_batch_losses(run_id, [(1, 2.0)])
    store.annotate(run_id, note="kept")
    assert sorted(p.name for p in store.path(run_id).iterdir()) == [
        "batch_losses.json", "best.pt", "config.json", "meta.json", "metrics.jsonl", "status.json"]
    layout = store.layout(run_id)
    assert [layout.probe(7).name, layout.cams(7).parent.name, layout.weights(12).name, layout.map("umap", 3).name] \
        == ["epoch_007.npz", "cams", "epoch_012.pt", "map_umap_003.npy"]
    with pytest.raises(ValueError, match="use one of: best, last"):
        layout.checkpoint("epoch_3")


# ---------------------------------------------------------------- live, finished, restarted


class PauseAfterFirstEpoch(Callback):
    """Holds the run after epoch 1 (every recorder has written it) until the test has looked."""

    def __init__(self):
        self.reached, self.go_on = threading.Event(), threading.Event()

    def on_epoch_end(self, trainer, metrics):
        if metrics["epoch"] == 1:
            self.reached.set()
            assert self.go_on.wait(WAIT_S)


def test_a_live_a_finished_and_a_restarted_run_read_alike(tmp_path):
    manager, pause = JobManager(runs_dir=tmp_path), PauseAfterFirstEpoch()
    config = TrainConfig.from_dict(dict(spec=SMALL_CNN, dataset="digits", epochs=2, batch_size=64, device="cpu",
                                        probe_size=100))
    run_id = manager.submit(config, extra_callbacks=[pause])
    try:
        assert pause.reached.wait(WAIT_S)
        live = manager.store.get(run_id)
        assert live.state == "running" and [m["epoch"] for m in live.metrics] == [1] and live.best_epoch == 1
        assert live.probe_epochs == [0, 1] and live.cam_epochs == [0, 1]
        assert live.checkpoints == ["best", "0", "1"]  # no last.pt before the run ends
        assert live.classes == [str(c) for c in range(10)]
    finally:
        pause.go_on.set()
    ended = manager.wait(run_id, WAIT_S)
    assert ended.status == "finished"
    finished = manager.store.get(run_id)
    assert [m["epoch"] for m in finished.metrics] == [1, 2] and finished.probe_epochs == [0, 1, 2]
    assert finished.checkpoints == ["best", "last", "0", "1", "2"] and finished.metrics[0] == live.metrics[0]
    restarted = JobManager(runs_dir=tmp_path)  # a new server process: nothing in memory
    assert restarted.store.get(run_id) == finished
    again = restarted.state(run_id)
    assert (again.status, again.metrics, again.batch_losses, again.best) == (
        ended.status, ended.metrics, ended.batch_losses, ended.best)


# ---------------------------------------------------------------- one module knows the layout


# A run folder's file and folder names, as the layout writes them ("{}" stands for an f-string's placeholder).
RUN_FILE = re.compile(r"(config|status|meta|index|batch_losses)\.json|metrics\.jsonl|probe|cams|weights"
                      r"|(best|last|.*\})\.pt|epoch_.*|map_.*")


def _literal(node: ast.expr) -> str | None:
    """The text of a string or f-string (its placeholders as ``{}``), None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant) else "{}" for part in node.values)
    return None


def run_path_joins(source: str) -> list[str]:
    """Every ``path / "<a run folder's file>"`` and ``.joinpath("<...>")`` in Python source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        parts = []
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            parts = [node.right]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "joinpath":
            parts = node.args
        found += [text for text in map(_literal, parts) if text is not None and RUN_FILE.fullmatch(text)]
    return found


def test_the_join_finder_finds_what_the_pages_used_to_write():
    assert run_path_joins('meta = run.path / "probe" / "meta.json"') == ["meta.json", "probe"]
    assert run_path_joins('p = folder.joinpath(f"{which}.pt"); q = d / f"epoch_{e:03d}.npz"') == \
        ["{}.pt", "epoch_{}.npz"]
    assert run_path_joins('out = folder / "dog" / "big.png"; label = "probe"') == []


def test_no_module_joins_a_path_into_a_run_folder_but_the_layout():
    offenders = {str(path.relative_to(LAB)): joins for path in sorted(LAB.rglob("*.py"))
                 if path != LAB / "runs" / "layout.py"
                 and (joins := run_path_joins(path.read_text(encoding="utf-8")))}
    assert offenders == {}
