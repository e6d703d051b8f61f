"""Finding a layer of a built model by name, and capturing what it computes.

Every forward hook the insight code registers goes through :func:`capture`, a
context manager that removes it on the way out whatever happens inside, so
feature capture for the probe and activation capture for CAM never pile up
across epochs, reruns or errors (pytorch-grad-cam's ``ActivationsAndGradients``
does the same job but leaves release to the caller).

Layers are named as :class:`lab.model.spec.SpecNet` names its children (``conv2d_1``,
``batchnorm_2``, ``global_avg_pool_1``, ``output``); a dotted path such as
``layers.conv2d_3.conv`` reaches inside one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from lab.insight.errors import InsightError
from lab.model.layers import LAYER_TYPES

# Spec layer types whose output is still (C, H, W) when their input is; a flatten or a
# global average pool turns maps into vectors, after which nothing is spatial.
_FLATTENING = ("flatten", "global_avg_pool")
_ELEMENTWISE = ("batchnorm", "activation", "dropout")  # same map size as their input


def layer_type(name: str) -> str:
    """'conv2d_3' -> 'conv2d', 'global_avg_pool_1' -> 'global_avg_pool', 'output' -> 'output'."""
    head, _, tail = name.rpartition("_")
    return head if tail.isdigit() else name


def makes_features(name: str) -> bool:
    """Whether a layer computes new feature maps (a convolution or a block), by its name's type."""
    kind = layer_type(name)
    return LAYER_TYPES.recognises(kind) and LAYER_TYPES.lookup(kind).makes_features


def children(model: nn.Module) -> list[str]:
    """Names of the model's layers in order (a SpecNet's ``model.layers`` children)."""
    layers = getattr(model, "layers", None)
    if not isinstance(layers, nn.Sequential):
        raise InsightError("the model has no 'layers' sequence; give the layer as a dotted module path")
    return [name for name, _ in layers.named_children()]


def map_layers(model: nn.Module) -> list[str]:
    """Layers whose output is still a stack of feature maps: those before the first
    flatten or global average pool. These are the layers CAM methods can explain."""
    names = []
    for name in children(model):
        if layer_type(name) in _FLATTENING:
            break
        names.append(name)
    return names


def default_cam_layer(model: nn.Module) -> str:
    """The last convolution with the batchnorm/activation/dropout right after it: the
    last map the classifier head sees at full depth (what Grad-CAM papers pick)."""
    names = map_layers(model)
    last_conv = max((i for i, n in enumerate(names) if makes_features(n)), default=None)
    if last_conv is None:
        raise InsightError("the model has no convolution before its flatten / global_avg_pool layer, "
                           "so there is no feature map to explain")
    end = last_conv
    while end + 1 < len(names) and layer_type(names[end + 1]) in _ELEMENTWISE:
        end += 1
    return names[end]


def default_probe_layer(model: nn.Module) -> str:
    """The layer whose output feeds the output layer: the features the classifier reads."""
    names = children(model)
    if len(names) < 2:
        raise InsightError("the model has no layer before its output layer")
    return names[-2]


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The module for a layer name or dotted path; unknown names list the valid ones."""
    layers = getattr(model, "layers", None)
    if isinstance(layers, nn.Sequential):
        named = dict(layers.named_children())
        if name in named:
            return named[name]
    try:
        return model.get_submodule(name)
    except AttributeError:
        valid = ", ".join(children(model)) if isinstance(layers, nn.Sequential) else "a dotted module path"
        raise InsightError(f"unknown layer {name!r}; use one of: {valid}") from None


@dataclass
class Captured:
    """What a hooked layer produced in the last forward pass."""

    output: torch.Tensor | None = None
    outputs: list[torch.Tensor] = field(default_factory=list)  # one per forward pass, when keep_all


@contextmanager
def capture(module: nn.Module, keep_all: bool = False) -> Iterator[Captured]:
    """Record ``module``'s output while the block runs; the hook is removed on exit,
    also when the block raises.

    The tensor is kept as produced (graph included) so gradients with respect to it
    can be taken with ``torch.autograd.grad``: no backward hooks are needed at all.
    """
    captured = Captured()

    def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        if not isinstance(output, torch.Tensor):
            raise InsightError(f"layer {type(_module).__name__} returns {type(output).__name__}, not a tensor")
        captured.output = output
        if keep_all:
            captured.outputs.append(output)

    handle = module.register_forward_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()


def hook_count(model: nn.Module) -> int:
    """Forward, pre-forward and backward hooks registered anywhere in the model (tests, asserts)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               + len(getattr(m, "_backward_pre_hooks", {})) for m in model.modules())
