"""Weight initialisation: the five schemes a course compares, for a whole run and for one layer.

A run's ``init`` (lab.train.engine.TrainConfig) applies to every convolution and dense
layer of its model, those inside blocks included; a conv2d or dense layer's own ``init``
(lab.model.layers) overrides it, and ``""`` there means "the run's". ``zeros`` is in the
list to be tried: every unit of a layer then computes the same thing and gets the same
gradient, so nothing breaks the symmetry and a ReLU net does not learn at all.

:func:`init_layer` is written to stand alone (torch only): the exported code copies its
source (lab.export.code), so a file initialises its ``Net`` exactly as the lab did, and
with the same seed draws the same weights.
"""

from __future__ import annotations

from torch import nn

from lab.model.base import SpecError
from lab.registry import Registry

# Name -> what it does, in the words of the CLI's help; the pages show lab/locales' train.init.<name>.
INITS: Registry[str] = Registry("initialisation", {
    "default": "PyTorch's own (Kaiming uniform with a=sqrt(5), small uniform biases)",
    "kaiming": "He: normal with std sqrt(2/fan_in), made for ReLU; biases zero",
    "xavier": "Glorot uniform: variance 2/(fan_in+fan_out), made for tanh and sigmoid; biases zero",
    "normal": "normal with std 0.01; biases zero",
    "zeros": "every weight and bias zero: all units stay the same, so nothing learns (try it)",
}, SpecError, aliases={"he": "kaiming", "glorot": "xavier", "pytorch": "default"})
RUN_CHOICE = ""  # a layer's init that leaves it to the run's


def init_layer(module: nn.Module, method: str) -> None:
    """Re-draw the weights of every Conv2d and Linear inside ``module`` by ``method`` (biases to zero);
    ``default`` keeps what PyTorch drew when the module was made."""
    for layer in module.modules():
        if method == "default" or not isinstance(layer, (nn.Conv2d, nn.Linear)):
            continue
        if method == "kaiming":
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
        elif method == "xavier":
            nn.init.xavier_uniform_(layer.weight)
        elif method == "normal":
            nn.init.normal_(layer.weight, std=0.01)
        elif method == "zeros":
            nn.init.zeros_(layer.weight)
        else:
            raise ValueError(f"unknown initialisation {method!r}")
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


def layer_inits(model: nn.Module, run_init: str) -> dict[str, str]:
    """Layer name -> initialisation, in the model's order, for each layer of a spec's model (lab.model.spec.SpecNet)
    that has convolutions or dense weights and does not keep PyTorch's: its own ``init``, else ``run_init``.
    A pretrained backbone is never re-drawn: its weights are what it brings (random ones included)."""
    chosen = {}
    for row in model.summary.rows:
        child = getattr(model.layers, row.name)
        weighted = any(isinstance(m, (nn.Conv2d, nn.Linear)) for m in child.modules())
        method = row.layer.get("init") or run_init
        if row.layer["type"] != "backbone" and weighted and method != "default":
            chosen[row.name] = method
    return chosen


def init_model(model: nn.Module, run_init: str) -> dict[str, str]:
    """Initialise a freshly built spec model as its layers and ``run_init`` say; returns :func:`layer_inits`.

    Call it right after the model is built under the run's seed, so one seed gives one set of weights, and
    before any weights are loaded (a run's ``init_from``, a checkpoint): loaded weights win over these."""
    chosen = layer_inits(model, run_init)
    for name, method in chosen.items():
        init_layer(getattr(model.layers, name), method)
    return chosen
