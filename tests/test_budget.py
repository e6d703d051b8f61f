"""lab.model.budget: no pass the lab runs (training, evaluation, probe, CAM, Explain) needs more activation
memory than the server allows, however cheap the spec looks in parameters."""

from __future__ import annotations

import math

import pytest
import torch

from lab.cli import run_training
from lab.model.budget import MB, batch_that_fits, check_training_batch, inference_bytes, training_bytes
from lab.model.layers import SpecError
from lab.model.spec import SpecNet, summarize
from lab.train.engine import ConfigError, TrainConfig, Trainer

# The review's attack, scaled to digits (8x8): 1x1 convolutions whose padding grows the map by 12 pixels a
# layer, 10 layers to 128x128, 22 parameters. Training at batch 4 is cheap; evaluation at 1024 was not.
GROWING = {"name": "growing", "layers": [
    *({"type": "conv2d", "filters": 1, "kernel": 1, "padding": 6} for _ in range(10)),
    {"type": "global_avg_pool"}, {"type": "dense"}]}


def test_parameter_free_layers_count_for_training():
    """torchinfo's convention (the Build page's figure) counts only layers with weights: 60 activation layers
    on a 32x64x64 map cost it nothing more, but autograd keeps every one of their outputs."""
    spec = {"layers": [{"type": "conv2d", "filters": 32, "padding": "same"},
                       *({"type": "activation", "function": "tanh"} for _ in range(60)),
                       {"type": "global_avg_pool"}]}
    summary = summarize(spec, (3, 64, 64), 10)
    maps = 61 * 32 * 64 * 64
    assert training_bytes(summary, 1) >= 2 * 4 * maps > 30 * summary.activation_bytes(1)
    limit_mb = math.ceil(summary.activation_bytes(64) / MB) + 1  # the old check passed batch 64 here
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAB_MAX_ACTIVATION_MB", str(limit_mb))
        with pytest.raises(SpecError, match=r"use batch size \d+ or less"):
            check_training_batch(summary, 64)


def test_an_image_too_big_for_the_server_is_refused_naming_the_largest_map(monkeypatch):
    monkeypatch.setenv("LAB_MAX_ACTIVATION_MB", "1")
    spec = {"layers": [*({"type": "conv2d", "filters": 1, "kernel": 1, "padding": 31} for _ in range(7)),
                       {"type": "global_avg_pool"}]}
    with pytest.raises(ConfigError, match=r"largest feature map is conv2d_7's 1x442x442.*less padding"):
        Trainer(TrainConfig.from_dict(dict(spec=spec, dataset="digits", epochs=1, batch_size=1, device="cpu")))
    with pytest.raises(SpecError, match="one image needs"):
        batch_that_fits(summarize(spec, (1, 8, 8), 10), 64)


def test_every_pass_of_a_run_and_its_explanations_fits_the_limit(monkeypatch, tmp_path):
    """A run of GROWING with insight on (probe and CAM every epoch), then Explain: every forward of the
    model, at any batch, stays within the limit; the same run used to evaluate at 1024 (117 MB here)."""
    limit_mb = 16
    monkeypatch.setenv("LAB_MAX_ACTIVATION_MB", str(limit_mb))
    summary = summarize(GROWING, (1, 8, 8), 10)
    assert inference_bytes(summary, 1024) > 4 * limit_mb * MB > training_bytes(summary, 4)
    batches: list[tuple[int, bool]] = []

    def record(module, args):
        if isinstance(module, SpecNet):
            batches.append((len(args[0]), torch.is_grad_enabled()))

    handle = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        config = TrainConfig.from_dict(dict(spec=GROWING, dataset="digits", epochs=1, batch_size=4, device="cpu",
                                            train_limit=64, probe_size=200, lr=1e-3))
        run_id, result = run_training(config, tmp_path / "runs", tmp_path / "data")
        assert result.status == "finished", result.message
        from lab.data import load_dataset
        from lab.insight.load import load_run_model
        from lab.insight.tools import dataset_image, explain_images

        model, _, stats = load_run_model(run_id, "best", tmp_path / "runs")
        digits = load_dataset("digits", tmp_path / "data")
        items = [dataset_image(digits, i, stats) for i in range(80)]
        for method in ("gradcam", "scorecam"):
            explain_images(model, stats, items, method=method)
    finally:
        handle.remove()
    inference = [batch for batch, grad in batches if not grad]
    with_gradients = [batch for batch, grad in batches if grad]
    assert max(inference) * inference_bytes(summary, 1) <= limit_mb * MB
    assert max(with_gradients) * training_bytes(summary, 1) <= limit_mb * MB
    assert max(inference) > 4  # evaluation still batches: it shrinks, it does not crawl one image at a time
