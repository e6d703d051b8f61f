"""What one pass of a model costs in memory, so that no batch the lab runs can exhaust a shared server.

Every forward pass goes through here, not only training's: training is refused
when its batch does not fit this server's ``max_activation_mb``; the passes that
only read a model (evaluation at 1024, the feature-space probe, CAM and Explain)
shrink their batch to what fits instead, so a model that trains also evaluates.
A model whose single image does not fit is refused before anything is allocated.

The figures are upper estimates from the spec's shapes, never measurements:

- training keeps, per image, every layer's output, with or without parameters
  (ReLU and pooling outputs are saved for backward too), and a gradient as large:
  2 x 4 bytes per value, plus the input and its normalised copy;
- a pass without gradients holds, at its peak, one layer's input and output
  (a residual block also its shortcut and inner maps), plus the input batch.

They are deliberately larger than torchinfo's "Forward/backward pass size" (the
builder's figure, :meth:`lab.model.spec.Summary.activation_bytes`), which counts
only modules with weights: a stack of parameter-free layers costs nothing there.
"""

from __future__ import annotations

import math

from torch import nn

from lab import settings
from lab.model.layers import SpecError, format_shape, get_layer_type
from lab.model.spec import FLOAT32_BYTES, TRAINING_COPIES, LayerRow, Summary

MB = 2**20


def _maps_in_row(row: LayerRow) -> int:
    """Values per image a layer produces; a block makes several maps (LayerType.kept_values)."""
    return get_layer_type(row.layer["type"]).kept_values(row.in_shape, row.out_shape, row.layer)


def training_bytes(summary: Summary, batch_size: int) -> int:
    """Memory one training step at ``batch_size`` may need for activations and their gradients."""
    values = 2 * math.prod(summary.input_shape) + sum(_maps_in_row(row) for row in summary.rows)
    return TRAINING_COPIES * FLOAT32_BYTES * values * batch_size


def inference_bytes(summary: Summary, batch_size: int) -> int:
    """Peak memory of a pass without gradients at ``batch_size``: the largest layer's input and output alive
    together, plus the input batch."""
    peak = max((math.prod(row.in_shape) + _maps_in_row(row) for row in summary.rows), default=0)
    return FLOAT32_BYTES * (peak + 2 * math.prod(summary.input_shape)) * batch_size


def _largest_row(summary: Summary) -> LayerRow:
    return max(summary.rows, key=lambda row: math.prod(row.in_shape) + _maps_in_row(row))


def check_training_batch(summary: Summary, batch_size: int) -> None:
    """SpecError, before any memory is taken, when a training step at ``batch_size`` is over the limit."""
    limit = settings.limits().max_activation_mb
    needed = training_bytes(summary, batch_size) / MB
    if needed <= limit:
        return
    fits = int(limit * MB // training_bytes(summary, 1))
    if fits < 1:
        raise SpecError(_too_big_per_image(summary, training_bytes(summary, 1) / MB, limit, "train"))
    raise SpecError(f"a training step at batch size {batch_size} needs about {needed:,.0f} MB of activations, "
                    f"over this server's limit of {limit:,} MB; use batch size {fits} or less, or fewer filters "
                    "or smaller feature maps")


def batch_that_fits(summary: Summary, wanted: int, backward: bool = False) -> int:
    """The largest batch up to ``wanted`` whose pass fits the limit (``backward``: with gradients, as Grad-CAM).

    SpecError when not even one image fits: the model is refused, not run one image at a time.
    """
    limit = settings.limits().max_activation_mb * MB
    per_image = training_bytes(summary, 1) if backward else inference_bytes(summary, 1)
    if per_image > limit:
        raise SpecError(_too_big_per_image(summary, per_image / MB, limit // MB, "run"))
    return max(1, min(wanted, int(limit // per_image)))


def model_batch(model: nn.Module, wanted: int, backward: bool = False) -> int:
    """:func:`batch_that_fits` for a built model; a model the lab did not build from a spec keeps ``wanted``."""
    summary = getattr(model, "summary", None)
    return batch_that_fits(summary, wanted, backward) if isinstance(summary, Summary) else wanted


def _too_big_per_image(summary: Summary, per_image_mb: float, limit_mb: int, verb: str) -> str:
    row = _largest_row(summary)
    return (f"one image needs about {per_image_mb:,.0f} MB of activations to {verb} this model, over this "
            f"server's limit of {limit_mb:,} MB; the largest feature map is {row.name}'s "
            f"{format_shape(row.out_shape)}: use less padding, more pooling or fewer layers")
