"""Suspected label errors by confident learning (Northcutt, Jiang and Chuang, JAIR 2021), as cleanlab does it.

The method needs, for every image, class probabilities from a model that did not train on that image
(out of sample). :func:`cross_val_probs` gets them by k-fold training: the run's own settings trained on
k-1 folds, asked about the fold it never saw. Then plain functions over probabilities and labels
(cleanlab ``count.py`` and ``filter.py``):

1. per-class thresholds: the mean probability the model gives class j on the images labelled j;
2. the confident joint: images counted by (given label, the class they are confidently in), an image
   being confidently in class j when its probability of j reaches j's threshold (the likeliest such
   class when several do); then calibrated so each row sums to that class's image count;
3. "prune by noise rate": for given class i and each other class j, the calibrated count of (i, j)
   images with the largest margin p(j) - p(i) are suspects (at least one image of each class is kept,
   and an image whose given label is the model's own prediction never is);
4. the suspects ranked by self-confidence, the probability of the given label, lowest first.

No cleanlab dependency: the four steps are short, and reading them is the lesson.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch

from lab.data.dataset import Dataset
from lab.insight.errors import InsightError
from lab.insight.load import InputStats
from lab.insight.validation import predict_probs

METHOD = "confident learning: prune by noise rate, ranked by self-confidence (lowest first)"


def self_confidence(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N,) the probability each image's given label gets: cleanlab's label quality score."""
    return probs[np.arange(len(labels)), labels]


def per_class_thresholds(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(K,) mean self-confidence of the images given each class (1.0 for a class no image has: never reached)."""
    classes = probs.shape[1]
    sums = np.bincount(labels, weights=self_confidence(probs, labels), minlength=classes)
    counts = np.bincount(labels, minlength=classes)
    return np.where(counts > 0, sums / np.maximum(counts, 1), 1.0)


def confident_joint(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(K, K) counts, row = given label, column = the class an image confidently belongs to, calibrated:
    each row sums to its class's image count (rounded keeping row totals). Images confident in no class
    are left out before calibrating."""
    classes = probs.shape[1]
    confident = probs >= per_class_thresholds(probs, labels) - 1e-6  # cleanlab's tolerance for float ties
    guess = np.where(confident, probs, -1.0).argmax(1)
    counted = confident.any(1)
    joint = np.bincount(labels[counted] * classes + guess[counted], minlength=classes ** 2).reshape(classes, classes)
    counts = np.bincount(labels, minlength=classes)
    rows = joint.sum(1, keepdims=True)
    calibrated = np.where(rows > 0, joint * (counts[:, None] / np.maximum(rows, 1)), 0.0)
    return _round_keeping_row_sums(calibrated)


def _round_keeping_row_sums(matrix: np.ndarray) -> np.ndarray:
    """Whole numbers whose rows keep their (rounded) sums: largest remainders round up."""
    floor = np.floor(matrix).astype(np.int64)
    short = np.rint(matrix.sum(1)).astype(np.int64) - floor.sum(1)
    order = np.argsort(-(matrix - floor), axis=1, kind="stable")
    for row, missing in enumerate(short):
        floor[row, order[row, :max(0, missing)]] += 1
    return floor


def find_label_issues(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Boolean (N,) mask of suspected label errors: prune by noise rate over the confident joint."""
    labels = np.asarray(labels, dtype=np.int64)
    joint = confident_joint(probs, labels)
    preds = probs.argmax(1)
    suspects = np.zeros(len(labels), dtype=bool)
    for given in range(probs.shape[1]):
        members = np.flatnonzero(labels == given)
        budget = len(members) - 1  # keep at least one image of every class
        for other in np.argsort(-joint[given], kind="stable"):
            count = min(int(joint[given, other]), budget)
            if other == given or count <= 0:
                continue
            margin = probs[members, other] - probs[members, given]
            suspects[members[np.argsort(-margin, kind="stable")[:count]]] = True
            budget -= count
    suspects[preds == labels] = False
    return suspects


def rank_label_issues(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Indices of the suspected label errors, the least self-confident first."""
    labels = np.asarray(labels, dtype=np.int64)
    suspects = np.flatnonzero(find_label_issues(probs, labels))
    return suspects[np.argsort(self_confidence(probs, labels)[suspects], kind="stable")]


def suggested_labels(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N,) the likeliest class other than the given one: what a suspect should perhaps be relabelled as."""
    others = probs.copy()
    others[np.arange(len(labels)), labels] = -1.0
    return others.argmax(1)


def stratified_folds(labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """(N,) fold number of each image: every class dealt round the folds in a seeded random order."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        fold[members] = (np.arange(len(members)) + offset) % folds
        offset += len(members)  # the next class starts where this one stopped: folds stay the same size
    return fold


def cross_val_probs(config, images: torch.Tensor, labels: torch.Tensor, classes: list[str], folds: int,
                    source=None, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """(N, K) out-of-sample probabilities: ``config`` (a TrainConfig) trained on all folds but one, then
    asked about that one, for each of ``folds`` folds. The config's own epochs, augmentation and
    optimiser are kept; ``train_limit`` does not apply (``images`` are the ones to score).

    ``source`` is the weights of the config's ``init_from``; ``progress(fold, folds)`` is told as each starts.
    """
    from lab.train.engine import Trainer

    counts = np.bincount(labels.numpy(), minlength=len(classes))
    if folds < 2 or counts[counts > 0].min() < folds:
        raise InsightError(f"{folds}-fold training needs at least {folds} images of every class (the smallest "
                           f"class here has {counts[counts > 0].min()}) and at least 2 folds: use fewer folds")
    fold_of = stratified_folds(labels.numpy(), folds, config.seed)
    probs = np.zeros((len(labels), len(classes)), np.float32)
    fold_config = dataclasses.replace(config, train_limit=0, insight=False, name="", sweep={})
    for fold in range(folds):
        if progress:
            progress(fold, folds)
        held = torch.from_numpy(np.flatnonzero(fold_of == fold))
        kept = torch.from_numpy(np.flatnonzero(fold_of != fold))
        data = Dataset(f"fold {fold + 1} of {folds}", classes, images[kept], labels[kept], images[held], labels[held])
        trainer = Trainer(fold_config, dataset=data, source=source)
        result = trainer.run()
        if result.status != "finished":
            raise InsightError(f"fold {fold + 1} of {folds} did not train ({result.status}: {result.message}); "
                               "label issues need the run's settings to train")
        stats = InputStats(data.shape, *data.channel_stats(), classes)
        probs[held.numpy()] = predict_probs(trainer.model, stats, images[held])
    return probs
