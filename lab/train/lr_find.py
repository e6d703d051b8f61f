"""The learning-rate finder: the loss over an exponentially rising learning rate, and a rate to start from.

Smith's range test (Cyclical Learning Rates for Training Neural Networks, 2017) as fastai's ``lr_find``
runs it: a few hundred steps with the rate rising from ``start`` to ``end``, the loss smoothed by an
exponential moving average with bias correction, stopped once the smoothed loss is four times its best.
The suggestion follows a named rule (:data:`RULES`): ``steepest``, where the smoothed loss falls fastest
against log lr, or fastai's ``valley``, the middle of the longest descending stretch of the curve.

``steepest`` is the default because it picks the rate a short run from scratch wants, the lab's usual run:
fashion_cnn on digits (Adam, batch 64, 3 epochs at a constant rate), seeds 0 and 1, came within +0.6 and
-0.3 points of the best of five rates from 1e-4 to 1e-1, valley's rate (5x lower) 7.5 and 6.7 points
behind. Over 15 settings and seeds (batch 32-128, 600 images or all 1,438; Adam, SGD and RMSprop, SGD's
grid 1e-3 to 1) steepest was within a point in 13 and at most 1.9 behind, valley within a point in 1.
Valley, fastai's default, stays a choice: the cautious one.

The test trains a throwaway copy of the run: a :class:`~lab.train.engine.Trainer` built from the run's
config (its model, data, augmentation and optimizer), driven through the engine's events by one listener.
Nothing is recorded, the model is dropped, and the global random state is put back, so a finder run
before a training run changes nothing that run does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from lab import settings
from lab.train.device import resolve_device
from lab.train.engine import Callback, ConfigError, TrainConfig, Trainer
from lab.train.finetune import SourceWeights
from lab.train.ranges import setting_ranges

RULES = ("steepest", "valley")  # the first is the default
SMOOTHING = 0.98  # fastai's beta: each step's loss weighs 2% in the moving average
DIVERGED = 4.0  # stop once the smoothed loss is this many times its best so far
MIN_STEPS, MAX_STEPS = 20, 1000  # fewer leaves no curve to read; more is a training run, not a test
# Left out of the suggestion, as fastai does: the first tenth (the average has barely started) and the
# last points (the blow-up that stopped the test).
SKIP_END = 5
MIN_POINTS = 8  # points the rules need between the skipped ends


@dataclass
class LrFindResult:
    """One range test: a point per step, and the suggested rate as an index into ``lrs``."""

    lrs: list[float]
    losses: list[float]  # each step's training loss
    smoothed: list[float]  # the bias-corrected moving average of ``losses`` (what the rules read)
    rule: str  # one of RULES
    suggestion_index: int
    stopped_early: bool  # the loss blew up before the rate reached ``end``

    @property
    def suggestion(self) -> float:
        return self.lrs[self.suggestion_index]

    def rows(self) -> list[dict]:
        """One row per step, for a CSV file."""
        return [{"step": step, "lr": lr, "loss": loss, "smoothed_loss": smoothed}
                for step, (lr, loss, smoothed) in enumerate(zip(self.lrs, self.losses, self.smoothed), 1)]


def lr_find(config: TrainConfig, data_dir=None, start: float = 1e-7, end: float = 10.0, steps: int = 200,
            rule: str = RULES[0], source: SourceWeights | None = None) -> LrFindResult:
    """The range test on ``config``'s model, data, augmentation and optimizer (its lr and schedule are
    replaced by the ramp; ``source`` is the weights of its ``init_from``, as for the Trainer).

    Raises :class:`ConfigError` for settings the test cannot use, and when the loss blows up too soon
    to suggest anything.
    """
    _check_test(start, end, steps, rule)
    finder_config = replace(config, lr=start, epochs=1, schedule="none", insight=False, compile=False, name="",
                            sweep={})  # compiling would cost more than the test itself
    with _kept_random_state(resolve_device(config.device)):
        trainer = Trainer(finder_config, data_dir=data_dir, source=source)
        train_images = trainer.data_images - len(trainer.dataset.val_y)
        per_epoch = max(1, train_images // config.batch_size)  # as the Trainer counts its steps
        finder_config.epochs = min(math.ceil(steps / per_epoch), settings.limits().max_epochs)
        test = RangeTest(np.geomspace(start, end, min(steps, per_epoch * finder_config.epochs)))
        trainer.callbacks = [test]
        trainer.log_interval_s = 0.0  # on_batch_end after every step: the curve needs each step's loss
        outcome = trainer.run()
    if outcome.status == "failed":
        raise ConfigError(outcome.message)
    lrs = test.ramp[:len(test.losses)].tolist()
    return LrFindResult(lrs, test.losses, test.smoothed, rule, suggest(lrs, test.smoothed, rule),
                        stopped_early=len(lrs) < len(test.ramp))


def _check_test(start: float, end: float, steps: int, rule: str) -> None:
    """Refuse, before any training, a test that cannot run, naming what to change."""
    _check_rule(rule)
    if isinstance(steps, bool) or not isinstance(steps, int) or not MIN_STEPS <= steps <= MAX_STEPS:
        raise ConfigError(f"steps must be a whole number from {MIN_STEPS} to {MAX_STEPS}, got {steps!r}")
    highest = setting_ranges()["lr"].high  # the largest rate a run takes
    numbers = all(isinstance(v, (int, float)) and math.isfinite(v) for v in (start, end))
    if not numbers or not 0 < start < end <= highest:
        raise ConfigError(f"the rates must rise from start to end within (0, {highest:g}], "
                          f"got {start!r} to {end!r}")


def _check_rule(rule: str) -> None:
    if rule not in RULES:
        raise ConfigError(f"unknown rule {rule!r}; use one of: {', '.join(RULES)}")


def _kept_random_state(device: torch.device):
    """The global random state of the CPU and of ``device``, put back on exit: the Trainer seeds it."""
    if device.type == "cpu":
        return torch.random.fork_rng(devices=[])
    return torch.random.fork_rng(devices=[device.index or 0], device_type=device.type)


class RangeTest(Callback):
    """Listener that sets each step's rate from ``ramp``, records the loss, and stops the run at the
    ramp's end or when the smoothed loss blows up."""

    def __init__(self, ramp: np.ndarray):
        self.ramp = ramp
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self.smoother = Smoother()

    def on_run_start(self, trainer: Trainer) -> None:
        """The ramp replaces the run's schedule: a LambdaLR as the engine's schedules are, stepped by the
        engine after every optimizer step (the base lr is ``ramp[0]``, the run's lr)."""
        trainer.scheduler = torch.optim.lr_scheduler.LambdaLR(
            trainer.optimizer, lambda step: self.ramp[min(step, len(self.ramp) - 1)] / self.ramp[0])

    def on_batch_end(self, trainer: Trainer, info: dict) -> None:
        best = min(self.smoothed, default=math.inf)
        self.losses.append(info["loss"])
        self.smoothed.append(self.smoother(info["loss"]))
        if len(self.losses) == len(self.ramp) or self.smoothed[-1] > DIVERGED * best:
            trainer.stop()


class Smoother:
    """Exponential moving average with bias correction (as Adam corrects its moments): dividing by
    ``1 - beta**n`` undoes the pull towards the zero the average starts from. Called with each new value."""

    def __init__(self, beta: float = SMOOTHING):
        self.beta, self.average, self.count = beta, 0.0, 0

    def __call__(self, value: float) -> float:
        self.count += 1
        self.average = self.beta * self.average + (1 - self.beta) * value
        return self.average / (1 - self.beta ** self.count)


def smooth(values: list[float], beta: float = SMOOTHING) -> list[float]:
    """The whole curve of :class:`Smoother`."""
    smoother = Smoother(beta)
    return [smoother(value) for value in values]


def suggest(lrs: list[float], smoothed: list[float], rule: str) -> int:
    """Index of the suggested rate by ``rule``, read between the skipped ends of the curve."""
    _check_rule(rule)
    first, last = len(smoothed) // 10, len(smoothed) - SKIP_END
    if last - first < MIN_POINTS:
        raise ConfigError(f"the loss blew up after {len(smoothed)} steps, at lr {lrs[-1]:.3g}, too soon to "
                          "suggest a rate: start lower, or use a smaller batch or a model with batchnorm")
    losses = np.asarray(smoothed[first:last])
    pick = valley(losses) if rule == "valley" else steepest(np.asarray(lrs[first:last]), losses)
    return first + pick


def valley(losses: np.ndarray) -> int:
    """fastai's ``valley``: the middle of the longest descending stretch, the longest decreasing
    subsequence of the loss (each point lower than the one before it in the stretch, bumps allowed
    between). Late enough that the loss falls, early enough to stay clear of the blow-up."""
    lengths = np.ones(len(losses), dtype=int)  # longest decreasing subsequence ending at each point
    for i in range(1, len(losses)):
        higher = lengths[:i][losses[:i] > losses[i]]
        lengths[i] = 1 + (higher.max() if len(higher) else 0)
    end = int(lengths.argmax())  # the first point ending a longest one
    begin = end - int(lengths[end]) + 1
    return begin + (end - begin) // 2


def steepest(lrs: np.ndarray, losses: np.ndarray) -> int:
    """fastai's ``steep``: the point where the loss falls fastest per decade of learning rate."""
    slopes = np.diff(losses) / np.diff(np.log(lrs))
    return int(slopes.argmin())
