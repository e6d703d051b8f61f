"""From a confusion cell to fixed data: what ``python -m lab mistakes`` does, as plain functions.

    mistakes        validation images the run's best checkpoint got wrong (or one confusion cell,
                    ``pair``), the surest first
    label_issues    training images whose label is suspect, by confident learning (lab.insight.label_issues)
                    on out-of-sample probabilities from k-fold training; cached in the run folder
    write_fixes     marks (drop, relabel as X) as a new corrections version of the run's data set
                    (lab.data.corrections): the images themselves are never touched
    retrain_config  the run's own settings on the corrected data, in one sweep record with the original,
                    so Compare shows before and after

Every row names its image by ``id`` (index in the base data set's ``split``, what a correction names)
and ``path`` (its file, for folder data sets; '' for built-in ones). ``label_issue_score`` is one minus
the probability the given label gets from a model that never trained on the image: the run's own for
validation images, a k-fold model's for training images.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from lab.data import load_dataset
from lab.data.corrections import Change, Corrected, corrected, corrected_name, read_corrections, split_name
from lab.data.corrections import write_corrections as write_version
from lab.data.dataset import classes_in_turn
from lab.durable import atomic_write
from lab.insight.errors import InsightError
from lab.insight.label_issues import METHOD, cross_val_probs, rank_label_issues, suggested_labels
from lab.insight.load import class_index, load_run_model
from lab.insight.validation import evaluate
from lab.runs.store import RunStore, open_run
from lab.runs.sweep import plan_sweep, shortened, sweep_of
from lab.runs.view import RunInfo
from lab.train.engine import MAX_NAME, TrainConfig

COLUMNS = ("id", "split", "path", "given", "predicted", "confidence", "label_issue_score")
DEFAULT_TOP = 20
DEFAULT_FOLDS = 4
# k-fold training costs (k - 1) runs' worth of images: these caps keep it to a minute or two on a CPU for
# shapes with a small model. A run that trained on more scores only this many of its images (every class
# in turn), for at most this many epochs; the note says so.
MAX_IMAGES = 6000
MAX_EPOCHS = 5


@dataclass
class Listing:
    """Rows of images (``COLUMNS``), best first, and a line saying what they are and how they were found."""

    rows: list[dict]
    note: str


def run_config(run: RunInfo) -> TrainConfig:
    """The run's settings as a TrainConfig (config.json without the facts resolved when it ran)."""
    return TrainConfig.from_dict({k: v for k, v in run.config.items() if k != "resolved"})


def run_data(run: RunInfo, data_dir=None) -> Corrected:
    """The run's data set as it trained on it (its corrections applied), with each image's id in the base
    data set; InsightError when the data set's classes are no longer the run's."""
    base, version = split_name(run.config.get("dataset", ""))
    ds = load_dataset(base, data_dir, image_size=run.config.get("image_size", 0))
    data = corrected(ds, version, data_dir)
    if data.dataset.classes != run.classes:
        raise InsightError(f"run {run.id} trained on the classes {run.classes}, but its data set now has "
                           f"{data.dataset.classes}: its images cannot be matched to its answers")
    return data


def parse_pair(text: str, classes: list[str]) -> tuple[int, int]:
    """'TRUE,PRED' (class names or numbers) -> (true, predicted) indices; InsightError saying what to give."""
    parts = [part.strip() for part in str(text).split(",")]
    if len(parts) != 2 or not all(parts):
        raise InsightError(f"pair must be two classes TRUE,PRED such as {classes[0]},{classes[-1]}; got {text!r}")
    return class_index(classes, parts[0]), class_index(classes, parts[1])


def _rows(data: Corrected, split: str, positions: np.ndarray, given: np.ndarray, predicted: np.ndarray,
          probs: np.ndarray) -> list[dict]:
    """One row per image at ``positions`` in the run's data set's ``split``; the other arrays hold one
    entry per row (``probs`` a row of class probabilities)."""
    ds = data.dataset
    ids = data.train_ids if split == "train" else data.val_ids
    files = ds.train_files if split == "train" else ds.val_files
    return [{"id": int(ids[position]), "split": split, "path": files[position] if files is not None else "",
             "given": ds.classes[label], "predicted": ds.classes[pred], "confidence": round(float(p[pred]), 4),
             "label_issue_score": round(1.0 - float(p[label]), 4)}
            for position, label, pred, p in zip(positions.tolist(), given.tolist(), predicted.tolist(), probs)]


def mistakes(run_ref: str, pair: str | None = None, top: int = DEFAULT_TOP, checkpoint: str = "best",
             runs_dir=None, data_dir=None, device: str = "cpu") -> Listing:
    """Validation images the run got wrong at ``checkpoint`` (or those of one confusion cell ``pair``,
    'TRUE,PRED'), sorted by the model's confidence in its prediction, the surest first."""
    store, run_id = open_run(run_ref, runs_dir)
    run = store.get(run_id)
    model, _, stats = load_run_model(run.path, checkpoint, device=device, data_dir=data_dir)
    wanted = parse_pair(pair, stats.classes) if pair else None  # refused before any image is read
    data = run_data(run, data_dir)
    answers = evaluate(model, stats, data.dataset.val_x, data.dataset.val_y)
    labels, preds, confidence = answers.labels, answers.preds, answers.confidence
    chosen = (labels == wanted[0]) & (preds == wanted[1]) if wanted else labels != preds
    found = np.flatnonzero(chosen)
    order = found[np.argsort(-confidence[found], kind="stable")][:top]
    what = (f"true {stats.classes[wanted[0]]}, predicted {stats.classes[wanted[1]]}" if wanted
            else "predicted wrong")
    note = (f"{len(found):,} of {len(labels):,} validation images {what} at checkpoint {checkpoint}; "
            f"{len(order):,} shown, the surest first")
    return Listing(_rows(data, "val", order, labels[order], preds[order], answers.probs[order]), note)


@dataclass
class History:
    """What a run predicted for some validation images at each epoch it recorded (lab.insight.probe's
    ``val_preds``): which epochs got an image right, which wrong, and when it was first learned."""

    epochs: list[int]  # ascending; 0 = the untrained network
    labels: np.ndarray  # int64 (N,): the images' true classes
    preds: np.ndarray  # int64 (len(epochs), N)

    def right(self) -> np.ndarray:
        """bool (len(epochs), N): right at that epoch."""
        return self.preds == self.labels


def prediction_history(run: RunInfo, positions) -> History | None:
    """The predictions at every recorded epoch of the val images at ``positions`` (indices into the run's
    val split, as ``mistakes`` rows give them when the run trained on uncorrected data); None for a run
    recorded before issue 19 or with insight off."""
    layout, wanted = run.layout, np.asarray(positions, dtype=np.int64)
    epochs = layout.val_pred_epochs()
    try:
        labels = np.load(layout.val_labels, allow_pickle=False).astype(np.int64)[wanted]
        preds = np.stack([np.load(layout.val_preds(e), allow_pickle=False)[wanted] for e in epochs]).astype(np.int64)
    except (OSError, ValueError, IndexError):
        return None
    return History(epochs, labels, preds) if epochs else None


@dataclass
class Scores:
    """Out-of-sample probabilities of some of a run's training images, and how they were made."""

    positions: np.ndarray  # int64: positions in the run's (corrected) training split
    labels: np.ndarray  # int64: their given labels
    probs: np.ndarray  # float32 (N, classes)
    settings: dict  # dataset, folds, images, epochs: what the cache is checked against


def scoring_settings(run: RunInfo, data: Corrected, folds: int = DEFAULT_FOLDS, max_images: int = MAX_IMAGES,
                     max_epochs: int = MAX_EPOCHS) -> dict:
    """Which training images :func:`label_issue_scores` scores and how (the run's own, train_limit's, at most
    ``max_images``, for at most ``max_epochs``): what its cache is checked against, and what a page weighs
    before it trains."""
    config = run_config(run)
    run_images = min(config.train_limit or len(data.dataset.train_y), len(data.dataset.train_y))
    return {"dataset": run.config.get("dataset", ""), "folds": folds, "images": min(run_images, max_images),
            "run_images": run_images, "epochs": min(config.epochs, max_epochs), "run_epochs": config.epochs,
            "seed": config.seed}


def _read_scores(path, settings: dict) -> Scores | None:
    """The cached scores when they were made with ``settings``; None otherwise (or unreadable)."""
    try:
        with np.load(path) as saved:
            if json.loads(str(saved["settings"])) != settings:
                return None
            return Scores(saved["positions"], saved["labels"], saved["probs"], settings)
    except (OSError, KeyError, ValueError):
        return None


def _same_images(scores: Scores, train_y: torch.Tensor) -> bool:
    """Whether the scored images still have their labels: a folder that changed since is scored again."""
    positions = torch.from_numpy(scores.positions)
    return bool(len(positions) == 0 or (positions.max() < len(train_y)
                                        and np.array_equal(train_y[positions].numpy(), scores.labels)))


def cached_scores(run: RunInfo, data: Corrected, settings: dict) -> Scores | None:
    """The scores saved in the run folder with ``settings`` while its images keep their labels; None otherwise."""
    cached = _read_scores(run.layout.label_issues, settings)
    return cached if cached is not None and _same_images(cached, data.dataset.train_y) else None


def _save_scores(path, scores: Scores) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, positions=scores.positions, labels=scores.labels, probs=scores.probs,
             settings=np.array(json.dumps(scores.settings, sort_keys=True)))
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


def label_issue_scores(store: RunStore, run: RunInfo, data: Corrected, folds: int = DEFAULT_FOLDS,
                       max_images: int = MAX_IMAGES, max_epochs: int = MAX_EPOCHS, device: str = "auto",
                       progress: Callable[[int, int], None] | None = None) -> Scores:
    """Out-of-sample probabilities of the run's training images by ``folds``-fold training with its own
    settings, from the run folder when they were made with these settings before."""
    config, settings, ds = run_config(run), scoring_settings(run, data, folds, max_images, max_epochs), data.dataset
    cached = cached_scores(run, data, settings)
    if cached is not None:
        return cached
    every = len(ds.train_y)
    positions = classes_in_turn(ds.train_y, settings["images"]) if settings["images"] < every else torch.arange(every)
    fold_config = dataclasses.replace(config, epochs=settings["epochs"], device=device)
    source = store.source_weights(config.init_from) if config.init_from else None
    probs = cross_val_probs(fold_config, ds.train_x[positions], ds.train_y[positions], ds.classes, folds,
                            source, progress)
    scores = Scores(positions.numpy(), ds.train_y[positions].numpy(), probs, settings)
    _save_scores(run.layout.label_issues, scores)
    return scores


def label_issues(run_ref: str, pair: str | None = None, top: int = DEFAULT_TOP, folds: int = DEFAULT_FOLDS,
                 max_images: int = MAX_IMAGES, max_epochs: int = MAX_EPOCHS, runs_dir=None, data_dir=None,
                 device: str = "auto", progress: Callable[[int, int], None] | None = None) -> Listing:
    """Training images whose label confident learning suspects, the least self-confident first (``pair``
    'GIVEN,SUGGESTED' keeps one cell of them); ``predicted`` is the suggested label."""
    store, run_id = open_run(run_ref, runs_dir)
    run = store.get(run_id)
    wanted = parse_pair(pair, run.classes) if pair else None
    data = run_data(run, data_dir)
    scores = label_issue_scores(store, run, data, folds, max_images, max_epochs, device, progress)
    ranked = rank_label_issues(scores.probs, scores.labels)
    suggested = suggested_labels(scores.probs, scores.labels)
    if wanted:
        ranked = ranked[(scores.labels[ranked] == wanted[0]) & (suggested[ranked] == wanted[1])]
    shown = ranked[:top]
    rows = _rows(data, "train", scores.positions[shown], scores.labels[shown], suggested[shown],
                 scores.probs[shown])
    cell = f" given {run.classes[wanted[0]]}, suggested {run.classes[wanted[1]]}" if wanted else ""
    return Listing(rows, f"{len(ranked):,} suspected label errors{cell} among {_scored(scores.settings)}; "
                         f"{METHOD}; {len(shown):,} shown")


def _scored(s: dict) -> str:
    """'4,000 training images (capped from 12,000), 4-fold, 3 epochs per fold (capped from 10)'."""
    images = f"{s['images']:,} training images" + (f" (capped from {s['run_images']:,})"
                                                   if s["images"] < s["run_images"] else "")
    epochs = f"{s['epochs']} epochs per fold" + (f" (capped from {s['run_epochs']})"
                                                 if s["epochs"] < s["run_epochs"] else "")
    return f"{images}, {s['folds']}-fold out-of-sample probabilities, {epochs}"


def parse_marks(text: str, action: str, split: str) -> list[Change]:
    """Marks as the CLI takes them: 'train:12,40' to drop, 'train:12=circle,40=square' to relabel. A bare
    id is in ``split`` (the split listed); InsightError saying what to write when a mark is malformed."""
    changes = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        target, _, label = item.partition("=") if action == "relabel" else (item, "", "")
        where, _, number = target.strip().rpartition(":")
        if not number.strip().isdigit() or (action == "relabel" and not label.strip()):
            example = "train:12=circle,40=square" if action == "relabel" else "train:12,val:3,40"
            raise InsightError(f"cannot read {item!r} as an image to {action}: write ids as the id column shows "
                               f"them, optionally after their split, e.g. {example}")
        changes.append(Change(where.strip() or split, int(number), action, label.strip()))
    return changes


def suggested_changes(rows: list[dict], action: str) -> list[Change]:
    """The listed rows as marks: each dropped, or relabelled as its predicted (suggested) class."""
    return [Change(row["split"], row["id"], action, row["predicted"] if action == "relabel" else "")
            for row in rows]


def write_fixes(run: RunInfo, changes: list[Change], data_dir=None) -> tuple[str, int]:
    """A new corrections version of the run's base data set: the run's own corrections (if it trained on
    some) and ``changes`` on top. Returns (the data set name that trains on it, changes in it)."""
    base, version = split_name(run.config.get("dataset", ""))
    ds = load_dataset(base, data_dir, image_size=run.config.get("image_size", 0))
    merged = (read_corrections(ds, version, data_dir) if version else []) + changes
    written = write_version(ds, merged, data_dir, note=f"marked on run {run.id}")
    return corrected_name(base, written), len(read_corrections(ds, written, data_dir))


@dataclass
class Retrain:
    """A retrain's settings, and the sweep record the original run gains once the retrain is queued."""

    config: TrainConfig
    original_sweep: dict | None  # None: the original is in a sweep already, which the retrain joins

    def group(self, store: RunStore, run: RunInfo) -> None:
        """Give the original its sweep record; called once the retrain was accepted, so a refused one
        (a quota, the exercise) leaves the original as it was."""
        if self.original_sweep is not None:
            store.write_config(run.id, {**run.config, "sweep": self.original_sweep})


def retrain_config(store: RunStore, run: RunInfo, dataset: str) -> Retrain:
    """The run's settings on ``dataset`` (a corrected version), named NAME-fixed and grouped with the
    original in one sweep record, each its own configuration, so Compare shows the two side by side.

    A run outside any sweep gets one (:meth:`Retrain.group` writes it into its config.json; training never
    reads it); a run in a sweep has the new run join it after the sweep's last run."""
    original = run_config(run)
    config = dataclasses.replace(original, dataset=dataset, name=shortened(f"{run.name}-fixed", MAX_NAME))
    record, original_sweep = sweep_of(run), None
    if record.get("id"):
        last = max(sweep_of(other).get("index", 0) for other in store.list() if sweep_of(other).get("id") ==
                   record["id"])
        record = {k: v for k, v in record.items() if k != "repeats"}
        config.sweep = {**record, "index": last + 1, "total": last + 1}
    else:
        (planned,) = plan_sweep(original, {}, shortened(f"{run.name} with fixes", MAX_NAME))
        original_sweep = {**planned.sweep, "total": 2}
        config.sweep = {**planned.sweep, "index": 2, "total": 2}
    config.validate()
    return Retrain(config, original_sweep)