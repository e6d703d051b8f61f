"""Teaching aids: the arithmetic behind one row of the model summary, in words and numbers.

``explain(row, lang)`` writes the formulas a lecture puts on the board with this
layer's real numbers filled in, so a student can redo every figure of the builder's
table by hand: ``floor((28 + 2*1 - 3)/1) + 1 = 28``, ``1*3*3*32 + 32 = 320``. The
results are computed here from the formulas as written, not copied from the row, so
tests/test_teach.py proves the words agree with the summary.

Beyond one row, the notes' other figures: :func:`receptive_fields` (how many input
pixels one output value sees, by the recurrence ``r_out = r_in + (k-1)*j_in``,
``j_out = j_in*stride``), :func:`conv_weights` (a convolution's weights as built, without
sharing and as a dense layer) and :func:`flip_example` (deep learning's "convolution" is
cross-correlation; the textbook's flips the kernel), each computed here, never typed in.

Every sentence lives in the lab's one string table, ``lab/locales/<lang>.json``, under
``teach.`` keys read through :func:`lab.i18n.text`, so a language switch only has to pass
``lang`` and tests/test_i18n.py checks these keys and placeholders with all the others.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

import torch

from lab.i18n import DEFAULT, text
from lab.i18n import LANGUAGES as LOCALE_LANGUAGES
from lab.model.backbone import measure
from lab.model.blocks import Inception
from lab.model.layers import format_shape, get_layer_type, make_activation
from lab.model.spec import LayerRow

__all__ = ["Step", "Explanation", "LANGUAGES", "explain", "Reach", "receptive_fields", "ConvWeights", "conv_weights",
           "FlipExample", "flip_example", "teaching_table"]


@dataclass(frozen=True)
class Step:
    """One line of arithmetic: what it computes, the general rule, the rule with numbers."""

    label: str  # 'Output size'
    rule: str  # 'floor((in + 2*pad - kernel) / stride) + 1'
    numbers: str  # 'floor((28 + 2*1 - 3)/1) + 1 = 28'


@dataclass(frozen=True)
class Explanation:
    """The arithmetic of one layer (steps) and what it means (notes)."""

    title: str
    steps: tuple[Step, ...]
    notes: tuple[str, ...]

    def markdown(self) -> str:
        """Formulas in code spans, so their '*' stay multiplications and never turn into italics."""
        steps = "\n".join(f"- {s.label}: `{s.rule}`  \n  `{s.numbers}`" for s in self.steps)
        return "\n\n".join(filter(None, [f"**{self.title}**", steps, *self.notes])) + "\n"


# Language-neutral: the functions' own definitions, as written in PyTorch's docs.
FUNCTION_FORMULAS = {
    None: "x",
    "relu": "max(0, x)",
    "leaky_relu": "max(0.01*x, x)",
    "elu": "x if x > 0 else exp(x) - 1",
    "gelu": "x*Φ(x)",
    "silu": "x*sigmoid(x)",
    "sigmoid": "1/(1 + exp(-x))",
    "tanh": "(exp(x) - exp(-x))/(exp(x) + exp(-x))",
    "softmax": "exp(x_i)/sum_j exp(x_j)",
}
EXAMPLE_INPUTS = (-2.0, 0.0, 2.0)  # one negative, zero, one positive: shows what each function does

LANGUAGES = tuple(LOCALE_LANGUAGES)

Text = Callable[..., str]  # (key, **values) -> the template in the chosen language, filled


def _num(x: float) -> str:
    """Whole numbers with thousands separators, others with at most 4 significant digits."""
    if float(x).is_integer():
        return f"{int(x):,}"
    return f"{x:,.4g}" if abs(x) < 1000 else f"{x:,.1f}"


def _ratio(x: float) -> str:
    """'61,544' for big ratios, '0.2' where a tiny input makes the dense layer the smaller one."""
    return _num(round(x) if x >= 10 else round(x, 1))


def _values(xs: list[float] | tuple[float, ...]) -> str:
    return ", ".join(_num(round(x, 3) + 0.0) for x in xs)  # + 0.0 turns -0.0 into 0.0


def _conv_size(size: int, before: int, after: int, kernel: int, stride: int) -> tuple[str, int]:
    pad = f"2*{before}" if before == after else f"({before}+{after})"
    out = (size + before + after - kernel) // stride + 1
    return f"floor(({size} + {pad} - {kernel})/{stride}) + 1 = {out}", out


def _size_steps(t: Text, rule: str, height: str, width: str) -> list[Step]:
    """One step when height and width do the same sum, else one each."""
    if height == width:
        return [Step(t("size"), rule, height)]
    return [Step(t("height"), rule, height), Step(t("width"), rule, width)]


def _activation_note(t: Text, act: str | None) -> str:
    if act is None:
        return t("no_activation")
    return t("activation", act=act, formula=FUNCTION_FORMULAS[act])


def _conv(row: LayerRow, t: Text) -> tuple[list[Step], list[str]]:
    c, h, w = row.in_shape
    p = row.layer
    f, k, s = p["filters"], p["kernel"], p["stride"]
    (top, bottom), (left, right) = get_layer_type("conv2d")._pads(row.in_shape, p)
    height, out_h = _conv_size(h, top, bottom, k, s)
    width, out_w = _conv_size(w, left, right, k, s)
    weights = conv_weights(row)
    params, dense = weights.shared, weights.dense
    in_n, out_n = math.prod(row.in_shape), f * out_h * out_w
    params_rule, params_sum = ("conv.params_rule", f"{c}*{k}*{k}*{f} + {f}") if p["bias"] else \
        ("conv.params_rule_no_bias", f"{c}*{k}*{k}*{f}")
    steps = _size_steps(t, t("conv.size_rule"), height, width) + [
        Step(t("params"), t(params_rule), f"{params_sum} = {params:,}"),
        Step(t("macs"), t("conv.macs_rule"), f"{out_h}*{out_w}*{f} * {c}*{k}*{k} = {out_h * out_w * f * c * k * k:,}"),
        Step(t("conv.unshared_label"), t("conv.unshared_rule"), f"{out_h}*{out_w}*{params:,} = {weights.unshared:,}"),
        Step(t("conv.dense_label"), t("dense.params_rule"), f"{in_n:,}*{out_n:,} + {out_n:,} = {dense:,}"),
    ]
    notes = []
    if p["padding"] == "same":
        key = "conv.same" if top == bottom else "conv.same_uneven"
        notes.append(t(key, top=top, bottom=bottom, total=top + bottom, size=h, stride=s, out=out_h))
    notes.append(t("conv.sharing", filters=f, k=k, in_ch=c, positions=_num(out_h * out_w), params=_num(params),
                   in_n=_num(in_n), out_n=_num(out_n), dense=_num(dense), ratio=_ratio(dense / params)))
    if not p["bias"]:
        notes.append(t("conv.no_bias", filters=f))
    notes.append(_activation_note(t, p["activation"]))
    return steps, notes


def _pool_size(size: int, window: int, stride: int, pad: int, ceil: bool) -> tuple[str, int, bool]:
    """The pooling output side as PyTorch computes it, written out; True when ceil mode's last window
    would start in the padding and is dropped (the '- 1')."""
    inner = f"{size} + 2*{pad} - {window}" if pad else f"{size} - {window}"
    span = size + 2 * pad - window
    out = (-(-span // stride) if ceil else span // stride) + 1
    written = f"{'ceil' if ceil else 'floor'}(({inner})/{stride}) + 1"
    dropped = ceil and (out - 1) * stride >= size + pad
    return (f"{written} - 1 = {out - 1}", out - 1, True) if dropped else (f"{written} = {out}", out, False)


def _pool(row: LayerRow, t: Text) -> tuple[list[Step], list[str]]:
    c, h, w = row.in_shape
    p = row.layer
    size, pad, ceil = p["size"], p["padding"], p["ceil"]
    s = p["stride"] or size
    height, out_h, dropped_h = _pool_size(h, size, s, pad, ceil)
    width, out_w, dropped_w = _pool_size(w, size, s, pad, ceil)
    in_n, out_n = c * h * w, c * out_h * out_w
    rule = "pool.size_rule_ceil" if ceil else "pool.size_rule_padded" if pad else "pool.size_rule"
    steps = _size_steps(t, t(rule), height, width)
    steps.append(Step(t("pool.kept"), t("pool.kept_rule"), f"{out_n:,}/{in_n:,} = {_num(round(100 * out_n / in_n, 1))}%"))
    notes = [t(f"{p['type']}.note", size=size, lost=size * size - 1, channels=c)]
    if pad:
        notes.append(t(f"{p['type']}.padding", pad=pad))
    rows, cols = h + 2 * pad - ((out_h - 1) * s + size), w + 2 * pad - ((out_w - 1) * s + size)
    if rows > 0 or cols > 0:
        notes.append(t("pool.remainder", rows=max(rows, 0), cols=max(cols, 0)))
    if rows < 0 or cols < 0:
        notes.append(t("pool.ceil", rows=max(-rows, 0), cols=max(-cols, 0)))
    if dropped_h or dropped_w:
        notes.append(t("pool.ceil_dropped"))
    return steps, [*notes, t("no_params")]


def _adaptive_avg_pool(row: LayerRow, t: Text) -> tuple[list[Step], list[str]]:
    c, h, w = row.in_shape
    size = row.layer["size"]
    steps = _size_steps(t, t("adaptive.size_rule"), f"out = {size}", f"out = {size}")
    steps.append(Step(t("adaptive.values"), "C*out*out", f"{c}*{size}*{size} = {c * size * size:,}"))
    windows = sorted({math.ceil((i + 1) * n / size) - (i * n) // size for n in (h, w) for i in range(size)})
    notes = [t("adaptive.note", size=size, values=_num(c * size * size))]
    if h % size == 0 and w % size == 0:
        notes.append(t("adaptive.even", h=h, w=w, wh=h // size, ww=w // size))
    else:
        notes.append(t("adaptive.uneven", h=h, w=w, size=size, windows="/".join(map(str, windows))))
    return steps, [*notes, t("no_params")]


def _batchnorm(row: LayerRow, t: Text) -> tuple[list[Step], list[str]]:
    c = row.in_shape[0]
    over = (t("batchnorm.over_maps", positions=_num(row.in_shape[1] * row.in_shape[2]))
            if len(row.in_shape) == 3 else t("batchnorm.over_flat"))
    steps = [
        Step(t("batchnorm.params"), "2*C", f"2*{c} = {2 * c:,}"),
        Step(t("batchnorm.stats"), "2*C", f"2*{c} = {2 * c:,}"),
        Step(t("batchnorm.total"), "2*C + 2*C = 4*C", f"2*{c} + 2*{c} = {4 * c:,}"),
    ]
    return steps, [t("batchnorm.train", channels=c, over=over), t("batchnorm.eval")]


def _dropout(row: LayerRow, t: Text) -> tuple[list[Step], list[str]]:
    rate, values = row.layer["rate"], math.prod(row.in_shape)
    scale = 1 / (1 - rate)
    steps = [
        Step(t("dropout.scale"), "1/(1 - p)", f"1/(1 - {rate:g}) = {_num(scale)}"),
        Step(t("dropout.zeroed"), t("dropout.zeroed_rule"), f"{rate:g}*{values:,} = {_num(rate * values)}"),
    ]
    notes = [t("dropout.train", values=_num(values), rate=f"{rate:g}", scale=_num(scale)), t("dropout.eval")]
    return steps, [*notes, t("no_params")]


def _dense(row: LayerRow, t: Text) -> tuple[list[Step], list[str]]:
    n, units = row.in_shape[0], row.layer["units"]
    steps = [
        Step(t("params"), t("dense.params_rule"), f"{n:,}*{units:,} + {units:,} = {n * units + units:,}"),
        Step(t("macs"), t("dense.macs_rule"), f"{n:,}*{units:,} = {n * units:,}"),
    ]
    notes = [t("dense.note", out=_num(units), in_n=_num(n))]
    is_output = row.name == "output"
    notes.append(t("dense.output", out=_num(units)) if is_output else _activation_note(t, row.layer["activation"]))
    return steps, notes


def _flatten(row: LayerRow, t: Text) -> tuple[list[Step], list[str]]:
    values = math.prod(row.in_shape)
    if len(row.in_shape) != 3:
        return [], [t("flatten.flat", values=_num(values)), t("no_params")]
    c, h, w = row.in_shape
    step = Step(t("flatten.values"), "C*H*W", f"{c}*{h}*{w} = {values:,}")  # as gap's: no words to translate
    return [step], [t("flatten.note", channels=c, h=h, w=w, values=_num(values)), t("no_params")]


def _global_avg_pool(row: LayerRow, t: Text) -> tuple[list[Step], list[str]]:
    c, h, w = row.in_shape
    steps = [
        Step(t("gap.positions"), "H*W", f"{h}*{w} = {h * w:,}"),
        Step(t("gap.flatten"), "C*H*W", f"{c}*{h}*{w} = {c * h * w:,}"),
    ]
    note = t("gap.note", channels=c, positions=_num(h * w), flat=_num(c * h * w))
    return steps, [note, t("no_params")]


def _residual(row: LayerRow, t: Text) -> tuple[list[Step], list[str]]:
    c, h, w = row.in_shape
    f, s = row.layer["filters"], row.layer["stride"]
    height, out_h = _conv_size(h, 1, 1, 3, s)
    width, out_w = _conv_size(w, 1, 1, 3, s)
    projects = s != 1 or c != f
    extra = c * f + 2 * f if projects else 0
    params = c * 9 * f + f * 9 * f + 4 * f + extra
    macs = out_h * out_w * f * (9 * c + 9 * f + (c if projects else 0))
    suffix = "_proj" if projects else ""
    sums = f"{c}*3*3*{f} + {f}*3*3*{f} + 2*(2*{f})" + (f" + {c}*{f} + 2*{f}" if projects else "")
    inner = f"9*{c} + 9*{f}" + (f" + {c}" if projects else "")
    steps = _size_steps(t, t("residual.size_rule"), height, width) + [
        Step(t("params"), t(f"residual.params_rule{suffix}"), f"{sums} = {params:,}"),
        Step(t("macs"), t(f"residual.macs_rule{suffix}"), f"{out_h}*{out_w}*{f} * ({inner}) = {macs:,}"),
    ]
    shortcut = (t("residual.projection", in_shape=format_shape(row.in_shape), stride=s, extra=_num(extra),
                  out_shape=format_shape((f, out_h, out_w)))
                if projects else t("residual.identity", shape=format_shape(row.in_shape)))
    return steps, [t("residual.note"), shortcut]


def _inception(row: LayerRow, t: Text) -> tuple[list[Step], list[str]]:
    c, h, w = row.in_shape
    p = row.layer
    ch1, r3, c3, r5, c5, pp = (p[k] for k in ("ch1x1", "ch3x3_reduce", "ch3x3", "wide_reduce", "wide", "pool_proj"))
    k = int(p["wide_kernel"][0])
    out_c = ch1 + c3 + c5 + pp
    weights = c * (ch1 + r3 + r5 + pp) + r3 * 9 * c3 + r5 * k * k * c5
    weight_sum = f"{c}*({ch1} + {r3} + {r5} + {pp}) + {r3}*3*3*{c3} + {r5}*{k}*{k}*{c5}"
    widths = ch1 + r3 + c3 + r5 + c5 + pp
    steps = _size_steps(t, t("inception.size_rule"), f"out = in = {h}", f"out = in = {w}") + [
        Step(t("channels"), "ch1x1 + ch3x3 + wide + pool_proj", f"{ch1} + {c3} + {c5} + {pp} = {out_c:,}"),
        Step(t("params"), t("inception.params_rule"), f"{weight_sum} + 2*{widths} = {weights + 2 * widths:,}"),
        Step(t("macs"), t("inception.macs_rule"), f"{h}*{w} * ({weight_sum}) = {h * w * weights:,}"),
    ]
    direct = h * w * (c * 9 * c3 + c * k * k * c5)  # the 3x3 and wide convolutions on the whole input
    reduced = h * w * (c * r3 + r3 * 9 * c3 + c * r5 + r5 * k * k * c5)
    notes = [t("inception.note"),
             t("inception.reduction", k=k, direct=_num(direct), reduced=_num(reduced),
               percent=_num(round(100 * reduced / direct, 1)))]
    if k == 3:
        notes.append(t("inception.torchvision"))
    return steps, notes


def _dense_block(row: LayerRow, t: Text) -> tuple[list[Step], list[str]]:
    c, h, w = row.in_shape
    n, g = row.layer["layers"], row.layer["growth_rate"]
    b = row.layer["bn_size"] * g
    summed = n * c + g * n * (n - 1) // 2
    params = (2 + b) * summed + n * (2 * b + b * 9 * g)
    steps = _size_steps(t, t("dense_block.size_rule"), f"out = in = {h}", f"out = in = {w}") + [
        Step(t("channels"), "in + layers*growth_rate", f"{c} + {n}*{g} = {c + n * g:,}"),
        Step(t("dense_block.summed"), "layers*in + growth_rate*layers*(layers - 1)/2",
             f"{n}*{c} + {g}*{n}*{n - 1}/2 = {summed:,}"),
        Step(t("params"), t("dense_block.params_rule"),
             f"(2 + {b})*{summed:,} + {n}*(2*{b} + {b}*3*3*{g}) = {params:,}"),
        Step(t("macs"), t("dense_block.macs_rule"),
             f"{h}*{w} * ({b}*{summed:,} + {n}*{b}*3*3*{g}) = {h * w * (b * summed + n * b * 9 * g):,}"),
    ]
    notes = [t("dense_block.note", layers=n, growth=g, in_ch=c, out_ch=c + n * g),
             t("dense_block.bottleneck", width=b, last=c + (n - 1) * g)]
    return steps, notes


def _transition(row: LayerRow, t: Text) -> tuple[list[Step], list[str]]:
    c, h, w = row.in_shape
    theta = row.layer["compression"]
    kept = math.floor(c * theta)
    out_c = max(1, kept)
    channels = f"floor({c}*{theta:g}) = {kept}" if kept else f"max(1, floor({c}*{theta:g})) = 1"
    steps = [Step(t("channels"), "floor(in*compression)", channels)]
    steps += _size_steps(t, "floor(in/2)", f"floor({h}/2) = {h // 2}", f"floor({w}/2) = {w // 2}")
    steps += [
        Step(t("params"), t("transition.params_rule"), f"2*{c} + {c}*{out_c} = {2 * c + c * out_c:,}"),
        Step(t("macs"), t("transition.macs_rule"), f"{h}*{w}*{c}*{out_c} = {h * w * c * out_c:,}"),
    ]
    return steps, [t("transition.note", in_ch=c, out_ch=out_c)]


def _backbone(row: LayerRow, t: Text) -> tuple[list[Step], list[str]]:
    """A pretrained network has no formula to redo by hand: its numbers are measured (lab.model.backbone)."""
    _, h, w = row.in_shape
    p = row.layer
    measured = measure(p["model"], p["size"], p["trainable"])
    frozen = measured.params - measured.trainable_params
    steps = [
        Step(t("backbone.resize"), "in -> size x size", f"{h}x{w} -> {p['size']}x{p['size']}"),
        Step(t("params"), t("backbone.params_rule"),
             f"{measured.trainable_params:,} + {frozen:,} = {measured.params:,}"),
        Step(t("macs"), t("backbone.macs_rule"), f"{measured.macs:,}"),
    ]
    notes = [t("backbone.note", model=p["model"], maps=format_shape(row.out_shape))]
    notes.append(t("backbone.random") if p["weights"] == "none" else t("backbone.pretrained"))
    return steps, notes


def _activation(row: LayerRow, t: Text) -> tuple[list[Step], list[str]]:
    fn = row.layer["function"]
    if fn is None:
        return [], [t("activation.identity"), t("no_params")]
    with torch.inference_mode():
        outputs = make_activation(fn)(torch.tensor([EXAMPLE_INPUTS]))[0].tolist()
    step = Step(t("activation.examples"), f"{fn}(x) = {FUNCTION_FORMULAS[fn]}",
                f"{fn}({_values(EXAMPLE_INPUTS)}) = ({_values(outputs)})")
    shape = format_shape(row.in_shape)
    note = (t("activation.softmax", channels=row.in_shape[0], shape=shape) if fn == "softmax"
            else t("activation.note", name=fn, values=_num(math.prod(row.in_shape)), shape=shape))
    return [step], [note, t("no_params")]


EXPLAINERS: dict[str, Callable[[LayerRow, Text], tuple[list[Step], list[str]]]] = {
    "conv2d": _conv, "maxpool2d": _pool, "avgpool2d": _pool, "batchnorm": _batchnorm, "dropout": _dropout,
    "flatten": _flatten, "global_avg_pool": _global_avg_pool, "dense": _dense, "activation": _activation,
    "residual": _residual, "adaptive_avg_pool": _adaptive_avg_pool, "inception": _inception,
    "dense_block": _dense_block, "transition": _transition, "backbone": _backbone,
}


def _teacher(lang: str) -> Text:
    """``t`` for one language: the teach sentences by their short key ("conv.sharing")."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; use one of: {', '.join(LANGUAGES)}")

    def t(key: str, **values) -> str:
        return text(f"teach.{key}", lang, **values)

    return t


def explain(row: LayerRow, lang: str = DEFAULT, reach: Reach | None = None) -> Explanation:
    """The arithmetic of one summary row in words and numbers, in English ('en') or Korean ('ko'); with the
    row's ``reach`` (from :func:`receptive_fields`, which needs the rows before it) also its receptive field."""
    t = _teacher(lang)
    kind = row.layer["type"]
    steps, notes = EXPLAINERS[kind](row, t)
    if reach is not None and reach.grows:
        steps, notes = steps + _reach_steps(reach, t), notes + _reach_notes(reach, t)
    title = f"{row.name} · {t('type.' + kind)} · {format_shape(row.in_shape)} → {format_shape(row.out_shape)}"
    return Explanation(title, tuple(steps), tuple(notes))


# ---------------------------------------------------------------- receptive fields

Path = tuple[tuple[int, int], ...]  # the (kernel, stride) windows a value passes through, in order


@dataclass(frozen=True)
class Paths:
    """The ways through one layer along one axis; ``exact`` is False where windows are uneven (an adaptive
    pooling that does not divide its input), so the recurrence with the widest window gives an upper bound."""

    routes: tuple[Path, ...]
    exact: bool = True


def _window(kernel: int, stride: int) -> Paths:
    return Paths((((kernel, stride),),))


def _pool_paths(p: dict, size_in: int, size_out: int) -> Paths:
    return _window(p["size"], p["stride"] or p["size"])  # padding and ceil mode move windows, not their size


def _adaptive_paths(p: dict, size_in: int, size_out: int) -> Paths:
    """PyTorch's windows run from floor(i*in/out) to ceil((i+1)*in/out): all in/out wide when out divides in."""
    if size_in % size_out == 0:
        return _window(size_in // size_out, size_in // size_out)
    widest = max(-(-(i + 1) * size_in // size_out) - i * size_in // size_out for i in range(size_out))
    return Paths((((widest, -(-size_in // size_out)),),), exact=False)


def _residual_paths(p: dict, size_in: int, size_out: int) -> Paths:
    s = p["stride"]
    return Paths((((3, s), (3, 1)), ((1, s),)))  # two 3x3 convs; the shortcut (identity or 1x1)


def _inception_paths(p: dict, size_in: int, size_out: int) -> Paths:
    k = Inception.kernel(p)
    return Paths((((1, 1),), ((1, 1), (3, 1)), ((1, 1), (k, 1)), ((3, 1), (1, 1))))  # 1x1, 3x3, wide, pool


def _dense_block_paths(p: dict, size_in: int, size_out: int) -> Paths:
    """The block's output holds its input and every layer's maps: a path through 0, 1, ... or all layers."""
    layer = ((1, 1), (3, 1))
    return Paths(tuple(layer * depth for depth in range(p["layers"] + 1)))


def _unchanged(p: dict, size_in: int, size_out: int) -> Paths:
    return Paths(((),))  # value by value: each output sees what its own input saw


# How each layer type moves the field, along one axis: (layer, input side, output side) -> its paths. None: the
# output is flat (each value sees the whole image), or a pretrained network whose own layers are not walked here.
RECEPTIVE: dict[str, Callable[[dict, int, int], Paths] | None] = {
    "conv2d": lambda p, size_in, size_out: _window(p["kernel"], p["stride"]),  # the lab's convs have no dilation
    "maxpool2d": _pool_paths, "avgpool2d": _pool_paths, "adaptive_avg_pool": _adaptive_paths,
    "batchnorm": _unchanged, "dropout": _unchanged, "activation": _unchanged,
    "residual": _residual_paths, "inception": _inception_paths, "dense_block": _dense_block_paths,
    "transition": lambda p, size_in, size_out: Paths((((1, 1), (2, 2)),)),  # 1x1 conv, 2x2 average pool
    "flatten": None, "global_avg_pool": None, "dense": None, "backbone": None,
}


@dataclass(frozen=True)
class Axis:
    """One axis of a receptive field: the recurrence along the path that sees most."""

    field_in: int  # input pixels one value of the layer's input sees
    jump_in: int  # input pixels between neighbouring values of the layer's input
    path: Path

    @property
    def field(self) -> int:
        return self.field_in + sum((k - 1) * j for k, j in self._windows())

    @property
    def jump(self) -> int:
        return self.jump_in * math.prod(s for _, s in self.path)

    def _windows(self) -> list[tuple[int, int]]:
        """Each window's kernel with the jump it works at: the input's jump times the strides before it."""
        windows, jump = [], self.jump_in
        for kernel, stride in self.path:
            windows.append((kernel, jump))
            jump *= stride
        return windows

    def field_sum(self) -> str:
        """'3 + (3-1)*1 = 5'; 1x1 windows add nothing and are left out, unless the path has nothing else."""
        windows = self._windows()
        terms = [(k, j) for k, j in windows if k > 1] or windows
        return " + ".join([str(self.field_in), *(f"({k}-1)*{j}" for k, j in terms)]) + f" = {self.field:,}"

    def jump_sum(self) -> str:
        """'1*2 = 2': the input's jump times every stride of the path."""
        return "*".join([str(self.jump_in), *(str(s) for _, s in self.path)]) + f" = {self.jump:,}"


@dataclass(frozen=True)
class Reach:
    """How much of the input image one value of a layer's output sees (its receptive field), and how far apart
    in input pixels its neighbouring values are (the jump, the strides so far multiplied)."""

    height: Axis
    width: Axis
    paths: int  # ways through the layer: a block has several and the field is the largest path's
    exact: bool  # False after an uneven adaptive pooling: then each field is an upper bound
    image: tuple[int, int]  # the input image's height and width

    @property
    def field(self) -> tuple[int, int]:
        return self.height.field, self.width.field

    @property
    def jump(self) -> tuple[int, int]:
        return self.height.jump, self.width.jump

    @property
    def grows(self) -> bool:
        """Whether the layer itself has windows (conv, pooling, blocks), not only passes its input's field on."""
        return bool(self.height.path)

    def words(self, lang: str = DEFAULT, short: bool = False) -> str:
        """'sees 5x5 input pixels', '... (largest path)' for a block, 'sees at most ...' for an upper bound;
        ``short`` for a table column named "receptive field": '5x5', '9x9 (largest path)', 'at most 14x14'."""
        return _reach_words(self, _teacher(lang), short)


def _reach_words(reach: Reach, t: Text, short: bool = False) -> str:
    field = _sides(reach.field)
    if short:
        sees = field if reach.exact else t("reach.at_most", field=field)
    else:
        sees = t("reach.sees" if reach.exact else "reach.sees_at_most", field=field)
    return f"{sees} {t('reach.largest_path')}" if reach.paths > 1 else sees


def _sides(sides: tuple[int, int]) -> str:
    return "x".join(map(str, sides))  # '5x5', height first as in format_shape


def _jump_text(reach: Reach) -> str:
    """'2', or '2x3' where the axes differ."""
    return str(reach.jump[0]) if reach.jump[0] == reach.jump[1] else _sides(reach.jump)


def _largest(paths: Paths, field_in: int, jump_in: int) -> Axis:
    return max((Axis(field_in, jump_in, path) for path in paths.routes), key=lambda axis: axis.field)


def receptive_fields(rows: Sequence[LayerRow]) -> dict[str, Reach]:
    """Each row's receptive field in input pixels by name, for every row from the input up to the first whose
    output is flat (or a pretrained backbone, whose torchvision layers are not walked here).

    Per axis, along the path of each layer that sees most, the standard recurrence from the image (each pixel
    sees itself, jump 1): ``r_out = r_in + (k-1)*j_in`` and ``j_out = j_in*stride`` for every window of size
    ``k``. It counts padding as pixels: a field wider than the image reaches past its edges.
    """
    reaches: dict[str, Reach] = {}
    if not rows:
        return reaches
    image = (rows[0].in_shape[1], rows[0].in_shape[2]) if len(rows[0].in_shape) == 3 else (0, 0)
    axes, exact = (Axis(1, 1, ()), Axis(1, 1, ())), True
    for row in rows:
        rule = RECEPTIVE[row.layer["type"]]
        if rule is None or len(row.out_shape) != 3:
            break
        per_axis = [rule(row.layer, row.in_shape[a], row.out_shape[a]) for a in (1, 2)]
        axes = tuple(_largest(paths, axis.field, axis.jump) for paths, axis in zip(per_axis, axes))
        exact = exact and all(paths.exact for paths in per_axis)
        reaches[row.name] = Reach(axes[0], axes[1], len(per_axis[0].routes), exact, image)
    return reaches


def _reach_steps(reach: Reach, t: Text) -> list[Step]:
    label = t("reach.field") + (f" {t('reach.largest_path')}" if reach.paths > 1 else "")
    field_rule, jump_rule = t("reach.field_rule"), t("reach.jump_rule")
    if reach.height == reach.width:
        return [Step(label, field_rule, reach.height.field_sum()), Step(t("reach.jump"), jump_rule,
                                                                        reach.height.jump_sum())]
    return [Step(f"{label} · {t('height')}", field_rule, reach.height.field_sum()),
            Step(f"{label} · {t('width')}", field_rule, reach.width.field_sum()),
            Step(f"{t('reach.jump')} · {t('height')}", jump_rule, reach.height.jump_sum()),
            Step(f"{t('reach.jump')} · {t('width')}", jump_rule, reach.width.jump_sum())]


def _reach_notes(reach: Reach, t: Text) -> list[str]:
    notes = [t("reach.note", words=_reach_words(reach, t), jump=_jump_text(reach))]
    if reach.field[0] > reach.image[0] or reach.field[1] > reach.image[1]:
        notes.append(t("reach.past_edges", image=_sides(reach.image)))
    if not reach.exact:
        notes.append(t("reach.uneven"))
    return notes


# ---------------------------------------------------------------- weight sharing


@dataclass(frozen=True)
class ConvWeights:
    """A convolution's weights three ways, the lecture's case for weight sharing."""

    shared: int  # as built: in_ch*k*k*filters + filters, one set slid over every position
    unshared: int  # one set per output position, each with its own biases (Keras' LocallyConnected2D): out_h*out_w*shared
    dense: int  # every input value joined to every output value: in_n*out_n + out_n


def conv_weights(row: LayerRow) -> ConvWeights | None:
    """The three counts for a conv2d row; None for any other layer."""
    if row.layer["type"] != "conv2d":
        return None
    shared = row.params
    in_n, out_n = math.prod(row.in_shape), math.prod(row.out_shape)
    return ConvWeights(shared, row.out_shape[1] * row.out_shape[2] * shared, in_n * out_n + out_n)


# ---------------------------------------------------------------- convolution or cross-correlation

Grid = tuple[tuple[int, ...], ...]
FLIP_PATCH: Grid = ((1, 2, 3), (4, 5, 6), (7, 8, 9))  # distinct values, so each product can be traced
FLIP_KERNEL: Grid = ((1, 2, 0), (0, 1, -1), (-2, 0, 3))  # lopsided, so flipping it changes the result


@dataclass(frozen=True)
class FlipExample:
    """One output value both ways: what PyTorch's conv2d computes (cross-correlation, the kernel as it is)
    and the textbook's convolution (the kernel turned by 180 degrees first)."""

    patch: Grid
    kernel: Grid
    flipped: Grid
    correlation: int
    convolution: int
    correlation_sum: str  # '1*1 + 2*2 + ... = 17'
    convolution_sum: str


def _flip(grid: Grid) -> Grid:
    """Turned by 180 degrees: rows in reverse order, each row reversed."""
    return tuple(tuple(reversed(row)) for row in reversed(grid))


def _products(patch: Grid, kernel: Grid) -> tuple[int, str]:
    """Sum of the element-wise products, and that sum written out."""
    pairs = [(a, b) for patch_row, kernel_row in zip(patch, kernel) for a, b in zip(patch_row, kernel_row)]
    total = sum(a * b for a, b in pairs)
    return total, " + ".join(f"{a}*{b}" if b >= 0 else f"{a}*({b})" for a, b in pairs) + f" = {total}"


def flip_example(patch: Grid = FLIP_PATCH, kernel: Grid = FLIP_KERNEL) -> FlipExample:
    """Deep learning's 'convolution' against the textbook's, on one patch: the same sum of products, with the
    kernel as it is or flipped. A network learns its kernels, so either works as well; only the numbers differ."""
    flipped = _flip(kernel)
    correlation, correlation_sum = _products(patch, kernel)
    convolution, convolution_sum = _products(patch, flipped)
    return FlipExample(patch, kernel, flipped, correlation, convolution, correlation_sum, convolution_sum)


# ---------------------------------------------------------------- the CLI's view


def teaching_table(rows: Sequence[LayerRow], lang: str = DEFAULT) -> str:
    """``python -m lab summary --teach``: each layer's receptive field and jump, and each convolution's weights
    as built, without sharing and as a dense layer."""
    t = _teacher(lang)
    reaches = receptive_fields(rows)
    header = [t("col.layer"), t("col.field"), t("col.jump"), t("col.shared"), t("col.unshared"), t("col.dense")]
    lines = []
    for row in rows:
        reach, weights = reaches.get(row.name), conv_weights(row)
        if reach is None and weights is None:
            continue  # a flat layer: it sees the whole image and has no convolution to compare
        counts = [f"{n:,}" for n in (weights.shared, weights.unshared, weights.dense)] if weights else ["", "", ""]
        lines.append([row.name, _reach_words(reach, t) if reach else "", _jump_text(reach) if reach else "", *counts])
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) if i < 3 else cell.rjust(width)
                               for i, (cell, width) in enumerate(zip(cells, widths))).rstrip()
                     for cells in [header, *lines])
