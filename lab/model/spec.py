"""Model specs: plain JSON-able dicts -> validated layer table -> ``nn.Module``.

A spec looks like::

    {"name": "fashion-cnn", "input": [1, 28, 28], "num_classes": 10,
     "layers": [{"type": "conv2d", "filters": 32}, {"type": "maxpool2d"}, ...]}

The last layer is the classifier output. If it is a dense layer its ``units``
follow the class count and its activation is dropped (the loss applies softmax
to the logits); otherwise a dense output layer is appended (with a flatten
first when the last layer still gives feature maps). A trailing softmax
activation layer, as Keras models often end, is dropped for the same reason.
The :class:`Summary` says which of these happened, in the ``lang`` asked for (its notes
are ``spec.note.*`` in lab/locales; English by default, as the CLI prints them).

``analyze`` never raises: it reports every problem it can find so the builder
can show them at the offending layer. ``summarize`` and ``build_model`` raise
the first :class:`SpecError` instead.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lab import settings, user_json
from lab.i18n import DEFAULT, text
from lab.model.layers import LayerType, Shape, SpecError, format_shape, get_layer_type, normalize_layer

__all__ = ["SpecError", "LayerRow", "Summary", "analyze", "summarize", "build_model", "SpecNet", "eval_mode",
           "load_spec", "parse_spec_json"]


@dataclass
class LayerRow:
    """One row of the summary table: a spec layer with its inferred numbers."""

    index: int  # 1-based position in the (completed) spec
    name: str  # module name in the built model, e.g. 'conv2d_1', 'output'
    layer: dict  # canonical layer dict
    in_shape: Shape
    out_shape: Shape
    params: int
    macs: int
    note: str = ""  # e.g. 'output layer (added)'
    activations: int = 0  # values per image that training keeps, as torchinfo counts them

    def activation_bytes(self, batch_size: int) -> int:
        """This layer's share of torchinfo's "Forward/backward pass size" (see :func:`activation_values`)."""
        return TRAINING_COPIES * FLOAT32_BYTES * batch_size * self.activations


@dataclass
class Summary:
    """Everything the builder shows about a spec, computed without building it."""

    name: str
    input_shape: Shape
    num_classes: int
    rows: list[LayerRow] = field(default_factory=list)
    problems: list[SpecError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def total_macs(self) -> int:
        """Multiply-accumulates per image, one per weight-times-input product (the textbook
        out_h*out_w*filters*in_ch*k*k). torchinfo's "Total mult-adds" also counts every bias
        add and 2*C per batchnorm; otherwise the two agree (tests/test_teach.py)."""
        return sum(r.macs for r in self.rows)

    def activation_bytes(self, batch_size: int) -> int:
        """Activation memory of one training step for a batch of float32 images, in bytes."""
        return sum(r.activation_bytes(batch_size) for r in self.rows)

    @property
    def layers(self) -> list[dict]:
        """The completed layer list (output layer included), as built."""
        return [r.layer for r in self.rows]

    def problem_at(self, index: int) -> SpecError | None:
        return next((p for p in self.problems if p.index == index), None)

    def table(self) -> str:
        """Keras-style text table with thousands separators."""
        labels = [f"{r.name} ({r.layer['type']})" for r in self.rows]
        width = max([30, *(len(label) + 2 for label in labels)])
        rule = width + 36
        lines = [f'Model: "{self.name}"   input {format_shape(self.input_shape)}', "-" * rule]
        lines.append(f"{'Layer (type)':<{width}}{'Output shape':<20}{'Param #':>16}")
        lines.append("=" * rule)
        for label, r in zip(labels, self.rows):
            lines.append(f"{label:<{width}}{format_shape(r.out_shape):<20}{r.params:>16,}")
        lines.append("=" * rule)
        lines.append(f"Multiply-accumulates per image: {self.total_macs:,}")
        lines.append(f"Total params: {self.total_params:,}")  # last, as Keras ends its summary
        lines += [f"Note: {n}" for n in self.notes]
        lines += [f"Problem: {p}" for p in self.problems]
        return "\n".join(lines)


FLOAT32_BYTES = 4
TRAINING_COPIES = 2  # each counted output is kept for backward, and its gradient is as large


def activation_values(kind: LayerType, in_shape: Shape, out_shape: Shape, layer: dict) -> int:
    """Values per image that torchinfo's "Forward/backward pass size" counts for one spec layer.

    We follow torchinfo's convention, so the builder's figure is the one a student
    gets from ``torchinfo.summary`` on the exported PyTorch code, to the byte
    (tests/test_teach.py checks every preset): the output of every module *with
    weights* (convolution, linear, batchnorm) counts, times two (the output kept for
    backward and its gradient), times 4 bytes, times the batch. Parameter-free modules
    (activations, pooling, dropout, flatten) count nothing, and neither do the input,
    the weights or the optimizer state. It is a rule of thumb, not a measurement:
    what autograd really saves for backward (saved-tensor hooks, deduplicated by
    storage, batch 64) was 0.48 (mini_resnet) to 0.95 (fashion_cnn) times this figure
    for the presets, since it keeps ReLU outputs and pool indices but no gradients.
    """
    return kind.weighted_outputs(in_shape, out_shape, layer)


MAX_LAYERS = 500  # the deepest preset has 14; a million layers took 427 MB and 10 s to analyse, on every rerun
MAX_SPEC_BYTES = 500_000  # spec JSON text: 500 conv2d layers exported with indent 2 are 74 KB


def _read_header(spec: Any, input_shape: Shape | None, num_classes: int | None) -> tuple[str, Shape, int, list]:
    if not isinstance(spec, dict):
        raise SpecError("a spec must be a JSON object with 'input', 'num_classes' and 'layers'")
    layers = _layer_list(spec)  # counted before anything walks the spec
    _check_nesting(spec)
    shape = tuple(input_shape) if input_shape is not None else tuple(spec.get("input") or (1, 28, 28))
    if len(shape) != 3 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise SpecError(f"input must be [channels, height, width] of positive whole numbers, got {list(shape)}")
    classes = num_classes if num_classes is not None else spec.get("num_classes", 10)
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 2:
        raise SpecError(f"num_classes must be a whole number >= 2, got {classes!r}")
    return str(spec.get("name") or "model"), shape, classes, layers


def _layer_list(spec: dict) -> list:
    """The spec's layers, refused before any per-layer work when there are more than anyone builds."""
    layers = spec.get("layers", [])
    if not isinstance(layers, list):
        raise SpecError("'layers' must be a list of layer objects")
    if len(layers) > MAX_LAYERS:
        raise SpecError(f"the spec has {len(layers):,} layers, more than the {MAX_LAYERS} a model may have; "
                        "remove layers")
    return layers


def _check_nesting(spec: Any) -> None:
    """Refuse a spec nested deeper than any spec is, as lab.user_json refuses such text: one made in
    code (not parsed) has no bound, and copying it or naming its values in a message recurses."""
    if user_json.depth(spec) > user_json.MAX_DEPTH:
        raise SpecError(f"the spec is nested deeper than {user_json.MAX_DEPTH} levels, more than any spec; "
                        "a layer's values are numbers or names")


def _normalize_each(raw_layers: list) -> tuple[list[dict], list[SpecError]]:
    """Every layer in canonical form, and one problem per layer the registry refuses, naming its
    position and type (so the builder can show it at that layer)."""
    layers, problems = [], []
    for i, raw in enumerate(raw_layers, start=1):
        try:
            layers.append(normalize_layer(raw))
        except SpecError as err:
            kind = raw.get("type") if isinstance(raw, dict) else None
            problems.append(SpecError(err.reason, i, str(kind)))
    return layers, problems


def _complete_output(layers: list[dict], num_classes: int, last_shape: Shape | None, notes: list[str],
                     lang: str = DEFAULT) -> list[dict]:
    """Apply the output-layer rule to already-normalised layers (see module docstring)."""
    layers = list(layers)
    while layers and layers[-1]["type"] == "activation" and layers[-1]["function"] == "softmax":
        layers.pop()
        notes.append(text("spec.note.softmax", lang))
    if layers and layers[-1]["type"] == "dense":
        out = dict(layers[-1])
        if out["units"] != num_classes:
            notes.append(text("spec.note.units", lang, classes=num_classes))
        out["units"], out["activation"] = num_classes, None
        return layers[:-1] + [out]
    if last_shape is not None and len(last_shape) == 3:
        layers.append(normalize_layer({"type": "flatten"}))
        notes.append(text("spec.note.flatten", lang))
    layers.append(normalize_layer({"type": "dense", "units": num_classes, "activation": None}))
    notes.append(text("spec.note.dense", lang, classes=num_classes))
    return layers


def _walk(layers: list[dict], shape: Shape, problems: list[SpecError], first: int = 1) -> tuple[list[tuple], Shape | None]:
    """Infer shapes layer by layer; stops at the first shape problem (later shapes are unknown)."""
    walked = []
    for i, layer in enumerate(layers, start=first):
        kind = get_layer_type(layer["type"])
        try:
            if kind.takes_images and i != 1:
                raise SpecError("must be the first layer, since it works on the images themselves; move it to the top")
            kind.check_input(shape)
            out = kind.output_shape(shape, layer)
        except SpecError as err:
            problems.append(SpecError(err.reason, i, kind.name))
            return walked, None
        walked.append((i, kind, layer, shape, out))
        shape = out
    return walked, shape


def analyze(spec: Any, input_shape: Shape | None = None, num_classes: int | None = None,
            lang: str = DEFAULT) -> Summary:
    """Validate a spec and infer every layer's shape, parameters and cost; never raises.

    ``input_shape`` and ``num_classes`` (a dataset's) replace the spec's own, so
    every spec works on every dataset it fits. The notes (summary's and rows') are in
    ``lang``; the problems stay English (SpecError).
    """
    try:
        name, shape, classes, raw_layers = _read_header(spec, input_shape, num_classes)
    except SpecError as err:
        return Summary("model", tuple(input_shape or ()), num_classes or 0, problems=[err])
    summary = Summary(name, shape, classes)
    layers, summary.problems = _normalize_each(raw_layers)
    if summary.problems:
        return summary
    walked, last = _walk(layers, shape, summary.problems)
    completed = _complete_output(layers, classes, last if last is not None else shape, summary.notes, lang)
    if not summary.problems:  # shapes are known all the way: infer the completed tail too
        walked, _ = _walk(completed, shape, summary.problems)
    counts: dict[str, int] = {}
    for i, kind, layer, in_shape, out_shape in walked:
        is_output = i == len(completed)
        counts[kind.name] = counts.get(kind.name, 0) + 1
        note = " ".join(filter(None, [text("spec.row.output", lang) if is_output else "",
                                      text("spec.row.added", lang) if i > len(raw_layers) else ""]))
        summary.rows.append(
            LayerRow(
                index=i,
                name="output" if is_output else f"{kind.name}_{counts[kind.name]}",
                layer=layer,
                in_shape=in_shape,
                out_shape=out_shape,
                params=kind.num_params(in_shape, layer),
                macs=kind.macs(in_shape, out_shape, layer),
                note=note,
                activations=activation_values(kind, in_shape, out_shape, layer),
            )
        )
        summary.notes += kind.notes(in_shape, layer, lang)
    return summary


def summarize(spec: Any, input_shape: Shape | None = None, num_classes: int | None = None) -> Summary:
    """Like :func:`analyze` but raises the first problem as a :class:`SpecError`."""
    summary = analyze(spec, input_shape, num_classes)
    if summary.problems:
        raise summary.problems[0]
    return summary


class SpecNet(nn.Module):
    """A model built from a spec: one named child per spec layer, run in order.

    Children are named like Keras layers (``conv2d_1``, ``maxpool2d_1``, ...,
    ``output``) so the feature-space probe and CAM can address them by name.
    """

    def __init__(self, summary: Summary):
        super().__init__()
        self.spec_name = summary.name
        self.summary = summary  # its shapes bound every batch the lab runs it at (lab.model.budget)
        self.input_shape = summary.input_shape
        self.num_classes = summary.num_classes
        children = OrderedDict(
            (r.name, get_layer_type(r.layer["type"]).build(r.in_shape, r.layer)) for r in summary.rows
        )
        self.layers = nn.Sequential(children)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # (B, C, H, W) -> (B, num_classes) logits

    def extra_repr(self) -> str:
        return f"spec={self.spec_name!r}, input={format_shape(self.input_shape)}, classes={self.num_classes}"


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put the model in eval mode for the block and restore what it was (nanoGPT's
    ``estimate_loss`` pattern): batchnorm uses its running statistics, dropout is off.
    Here, below both, so the trainer's evaluation and the insight tools share it."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def check_size(summary: Summary) -> None:
    """Refuse a model too big for this server before any of it is allocated: every layer
    can be valid and the whole still need tens of GB (4096 filters of 31x31, twice)."""
    limit = settings.limits().max_params
    if summary.total_params > limit:
        raise SpecError(f"the model has {summary.total_params:,} parameters, over this server's limit of "
                        f"{limit:,}; use fewer filters or units")


def build_model(spec: Any, input_shape: Shape | None = None, num_classes: int | None = None) -> SpecNet:
    """Build the ``nn.Module`` for a spec; raises :class:`SpecError` if it is invalid or too big."""
    summary = summarize(spec, input_shape, num_classes)
    check_size(summary)
    return SpecNet(summary)


def load_spec(source: str | Path | dict) -> dict:
    """A spec from a preset name, a JSON file path, a JSON string or a dict."""
    from lab.model.presets import PRESETS, get_preset

    if isinstance(source, dict):
        _check_nesting(source)
        return copy.deepcopy(source)
    text = str(source).strip()
    if text.startswith("{"):
        return _json_object(text, "the spec")
    path = Path(text)
    if path.suffix == ".json" or path.exists():
        try:
            return _json_object(path.read_bytes(), f"spec file {path}")
        except OSError as err:
            raise SpecError(f"cannot read spec file {path}: {err}") from None
    if PRESETS.recognises(text):
        return get_preset(text)
    raise SpecError(f"{text!r} is neither a preset ({', '.join(PRESETS)}) nor a JSON file")


def parse_spec_json(text: str | bytes, what: str = "the pasted spec") -> dict:
    """A spec from JSON a visitor pasted or uploaded, with every layer normalised: what an editor can show.

    Only a JSON object: text from a browser is never taken for a server path or a
    preset name (as :func:`load_spec` would), and the first layer the registry cannot
    normalise is refused by position, so the editor never holds a layer it cannot draw.
    Its size, nesting and layer count are bounded before any layer is looked at;
    ``what`` names the text in those messages ("the uploaded file").
    """
    if text.lstrip()[:1] not in ("{", b"{"):
        raise SpecError("paste a JSON object: it starts with '{' and has a 'layers' list")
    spec = _json_object(text, what)
    layers, problems = _normalize_each(_layer_list(spec))
    if problems:
        raise problems[0]
    return {**spec, "layers": layers}


def _json_object(text: str | bytes, what: str) -> Any:
    """JSON text parsed within :data:`MAX_SPEC_BYTES` and lab.user_json's depth, or a SpecError that says why."""
    try:
        return user_json.loads(text, what, MAX_SPEC_BYTES)
    except user_json.UserJSONError as err:
        raise SpecError(str(err)) from None
    except ValueError as err:  # json's own message, or the bytes are not UTF-8
        raise SpecError(f"spec is not valid JSON: {err}") from None
