"""The range of every numeric training setting, written once.

``TrainConfig.validate`` refuses a value outside it, and the Train page's number
boxes take their min, max and step from it: the page never offers a value a run
refuses, nor clips a shared draft's value a run accepts (the two had drifted:
weight decay ``< 1`` in one, ``<= 0.99`` in the other). The server's limits
(lab.settings) are the upper bounds where they apply, so the table is made on
each call, as the limits are read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lab import settings
from lab.data.images import LARGEST_SIDE, MIN_SIDE


@dataclass(frozen=True)
class Range:
    """The values one setting takes: ``low`` to ``high`` inclusive, ``low`` itself excluded when
    ``low_open`` (a number box cannot show that: it offers ``low`` and validation names the range).
    Whole-number settings have int bounds, the others float ones."""

    low: int | float
    high: int | float
    step: int | float  # the Train page's +/- increment
    low_open: bool = False

    @property
    def whole(self) -> bool:
        return isinstance(self.low, int)

    def problem(self, name: str, value: Any) -> str:
        """'' when ``value`` is in the range, else what to change, naming the setting and the range."""
        if self.whole:
            if isinstance(value, bool) or not isinstance(value, int) or not self.low <= value <= self.high:
                return f"{name} must be a whole number from {self.low} to {self.high:,}, got {value!r}"
            return ""
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if number and (value > self.low if self.low_open else value >= self.low) and value <= self.high:
            return ""
        return f"{name} must be a number in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}], got {value!r}"


def setting_ranges() -> dict[str, Range]:
    """Every numeric TrainConfig setting's range, with this server's limits as of now."""
    lim = settings.limits()
    return {
        "epochs": Range(1, lim.max_epochs, 1),
        "batch_size": Range(1, lim.max_batch_size, 16),
        "train_limit": Range(0, 10**9, 500),  # 0 = every training image
        "seed": Range(0, 2**31 - 1, 1),
        "probe_size": Range(10, lim.max_probe_size, 100),
        "lr": Range(0.0, 100.0, 1e-4, low_open=True),
        "momentum": Range(0.0, 0.99, 0.01),
        "weight_decay": Range(0.0, 0.99, 1e-4),
        "label_smoothing": Range(0.0, 0.99, 0.05),
        "image_size": Range(0, LARGEST_SIDE, 16),  # 0 = the data set's default; 1..MIN_SIDE-1 refused apart
    }


# The learning rate each optimizer is usually started at, shown beside it on the Train page: the lr box keeps one
# range for all, but Adagrad at Adam's 1e-3 barely moves, since its steps only shrink from there (PyTorch's
# default for it is 1e-2), and plain SGD needs ten to a hundred times Adam's.
TYPICAL_LR = {"adam": 1e-3, "adamw": 1e-3, "sgd": 0.05, "rmsprop": 1e-3, "adagrad": 1e-2}


def image_size_problem(value: Any) -> str:
    """'' for an image size a run takes: 0 (the data set's own) or MIN_SIDE to LARGEST_SIDE; else what to change.
    The table's range has no gap, so the sides too small to decode are refused here, for the run and the page."""
    problem = setting_ranges()["image_size"].problem("image_size", value)
    if problem or not 0 < value < MIN_SIDE:
        return problem
    return f"image_size must be 0 (the data set's own) or from {MIN_SIDE} to {LARGEST_SIDE}, got {value}"
