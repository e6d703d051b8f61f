"""``python -m lab ...``: the headless face of the lab.

Exit codes: 0 success, 1 a run that failed or diverged, 2 bad input (one line
on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from lab import settings

if TYPE_CHECKING:  # for annotations only: each command imports what it needs when it runs
    from lab.train.engine import RunResult, TrainConfig

EXIT_OK, EXIT_RUN_FAILED, EXIT_BAD_INPUT = 0, 1, 2
DEFAULT_DATASET = "shapes"  # lab.data.DEFAULT, without importing the data package for --help
TRAIN_DEFAULTS = {"epochs": 5, "batch_size": 64}  # train's, and a sweep's when it only repeats (--seeds)


class UsageError(ValueError):
    """Bad command-line input: printed as one line, exit code 2."""


def cmd_datasets(args: argparse.Namespace) -> int:
    from lab.data import download_dataset, list_datasets, load_dataset
    from lab.data.registry import normalise

    if args.download:
        name = normalise(args.download)
        download_dataset(name, args.data_dir, progress=_progress_lines())  # the Data page's download
        ds = load_dataset(name, args.data_dir)
        print(f"{ds.name}: {len(ds.train_y):,} train / {len(ds.val_y):,} val images ready")
        return EXIT_OK
    print(f"{'name':<15}{'shape':<10}{'classes':>8}{'train':>9}{'val':>8}  status")
    for info in list_datasets(args.data_dir):
        shape = "x".join(map(str, info.shape)) if info.shape else "?"
        status = "built-in" if info.offline else ("available" if info.available else info.how_to_get)
        print(f"{info.name:<15}{shape:<10}{info.num_classes or '?':>8}{info.train_size or 0:>9,}"
              f"{info.val_size or 0:>8,}  {status}")
    return EXIT_OK


def _progress_lines() -> Callable[[float, str], None]:
    """A download's progress on stderr: a line per tenth done and per new step (the text before its
    colon: each file, unpacking, waiting for another download), not one per MiB."""
    shown: set[tuple[int, str]] = set()

    def show(fraction: float, message: str) -> None:
        step = (int(fraction * 10), message.split(":")[0])
        if step not in shown:
            shown.add(step)
            print(f"{fraction:4.0%}  {message}", file=sys.stderr)

    return show


def cmd_summary(args: argparse.Namespace) -> int:
    from lab.data import load_dataset
    from lab.model.spec import load_spec, summarize

    spec = load_spec(args.spec)
    shape = classes = None
    if args.dataset:
        ds = load_dataset(args.dataset, args.data_dir)
        shape, classes = ds.shape, ds.num_classes
    if args.input:
        shape = _input_shape(args.input)
    if args.classes is not None:
        classes = args.classes
    summary = summarize(spec, shape, classes)
    print(summary.table())
    if args.teach:
        from lab.model.teach import teaching_table

        print("\n" + teaching_table(summary.rows))
    return EXIT_OK


def _input_shape(text: str) -> tuple[int, ...]:
    """'3,224,224' -> (3, 224, 224): the lecture's tables are at sizes no data set here has."""
    parts = text.replace("x", ",").split(",")
    if len(parts) != 3 or not all(part.strip().isdigit() and int(part) > 0 for part in parts):
        raise UsageError(f"--input must be three positive whole numbers C,H,W such as 3,224,224; got {text!r}")
    return tuple(int(part) for part in parts)


def cmd_models(args: argparse.Namespace) -> int:
    from lab.model.backbone import download_weights, model_table
    from lab.model.layers import format_shape

    if args.download:
        print(f"{args.download}: ImageNet weights ready in {download_weights(args.download)}")
        return EXIT_OK
    print(f"{'model':<20}{'params':>12}{'stages':>8}  {'maps at 224':<13}ImageNet weights")
    for row in model_table():
        weights = f"ready ({row.weights})" if row.weights else f"missing: {row.how_to_get}"
        print(f"{row.name:<20}{row.params:>12,}{row.stages:>8}  {format_shape(row.out_shape):<13}{weights}")
    return EXIT_OK


def _train_config(args: argparse.Namespace, **overrides) -> "TrainConfig":
    from lab.model.spec import load_spec
    from lab.train.engine import TrainConfig

    values = dict(spec=load_spec(args.spec), dataset=args.dataset, augment=args.augment, epochs=args.epochs,
                  batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay,
                  momentum=args.momentum, nesterov=args.nesterov, init=args.init,
                  schedule=args.schedule, label_smoothing=args.label_smoothing, seed=args.seed,
                  device=args.device, compile=args.compile, train_limit=args.train_limit, name=args.name or "",
                  insight=not args.no_insight, probe_size=args.probe_size,
                  owner=args.owner, image_size=args.image_size, init_from=args.init_from,
                  freeze=[name.strip() for name in args.freeze.split(",") if name.strip()])
    values.update(overrides)
    return TrainConfig.from_dict(values)


class _EpochPrinter:
    """Listener printing one line per epoch (duck-typed Callback; keeps the CLI import-light)."""

    def on_run_start(self, trainer) -> None:
        from lab.train.engine import run_record
        from lab.train.finetune import run_notes

        print(f"training {trainer.summary.name} ({trainer.summary.total_params:,} params) on "
              f"{trainer.dataset.name} {len(trainer.train_y):,} images, device {trainer.device}", flush=True)
        for note in run_notes(run_record(trainer.config, trainer)):
            print(note, flush=True)

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
    from lab.insight.probe import insight_callbacks
    from lab.runs.store import RunStore
    from lab.train.engine import RunRecorder, Trainer, run_record

    store = RunStore(runs_dir)
    trainer = Trainer(config, data_dir=data_dir, source=store.source_weights(config.init_from))
    run_id = store.create(run_record(config, trainer), name=config.name, owner=config.owner)
    trainer.callbacks = [RunRecorder(store, run_id), *insight_callbacks(trainer, store, run_id), _EpochPrinter()]
    return run_id, trainer.run()


def _config_file(path: str) -> "TrainConfig":
    """The settings of ``lab export --what config`` (or any TrainConfig JSON), checked."""
    from lab.train.engine import ConfigError, TrainConfig

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"--config {path}: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a JSON object of run settings")
    return TrainConfig.from_dict(data)


def cmd_train(args: argparse.Namespace) -> int:
    config = _config_file(args.config) if args.config else _train_config(args)
    if args.seeds:  # repeats: one run per seed, grouped as one configuration (one seed is a plain run)
        from lab.runs.sweep import describe_plan, parse_seeds, plan_repeats

        configs = plan_repeats(config, parse_seeds(args.seeds))
        if len(configs) > 1:
            print(f"sweep {configs[0].sweep['name']}: {describe_plan(configs)}", flush=True)
            return train_plan(configs, args)
        config = configs[0]
    run_id, result = run_training(config, args.runs_dir, args.data_dir)
    best = result.best
    acc, epoch = (f"{best['val_acc']:.4f}", best["epoch"]) if best else ("nan", 0)
    print(f"run {run_id} {result.status} best_val_acc={acc} epoch={epoch}")
    return EXIT_OK if result.status in ("finished", "stopped") else EXIT_RUN_FAILED


def cmd_lr_find(args: argparse.Namespace) -> int:
    """The loss over a rising learning rate on a run's model, data and optimizer, and the rate it suggests."""
    from lab.insight.tools import write_rows_csv
    from lab.model.spec import load_spec
    from lab.plots.lr_find import lr_find_figure
    from lab.runs.store import RunStore
    from lab.train.engine import TrainConfig
    from lab.train.lr_find import RULES, lr_find

    config = _config_file(args.config) if args.config else TrainConfig.from_dict(dict(
        spec=load_spec(args.spec), dataset=args.dataset, augment=args.augment, batch_size=args.batch_size,
        optimizer=args.optimizer, momentum=args.momentum, weight_decay=args.weight_decay,
        train_limit=args.train_limit, image_size=args.image_size, device=args.device, seed=args.seed))
    source = RunStore(args.runs_dir).source_weights(config.init_from) if config.init_from else None
    result = lr_find(config, args.data_dir, start=args.start, end=args.end, steps=args.steps,
                     rule=args.rule or RULES[0], source=source)
    ending = "where the loss blew up" if result.stopped_early else "the end of the range"
    print(f"{len(result.lrs)} steps from lr {result.lrs[0]:.3g} to {result.lrs[-1]:.3g} ({ending})")
    if args.out:
        write_rows_csv(args.out, result.rows())
        print(f"wrote {args.out}")
    if args.plot:
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        lr_find_figure(result).write_html(args.plot, include_plotlyjs=True)  # the page works offline
        print(f"wrote {args.plot}")
    print(f"suggested lr {result.suggestion:.3g} (rule {result.rule})")
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    from lab.bench.engine import main as bench_main

    return bench_main(args)


def cmd_explain(args: argparse.Namespace) -> int:
    """Heatmap (.npy) and overlay (.png) per image from a run's model; prediction per image."""
    from lab.insight.errors import InsightError
    from lab.insight.tools import explain_run

    try:
        answers, stats = explain_run(args.run, args.images, args.out, method=args.method, layer=args.layer,
                                     target=args.target, epoch=args.epoch, runs_dir=args.runs_dir,
                                     data_dir=args.data_dir, alpha=args.alpha, cmap=args.cmap, device=args.device)
    except InsightError as err:
        raise UsageError(str(err)) from None
    names = stats.classes
    for a in answers:
        true = f"  true {names[a.image.label]}" if a.image.label is not None else ""
        print(f"{a.image.stem}: predicted {names[a.pred]} ({a.confidence:.1%}){true}  heatmap for {names[a.target]}")
    print(f"wrote {len(answers)} heatmaps (.npy) and overlays (.png) to {args.out}")
    return EXIT_OK


def cmd_embed(args: argparse.Namespace) -> int:
    """One epoch's 2-D map of the run's probe as CSV: x, y, label, prediction per point."""
    from lab.insight.errors import InsightError
    from lab.insight.tools import embedding_rows, write_rows_csv

    try:
        rows, epoch, knn = embedding_rows(args.run, args.method, args.epoch, args.runs_dir)
    except InsightError as err:
        raise UsageError(str(err)) from None
    write_rows_csv(args.out, rows)
    print(f"epoch {epoch}: {len(rows)} probe points, k-NN accuracy {knn:.4f}; wrote {args.out}")
    return EXIT_OK


def cmd_mistakes(args: argparse.Namespace) -> int:
    """A run's surest mistakes (or one confusion cell, or its suspected label errors) as rows; with marks,
    a corrected version of its data set, and with --retrain a run on it grouped with the original."""
    from lab.insight.errors import InsightError
    from lab.insight.mistakes import COLUMNS, label_issues, mistakes, suggested_changes
    from lab.runs.compare import rows_to_csv
    from lab.train.device import resolve_device

    for flag, value, low in (("--top", args.top, 1), ("--folds", args.folds, 2), ("--max-images", args.max_images, 2),
                             ("--max-epochs", args.max_epochs, 1)):
        if value < low:
            raise UsageError(f"{flag} must be a whole number of {low} or more, got {value}")
    marked = _marks(args)  # malformed marks are refused before anything is computed
    try:
        device = str(resolve_device(args.device))
    except ValueError as err:
        raise UsageError(str(err)) from None
    try:
        if args.label_issues:
            listing = label_issues(args.run, args.pair, args.top, args.folds, args.max_images, args.max_epochs,
                                   args.runs_dir, args.data_dir, device,
                                   lambda fold, folds: print(f"training fold {fold + 1} of {folds}", file=sys.stderr,
                                                             flush=True))
        else:
            listing = mistakes(args.run, args.pair, args.top, args.checkpoint, args.runs_dir, args.data_dir, device)
    except InsightError as err:
        raise UsageError(str(err)) from None
    print(listing.note, file=sys.stderr)
    if args.format == "json":
        print(json.dumps(listing.rows, indent=1))
    elif args.format == "csv":
        sys.stdout.write(rows_to_csv(listing.rows, COLUMNS))
    else:
        print(mistakes_table(listing.rows))
    if args.drop_suggested or args.relabel_suggested:
        marked = suggested_changes(listing.rows, "drop" if args.drop_suggested else "relabel") + marked
    elif not marked:
        return EXIT_OK
    return _write_and_retrain(args, marked)


def _marks(args: argparse.Namespace) -> list:
    """The images --drop and --relabel name (lab.data.corrections.Change); a bare id is in the split listed."""
    from lab.insight.errors import InsightError
    from lab.insight.mistakes import parse_marks

    if args.drop_suggested and args.relabel_suggested:
        raise UsageError("choose --drop-suggested or --relabel-suggested, not both")
    split = "train" if args.label_issues else "val"
    try:
        marked = [*parse_marks(args.drop, "drop", split), *parse_marks(args.relabel, "relabel", split)]
    except InsightError as err:
        raise UsageError(str(err)) from None
    if args.retrain and not (marked or args.drop_suggested or args.relabel_suggested):
        raise UsageError("--retrain needs corrections: add --drop-suggested, --relabel-suggested, --drop or --relabel")
    return marked


def mistakes_table(rows: list[dict]) -> str:
    """The rows as the terminal shows them: an image's file, or its split and id for a built-in data set."""
    lines = [f"{'image':<36}{'given':<14}{'predicted':<14}{'confidence':>11}{'issue score':>13}"]
    for r in rows:
        image = r["path"] or f"{r['split']}:{r['id']}"
        lines.append(f"{image[-35:]:<36}{r['given'][:13]:<14}{r['predicted'][:13]:<14}{r['confidence']:>11.4f}"
                     f"{r['label_issue_score']:>13.4f}")
    return "\n".join(lines)


def _write_and_retrain(args: argparse.Namespace, changes: list) -> int:
    """Write ``changes`` as a corrections version of the run's data set, then with --retrain train the run's
    settings on it, grouped with the run in one sweep (lab.insight.mistakes.retrain_config)."""
    from lab.insight.mistakes import retrain_config, write_fixes
    from lab.runs.store import open_run

    if not changes:
        raise UsageError("nothing listed to mark: no image matched")
    store, run_id = open_run(args.run, args.runs_dir)
    run = store.get(run_id)
    dataset, count = write_fixes(run, changes, args.data_dir)
    print(f"wrote {count} corrections of {run.config['dataset']}: train on them with --dataset '{dataset}'",
          file=sys.stderr)
    if not args.retrain:
        return EXIT_OK
    retrain = retrain_config(store, run, dataset)
    retrain.group(store, run)
    config = retrain.config
    new_id, result = run_training(config, args.runs_dir, args.data_dir)
    best = result.best
    before = f"{run.best_val_acc:.4f}" if run.best_val_acc is not None else "nan"
    print(f"run {new_id} {result.status} best_val_acc={best['val_acc']:.4f} (before: {before}, run {run.id}); "
          f"sweep {config.sweep['name']}" if best else f"run {new_id} {result.status}: {result.message}")
    return EXIT_OK if result.status in ("finished", "stopped") else EXIT_RUN_FAILED


def cmd_export(args: argparse.Namespace) -> int:
    """One file a student takes away from a run: its code, weights, ONNX model, config or report."""
    from pathlib import Path

    from lab.export.files import ExportError, export_file_name, export_run
    from lab.insight.errors import InsightError
    from lab.runs.store import open_run

    store, run_id = open_run(args.run, args.runs_dir)
    run = store.get(run_id)
    name = export_file_name(run, args.what, args.checkpoint)
    out = Path(args.out or name)
    if out.is_dir() or (args.out or "").endswith("/"):
        out = out / name
    try:
        data = export_run(run, args.what, args.checkpoint, args.data_dir)
    except (ExportError, InsightError) as err:
        raise UsageError(str(err)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    print(f"wrote {out} ({len(data):,} bytes)")
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    from lab.runs.compare import rows_to_csv, run_row
    from lab.runs.store import RunStore

    rows = [run_row(r) for r in RunStore(args.runs_dir).list()]
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    elif args.format == "csv":
        sys.stdout.write(rows_to_csv(rows))
    else:
        print(f"{'id':<23}{'name':<22}{'status':<12}{'dataset':<14}{'spec':<14}{'epochs':>6}{'batch':>6}"
              f"{'best_val_acc':>13}")
        for r in rows:
            acc = f"{r['best_val_acc']:.4f}" if r["best_val_acc"] is not None else "-"
            print(f"{r['id']:<23}{r['name'][:21]:<22}{r['status']:<12}{r['dataset'][:13]:<14}{r['spec'][:13]:<14}"
                  f"{r['epochs']:>6}{r['batch_size']:>6}{acc:>13}")
    return EXIT_OK


def cmd_experiments(args: argparse.Namespace) -> int:
    """The write-ups' experiments: what each trains on, how many runs and epochs, what it compares."""
    from lab.i18n import text
    from lab.runs.experiment import EXPERIMENTS, UPLOAD

    print(f"{'name':<21}{'dataset':<15}{'runs':>5}{'epochs':>8}  description")
    for name, experiment in EXPERIMENTS.items():
        dataset = experiment.dataset if experiment.dataset != UPLOAD else "folder:PATH"
        print(f"{name:<21}{dataset:<15}{len(experiment.runs):>5}{sum(experiment.epochs()):>8}  "
              f"{text(f'experiment.{name}.description')}")
    return EXIT_OK


def _experiment_plan(args: argparse.Namespace) -> list["TrainConfig"]:
    """A named experiment's runs, with their own settings; the flags only set what the write-up leaves open."""
    from lab.runs.experiment import plan_named_experiment
    from lab.runs.sweep import parse_seeds

    seeds = parse_seeds(args.seeds) if args.seeds else [args.seed]
    shared = dict(device=args.device, compile=args.compile, insight=not args.no_insight, probe_size=args.probe_size,
                  owner=args.owner, **({"train_limit": args.train_limit} if args.train_limit else {}))
    return plan_named_experiment(args.experiment, args.dataset, epochs_scale=args.epochs_scale, seeds=seeds,
                                 data_dir=args.data_dir, **shared)


def cmd_sweep(args: argparse.Namespace) -> int:
    """Train every combination (or every run of a named experiment) in turn, then print the summary table."""
    from lab.runs.sweep import AXES, describe_plan, parse_seeds, parse_values, plan_sweep, with_repeats

    if args.experiment:
        configs = _experiment_plan(args)
        print(f"experiment {configs[0].sweep['name']}: {len(configs)} runs on {configs[0].dataset}", flush=True)
    else:
        missing = [SWEEP_FLAGS[dest][0] for dest in SWEEP_REQUIRED if getattr(args, dest) is None]
        if missing and not args.seeds:  # with --seeds, one configuration repeated is a sweep too
            raise UsageError(f"a sweep needs {' and '.join(missing)} (or --experiment NAME: python -m lab experiments)")
        texts = {axis: str(TRAIN_DEFAULTS[axis]) if getattr(args, axis) is None else getattr(args, axis)
                 for axis in AXES}
        values = {axis: parse_values(axis, text) for axis, text in texts.items()}
        base = _train_config(args, **{axis: listed[0] for axis, listed in values.items()},
                             dataset=args.dataset or DEFAULT_DATASET, name="")
        configs = plan_sweep(base, values, args.name)
        if args.seeds:
            configs = with_repeats(configs, parse_seeds(args.seeds))
        print(f"sweep {configs[0].sweep['name']}: {describe_plan(configs)}", flush=True)
    return train_plan(configs, args)


def train_plan(configs: list["TrainConfig"], args: argparse.Namespace) -> int:
    """Train the planned runs in turn, then print the summary: a line per run, or per configuration with
    mean ± std when repeated. Exit 1 when any run did not finish."""
    from lab.runs.compare import aggregate_rows
    from lab.runs.store import RunStore
    from lab.runs.sweep import summarize_sweep

    if getattr(args, "executor", "local") == "ray":
        run_ids = train_on_ray(configs, args)
    else:
        run_ids = []
        for position, config in enumerate(configs, 1):
            print(f"[{position}/{len(configs)}] {config.name}", flush=True)
            run_ids.append(run_training(config, args.runs_dir, args.data_dir)[0])
    store = RunStore(args.runs_dir)
    rows = summarize_sweep(store.get(run_id) for run_id in run_ids)
    print(f"\nsweep {configs[0].sweep['name']} ({configs[0].sweep['id']})")
    print(repeats_table(aggregate_rows(rows)) if configs[0].sweep.get("repeats") else sweep_table(rows))
    return EXIT_OK if all(r["status"] == "finished" for r in rows) else EXIT_RUN_FAILED


def train_on_ray(configs: list["TrainConfig"], args: argparse.Namespace) -> list[str]:
    """Queue every planned run on the Ray cluster at once (lab.jobs.ray_executor) and wait for all; a line
    per run as it ends, in the order they end."""
    from lab.jobs import JobManager

    if args.ray_address:
        os.environ["LAB_RAY_ADDRESS"] = args.ray_address
    manager = JobManager(args.runs_dir, args.data_dir, executor="ray")
    run_ids = manager.submit_all(configs)
    print(f"queued {len(run_ids)} runs on Ray, {manager.executor.slots()} at once", flush=True)
    pending = dict(zip(run_ids, configs))
    while pending:
        for run_id in [r for r in pending if r not in manager.jobs]:
            state = manager.state(run_id)
            best = f" best_val_acc={state.best['val_acc']:.4f}" if state.best else ""
            print(f"[{len(run_ids) - len(pending) + 1}/{len(run_ids)}] {pending.pop(run_id).name}: "
                  f"{state.status}{best}", flush=True)
        time.sleep(0.2)
    return run_ids


def _cell(value, fmt: str = "") -> str:
    return "-" if value is None else format(value, fmt)


FINAL_COLUMNS = {"final_train_loss": "train_loss", "final_train_acc": "train_acc", "final_val_loss": "val_loss",
                 "final_val_acc": "val_acc"}  # the last epoch's numbers, under the names the epoch lines use


def _settings(r: dict) -> str:
    return f"{r['batch_size']:>6}{r['epochs']:>7}{r['lr']:>9g}  {r['optimizer']:<10}{r['augment'][:14]:<15}"


SETTINGS_HEADER = f"{'batch':>6}{'epochs':>7}{'lr':>9}  {'optimizer':<10}{'augment':<15}"


def sweep_table(rows: list[dict]) -> str:
    """The summary as the write-ups print it: one line per combination, best accuracy and its epoch, the last
    epoch's losses and accuracies, seconds per epoch."""
    lines = [SETTINGS_HEADER + f"{'best_val_acc':>13}{'best_epoch':>11}"
             + "".join(f"{title:>11}" for title in FINAL_COLUMNS.values()) + f"{'s/epoch':>9}  {'status':<10}run"]
    for r in rows:
        lines.append(_settings(r) + f"{_cell(r['best_val_acc'], '.4f'):>13}{_cell(r['best_epoch']):>11}"
                     + "".join(f"{_cell(r[column], '.4f'):>11}" for column in FINAL_COLUMNS)
                     + f"{_cell(r['seconds_per_epoch'], '.2f'):>9}  {r['status']:<10}{r['name']}")
    return "\n".join(lines)


def repeats_table(rows: list[dict]) -> str:
    """The summary of repeated configurations (``lab.runs.compare.aggregate_rows``): one line each, with the
    number of runs and every result as mean ± sample standard deviation over them."""
    from lab.runs.compare import with_spread

    def spread(column: str, fmt: str) -> str:
        return with_spread(r[column], r[f"{column}_std"], fmt)

    lines = [SETTINGS_HEADER + f"{'n':>3}{'best_val_acc':>18}{'best_epoch':>14}"
             + "".join(f"{title:>16}" for title in FINAL_COLUMNS.values()) + f"{'s/epoch':>14}  {'status':<10}run"]
    for r in rows:
        lines.append(_settings(r) + f"{r['n']:>3}{spread('best_val_acc', '.4f'):>18}{spread('best_epoch', '.1f'):>14}"
                     + "".join(f"{spread(column, '.3f'):>16}" for column in FINAL_COLUMNS)
                     + f"{spread('seconds_per_epoch', '.2f'):>14}  {r['status']:<10}{r['name']}")
    return "\n".join(lines)


def _add_train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", default="fashion_cnn", help="preset name or spec JSON file")
    p.add_argument("--dataset", default=DEFAULT_DATASET)
    p.add_argument("--epochs", type=int, default=TRAIN_DEFAULTS["epochs"])
    p.add_argument("--batch-size", type=int, default=TRAIN_DEFAULTS["batch_size"])
    p.add_argument("--optimizer", default="adam", help="adam | adamw | sgd | rmsprop | adagrad")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--momentum", type=float, default=0.9, help="sgd and rmsprop: share of the last step kept (0-0.99)")
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=True,
                   help="sgd: take the gradient where the momentum is heading (needs --momentum above 0)")
    p.add_argument("--init", default="default",
                   help="how conv and dense weights start: default (PyTorch's) | kaiming (He, for ReLU) | xavier "
                        "(Glorot) | normal (std 0.01) | zeros (nothing learns: try it); a layer's own init wins")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", default="none", help="none | step | cosine | onecycle")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--augment", default="none", help="preset name or JSON, e.g. '{\"hflip\": 0.5}'")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", default="", metavar="LIST",
                   help="comma-separated seeds, e.g. 0,1,2: each its own run (NAME-s0, NAME-s1...), grouped as one "
                        "configuration with a mean and spread (replaces --seed)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--train-limit", type=int, default=0, help="train on the first N images only")
    p.add_argument("--image-size", type=int, default=0, metavar="N",
                   help="longer side of the images, at most N px (8-224; default 0: the data set's own, "
                        "a folder's fitted into 64); never enlarged")
    p.add_argument("--init-from", default="", metavar="RUN",
                   help="start from the best weights of this run (id, id prefix or name): layers of the same "
                        "name and shape are copied, the rest start fresh")
    p.add_argument("--freeze", default="", metavar="NAMES",
                   help="comma-separated layers that do not train (e.g. conv2d_1,conv2d_2), or all_but_output, "
                        "or loaded (the layers --init-from copied)")
    p.add_argument("--no-insight", action="store_true", help="do not record the feature-space probe and CAM samples")
    p.add_argument("--probe-size", type=int, default=1000, help="probe images from the val split (default 1000)")
    p.add_argument("--name", default="")
    p.add_argument("--owner", default="cli")


# Sweep options replace the train option of the same field (--batch-size stays as an alias): lists, not values.
SWEEP_FLAGS = {"batch_size": ("--batch-sizes", "--batch-size"), "epochs": ("--epochs",), "lr": ("--lrs", "--lr"),
               "optimizer": ("--optimizers", "--optimizer"), "augment": ("--augments", "--augment")}
SWEEP_REQUIRED = ("batch_size", "epochs")


def _add_sweep_options(p: argparse.ArgumentParser) -> None:
    """Every train option, the swept ones as comma-separated lists (``p`` must resolve option conflicts)."""
    _add_train_options(p)
    for dest, flags in SWEEP_FLAGS.items():
        default = p.get_default(dest)
        required = dest in SWEEP_REQUIRED  # checked by cmd_sweep: --experiment needs neither
        help_text = "comma-separated values" + (" (required without --experiment)" if required
                                                else f" (default {default})")
        if dest == "augment":
            help_text += "; preset names, or one JSON object"
        p.add_argument(*flags, dest=dest, default=None if required else str(default), metavar="LIST", help=help_text)
    p.add_argument("--name", default="", help="sweep name; runs are named NAME-bs32-ep30 (default SPEC-DATASET)")
    p.add_argument("--dataset", default=None,
                   help=f"default {DEFAULT_DATASET}; with --experiment, the write-up's own (a folder:PATH for galaxy)")
    p.add_argument("--experiment", default="", metavar="NAME",
                   help="run a write-up's experiment (python -m lab experiments lists them) with its own settings; "
                        "only --dataset, --epochs-scale, --seed(s), --train-limit, --device and --no-insight apply")
    p.add_argument("--epochs-scale", type=float, default=1.0, metavar="F",
                   help="with --experiment: every run's epochs times F (above 0, at most 1), e.g. 0.1 for a demo")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: one run after another in this process; ray: every run at once as far as the Ray "
                        "cluster's resources go (LAB_RAY_GPUS_PER_RUN, LAB_RAY_CPUS_PER_RUN)")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="with --executor ray: local (a head on loopback, the default), auto, or ray://host:10001")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lab", description="CNN Lab, headless.")
    parser.add_argument("--data-dir", default=None, help=f"datasets dir (default {settings.data_dir()})")
    parser.add_argument("--runs-dir", default=None, help=f"runs dir (default {settings.runs_dir()})")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("datasets", help="list datasets and whether they are available")
    p.add_argument("--download", metavar="NAME",
                   help="download mnist, fashion-mnist or cifar10 into the data dir (LAB_DATA_MIRROR: another host)")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("summary", help="layer table of a spec: output shapes and parameters")
    p.add_argument("spec", help="preset name or spec JSON file")
    p.add_argument("--dataset", help="use this dataset's input shape and classes")
    p.add_argument("--input", metavar="C,H,W", help="input shape, e.g. 3,224,224 (replaces the spec's and --dataset's)")
    p.add_argument("--classes", type=int, metavar="N", help="number of classes (replaces the spec's and --dataset's)")
    p.add_argument("--teach", action="store_true",
                   help="also each layer's receptive field, and each conv's weights without sharing and as dense")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("models", help="pretrained backbones: size, stages and whether their weights are here")
    p.add_argument("--download", metavar="NAME", help="fetch a torchvision model's ImageNet weights (needs internet)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("train", help="train a spec on a dataset, one line per epoch")
    _add_train_options(p)
    p.add_argument("--config", default=None,
                   help="a run's settings as JSON (lab export --what config); the other options are ignored")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("lr-find", help="the loss over a rising learning rate, and a suggested rate to train at")
    p.add_argument("--spec", default="fashion_cnn", help="preset name or spec JSON file")
    p.add_argument("--dataset", default=DEFAULT_DATASET)
    p.add_argument("--augment", default="none", help="preset name or JSON, as for train")
    p.add_argument("--batch-size", type=int, default=TRAIN_DEFAULTS["batch_size"])
    p.add_argument("--optimizer", default="adam", help="adam | adamw | sgd | rmsprop | adagrad")
    p.add_argument("--momentum", type=float, default=0.9, help="sgd and rmsprop")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--train-limit", type=int, default=0, help="draw batches from the first N images only")
    p.add_argument("--image-size", type=int, default=0, metavar="N", help="as for train")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", default=None,
                   help="a run's settings as JSON (lab export --what config) instead of the options above")
    p.add_argument("--steps", type=int, default=200, help="optimizer steps, one rate each (20-1000)")
    p.add_argument("--start", type=float, default=1e-7, help="the first rate")
    p.add_argument("--end", type=float, default=10.0, help="the last rate, unless the loss blows up first")
    p.add_argument("--rule", default=None,
                   help="steepest (the default: where the loss falls fastest) | valley (fastai's, more cautious)")
    p.add_argument("--out", default=None, metavar="FILE.csv", help="the curve: step, lr, loss, smoothed_loss")
    p.add_argument("--plot", default=None, metavar="FILE.html", help="the curve as an interactive page")
    p.set_defaults(func=cmd_lr_find)

    p = sub.add_parser("bench", help="engine vs a plain PyTorch loop: images/s, time split, memory")
    p.add_argument("--quick", action="store_true", help="short run (under a minute on 2 CPU cores)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument("--workers", type=int, default=None, help="baseline DataLoader workers (default 2)")
    p.add_argument("--time-to-accuracy", action="store_true", help="time a preset to its target on real data")
    p.add_argument("--transfer", action="store_true",
                   help="a pretrained backbone (frozen, fine-tuned) vs from-scratch presets on 500 CIFAR-10 images")
    p.add_argument("--size", type=int, default=224, help="for --transfer: the side the backbone sees")
    p.add_argument("--dataset", default=None,
                   help="for --time-to-accuracy: fashion-mnist | cifar10, timed with its usual preset (fashion_cnn, "
                        "cifar_vgg); for --class: the quick start's data set (default fashion-mnist)")
    p.add_argument("--preset", default=None,
                   help="for --time-to-accuracy: fashion_cnn | cifar_vgg | speedrun (default: the dataset's)")
    p.add_argument("--live-ui", action="store_true",
                   help="images/s of a run with the Train page open vs closed (browser sharing the server's cores, "
                        "then on its own), and the server's memory "
                        "(needs playwright and /usr/bin/chromium)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (--live-ui: default 4, --class: 1)")
    p.add_argument("--class", dest="class_size", type=int, default=None, metavar="N",
                   help="N students (try 40) each start the Fashion-MNIST quick start at once: time until every "
                        "run finished, waits before training, the server's memory, per executor")
    p.add_argument("--executor", default="local,ray", help="for --class: local, ray or both (local,ray)")
    p.add_argument("--train-limit", type=int, default=0, help="for --class: training images per run (0 = all)")
    p.add_argument("--concurrent", type=int, default=0,
                   help="for --class: runs training at once (0 = LAB_CONCURRENT_RUNS, else the executor's default)")
    p.add_argument("--minutes", type=float, default=0.0,
                   help="for --live-ui: keep a page watching back-to-back runs this long (memory growth)")
    p.add_argument("--film", action="store_true",
                   help="the training film played at full speed in headless chromium: the browser's CPU per frame "
                        "and frames/s, on a synthetic 30-epoch film or --run's (needs playwright and chromium)")
    p.add_argument("--run", default=None, help="for --film: this run's film (id, name or folder)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("sweep", conflict_handler="resolve",
                       help="train every combination of batch sizes x epochs (x lrs, optimizers, augments)")
    _add_sweep_options(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("experiments", help="the write-ups' experiments, to run with sweep --experiment NAME")
    p.set_defaults(func=cmd_experiments)

    p = sub.add_parser("runs", help="list runs")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("explain", help="class activation heatmaps of a run's model for image files")
    p.add_argument("run", help="run id, id prefix or name, or a run folder")
    p.add_argument("--images", required=True, metavar="PATH",
                   help="folder of image files, or dataset:NAME for one validation image per class")
    p.add_argument("--method", default="gradcam", help="cam | gradcam | gradcam++ | scorecam | eigencam")
    p.add_argument("--layer", default=None, help="layer name, e.g. conv2d_2 (default: the method's own)")
    p.add_argument("--target", default="pred", help="pred | true | CLASS (name or index)")
    p.add_argument("--epoch", default="best", help="N | best | last")
    p.add_argument("--alpha", type=float, default=0.5, help="heatmap opacity in the overlay")
    p.add_argument("--cmap", default="jet", help="jet | viridis | inferno | gray")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True, metavar="DIR")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("embed", help="2-D map of a run's probe features as CSV (x, y, label, prediction)")
    p.add_argument("run", help="run id, id prefix or name, or a run folder")
    p.add_argument("--method", default="pca", help="pca | tsne | umap")
    p.add_argument("--epoch", type=int, default=None, help="recorded epoch, 0 = untrained (default: the last)")
    p.add_argument("--out", required=True, metavar="FILE.csv")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("mistakes", help="a run's surest mistakes or suspected label errors; mark them dropped or "
                                        "relabelled in a corrected copy of its data, and retrain on it")
    p.add_argument("run", help="run id, id prefix or name, or a run folder")
    p.add_argument("--pair", default=None, metavar="TRUE,PRED",
                   help="one confusion-matrix cell: true (given) class, predicted class, as names or numbers")
    p.add_argument("--label-issues", action="store_true",
                   help="training images whose label looks wrong (confident learning on out-of-sample probabilities "
                        "from k-fold training with the run's settings) instead of validation mistakes")
    p.add_argument("--top", type=int, default=20, metavar="N", help="rows listed (default 20)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--checkpoint", default="best", help="for validation mistakes: best | last | N")
    # The defaults are lab.insight.mistakes' DEFAULT_FOLDS, MAX_IMAGES and MAX_EPOCHS, without importing it for --help.
    p.add_argument("--folds", type=int, default=4, help="for --label-issues: k of the k-fold training (default 4)")
    p.add_argument("--max-images", type=int, default=6000, metavar="N",
                   help="for --label-issues: training images scored at most (the run's own, classes in turn)")
    p.add_argument("--max-epochs", type=int, default=5, metavar="N",
                   help="for --label-issues: epochs per fold at most (the run's own when fewer)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    p.add_argument("--drop-suggested", action="store_true", help="drop every listed image (a corrected copy)")
    p.add_argument("--relabel-suggested", action="store_true", help="relabel every listed image as its predicted class")
    p.add_argument("--drop", default="", metavar="IDS",
                   help="images to drop, e.g. train:12,val:3 (a bare id is in the listed split)")
    p.add_argument("--relabel", default="", metavar="ID=CLASS,...", help="images to relabel, e.g. train:12=circle")
    p.add_argument("--retrain", action="store_true",
                   help="train the run's settings on the corrected data, grouped with the run in a sweep for Compare")
    p.set_defaults(func=cmd_mistakes)

    p = sub.add_parser("export", help="a run as PyTorch code, weights, ONNX, config JSON or an HTML report")
    p.add_argument("run", help="run id, id prefix or name, or a run folder")
    p.add_argument("--what", required=True, choices=("code", "weights", "onnx", "config", "report"),
                   help="code: model + training loop (.py); weights: state_dict (.pt); onnx; "
                        "config: the run's settings (.json); report: one offline HTML page")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"),
                   help="for weights, onnx and report (default best)")
    p.add_argument("--out", default=None, metavar="PATH",
                   help="file or existing folder (default: a file named after the run, here)")
    p.set_defaults(func=cmd_export)
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
    from lab.data import DatasetError
    from lab.model.layers import SpecError
    from lab.runs.store import RunNotFound
    from lab.train.augment import AugmentError
    from lab.train.engine import ConfigError

    args = build_parser().parse_args(_shared_options(list(sys.argv[1:] if argv is None else argv)))
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (SpecError, DatasetError, ConfigError, AugmentError, RunNotFound, UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
