"""Starting a run from another run's weights, and freezing layers: transfer learning between runs; and
:func:`run_notes`, what a run's set-up did, in words.

A run with ``init_from`` starts from the *best* weights of an earlier run (its ``best.pt``):
the epoch that run reports as its accuracy, and a file it has from its first epoch on,
while ``last.pt`` appears only when it ends. Tensors are copied where their names and
shapes match, a module's together (a conv's bias never without its kernel: 32 biases
still fit when the kernel grew a channel, and alone they are noise); the rest keep
their fresh initialisation: a new head for another class count, a first conv for
another channel count, a dense layer after a flatten of another image size. Inside a
composite block each module counts apart, so one changed branch leaves the others
loaded. The output layer of a run trained on other classes starts fresh even where
its shape matches, since its rows stand for other classes.

Freezing takes layer names or a named policy (:data:`FREEZE_POLICIES`): a frozen
layer's weights stop training (``requires_grad`` False, left out of the optimizer) and
its batchnorms keep the statistics they came with (eval mode while the rest trains),
the course notes' "freeze the pretrained net, train a new output layer".

Nothing here reads a file: lab.runs (above lab.train) hands the source run's weights
over (``RunStore.source_weights``), and the Trainer refuses what does not fit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from lab.i18n import DEFAULT, text

OUTPUT = "output"  # the output layer's name in every built spec (lab.model.spec)
FRESH_REASONS = ("missing", "shape", "classes")  # why a layer starts fresh: lab/locales run.note.reason.*


@dataclass(frozen=True)
class SourceWeights:
    """What a run that starts from another takes from it."""

    run_id: str
    epoch: int  # the epoch those weights are from
    state: dict[str, torch.Tensor]  # the source model's state_dict (CPU)
    classes: list[str]  # the classes it was trained on


@dataclass
class Transfer:
    """What starting from a source run did to each layer of the new model (config.json keeps it)."""

    run_id: str
    epoch: int
    loaded: list[str] = field(default_factory=list)  # every module copied
    partly: list[str] = field(default_factory=list)  # some modules copied (a composite block with one change)
    fresh: dict[str, str] = field(default_factory=dict)  # layer -> one of FRESH_REASONS

    def to_dict(self) -> dict:
        return asdict(self)


def layer_of(key: str) -> str:
    """The spec layer a state_dict key belongs to: 'layers.conv2d_1.weight' -> 'conv2d_1'."""
    return key.split(".")[1]


def _reason(key: str, mine: torch.Tensor, source: SourceWeights, same_classes: bool) -> str:
    """'' when the source's tensor ``key`` can replace ``mine``, else why not (one of FRESH_REASONS)."""
    theirs = source.state.get(key)
    if layer_of(key) == OUTPUT and not same_classes:
        return "classes"
    if theirs is None:
        return "missing"
    return "shape" if theirs.shape != mine.shape else ""


def match_weights(model: nn.Module, source: SourceWeights, classes: list[str]) -> tuple[dict, Transfer]:
    """The source tensors to copy into ``model`` (a module's together, when all match), and what that
    does to each layer."""
    modules: dict[str, dict[str, str]] = {}  # module -> {key: why it cannot be copied, '' when it can}
    same_classes = list(source.classes) == list(classes)
    for key, mine in model.state_dict().items():
        modules.setdefault(key.rsplit(".", 1)[0], {})[key] = _reason(key, mine, source, same_classes)
    copied, counts, reasons = {}, {}, {}
    for module, keys in modules.items():
        layer, reason = layer_of(module), next((r for r in keys.values() if r), "")
        if not reason:
            copied.update((key, source.state[key]) for key in keys)
        done, total = counts.get(layer, (0, 0))
        counts[layer] = (done + (not reason), total + 1)
        if reason:
            reasons.setdefault(layer, reason)
    transfer = Transfer(source.run_id, source.epoch)
    for layer, (done, total) in counts.items():
        if done == total:
            transfer.loaded.append(layer)
        elif done:
            transfer.partly.append(layer)
        else:
            transfer.fresh[layer] = reasons[layer]
    return copied, transfer


def mismatch_detail(model: nn.Module, source: SourceWeights, limit: int = 3) -> str:
    """Why the first few weights of ``model`` do not fit ``source``'s, for the message refusing the run."""
    lines = []
    for key, mine in model.state_dict().items():
        theirs = source.state.get(key)
        if theirs is None:
            lines.append(f"{layer_of(key)} is not in it")
        elif theirs.shape != mine.shape:
            lines.append(f"{key.split('.', 1)[1]} is {tuple(theirs.shape)} there, {tuple(mine.shape)} here")
        if len(lines) == limit:
            break
    their_layers = list(dict.fromkeys(layer_of(key) for key in source.state))
    return "; ".join(lines) + f" (its layers: {', '.join(their_layers[:8])}{', ...' if len(their_layers) > 8 else ''})"


# Freezing policies: (layers with weights, layers loaded from init_from) -> the layers to freeze.
FREEZE_POLICIES: dict[str, Callable[[list[str], list[str]], list[str]]] = {
    "all_but_output": lambda weighted, loaded: [name for name in weighted if name != OUTPUT],
    "loaded": lambda weighted, loaded: [name for name in weighted if name in loaded],
}


def frozen_layers(freeze: list[str], weighted: list[str], loaded: list[str]) -> list[str]:
    """The layers ``freeze`` names, its one policy resolved (TrainConfig.validate has checked the names)."""
    if len(freeze) == 1 and freeze[0] in FREEZE_POLICIES:
        return FREEZE_POLICIES[freeze[0]](weighted, loaded)
    return [name for name in weighted if name in freeze]


def freeze(model: nn.Module, names: list[str]) -> list[nn.Module]:
    """Stop the named layers' weights from training; returns their batchnorms, which the Trainer
    keeps in eval mode (:meth:`lab.train.engine.Trainer.train_mode`) so their statistics stay."""
    norms = []
    for name in names:
        layer = model.get_submodule(f"layers.{name}")
        layer.requires_grad_(False)
        norms += [m for m in layer.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    return norms


def _layers(names: Iterable[str]) -> str:
    return ", ".join(names) or "-"


def run_notes(record: dict, lang: str = DEFAULT) -> list[str]:
    """What a run's set-up did, as lines for the CLI and the pages: the memory its images take on the
    device, the layers loaded from its ``init_from`` run and those frozen. ``record`` is its config.json."""
    resolved = record.get("resolved") or {}
    if "data_mb" not in resolved:  # a run from before these facts were recorded
        return []
    notes = [text("run.note.data", lang, mb=f"{resolved['data_mb']:,.1f}", images=f"{resolved['images']:,}",
                  shape="x".join(map(str, resolved["input"])))]
    transfer = resolved.get("transfer")
    if transfer:
        notes.append(text("run.note.init_from", lang, run=transfer["run_id"], epoch=transfer["epoch"],
                          loaded=_layers(transfer["loaded"])))
        if transfer["partly"]:
            notes.append(text("run.note.partly", lang, layers=_layers(transfer["partly"])))
        if transfer["fresh"]:
            reasons = {reason: text(f"run.note.reason.{reason}", lang) for reason in FRESH_REASONS}
            notes.append(text("run.note.fresh", lang, layers=_layers(
                f"{layer} ({reasons[reason]})" for layer, reason in transfer["fresh"].items())))
    if resolved.get("frozen"):
        notes.append(text("run.note.frozen", lang, layers=_layers(resolved["frozen"]),
                          trainable=f"{resolved['trainable_params']:,}", total=f"{resolved['params']:,}"))
    return notes
