"""The mistakes loop without a browser: per-class accuracy, a confusion cell's images, corrections that
leave the user's files alone, and ``python -m lab mistakes`` refusing bad marks in one line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from support.cli import lab

from lab.data import load_dataset
from lab.data.corrections import (
    Change,
    apply_corrections,
    corrections_dir,
    read_corrections,
    split_name,
    write_corrections,
)
from lab.data.dataset import Dataset, DatasetError
from lab.insight.errors import InsightError
from lab.insight.load import load_run_model
from lab.insight.mistakes import COLUMNS, mistakes
from lab.insight.validation import predict_probs
from lab.runs.store import RunStore

SMALL = {"name": "small", "layers": [
    {"type": "conv2d", "filters": 16}, {"type": "maxpool2d"}, {"type": "conv2d", "filters": 32},
    {"type": "global_avg_pool"}, {"type": "dense", "units": 10},
]}


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A small net trained 3 epochs on digits (about 90% right: a few dozen mistakes), in its own runs dir."""
    from lab.cli import run_training
    from lab.train.engine import TrainConfig

    root = tmp_path_factory.mktemp("mistakes")
    config = TrainConfig.from_dict(dict(spec=SMALL, dataset="digits", epochs=3, lr=3e-3, device="cpu",
                                        insight=False, name="digits-run"))
    run_id, result = run_training(config, root / "runs", root / "data")
    assert result.status == "finished", result.message
    return root, run_id


def test_metrics_hold_each_class_accuracy_beside_the_total(digits_run):
    root, run_id = digits_run
    run = RunStore(root / "runs").get(run_id)
    counts = np.bincount(load_dataset("digits").val_y.numpy(), minlength=10)
    for row in run.metrics:
        per_class = row["val_class_acc"]
        assert len(per_class) == 10 and all(0.0 <= acc <= 1.0 for acc in per_class)
        # the images each class got right add up to the total accuracy
        assert sum(acc * n for acc, n in zip(per_class, counts)) / counts.sum() == pytest.approx(row["val_acc"])
    assert len(set(run.metrics[-1]["val_class_acc"])) > 1  # classes are learned at different speeds


def test_a_confusion_cell_lists_its_images_surest_first(digits_run):
    root, run_id = digits_run
    listing = mistakes(run_id, top=500, runs_dir=root / "runs", data_dir=root / "data")
    model, _, stats = load_run_model(root / "runs" / run_id)
    ds = load_dataset("digits")
    probs = predict_probs(model, stats, ds.val_x)
    wrong = np.flatnonzero(probs.argmax(1) != ds.val_y.numpy())
    assert sorted(row["id"] for row in listing.rows) == wrong.tolist()
    true, pred = listing.rows[0]["given"], listing.rows[0]["predicted"]  # the surest mistake's cell

    cell = mistakes(run_id, pair=f"{true},{pred}", top=500, runs_dir=root / "runs", data_dir=root / "data")
    expected = [i for i in wrong if ds.val_y[i] == int(true) and probs[i].argmax() == int(pred)]
    assert sorted(row["id"] for row in cell.rows) == expected
    confidence = [row["confidence"] for row in cell.rows]
    assert confidence == sorted(confidence, reverse=True)
    for row in cell.rows:
        assert list(row) == list(COLUMNS) and row["split"] == "val" and row["path"] == ""
        assert row["confidence"] == pytest.approx(probs[row["id"]].max(), abs=1e-4)
        assert row["label_issue_score"] == pytest.approx(1 - probs[row["id"], int(true)], abs=1e-4)


def test_bad_pairs_are_refused_naming_the_classes(digits_run):
    root, run_id = digits_run
    with pytest.raises(InsightError, match="unknown class 'unicorn'; use one of: 0, 1"):
        mistakes(run_id, pair="unicorn,3", runs_dir=root / "runs", data_dir=root / "data")
    with pytest.raises(InsightError, match="pair must be two classes TRUE,PRED"):
        mistakes(run_id, pair="3", runs_dir=root / "runs", data_dir=root / "data")


def _write_folder(root: Path, per_class: int = 6) -> Path:
    """A folder data set of two classes of tiny PNGs, train/ and test/."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{name}{i}.png")
    return root


def _fingerprint(root: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_corrections_sit_beside_a_folder_and_never_touch_its_images(tmp_path):
    folder = _write_folder(tmp_path / "pets")
    before = _fingerprint(folder)
    base = load_dataset(f"folder:{folder}", tmp_path)
    cat2 = base.train_files.index("train/cat/cat2.png")
    dog0 = base.train_files.index("train/dog/dog0.png")
    version = write_corrections(base, [Change("train", cat2, "drop"), Change("train", dog0, "relabel", "cat")],
                                tmp_path)
    assert list(corrections_dir(base.name, tmp_path).glob("*.json")) == [tmp_path / ".pets.lab-corrections" /
                                                                     f"{version}.json"]
    assert _fingerprint(folder) == before

    fixed = load_dataset(f"folder:{folder}@fixes:{version}", tmp_path)
    assert split_name(fixed.name) == (f"folder:{folder.resolve()}", version)
    assert "train/cat/cat2.png" not in fixed.train_files and len(fixed.train_y) == len(base.train_y) - 1
    assert fixed.classes[fixed.train_y[fixed.train_files.index("train/dog/dog0.png")]] == "cat"
    assert torch.equal(fixed.val_x, base.val_x) and torch.equal(fixed.val_y, base.val_y)

    # An image added to the folder since shifts the ids; the corrections still find their files.
    grown = Dataset(base.name, base.classes, torch.cat([base.train_x[:1], base.train_x]),
                    torch.cat([base.train_y[:1], base.train_y]), base.val_x, base.val_y,
                    train_files=("train/cat/cat00.png", *base.train_files), val_files=base.val_files)
    regrown = apply_corrections(grown, read_corrections(grown, version, tmp_path)).dataset
    assert "train/cat/cat2.png" not in regrown.train_files and "train/cat/cat00.png" in regrown.train_files
    assert regrown.classes[regrown.train_y[regrown.train_files.index("train/dog/dog0.png")]] == "cat"


def test_built_in_corrections_go_under_the_data_dir_and_name_a_stable_version(tmp_path):
    base = load_dataset("digits")
    changes = [Change("val", 3, "drop"), Change("train", 0, "relabel", "7")]
    version = write_corrections(base, changes, tmp_path)
    assert (tmp_path / "corrections" / "digits" / f"{version}.json").is_file()
    assert write_corrections(base, changes[::-1], tmp_path) == version  # same marks, same version
    fixed = load_dataset(f"digits@fixes:{version}", tmp_path)
    assert len(fixed.val_y) == len(base.val_y) - 1 and int(fixed.train_y[0]) == 7
    assert int(base.train_y[0]) != 7  # the shared, cached data set is left as it was


@pytest.mark.parametrize("change,fragment", [
    (Change("train", 10**6, "drop"), "image train:1000000 does not exist: digits's train split has ids 0 to"),
    (Change("val", -1, "drop"), "image val:-1 does not exist"),
    (Change("test", 1, "drop"), "split must be one of train, val"),
    (Change("train", 1, "relabel", "unicorn"), "unknown class 'unicorn' for train:1; use one of: 0, 1, 2"),
    (Change("train", 1, "burn"), "unknown correction 'burn'; use one of: drop, relabel"),
])
def test_bad_marks_are_refused_before_anything_is_written(tmp_path, change, fragment):
    with pytest.raises(DatasetError, match=fragment.replace("(", r"\(")):
        write_corrections(load_dataset("digits"), [change], tmp_path)
    assert not (tmp_path / "corrections").exists()


def test_a_missing_version_says_where_corrections_come_from(tmp_path):
    with pytest.raises(DatasetError, match="corrections 0123456789ab of digits not found"):
        load_dataset("digits@fixes:0123456789ab", tmp_path)


def test_cli_lists_marks_and_retrains_grouped_with_the_original(digits_run, tmp_path):
    root, run_id = digits_run
    runs = tmp_path / "runs"
    import shutil

    shutil.copytree(root / "runs" / run_id, runs / run_id)  # this test adds a run and a sweep record
    listed = lab("mistakes", run_id, "--top", "3", "--format", "json", runs_dir=runs, data_dir=tmp_path / "data")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert len(rows) == 3 and "validation images predicted wrong" in listed.stderr

    for args, fragment in [(("--drop", "val:100000"), "image val:100000 does not exist"),
                           (("--relabel", "3=unicorn"), "unknown class 'unicorn' for val:3"),
                           (("--drop", "twelve"), "cannot read 'twelve' as an image to drop"),
                           (("--pair", "3,eleven"), "unknown class 'eleven'"),
                           (("--retrain",), "--retrain needs corrections")]:
        out = lab("mistakes", run_id, *args, runs_dir=runs, data_dir=tmp_path / "data")
        assert out.returncode == 2 and fragment in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert not (tmp_path / "data" / "corrections").exists()

    out = lab("mistakes", run_id, "--top", "3", "--format", "csv", "--drop-suggested", "--retrain", runs_dir=runs,
              data_dir=tmp_path / "data")
    assert out.returncode == 0, out.stderr
    store = RunStore(runs)
    (fixed,) = [run for run in store.list() if run.id != run_id]
    original = store.get(run_id)
    assert split_name(fixed.config["dataset"])[0] == "digits" and fixed.name == "digits-run-fixed"
    assert fixed.config["sweep"]["id"] == original.config["sweep"]["id"]
    assert (original.config["sweep"]["index"], fixed.config["sweep"]["index"]) == (1, 2)
    fixed_data = load_dataset(fixed.config["dataset"], tmp_path / "data")
    assert len(fixed_data.val_y) == len(load_dataset("digits").val_y) - 3
    assert f"before: {original.best_val_acc:.4f}" in out.stdout

    # The corrected run's settings and code export as any run's do.
    from lab.export.files import export_run
    from lab.train.engine import TrainConfig

    settings = json.loads(export_run(fixed, "config", "best", tmp_path / "data"))
    assert TrainConfig.from_dict(settings).dataset == fixed.config["dataset"]
    code = export_run(fixed, "code", "best", tmp_path / "data").decode()
    assert f"with the lab's corrections {split_name(fixed.config['dataset'])[1]}" in code
    compile(code, "exported.py", "exec")
