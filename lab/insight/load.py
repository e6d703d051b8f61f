"""Rebuild a run's model from its folder alone, and feed it images the way training did."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from lab.insight.errors import InsightError
from lab.model.spec import SpecNet, build_model
from lab.runs.store import open_run
from lab.runs.view import NoCheckpoint


@dataclass(frozen=True)
class InputStats:
    """What turns the run's uint8 images into model input: shape and channel statistics."""

    shape: tuple[int, int, int]  # (C, H, W) the model takes
    mean: list[float]  # per channel, [0, 1] scale
    std: list[float]
    classes: list[str]

    def normalize(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) -> normalised float32, as ``Trainer.normalize(prepare(x))``."""
        mean = torch.tensor(self.mean, device=x_uint8.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x_uint8.device).view(1, -1, 1, 1).clamp_min(1e-3)
        return (x_uint8.float() / 255 - mean) / std

    def class_index(self, name: str) -> int:
        """Index of a class given by name (case-insensitive) or number."""
        return class_index(self.classes, name)


def class_index(classes: list[str], name: str) -> int:
    """Index in ``classes`` of a class given by name (case-insensitive) or number; InsightError listing them."""
    text = name.strip()
    if text.isdigit() and int(text) < len(classes):
        return int(text)
    lowered = [c.lower() for c in classes]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    raise InsightError(f"unknown class {name!r}; use one of: {', '.join(classes)} (or 0..{len(classes) - 1})")


def _stats(config: dict, data_dir: str | os.PathLike | None) -> tuple[list[float], list[float]]:
    resolved = config.get("resolved", {})
    if "mean" in resolved and "std" in resolved:
        return list(resolved["mean"]), list(resolved["std"])
    # Runs recorded before config.json kept the statistics: compute them as training did.
    from lab.data import load_dataset

    return load_dataset(config["dataset"], data_dir).channel_stats()


def load_run_model(run_ref: str | os.PathLike, epoch: str | int = "best", runs_dir: str | os.PathLike | None = None,
                   device: str | torch.device = "cpu",
                   data_dir: str | os.PathLike | None = None) -> tuple[SpecNet, dict, InputStats]:
    """(model in eval mode, config.json, input statistics) for a run id/prefix/name or folder.

    Weights are read with ``weights_only=True``: a crafted checkpoint cannot run code.
    """
    store, run_id = open_run(str(run_ref), runs_dir)
    info = store.get(run_id)
    config = info.config
    resolved = config.get("resolved") or {}
    try:
        shape = tuple(resolved["input"])
        classes = list(resolved["classes"])
        spec = config["spec"]
    except KeyError as err:
        raise InsightError(f"run {run_id}: config.json lacks {err}; cannot rebuild its model") from None
    try:
        state = info.load_checkpoint(epoch)
    except NoCheckpoint as err:
        raise InsightError(str(err)) from None
    model = build_model(spec, shape, len(classes))
    model.load_state_dict(state["model"])
    model.to(device).eval()
    mean, std = _stats(config, data_dir)
    return model, config, InputStats(shape, mean, std, classes)
