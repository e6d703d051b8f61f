"""The epochs where a run's best validation accuracy improved: the frames the CIFAR write-up drew.

    improving_epochs([{"epoch": 1, "val_acc": .5}, {"epoch": 2, "val_acc": .4}, {"epoch": 3, "val_acc": .6}])  # [1, 3]
    best_epochs_only([0, 1, 2, 3], [1, 3])  # [0, 1, 3]

The write-up redrew its t-SNE "each time the best accuracy improved", the moment a
checkpoint callback would save the model. A tie is not an improvement, as
:func:`lab.train.engine.best_row` keeps the first of equal epochs for ``best.pt``: the
last improving epoch is then the best epoch. Pure functions of metrics.jsonl rows.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence

UNTRAINED = 0  # the probe's epoch before any training: no validation accuracy, never an improvement


def val_accuracies(metrics: Iterable[dict]) -> dict[int, float]:
    """Each finished epoch's validation accuracy by epoch; rows without a usable number are left out
    (a metrics file is read as it is, and may come from an older lab or another hand)."""
    found = {}
    for row in metrics:
        epoch, acc = row.get("epoch"), row.get("val_acc")
        if type(epoch) is int and isinstance(acc, (int, float)) and not isinstance(acc, bool) and math.isfinite(acc):
            found[epoch] = float(acc)
    return found


def improving_epochs(metrics: Iterable[dict]) -> list[int]:
    """Epochs, ascending, whose validation accuracy beat every earlier epoch's (ties do not)."""
    improving, best = [], -math.inf
    for epoch, acc in sorted(val_accuracies(metrics).items()):
        if epoch > UNTRAINED and acc > best:
            improving.append(epoch)
            best = acc
    return improving


def best_epochs_only(epochs: Sequence[int], improving: Collection[int]) -> list[int]:
    """``epochs`` reduced to the untrained one and the improving ones: an animation that ends on the
    best epoch (once its frame is there), as the write-up's did."""
    return [e for e in epochs if e == UNTRAINED or e in improving]
