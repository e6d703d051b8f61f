"""``python -m lab ...``: the headless face of the lab.

Exit codes: 0 success, 1 a run that failed or diverged, 2 bad input (one line
on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Callable

from lab import settings

EXIT_OK, EXIT_RUN_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class UsageError(ValueError):
    """Bad command-line input: printed as one line, exit code 2."""


def cmd_datasets(args: argparse.Namespace) -> int:
    from lab.data import list_datasets, load_dataset

    if args.download:
        ds = load_dataset(args.download, args.data_dir, download=True)
        print(f"{ds.name}: {len(ds.train_y):,} train / {len(ds.val_y):,} val images ready")
        return EXIT_OK
    print(f"{'name':<15}{'shape':<10}{'classes':>8}{'train':>9}{'val':>8}  status")
    for info in list_datasets(args.data_dir):
        shape = "x".join(map(str, info.shape)) if info.shape else "?"
        status = "built-in" if info.offline else ("available" if info.available else info.how_to_get)
        print(f"{info.name:<15}{shape:<10}{info.num_classes or '?':>8}{info.train_size or 0:>9,}"
              f"{info.val_size or 0:>8,}  {status}")
    return EXIT_OK


def cmd_summary(args: argparse.Namespace) -> int:
    from lab.data import load_dataset
    from lab.spec import load_spec, summarize

    spec = load_spec(args.spec)
    shape = classes = None
    if args.dataset:
        ds = load_dataset(args.dataset, args.data_dir)
        shape, classes = ds.shape, ds.num_classes
    print(summarize(spec, shape, classes).table())
    return EXIT_OK


def _train_config(args: argparse.Namespace, **overrides) -> "TrainConfig":
    from lab.engine import TrainConfig
    from lab.spec import load_spec

    values = dict(spec=load_spec(args.spec), dataset=args.dataset, augment=args.augment, epochs=args.epochs,
                  batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay,
                  schedule=args.schedule, label_smoothing=args.label_smoothing, seed=args.seed,
                  device=args.device, compile=args.compile, train_limit=args.train_limit, name=args.name or "",
                  owner=args.owner)
    values.update(overrides)
    return TrainConfig.from_dict(values)


class _EpochPrinter:
    """Listener printing one line per epoch (duck-typed Callback; keeps the CLI import-light)."""

    def on_run_start(self, trainer) -> None:
        print(f"training {trainer.summary.name} ({trainer.summary.total_params:,} params) on "
              f"{trainer.dataset.name} {len(trainer.train_y):,} images, device {trainer.device}", flush=True)

    def on_batch_end(self, trainer, info) -> None: ...

    def on_epoch_end(self, trainer, m: dict) -> None:
        print(f"epoch {m['epoch']:>3}/{trainer.config.epochs}  train_loss {m['train_loss']:.4f}  "
              f"train_acc {m['train_acc']:.4f}  val_loss {m['val_loss']:.4f}  val_acc {m['val_acc']:.4f}  "
              f"{m['seconds']:.1f}s  {m['images_per_sec']:,.0f} img/s", flush=True)

    def on_run_end(self, trainer, status: str, message: str) -> None:
        if message:
            print(f"{status}: {message}", file=sys.stderr if status != "finished" else sys.stdout)


def run_training(config, runs_dir, data_dir) -> tuple[str, "RunResult"]:
    """Train in this process, recording into the runs dir; returns (run id, result)."""
    from lab.engine import RunRecorder, Trainer, run_record
    from lab.runs import RunStore

    store = RunStore(runs_dir)
    trainer = Trainer(config, data_dir=data_dir)
    run_id = store.create(run_record(config, trainer), name=config.name, owner=config.owner)
    trainer.callbacks = [RunRecorder(store, run_id), _EpochPrinter()]
    return run_id, trainer.run()


def cmd_train(args: argparse.Namespace) -> int:
    run_id, result = run_training(_train_config(args), args.runs_dir, args.data_dir)
    best = result.best
    acc, epoch = (f"{best['val_acc']:.4f}", best["epoch"]) if best else ("nan", 0)
    print(f"run {run_id} {result.status} best_val_acc={acc} epoch={epoch}")
    return EXIT_OK if result.status in ("finished", "stopped") else EXIT_RUN_FAILED


def cmd_bench(args: argparse.Namespace) -> int:
    from lab.bench import main as bench_main

    return bench_main(args)


def cmd_runs(args: argparse.Namespace) -> int:
    from lab.runs import RunStore

    rows = [run_row(r) for r in RunStore(args.runs_dir).list()]
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    elif args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=RUN_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    else:
        print(f"{'id':<23}{'name':<22}{'status':<12}{'dataset':<14}{'spec':<14}{'epochs':>6}{'batch':>6}"
              f"{'best_val_acc':>13}")
        for r in rows:
            acc = f"{r['best_val_acc']:.4f}" if r["best_val_acc"] is not None else "-"
            print(f"{r['id']:<23}{r['name'][:21]:<22}{r['status']:<12}{r['dataset'][:13]:<14}{r['spec'][:13]:<14}"
                  f"{r['epochs']:>6}{r['batch_size']:>6}{acc:>13}")
    return EXIT_OK


RUN_COLUMNS = ["id", "name", "owner", "status", "dataset", "spec", "params", "batch_size", "epochs", "lr",
               "optimizer", "augment", "best_val_acc", "best_epoch", "final_val_acc", "seconds_per_epoch",
               "images_per_sec", "created"]


def run_row(run) -> dict:
    """One flat row per run, the columns of ``lab runs`` and the Compare table."""
    from lab.augment import augment_label, get_augment

    cfg, metrics = run.config, run.metrics
    seconds = [m["seconds"] for m in metrics]
    return {
        "id": run.id, "name": run.name, "owner": run.status.get("owner", ""), "status": run.state,
        "dataset": cfg.get("dataset", ""), "spec": cfg.get("resolved", {}).get("spec_name", ""),
        "params": cfg.get("resolved", {}).get("params"), "batch_size": cfg.get("batch_size"),
        "epochs": cfg.get("epochs"), "lr": cfg.get("lr"), "optimizer": cfg.get("optimizer"),
        "augment": augment_label(get_augment(cfg.get("augment") or "none")),
        "best_val_acc": run.best_val_acc, "best_epoch": run.best_epoch,
        "final_val_acc": metrics[-1]["val_acc"] if metrics else None,
        "seconds_per_epoch": sum(seconds) / len(seconds) if seconds else None,
        "images_per_sec": metrics[-1]["images_per_sec"] if metrics else None,
        "created": run.status.get("created"),
    }


def _add_train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", default="fashion_cnn", help="preset name or spec JSON file")
    p.add_argument("--dataset", default="shapes")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--optimizer", default="adam", help="adam | adamw | sgd | rmsprop")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", default="none", help="none | step | cosine | onecycle")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--augment", default="none", help="preset name or JSON, e.g. '{\"hflip\": 0.5}'")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--train-limit", type=int, default=0, help="train on the first N images only")
    p.add_argument("--name", default="")
    p.add_argument("--owner", default="cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lab", description="CNN Lab, headless.")
    parser.add_argument("--data-dir", default=None, help=f"datasets dir (default {settings.data_dir()})")
    parser.add_argument("--runs-dir", default=None, help=f"runs dir (default {settings.runs_dir()})")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("datasets", help="list datasets and whether they are available")
    p.add_argument("--download", metavar="NAME", help="download a torchvision dataset into the data dir")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("summary", help="layer table of a spec: output shapes and parameters")
    p.add_argument("spec", help="preset name or spec JSON file")
    p.add_argument("--dataset", help="use this dataset's input shape and classes")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("train", help="train a spec on a dataset, one line per epoch")
    _add_train_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bench", help="engine vs a plain PyTorch loop: images/s, time split, memory")
    p.add_argument("--quick", action="store_true", help="short run (under a minute on 2 CPU cores)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument("--workers", type=int, default=None, help="baseline DataLoader workers (default 2)")
    p.add_argument("--time-to-accuracy", action="store_true", help="time a preset to its target on real data")
    p.add_argument("--dataset", default="fashion-mnist", choices=("fashion-mnist", "cifar10"))
    p.add_argument("--preset", default=None, help="preset for --time-to-accuracy (default per dataset)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("runs", help="list runs")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(func=cmd_runs)
    return parser


def _shared_options(argv: list[str]) -> list[str]:
    """Let --data-dir/--runs-dir also come after the subcommand, where users type them."""
    front, rest, i = [], [], 0
    while i < len(argv):
        if argv[i] in ("--data-dir", "--runs-dir") and i + 1 < len(argv):
            front += argv[i:i + 2]
            i += 2
        elif argv[i].startswith(("--data-dir=", "--runs-dir=")):
            front.append(argv[i])
            i += 1
        else:
            rest.append(argv[i])
            i += 1
    return front + rest


def main(argv: list[str] | None = None) -> int:
    from lab.augment import AugmentError
    from lab.data import DatasetError
    from lab.engine import ConfigError
    from lab.layers import SpecError
    from lab.runs import RunNotFound

    args = build_parser().parse_args(_shared_options(list(sys.argv[1:] if argv is None else argv)))
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (SpecError, DatasetError, ConfigError, AugmentError, RunNotFound, UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
