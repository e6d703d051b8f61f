"""Runs as comparable rows: the experiment table of ``lab runs`` and the Compare page.

One flat row per run, computed from its folder alone (config.json, status.json,
meta.json, metrics.jsonl), so the table is the same for a finished run, a live
one and one from before a restart. The CLI prints these rows, the page shows
and filters them, and both export the same CSV.
"""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from collections.abc import Iterable, Sequence

from lab.runs.view import RunInfo
from lab.train.augment import augment_label, get_augment

RUN_COLUMNS = ["id", "name", "owner", "tags", "status", "dataset", "spec", "params", "batch_size", "epochs",
               "epochs_done", "lr", "optimizer", "augment", "best_val_acc", "best_epoch", "final_val_acc",
               "train_val_gap", "seconds_per_epoch", "images_per_sec", "sweep", "created", "note"]
SEARCHED = ("id", "name", "owner", "tags", "dataset", "spec", "optimizer", "augment", "sweep", "note")


def _date(timestamp: float | None) -> str:
    """Local time as 'YYYY-MM-DD HH:MM:SS': readable in a spreadsheet and still sorts as text."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else ""


def run_row(run: RunInfo) -> dict:
    """One flat row per run, the columns of ``lab runs`` and the Compare table.

    ``train_val_gap`` is the last epoch's train minus validation accuracy: the
    number a write-up quotes when it says a model overfits.
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
        "augment": augment_label(get_augment(cfg.get("augment") or "none")),
        "best_val_acc": run.best_val_acc, "best_epoch": run.best_epoch, "final_val_acc": last.get("val_acc"),
        "train_val_gap": last["train_acc"] - last["val_acc"] if last else None,
        "seconds_per_epoch": sum(seconds) / len(seconds) if seconds else None,
        "images_per_sec": last.get("images_per_sec"),
        "sweep": (cfg.get("sweep") or {}).get("name", ""),
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
