"""Runs as comparable rows: the experiment table of ``lab runs`` and the Compare page.

One flat row per run, computed from its folder alone (config.json, status.json,
meta.json, metrics.jsonl), so the table is the same for a finished run, a live
one and one from before a restart. The CLI prints these rows, the page shows
and filters them, and both export the same CSV.

Runs that repeat one configuration with different seeds (``group``, see
:func:`group_key`) fold into one row with the mean and spread of each result
(:func:`aggregate_rows`), and :func:`within_spread` says when two
configurations differ by less than the seed alone moves them.
"""

from __future__ import annotations

import csv
import io
import itertools
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Sequence

from lab.runs.view import RunInfo
from lab.train.augment import augment_label, get_augment

RUN_COLUMNS = ["id", "name", "owner", "tags", "status", "dataset", "spec", "params", "batch_size", "epochs",
               "epochs_done", "lr", "optimizer", "augment", "seed", "best_val_acc", "best_epoch", "final_train_loss",
               "final_train_acc", "final_val_loss", "final_val_acc", "train_val_gap", "seconds_per_epoch",
               "images_per_sec", "sweep", "group", "created", "note"]
SEARCHED = ("id", "name", "owner", "tags", "dataset", "spec", "optimizer", "augment", "sweep", "note")
# The results a write-up's table reports, each given as mean and spread when a configuration is repeated.
SPREAD_COLUMNS = ("best_val_acc", "best_epoch", "final_train_loss", "final_train_acc", "final_val_loss",
                  "final_val_acc", "seconds_per_epoch")
# What the repeats of one configuration share: a configuration's row takes these from its first run.
SHARED_COLUMNS = ("dataset", "spec", "params", "batch_size", "epochs", "lr", "optimizer", "augment", "sweep", "group")
GROUP_COLUMNS = ["name", "n", "seeds", "dataset", "spec", "params", "batch_size", "epochs", "lr", "optimizer",
                 "augment", "status",
                 *itertools.chain.from_iterable((column, f"{column}_std") for column in SPREAD_COLUMNS),
                 "sweep", "group", "id"]


def _date(timestamp: float | None) -> str:
    """Local time as 'YYYY-MM-DD HH:MM:SS': readable in a spreadsheet and still sorts as text."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else ""


def group_key(sweep: dict) -> str:
    """Which configuration a run repeats: its sweep id and position ('' for a run outside a sweep).
    Runs with the same key differ only in their seed (:func:`lab.runs.sweep.with_repeats`)."""
    return f"{sweep['id']}#{sweep.get('index', 0)}" if sweep.get("id") else ""


def run_row(run: RunInfo) -> dict:
    """One flat row per run, the columns of ``lab runs`` and the Compare table.

    ``train_val_gap`` is the last epoch's train minus validation accuracy: the
    number a write-up quotes when it says a model overfits. The ``final_*``
    columns are the last epoch's, as a write-up's table lists them.
    """
    cfg, metrics = run.config, run.metrics
    seconds = [m["seconds"] for m in metrics]
    last = metrics[-1] if metrics else {}
    resolved = cfg.get("resolved", {})
    return {
        "id": run.id, "name": run.name, "owner": run.status.get("owner", ""), "tags": ", ".join(run.tags),
        "status": run.state, "dataset": cfg.get("dataset", ""), "spec": resolved.get("spec_name", ""),
        "params": resolved.get("params"), "batch_size": cfg.get("batch_size"), "epochs": cfg.get("epochs"),
        "epochs_done": len(metrics), "lr": cfg.get("lr"), "optimizer": cfg.get("optimizer"),
        "augment": augment_label(get_augment(cfg.get("augment") or "none")), "seed": cfg.get("seed"),
        "best_val_acc": run.best_val_acc, "best_epoch": run.best_epoch, "final_train_loss": last.get("train_loss"),
        "final_train_acc": last.get("train_acc"), "final_val_loss": last.get("val_loss"),
        "final_val_acc": last.get("val_acc"),
        "train_val_gap": last["train_acc"] - last["val_acc"] if last else None,
        "seconds_per_epoch": sum(seconds) / len(seconds) if seconds else None,
        "images_per_sec": last.get("images_per_sec"),
        "sweep": (cfg.get("sweep") or {}).get("name", ""), "group": group_key(cfg.get("sweep") or {}),
        "created": _date(run.status.get("created")), "note": run.note,
    }


def run_labels(runs: Sequence[RunInfo]) -> dict[str, str]:
    """Run id -> its name, with the end of the id added where two runs share a name."""
    counts = Counter(r.name for r in runs)
    return {r.id: r.name if counts[r.name] == 1 else f"{r.name} ({r.id[-6:]})" for r in runs}


def rows_to_csv(rows: Iterable[dict], columns: Sequence[str] = RUN_COLUMNS) -> str:
    """The rows as CSV text, ``columns`` in order: what every table export writes."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def filter_rows(rows: Sequence[dict], text: str = "", statuses: Iterable[str] = (),
                datasets: Iterable[str] = ()) -> list[dict]:
    """Rows whose searchable text holds every word of ``text`` (case-insensitive),
    in one of ``statuses`` and ``datasets`` (an empty choice keeps all)."""
    words = text.lower().split()
    statuses, datasets = set(statuses), set(datasets)
    return [r for r in rows
            if (not statuses or r["status"] in statuses) and (not datasets or r["dataset"] in datasets)
            and all(w in " ".join(str(r[k] or "") for k in SEARCHED).lower() for w in words)]


def elapsed(metrics: Sequence[dict]) -> list[float]:
    """Training time in seconds at the end of each epoch, so runs can be compared on wall-clock time."""
    total, out = 0.0, []
    for m in metrics:
        total += m.get("seconds", 0.0)
        out.append(total)
    return out


def overfit_epoch(metrics: Sequence[dict]) -> int | None:
    """The epoch after which the model overfits: the one with the lowest validation loss,
    unless that is the last epoch (then validation loss is still improving: None)."""
    if len(metrics) < 2:
        return None
    best = min(metrics, key=lambda m: m["val_loss"])
    return best["epoch"] if best is not metrics[-1] else None


# ---------------------------------------------------------------- repeats: mean and spread


def group_rows(rows: Iterable[dict]) -> list[list[dict]]:
    """Rows by configuration, in the order configurations first appear: rows sharing a ``group`` repeat one
    configuration with different seeds; a run outside a sweep is a configuration of its own."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["group"] or row["id"], []).append(row)
    return list(groups.values())


def has_repeats(rows: Iterable[dict]) -> bool:
    """Whether some configuration among ``rows`` ran more than once: then a mean and a spread mean something."""
    return any(len(group) > 1 for group in group_rows(rows))


def mean_std(values: Iterable[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n − 1 in the denominator, as a spreadsheet's STDEV.S) of the values
    that exist. The std is None below two values: one run has no spread, and a zero would claim it has."""
    known = [value for value in values if value is not None]
    if not known:
        return None, None
    return statistics.fmean(known), statistics.stdev(known) if len(known) > 1 else None


def _status(statuses: Sequence[str]) -> str:
    """A configuration is as far along as its least finished run."""
    return next((status for status in statuses if status != "finished"), "finished")


def _configuration_name(group: Sequence[dict]) -> str:
    """The name the repeats were made from: a repeat's name without its '-s<seed>' (a renamed run keeps its own)."""
    name, suffix = group[0]["name"], f"-s{group[0].get('seed')}"
    return name[:-len(suffix)] if len(group) > 1 and name.endswith(suffix) else name


def aggregate(group: Sequence[dict]) -> dict:
    """One configuration's row (``GROUP_COLUMNS``) from its runs' rows (:func:`run_row` or a sweep summary's).

    Its settings are the first run's (repeats differ only in their seed); ``n`` is the number of runs and
    ``seeds`` lists them; each of ``SPREAD_COLUMNS`` holds the mean over the runs that have a value (a run
    still at its first epoch has none) and ``<column>_std`` their standard deviation (:func:`mean_std`).
    """
    first, seeds = group[0], sorted(r.get("seed") for r in group)
    row = {"name": _configuration_name(group), "n": len(group), "seeds": ", ".join(map(str, seeds)),
           "status": _status([r["status"] for r in group]),
           **{column: first[column] for column in SHARED_COLUMNS if column in first}, "id": first["id"]}
    for column in SPREAD_COLUMNS:
        row[column], row[f"{column}_std"] = mean_std(r[column] for r in group)
    return row


def aggregate_rows(rows: Iterable[dict]) -> list[dict]:
    """One row per configuration (:func:`group_rows`, :func:`aggregate`): the table a write-up's "each
    experiment ran once" becomes when every experiment ran several times."""
    return [aggregate(group) for group in group_rows(rows)]


def configuration_labels(rows: Sequence[dict]) -> list[str]:
    """Each configuration row's name, with the end of its group (or run id) added where two share a name."""
    counts = Counter(r["name"] for r in rows)
    return [r["name"] if counts[r["name"]] == 1 else f"{r['name']} ({(r.get('group') or r['id']).rsplit('-', 1)[-1]})"
            for r in rows]


def within_spread(a: dict, b: dict, column: str = "best_val_acc") -> bool:
    """Whether two configurations' means differ by less than their spread.

    The rule: |mean a − mean b| < max(std a, std b), the larger of the two standard deviations. A difference
    that small is what changing the seed alone does to one of them, so these repeats cannot say which
    configuration is better. False when either has no spread (fewer than two runs with a value).
    """
    if a[f"{column}_std"] is None or b[f"{column}_std"] is None:
        return False
    return abs(a[column] - b[column]) < max(a[f"{column}_std"], b[f"{column}_std"])


def close_pairs(rows: Sequence[dict], column: str = "best_val_acc") -> list[tuple[int, int]]:
    """Positions (i, j) of the configuration rows (:func:`aggregate_rows`) whose difference in ``column`` is
    smaller than their spread (:func:`within_spread`), each pair once, in table order."""
    return [(i, j) for (i, a), (j, b) in itertools.combinations(enumerate(rows), 2) if within_spread(a, b, column)]


def repeated(rows: Sequence[dict], column: str = "best_val_acc") -> list[dict]:
    """The configuration rows that have a spread in ``column``: the only ones :func:`within_spread` can judge."""
    return [row for row in rows if row[f"{column}_std"] is not None]


def with_spread(mean: float | None, std: float | None, fmt: str = ".4f") -> str:
    """'0.7120 ± 0.0130' as a table cell: only the mean for one run, '-' for none."""
    if mean is None:
        return "-"
    return format(mean, fmt) + (f" ± {format(std, fmt)}" if std is not None else "")


def epoch_spread(runs: Sequence[Sequence[dict]], key: str) -> tuple[list[int], list[float], list[float | None]]:
    """Over the epochs every run has reached: the epochs, and the mean and std of ``key`` across the runs at
    each (runs of a live sweep stop at different epochs; a band over fewer runs would be a different band)."""
    by_epoch = [{m["epoch"]: m for m in metrics} for metrics in runs]
    common = sorted(set.intersection(*(set(run) for run in by_epoch))) if by_epoch else []
    stats = [mean_std(run[epoch][key] for run in by_epoch) for epoch in common]
    return common, [mean for mean, _ in stats], [std for _, std in stats]


def with_elapsed(metrics: Sequence[dict]) -> list[dict]:
    """The metrics rows with their cumulative training time as ``elapsed``: what a band against time averages."""
    return [{**m, "elapsed": total} for m, total in zip(metrics, elapsed(metrics))]
