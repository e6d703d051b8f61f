"""Confident learning: its steps against hand-computed numbers, and the issue's test on shapes with 5% of
its training labels flipped (the top 5% of the ranking hold most of them; dropping them does not hurt)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from lab.insight import label_issues as cl

# Six images, two classes; image 2 is labelled 0 but looks like a 1, image 5 the other way round.
LABELS = np.array([0, 0, 0, 1, 1, 1])
PROBS = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8], [0.3, 0.7], [0.9, 0.1]])


def test_thresholds_are_each_class_mean_self_confidence():
    assert cl.per_class_thresholds(PROBS, LABELS) == pytest.approx([0.6, (0.8 + 0.7 + 0.1) / 3])
    assert cl.self_confidence(PROBS, LABELS).tolist() == [0.9, 0.8, 0.1, 0.8, 0.7, 0.1]


def test_confident_joint_counts_given_against_confident_class():
    assert cl.confident_joint(PROBS, LABELS).tolist() == [[2, 1], [1, 2]]


def test_confident_joint_is_calibrated_to_the_class_counts():
    labels = np.array([0, 0, 0, 0, 1, 1])
    # thresholds 0.6 and 0.8: image 2 and image 5 are confident in no class and are left out of the counts
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.55, 0.45], [0.15, 0.85], [0.1, 0.9], [0.3, 0.7]])
    # raw rows [2, 1] and [0, 1], scaled to 4 and 2 images: [2.67, 1.33] -> [3, 1] and [0, 2]
    assert cl.confident_joint(probs, labels).tolist() == [[3, 1], [0, 2]]


def test_the_mislabelled_images_are_found_and_ranked_least_self_confident_first():
    assert cl.find_label_issues(PROBS, LABELS).tolist() == [False, False, True, False, False, True]
    probs = PROBS.copy()
    probs[5] = [0.95, 0.05]  # surer that image 5 is a 0: it moves to the front
    assert cl.rank_label_issues(probs, LABELS).tolist() == [5, 2]
    assert cl.suggested_labels(probs, LABELS)[[2, 5]].tolist() == [1, 0]


def test_an_image_the_model_agrees_with_is_never_a_suspect():
    probs = PROBS.copy()
    probs[2] = [0.55, 0.45]  # image 2's given class is now the model's prediction
    assert not cl.find_label_issues(probs, LABELS)[2]


def test_folds_deal_every_class_evenly():
    labels = np.repeat(np.arange(3), [8, 5, 7])
    folds = cl.stratified_folds(labels, 4, seed=1)
    assert np.bincount(folds).tolist() == [5, 5, 5, 5]
    for c, size in enumerate([8, 5, 7]):
        counts = np.bincount(folds[labels == c], minlength=4)
        assert counts.max() - counts.min() <= 1 and counts.sum() == size


FLIPPED_SHARE = 0.05
PER_CLASS = 500  # training images per class: 4,000 in all, 200 flipped


def _flipped_shapes_folder(root: Path) -> tuple[Path, set[str]]:
    """shapes written as a folder data set (train/ and test/), 5% of the training images filed under a
    random wrong class; returns the folder and the flipped files (relative paths)."""
    from PIL import Image

    from lab.data import shapes

    ds = shapes.load(seed=0, train_per_class=PER_CLASS, val_per_class=200)
    rng = np.random.default_rng(7)
    labels = ds.train_y.numpy().copy()
    flipped = rng.choice(len(labels), round(FLIPPED_SHARE * len(labels)), replace=False)
    labels[flipped] = (labels[flipped] + rng.integers(1, len(ds.classes), len(flipped))) % len(ds.classes)
    names, chosen = set(), set(flipped.tolist())
    for split, images, split_labels in (("train", ds.train_x, labels), ("test", ds.val_x, ds.val_y.numpy())):
        for i, (image, label) in enumerate(zip(images.numpy(), split_labels)):
            folder = root / split / ds.classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"{i:05d}.png")
            if split == "train" and i in chosen:
                names.add(f"train/{ds.classes[label]}/{i:05d}.png")
    return root, names


def _fingerprint(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(f"{path.relative_to(root)} {path.stat().st_mtime_ns} ".encode() + path.read_bytes())
    return digest.hexdigest()


def test_flipped_shapes_labels_are_found_and_dropping_them_retrains_no_worse(tmp_path, monkeypatch):
    """The issue's figure: gap_cam, 8 epochs (cosine) at 24 px, 4-fold; the top 5% of the ranking must hold
    70% of the flipped images. Measured on 2 CPU cores (about 45 s): 168 of 200 flipped images (84%) in the
    top 200, best validation accuracy 0.953 before and 0.965 after dropping them; with two other draws of
    the flipped images 85% and 82%, 0.952 -> 0.969 and 0.956 -> 0.966."""
    from lab.cli import run_training
    from lab.data import load_dataset
    from lab.insight import mistakes
    from lab.model.presets import get_preset
    from lab.runs.store import RunStore
    from lab.train.engine import TrainConfig

    folder, flipped = _flipped_shapes_folder(tmp_path / "flipped-shapes")
    before_files = _fingerprint(folder)
    runs, data = tmp_path / "runs", tmp_path / "data"
    config = TrainConfig.from_dict(dict(spec=get_preset("gap_cam"), dataset=f"folder:{folder}", epochs=8,
                                        image_size=24, lr=3e-3, schedule="cosine", batch_size=64, device="cpu",
                                        insight=False, seed=0))
    run_id, result = run_training(config, runs, data)
    assert result.status == "finished", result.message

    top = len(flipped)  # 5% of the training images
    listing = mistakes.label_issues(run_id, top=top, folds=4, max_epochs=8, runs_dir=runs, data_dir=data,
                                    device="cpu")
    found = {row["path"] for row in listing.rows} & flipped
    print(f"\nlabel issues: {len(found)} of {len(flipped)} flipped images in the top {top} ({listing.note})")
    assert len(found) >= 0.7 * len(flipped)
    assert all(row["split"] == "train" and row["given"] != row["predicted"] for row in listing.rows)
    scores = [row["label_issue_score"] for row in listing.rows]
    assert scores == sorted(scores, reverse=True)

    # Asked again (one cell of it), the k-fold probabilities come from the run folder: no training.
    monkeypatch.setattr(mistakes, "cross_val_probs", lambda *a, **k: pytest.fail("retrained the folds"))
    cell = mistakes.label_issues(run_id, pair="circle,ring", top=top, folds=4, max_epochs=8, runs_dir=runs,
                                 data_dir=data)
    assert all((row["given"], row["predicted"]) == ("circle", "ring") for row in cell.rows)

    store = RunStore(runs)
    dataset, count = mistakes.write_fixes(store.get(run_id), mistakes.suggested_changes(listing.rows, "drop"), data)
    retrain = mistakes.retrain_config(store, store.get(run_id), dataset)
    assert "sweep" not in store.get(run_id).config or not store.get(run_id).config["sweep"]  # not before it is queued
    retrain.group(store, store.get(run_id))
    fixed_id, fixed = run_training(retrain.config, runs, data)
    assert fixed.status == "finished", fixed.message
    before, after = result.best["val_acc"], fixed.best["val_acc"]
    print(f"best validation accuracy {before:.3f} before, {after:.3f} after dropping {count} suspects")
    assert after >= before  # a gain of 1-1.7 points was measured; one run's noise is about half a point

    assert _fingerprint(folder) == before_files  # the user's images are untouched
    assert len(load_dataset(dataset, data).train_y) == len(load_dataset(f"folder:{folder}", data).train_y) - top
    original = store.get(run_id)
    assert original.config["sweep"]["id"] == store.get(fixed_id).config["sweep"]["id"]
