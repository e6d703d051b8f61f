"""``python -m lab bench``: the lab engine against a plain PyTorch tutorial loop.

Both sides train the same model on the same number of images of the same shape,
with the same batch size and augmentation, in one process, one after the other:

1. the lab engine (``Trainer``): uint8 data resident on the device, batched
   on-device augmentation, device-side metrics; bf16 + channels_last on CUDA;
2. the baseline tutorials write: a Dataset of PIL images with per-sample
   torchvision ``transforms``, a shuffling ``DataLoader`` with worker processes,
   fp32.

Synthetic images are enough for throughput. ``--time-to-accuracy`` instead
trains a preset on real data until it reaches a target test accuracy; ``--class N``
(lab.bench.class_load) has N students start the same run at once through the server's queue.
"""

from __future__ import annotations

import json
import os
import resource
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lab.data import Dataset, load_dataset
from lab.model.presets import get_preset, get_preset_info
from lab.train.augment_ops import augment_batch
from lab.train.device import describe_device, resolve_device
from lab.train.engine import Callback, ConfigError, TrainConfig, Trainer


@dataclass(frozen=True)
class BenchCase:
    preset: str
    shape: tuple[int, int, int]
    augment: str
    batch_size: int = 128


CASES = (BenchCase("fashion_cnn", (1, 28, 28), "keras_basic"), BenchCase("cifar_vgg", (3, 32, 32), "keras_basic"))

# Time-to-accuracy recipes, by preset: its dataset, the target the issue sets, and settings
# on top of the preset's own (speedrun's are in the preset, so the app trains it the same way).
TTA_RECIPES = {
    "fashion_cnn": dict(dataset="fashion-mnist", target=0.91, train=dict(
        epochs=8, batch_size=256, optimizer="adam", lr=3e-3, schedule="onecycle", augment="none")),
    "cifar_vgg": dict(dataset="cifar10", target=0.80, train=dict(
        epochs=30, batch_size=256, optimizer="adam", lr=3e-3, schedule="onecycle", augment="keras_basic")),
    "speedrun": dict(dataset="cifar10", target=0.93, train={}),
}
DEFAULT_TTA_PRESET = {"fashion-mnist": "fashion_cnn", "cifar10": "cifar_vgg"}


def synthetic_dataset(shape: tuple[int, int, int], n_train: int, n_val: int, classes: int = 10) -> Dataset:
    g = torch.Generator().manual_seed(0)
    make = lambda n: torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=g)  # noqa: E731
    labels = lambda n: torch.randint(0, classes, (n,), generator=g)  # noqa: E731
    return Dataset(f"synthetic-{'x'.join(map(str, shape))}", [str(i) for i in range(classes)],
                   make(n_train), labels(n_train), make(n_val), labels(n_val))


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def engine_throughput(case: BenchCase, ds: Dataset, device: str, augment: str, epochs: int,
                      cuda_graph: bool = True) -> dict:
    """Images/s of the Trainer over ``epochs`` epochs (the first is a warm-up on CUDA)."""
    config = TrainConfig(spec=get_preset(case.preset), dataset=ds.name, augment=augment, epochs=epochs,
                         batch_size=case.batch_size, device=device, lr=1e-3, cuda_graph=cuda_graph)
    trainer = Trainer(config, dataset=ds)
    result = trainer.run()
    if result.status != "finished":
        raise RuntimeError(f"engine run {result.status}: {result.message}")
    timed = result.history[1:] if len(result.history) > 1 else result.history
    train_s = sum(m["train_seconds"] for m in timed)
    eval_s = sum(m["seconds"] - m["train_seconds"] for m in timed)
    images = len(ds.train_y) // case.batch_size * case.batch_size * len(timed)
    return {"images_per_sec": images / train_s, "eval_seconds_per_epoch": eval_s / len(timed)}


def engine_time_split(case: BenchCase, ds: Dataset, device: str, steps: int = 30) -> dict:
    """Seconds per batch in each phase, synchronising between phases (so only for the split)."""
    config = TrainConfig(spec=get_preset(case.preset), dataset=ds.name, augment=case.augment, epochs=1,
                         batch_size=case.batch_size, device=device)
    trainer = Trainer(config, dataset=ds)
    trainer._setup()
    dev, totals = trainer.device, {"data_augment": 0.0, "forward_backward": 0.0, "optimizer": 0.0}
    for step in range(steps + 3):  # three warm-up steps
        idx = torch.randint(0, len(trainer.train_y), (case.batch_size,), device=dev)
        t0 = time.perf_counter()
        x, targets = augment_batch(trainer.prepare(trainer.train_x[idx]), trainer.train_y[idx], trainer.augment,
                                   ds.num_classes, trainer.generator)
        x = trainer.normalize(x)
        _sync(dev)
        t1 = time.perf_counter()
        with trainer.autocast():
            loss = F.cross_entropy(trainer.forward(x).float(), targets)
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        _sync(dev)
        t2 = time.perf_counter()
        trainer.optimizer.step()
        _sync(dev)
        t3 = time.perf_counter()
        if step >= 3:
            for key, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2)):
                totals[key] += dt / steps
    return totals


class _PILDataset(torch.utils.data.Dataset):
    """What tutorials write: PIL images, per-sample transforms in ``__getitem__``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        from PIL import Image

        mode = "L" if images.shape[1] == 1 else "RGB"
        self.images = [Image.fromarray(im.squeeze(0).numpy() if mode == "L" else im.permute(1, 2, 0).numpy(), mode)
                       for im in images]
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), self.labels[i]


def baseline_throughput(case: BenchCase, ds: Dataset, device: str, epochs: int, workers: int) -> dict:
    """Images/s of the tutorial loop: DataLoader + per-sample transforms, fp32."""
    from torchvision import transforms

    from lab.model.spec import build_model

    dev = resolve_device(device)
    mean, std = ds.channel_stats()
    transform = transforms.Compose([
        transforms.RandomRotation(15), transforms.RandomAffine(0, translate=(0.1, 0.1)),
        transforms.RandomHorizontalFlip(), transforms.ToTensor(), transforms.Normalize(mean, std)])
    loader = torch.utils.data.DataLoader(_PILDataset(ds.train_x, ds.train_y, transform), batch_size=case.batch_size,
                                         shuffle=True, num_workers=workers, drop_last=True,
                                         pin_memory=dev.type == "cuda", persistent_workers=workers > 0)
    model = build_model(get_preset(case.preset), ds.shape, ds.num_classes).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    seconds, images = 0.0, 0
    for epoch in range(epochs):
        _sync(dev)
        started = time.perf_counter()
        for x, y in loader:
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if epoch or epochs == 1:
                images += len(y)
        _sync(dev)
        if epoch or epochs == 1:  # first epoch warms up workers and cuDNN when there are several
            seconds += time.perf_counter() - started
    return {"images_per_sec": images / seconds}


def run_throughput(quick: bool, device: str, workers: int) -> dict:
    """All cases, engine with and without augmentation, and the baseline."""
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    n_train = (4096 if quick else 20480) if not cuda else (10240 if quick else 50000)
    epochs = 2 if cuda else 1
    report = {"device": describe_device(dev), "date": time.strftime("%Y-%m-%d"), "cases": []}
    for case in CASES:
        ds = synthetic_dataset(case.shape, n_train, 2048)
        if cuda:
            torch.cuda.reset_peak_memory_stats(dev)
        engine = engine_throughput(case, ds, device, case.augment, epochs)
        engine_plain = engine_throughput(case, ds, device, "none", epochs)
        # on CUDA, the same engine with every kernel launched from Python: what the graph saves
        engine_eager = engine_throughput(case, ds, device, case.augment, epochs, cuda_graph=False) if cuda else None
        split = engine_time_split(case, ds, device)
        peak = peak_memory_mb(dev)
        baseline = baseline_throughput(case, ds, device, epochs, workers)
        report["cases"].append({
            "preset": case.preset, "shape": list(case.shape), "augment": case.augment,
            "batch_size": case.batch_size, "images": n_train,
            "engine_images_per_sec": engine["images_per_sec"],
            "engine_no_augment_images_per_sec": engine_plain["images_per_sec"],
            "engine_no_graph_images_per_sec": engine_eager and engine_eager["images_per_sec"],
            "augment_cost": 1 - engine["images_per_sec"] / engine_plain["images_per_sec"],
            "eval_seconds_per_epoch": engine["eval_seconds_per_epoch"],
            "time_split_ms": {k: v * 1000 for k, v in split.items()},
            "peak_memory_mb": peak,
            "baseline_images_per_sec": baseline["images_per_sec"],
            "speedup": engine["images_per_sec"] / baseline["images_per_sec"],
        })
    report["speedup"] = min(c["speedup"] for c in report["cases"])
    return report


class _TargetReached(Callback):
    def __init__(self, target: float):
        self.target, self.reached_at = target, None

    def on_run_start(self, trainer):
        self.started = time.perf_counter()

    def on_epoch_end(self, trainer, metrics):
        if metrics["val_acc"] >= self.target and self.reached_at is None:
            self.reached_at = (time.perf_counter() - self.started, metrics["epoch"])
            trainer.stop()


def tta_recipe(dataset: str | None, preset: str | None) -> tuple[str, dict]:
    """The preset and recipe to time: a preset names its own dataset, a dataset its usual preset."""
    name = preset or DEFAULT_TTA_PRESET.get(dataset or "", "")
    if name not in TTA_RECIPES:
        raise ConfigError(f"no time-to-accuracy recipe for {preset or dataset!r}; "
                         f"use --preset {' | '.join(TTA_RECIPES)} or --dataset {' | '.join(DEFAULT_TTA_PRESET)}")
    recipe = TTA_RECIPES[name]
    if dataset and dataset != recipe["dataset"]:
        raise ConfigError(f"preset {name} is timed on {recipe['dataset']}, not {dataset}")
    return name, recipe


def run_time_to_accuracy(dataset: str | None, device: str, data_dir=None, preset: str | None = None) -> dict:
    """Train a recipe on real data until its target test accuracy; wall-clock to that epoch.

    The clock starts when the run starts: loading the dataset (once per server process
    in the app) is reported apart as ``load_seconds``.
    """
    preset, recipe = tta_recipe(dataset, preset)
    dataset = recipe["dataset"]
    started = time.perf_counter()
    ds = load_dataset(dataset, data_dir)
    load_s = time.perf_counter() - started
    info = get_preset_info(preset)
    settings = {"augment": info.augment, **info.train, **recipe["train"]}
    config = TrainConfig(spec=info.spec, dataset=dataset, device=device, **settings)
    probe = _TargetReached(recipe["target"])
    result = Trainer(config, [probe], dataset=ds).run()
    return {"dataset": dataset, "preset": preset, "target": recipe["target"], "device": describe_device(),
            "load_seconds": load_s, "reached": probe.reached_at is not None,
            "seconds_to_target": probe.reached_at[0] if probe.reached_at else None,
            "epoch": probe.reached_at[1] if probe.reached_at else None,
            "best_val_acc": result.best["val_acc"] if result.best else None,
            "epochs_run": len(result.history), "status": result.status,
            "seconds_per_epoch": [round(m["seconds"], 3) for m in result.history]}


def format_throughput(report: dict) -> str:
    lines = [f"device: {report['device']}  ({report['date']})"]
    for c in report["cases"]:
        split = ", ".join(f"{k} {v:.2f} ms" for k, v in c["time_split_ms"].items())
        lines += [
            f"{c['preset']} {'x'.join(map(str, c['shape']))} augment={c['augment']} batch={c['batch_size']} "
            f"images={c['images']:,}",
            f"  engine   {c['engine_images_per_sec']:>10,.0f} img/s   (no augmentation "
            f"{c['engine_no_augment_images_per_sec']:,.0f} img/s, augmentation costs {c['augment_cost']:.1%})",
            *([f"  engine   {c['engine_no_graph_images_per_sec']:>10,.0f} img/s   without the CUDA graph "
               "(every kernel launched from Python)"] if c["engine_no_graph_images_per_sec"] else []),
            f"  baseline {c['baseline_images_per_sec']:>10,.0f} img/s   (PIL + transforms + DataLoader, fp32)",
            f"  engine time per batch, eager and synchronised per phase: {split}; eval {c['eval_seconds_per_epoch']:.2f} s/epoch; "
            f"peak memory {c['peak_memory_mb']:,.0f} MB",
            f"  speedup {c['speedup']:.2f}x",
        ]
    lines.append(f"speedup vs baseline: {report['speedup']:.2f}x")
    return "\n".join(lines)


def main(args) -> int:
    if args.class_size is not None:
        from lab.bench.class_load import ClassLoad, format_class, run_class_bench

        load = ClassLoad(args.class_size, args.dataset or "fashion-mnist", 1 if args.epochs is None else args.epochs,
                         args.train_limit, args.concurrent, args.data_dir)
        report = run_class_bench(load, [name.strip() for name in args.executor.split(",") if name.strip()])
        print(json.dumps(report, indent=1) if args.json else format_class(report))
        return 1 if any("error" in r for r in report["executors"]) else 0
    if args.live_ui:
        from lab.bench.live_ui import format_live, run_live_bench

        report = run_live_bench(4 if args.epochs is None else args.epochs, args.minutes)
        print(json.dumps(report, indent=1) if args.json else format_live(report))
        return 0
    if args.film:
        from lab.bench.film import format_film, run_film_bench

        report = run_film_bench(args.run, args.runs_dir, args.data_dir)
        print(json.dumps(report, indent=1) if args.json else format_film(report))
        return 0
    if args.transfer:
        from lab.bench.transfer import format_transfer, run_transfer_bench

        report = run_transfer_bench(args.device, args.data_dir, args.size)
        print(json.dumps(report, indent=1) if args.json else format_transfer(report))
        return 0
    if args.time_to_accuracy:
        report = run_time_to_accuracy(args.dataset, args.device, args.data_dir, args.preset)
        print(json.dumps(report, indent=1) if args.json else
              f"{report['preset']} on {report['dataset']}: target {report['target']:.0%} "
              + (f"reached in {report['seconds_to_target']:.1f} s (epoch {report['epoch']})" if report["reached"]
                 else f"not reached (best {report['best_val_acc']:.4f} in {report['epochs_run']} epochs, "
                      f"{sum(report['seconds_per_epoch']):.1f} s)")
              + f" on {report['device']}; loading the data took {report['load_seconds']:.1f} s")
        return 0
    workers = args.workers if args.workers is not None else min(2, os.cpu_count() or 1)
    report = run_throughput(args.quick, args.device, workers)
    print(json.dumps(report, indent=1) if args.json else format_throughput(report))
    if args.json:
        print(f"speedup vs baseline: {report['speedup']:.2f}x")
    return 0
