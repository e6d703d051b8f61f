"""Teaching aids: the arithmetic behind one row of the model summary, in words and numbers.

``explain(row, lang)`` writes the formulas a lecture puts on the board with this
layer's real numbers filled in, so a student can redo every figure of the builder's
table by hand: ``floor((28 + 2*1 - 3)/1) + 1 = 28``, ``1*3*3*32 + 32 = 320``. The
results are computed here from the formulas as written, not copied from the row, so
tests/test_teach.py proves the words agree with the summary.

Every sentence lives in the lab's one string table, ``lab/locales/<lang>.json``, under
``teach.`` keys read through :func:`lab.i18n.text`, so a language switch only has to pass
``lang`` and tests/test_i18n.py checks these keys and placeholders with all the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from lab.i18n import DEFAULT, text
from lab.i18n import LANGUAGES as LOCALE_LANGUAGES
from lab.model.backbone import measure
from lab.model.layers import format_shape, get_layer_type, make_activation
from lab.model.spec import LayerRow

__all__ = ["Step", "Explanation", "LANGUAGES", "explain"]


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
    bias = f if p["bias"] else 0
    params = c * k * k * f + bias
    in_n, out_n = math.prod(row.in_shape), f * out_h * out_w
    dense = in_n * out_n + out_n
    params_rule, params_sum = ("conv.params_rule", f"{c}*{k}*{k}*{f} + {f}") if bias else \
        ("conv.params_rule_no_bias", f"{c}*{k}*{k}*{f}")
    steps = _size_steps(t, t("conv.size_rule"), height, width) + [
        Step(t("params"), t(params_rule), f"{params_sum} = {params:,}"),
        Step(t("macs"), t("conv.macs_rule"), f"{out_h}*{out_w}*{f} * {c}*{k}*{k} = {out_h * out_w * f * c * k * k:,}"),
        Step(t("conv.dense_label"), t("dense.params_rule"), f"{in_n:,}*{out_n:,} + {out_n:,} = {dense:,}"),
    ]
    notes = []
    if p["padding"] == "same":
        key = "conv.same" if top == bottom else "conv.same_uneven"
        notes.append(t(key, top=top, bottom=bottom, total=top + bottom, size=h, stride=s, out=out_h))
    notes.append(t("conv.sharing", filters=f, k=k, in_ch=c, positions=_num(out_h * out_w), params=_num(params),
                   in_n=_num(in_n), out_n=_num(out_n), dense=_num(dense), ratio=_ratio(dense / params)))
    if not bias:
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


def explain(row: LayerRow, lang: str = DEFAULT) -> Explanation:
    """The arithmetic of one summary row in words and numbers, in English ('en') or Korean ('ko')."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; use one of: {', '.join(LANGUAGES)}")

    def t(key: str, **values) -> str:
        return text(f"teach.{key}", lang, **values)  # key as the explainers name it: "conv.sharing"

    kind = row.layer["type"]
    steps, notes = EXPLAINERS[kind](row, t)
    title = f"{row.name} · {t('type.' + kind)} · {format_shape(row.in_shape)} → {format_shape(row.out_shape)}"
    return Explanation(title, tuple(steps), tuple(notes))
