"""A run's model on the whole validation split: what it confuses, and its surest mistakes.

The probe (:mod:`lab.insight.probe`) follows a sample epoch by epoch; this module
answers for one checkpoint and every val image, which is what a confusion matrix
and a gallery of mistakes need. One inference pass, in eval mode, under
``torch.inference_mode``; numbers come back as numpy arrays for tables and plots.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lab.insight.answers import ClassAnswers
from lab.insight.load import InputStats
from lab.model.budget import model_batch
from lab.model.spec import eval_mode

BATCH = 256  # images per forward pass: small enough for a CPU's cache, large enough for a GPU


def predict_probs(model: nn.Module, stats: InputStats, images: torch.Tensor, batch: int = BATCH) -> np.ndarray:
    """Softmax probabilities (N, classes) float32 for uint8 images (N, C, H, W) in the run's input shape."""
    device = next(model.parameters()).device
    batch = model_batch(model, batch)
    out = []
    with torch.inference_mode(), eval_mode(model):
        for start in range(0, len(images), batch):
            x = stats.normalize(images[start:start + batch].to(device))
            out.append(model(x).float().softmax(1).cpu())
    if not out:
        return np.zeros((0, len(stats.classes)), np.float32)
    return torch.cat(out).numpy()


@dataclass
class Evaluation(ClassAnswers):
    """Every val image's label and class probabilities at one checkpoint (``preds`` and ``confidence``
    from ``probs``)."""

    labels: np.ndarray  # int64 (N,)
    probs: np.ndarray  # float32 (N, classes)


def evaluate(model: nn.Module, stats: InputStats, images: torch.Tensor, labels: torch.Tensor) -> Evaluation:
    """The model's answers on labelled uint8 images (a dataset's ``val_x``, ``val_y``)."""
    return Evaluation(np.asarray(labels, dtype=np.int64), predict_probs(model, stats, images))


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """(classes, classes) int64 counts: row = true class, column = predicted class."""
    labels, preds = np.asarray(labels, dtype=np.int64), np.asarray(preds, dtype=np.int64)
    return np.bincount(labels * num_classes + preds, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def confident_mistakes(evaluation: Evaluation, count: int) -> np.ndarray:
    """Indices of up to ``count`` wrongly classified images, the most confident first:
    the mistakes the model is surest of are the ones worth looking at."""
    wrong = np.flatnonzero(evaluation.preds != evaluation.labels)
    order = np.argsort(-evaluation.confidence[wrong], kind="stable")
    return wrong[order[:count]]
