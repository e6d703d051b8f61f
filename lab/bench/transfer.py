"""``python -m lab bench --transfer``: pretrained features against training from scratch, on few images.

The galaxy write-up's question, measured: with 500 training images (50 per class of
CIFAR-10, the folder copy in ../shared/data) and 2,000 test images, how far do

1. the best of a few from-scratch presets get,
2. a frozen ImageNet backbone with a new head (only the head trains),
3. the same backbone fine-tuned end to end, and
4. the same frozen probe on randomly initialised weights (is it the weights, or the architecture?)

Every run goes through the lab's own Trainer, as a run from the Train page would,
on the same 500/2,000 images; the report gives best test accuracy and seconds per
epoch for each, side by side in one process.
"""

from __future__ import annotations

import time

from lab.data import Dataset, load_dataset
from lab.data.dataset import classes_in_turn
from lab.model.budget import batch_that_fits
from lab.model.presets import get_preset_info
from lab.model.spec import summarize
from lab.runs.experiment import BACKBONE, backbone_spec
from lab.train.device import describe_device
from lab.train.engine import TrainConfig, Trainer

SCRATCH_PRESETS = ("cifar_vgg", "mini_resnet", "gap_cam")


def few_images(ds: Dataset, train_per_class: int, test_per_class: int) -> Dataset:
    """A class-balanced subset, as a train limit picks it (lab.data.dataset.classes_in_turn)."""
    train = classes_in_turn(ds.train_y, train_per_class * ds.num_classes)
    test = classes_in_turn(ds.val_y, test_per_class * ds.num_classes)
    return Dataset(f"{ds.name}-{len(train)}", ds.classes, ds.train_x[train].contiguous(), ds.train_y[train],
                   ds.val_x[test].contiguous(), ds.val_y[test])


def _run(label: str, config: TrainConfig, ds: Dataset) -> dict:
    started = time.perf_counter()
    result = Trainer(config, [], dataset=ds).run()
    epochs = [m["seconds"] for m in result.history]
    return {"run": label, "best_val_acc": result.best["val_acc"] if result.best else None,
            "final_val_acc": result.history[-1]["val_acc"] if result.history else None,
            "epochs": len(epochs), "seconds_per_epoch": sum(epochs) / max(len(epochs), 1),
            "seconds": time.perf_counter() - started}


def _scratch_config(preset: str, ds: Dataset, device: str, epochs: int) -> TrainConfig:
    info = get_preset_info(preset)
    settings = {"augment": info.augment, **info.train, "epochs": epochs, "batch_size": 64}
    return TrainConfig(spec=info.spec, dataset=ds.name, device=device, insight=False, **settings)


def _transfer_config(spec: dict, ds: Dataset, device: str, epochs: int, lr: float) -> TrainConfig:
    """Adam with a cosine schedule, batch 64 or what this server's activation limit lets a 224 px backbone
    train at (fine-tuning keeps every map of the backbone for backward)."""
    batch = batch_that_fits(summarize(spec, ds.shape, ds.num_classes), 64, backward=True)
    return TrainConfig(spec=spec, dataset=ds.name, device=device, insight=False, epochs=epochs, batch_size=batch,
                       optimizer="adam", lr=lr, schedule="cosine", augment="cifar_standard")


def run_transfer_bench(device: str = "auto", data_dir=None, size: int = 224, scratch_epochs: int = 30,
                       transfer_epochs: int = 8, train_per_class: int = 50, test_per_class: int = 200) -> dict:
    """Train the four kinds of run on the same few images; accuracies, times and the margins the issue asks."""
    ds = few_images(load_dataset("cifar10", data_dir), train_per_class, test_per_class)
    scratch = [_run(preset, _scratch_config(preset, ds, device, scratch_epochs), ds) for preset in SCRATCH_PRESETS]
    transfer = [
        _run("frozen ImageNet backbone + new head",
             _transfer_config(backbone_spec("imagenet", "none", size), ds, device, transfer_epochs, 1e-3), ds),
        _run("fine-tuned ImageNet backbone",
             _transfer_config(backbone_spec("imagenet", "all", size), ds, device, transfer_epochs, 1e-4), ds),
        _run("frozen random backbone + new head (the same probe, no pretraining)",
             _transfer_config(backbone_spec("none", "none", size), ds, device, transfer_epochs, 1e-3), ds),
    ]
    best_scratch = max(scratch, key=lambda r: r["best_val_acc"] or 0.0)
    pretrained = max(transfer[:2], key=lambda r: r["best_val_acc"] or 0.0)
    return {"device": describe_device(), "date": time.strftime("%Y-%m-%d"), "backbone": BACKBONE, "size": size,
            "train_images": len(ds.train_y), "test_images": len(ds.val_y), "scratch": scratch, "transfer": transfer,
            "best_scratch": best_scratch["run"],
            "pretrained_margin": pretrained["best_val_acc"] - best_scratch["best_val_acc"],
            "weights_margin": transfer[0]["best_val_acc"] - transfer[2]["best_val_acc"]}


def format_transfer(report: dict) -> str:
    lines = [f"transfer learning on {report['train_images']} training / {report['test_images']} test images of "
             f"CIFAR-10, {report['backbone']} at {report['size']} px, on {report['device']} ({report['date']})"]
    for row in report["scratch"] + report["transfer"]:
        lines.append(f"  {row['run']:<70} best {row['best_val_acc']:.1%}  ({row['epochs']} epochs, "
                     f"{row['seconds_per_epoch']:.3g} s/epoch)")
    lines.append(f"pretrained backbone vs best from scratch ({report['best_scratch']}): "
                 f"{report['pretrained_margin'] * 100:+.1f} points")
    lines.append(f"frozen ImageNet weights vs frozen random weights: {report['weights_margin'] * 100:+.1f} points")
    return "\n".join(lines)
