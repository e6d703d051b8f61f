"""Sweeps: a base TrainConfig times lists of values, one complete run per combination.

A sweep is a write-up's study as data ("batch 32 vs 50 vs 128, for 30 and 50
epochs"). ``plan_sweep`` expands it into ordinary, validated TrainConfigs, each
named after its combination (``mysweep-bs32-ep30``) and carrying a ``sweep``
record (sweep id and name, the combination, its position). Nothing is shared
between the runs: a 50-epoch run does not continue the 30-epoch one, its lr
schedule spans its own 50 epochs, and its config.json alone redoes it. The runs
take the normal paths (the job queue from the page, ``run_training`` from the
CLI), and ``summarize_sweep`` reads them back from the runs dir.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from lab.runs.compare import run_row
from lab.runs.view import RunInfo
from lab.train.augment import augment_label, get_augment
from lab.train.engine import MAX_NAME, ConfigError, TrainConfig, text_problem

MAX_SWEEP_RUNS = 64  # one click must not queue a day of a shared server; a study this big is unreadable anyway
# The write-ups' own table (best accuracy and its epoch, final train and validation loss and accuracy,
# seconds per epoch) after the settings, so a student can lay one beside the other.
SUMMARY_COLUMNS = ["name", "batch_size", "epochs", "lr", "optimizer", "augment", "seed", "status", "best_val_acc",
                   "best_epoch", "final_train_loss", "final_train_acc", "final_val_loss", "final_val_acc",
                   "seconds_per_epoch", "group", "id"]


class SweepError(ConfigError):
    """A sweep that cannot be planned; the message names the list or the combination to change."""


def _whole(label: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SweepError(f"{label}: {text!r} is not a whole number") from None


def _number(label: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise SweepError(f"{label}: {text!r} is not a number") from None


class Axis(NamedTuple):
    """A TrainConfig field a sweep can vary: how to read it from text and how it reads in a run name."""

    label: str
    parse: Callable[[str, str], Any]
    tag: Callable[[Any], str]


AXES: dict[str, Axis] = {
    "batch_size": Axis("batch sizes", _whole, lambda v: f"bs{v}"),
    "epochs": Axis("epochs", _whole, lambda v: f"ep{v}"),
    "lr": Axis("learning rates", _number, lambda v: f"lr{v:g}"),
    "optimizer": Axis("optimizers", lambda label, text: text.lower(), str),
    "augment": Axis("augmentations", lambda label, text: text, lambda v: f"aug-{augment_label(get_augment(v))}"),
}
ALWAYS_NAMED = ("batch_size", "epochs")  # the axes of the classic study; others join the name when varied


def parse_values(axis: str, text: str) -> list:
    """'32, 50,128' -> [32, 50, 128] for one axis; for augment a JSON object is one value."""
    label = AXES[axis].label
    if axis == "augment" and text.strip().startswith("{"):
        items = [text.strip()]
    else:
        items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise SweepError(f"{label}: give at least one value, separated by commas")
    return [AXES[axis].parse(label, item) for item in items]


def _unique(axis: str, values: Sequence) -> list:
    """Values in order without repeats; augmentations count as equal when they resolve to the same settings."""
    seen, out = [], []
    for value in values:
        key = get_augment(value) if axis == "augment" else value
        if key not in seen:
            seen.append(key)
            out.append(value)
    return out


def _lists(base: TrainConfig, values: dict[str, Sequence]) -> dict[str, list]:
    """Every axis as a non-empty list: the given values (repeats dropped) or the base's one value."""
    unknown = sorted(set(values) - set(AXES))
    if unknown:
        raise SweepError(f"cannot sweep over {', '.join(unknown)}; a sweep varies: {', '.join(AXES)}")
    lists = {}
    for axis in AXES:
        given = list(values.get(axis, [getattr(base, axis)]))
        if not given:
            raise SweepError(f"{AXES[axis].label}: give at least one value")
        try:
            lists[axis] = _unique(axis, given)
        except ValueError as err:  # an augmentation that does not resolve
            raise SweepError(f"{AXES[axis].label}: {err}") from None
    return lists


def shortened(text: str, limit: int = MAX_NAME) -> str:
    """``text`` cut to ``limit`` characters, the cut marked with an ellipsis."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _run_name(sweep_name: str, combo: dict, lists: dict[str, list]) -> str:
    """'mysweep-bs32-ep30', within MAX_NAME: a long sweep name is cut rather than the combination,
    which is what tells the runs of a sweep apart."""
    tags = "-".join(AXES[axis].tag(combo[axis]) for axis in AXES if axis in ALWAYS_NAMED or len(lists[axis]) > 1)
    room = MAX_NAME - len(tags) - 1
    return shortened(f"{shortened(sweep_name, room)}-{tags}" if room > 1 else tags)


def default_sweep_name(base: TrainConfig) -> str:
    """'fashion_cnn-digits': what a sweep is about when its user did not say (cut to MAX_NAME: a spec
    or folder's name can be long, and no one typed this one to be refused)."""
    spec_name = base.spec.get("name", "model") if isinstance(base.spec, dict) else "model"
    return shortened(f"{spec_name}-{base.dataset}")


def _sweep_name(name: str, base: TrainConfig) -> str:
    """The name the user gave, refused when too long (a name they typed is theirs to shorten), else the default."""
    problem = text_problem("the sweep's name", name.strip(), MAX_NAME)
    if problem:
        raise SweepError(problem)
    return name.strip() or default_sweep_name(base)


def plan_sweep(base: TrainConfig, values: dict[str, Sequence], name: str = "") -> list[TrainConfig]:
    """Every combination of ``values`` (axis -> list) applied to ``base``, as validated configs.

    Axes not in ``values`` keep the base's value. Combinations come in a fixed
    order (batch size slowest, then epochs, lr, optimizer, augment), so the
    queue, the names and the summary table read the same way. Raises
    :class:`SweepError` before anything runs, naming the list or the combination.
    """
    lists = _lists(base, values)
    combos = [dict(zip(lists, combo)) for combo in itertools.product(*lists.values())]
    if len(combos) > MAX_SWEEP_RUNS:
        raise SweepError(f"{len(combos)} combinations; a sweep can have at most {MAX_SWEEP_RUNS}: drop some values")
    sweep_name = _sweep_name(name, base)
    sweep_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    created = time.strftime("%Y-%m-%d %H:%M")
    configs = []
    for index, combo in enumerate(combos, 1):
        config = dataclasses.replace(base, **combo, sweep={})
        try:
            config.validate()
        except ConfigError as err:
            shown = ", ".join(f"{axis}={value}" for axis, value in combo.items() if len(lists[axis]) > 1)
            raise SweepError(f"combination {shown or index}: {err}") from None
        config.name = _run_name(sweep_name, combo, lists)
        config.sweep = {"id": sweep_id, "name": sweep_name, "created": created, "index": index,
                        "total": len(combos), "values": combo}
        configs.append(config)
    return configs


MAX_REPEATS = 10  # a mean and spread need three; ten is a study, not a click


def parse_seeds(text: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]: the seeds a configuration is repeated with (repeats dropped, order kept)."""
    seeds = _unique("seeds", [_whole("seeds", item.strip()) for item in text.split(",") if item.strip()])
    if not seeds:
        raise SweepError("seeds: give at least one whole number, separated by commas, such as 0,1,2")
    if len(seeds) > MAX_REPEATS:
        raise SweepError(f"seeds: {len(seeds)} given; repeat a configuration at most {MAX_REPEATS} times")
    if any(seed < 0 for seed in seeds):
        raise SweepError("seeds: use whole numbers of 0 or more")
    return seeds


def with_repeats(configs: Sequence[TrainConfig], seeds: Sequence[int]) -> list[TrainConfig]:
    """Each planned config once per seed, next to each other: the write-up's "each experiment ran once" fixed.

    Every copy is its own complete run (its config.json redoes it) named ``NAME-s<seed>``; the copies share
    their sweep record's ``index``, which makes them one configuration (:func:`lab.runs.compare.group_key`), and
    the record says how many repeats there are, so Compare can show a mean and a spread. One seed changes nothing.
    """
    if len(seeds) < 2:
        return [dataclasses.replace(config, seed=seeds[0]) if seeds else config for config in configs]
    if len(configs) * len(seeds) > MAX_SWEEP_RUNS:
        raise SweepError(f"{len(configs)} configurations × {len(seeds)} seeds = {len(configs) * len(seeds)} runs; "
                         f"a sweep can have at most {MAX_SWEEP_RUNS}: drop some values or seeds")
    repeated = []
    for config in configs:
        for seed in seeds:
            tag = f"-s{seed}"
            name = shortened(config.name, MAX_NAME - len(tag)) + tag
            repeated.append(dataclasses.replace(config, seed=seed, name=name,
                                                sweep={**config.sweep, "repeats": len(seeds)}))
    return repeated


def plan_repeats(config: TrainConfig, seeds: Sequence[int]) -> list[TrainConfig]:
    """One run repeated once per seed (``train --seeds``): a one-combination sweep named after the run, so
    its repeats are grouped, tabled and plotted as a sweep's are, and named ``NAME-s<seed>``."""
    if len(seeds) < 2:
        return with_repeats([config], seeds)
    (planned,) = plan_sweep(config, {}, config.name)
    planned.name = planned.sweep["name"]
    return with_repeats([planned], seeds)


def describe_plan(configs: Sequence[TrainConfig]) -> str:
    """'6 runs: 2 batch sizes × 3 seeds': the size of a plan as a student reads it."""
    sizes = []
    for axis, spec in AXES.items():
        count = len({json.dumps(c.sweep.get("values", {}).get(axis), sort_keys=True) for c in configs})
        if count > 1:
            sizes.append(f"{count} {spec.label}")
    if any(c.sweep.get("repeats") for c in configs):
        sizes.append(f"{len({c.seed for c in configs})} seeds")
    runs = f"{len(configs)} run" + ("s" if len(configs) != 1 else "")
    return runs + (f": {' × '.join(sizes)}" if sizes else "")


def sweep_of(run: RunInfo) -> dict:
    """The run's sweep record ({} for a run that is not part of a sweep)."""
    return run.config.get("sweep") or {}


def group_sweeps(runs: Iterable[RunInfo]) -> dict[str, list[RunInfo]]:
    """Runs by sweep id, in the order the sweeps first appear in ``runs``, each in plan order."""
    groups: dict[str, list[RunInfo]] = {}
    for run in runs:
        if sweep_of(run).get("id"):
            groups.setdefault(sweep_of(run)["id"], []).append(run)
    return {sweep_id: sorted(group, key=lambda r: sweep_of(r).get("index", 0)) for sweep_id, group in groups.items()}


def summarize_sweep(runs: Iterable[RunInfo]) -> list[dict]:
    """One row per run, in plan order (a combination's repeats by seed): its settings, status and results
    (``SUMMARY_COLUMNS``). :func:`lab.runs.compare.aggregate_rows` folds repeats into mean ± std."""
    rows = [run_row(run) for run in sorted(runs, key=lambda r: (sweep_of(r).get("index", 0), r.config.get("seed", 0)))]
    return [{key: row[key] for key in SUMMARY_COLUMNS} for row in rows]


def varied_axes(rows: Sequence[dict]) -> list[str]:
    """The axes whose value differs between rows: what a sweep figure must spread out."""
    return [axis for axis in AXES if len({str(row[axis]) for row in rows}) > 1]
