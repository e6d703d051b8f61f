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
    params = c * k * k * f + f
    in_n, out_n = math.prod(row.in_shape), f * out_h * out_w
    dense = in_n * out_n + out_n
    steps = _size_steps(t, t("conv.size_rule"), height, width) + [
        Step(t("params"), t("conv.params_rule"), f"{c}*{k}*{k}*{f} + {f} = {params:,}"),
        Step(t("macs"), t("conv.macs_rule"), f"{out_h}*{out_w}*{f} * {c}*{k}*{k} = {out_h * out_w * f * c * k * k:,}"),
        Step(t("conv.dense_label"), t("dense.params_rule"), f"{in_n:,}*{out_n:,} + {out_n:,} = {dense:,}"),
    ]
    notes = []
    if p["padding"] == "same":
        key = "conv.same" if top == bottom else "conv.same_uneven"
        notes.append(t(key, top=top, bottom=bottom, total=top + bottom, size=h, stride=s, out=out_h))
    notes.append(t("conv.sharing", filters=f, k=k, in_ch=c, positions=_num(out_h * out_w), params=_num(params),
                   in_n=_num(in_n), out_n=_num(out_n), dense=_num(dense), ratio=_ratio(dense / params)))
    notes.append(_activation_note(t, p["activation"]))
    return steps, notes


def _pool(row: LayerRow, t: Text) -> tuple[list[Step], list[str]]:
    c, h, w = row.in_shape
    size = row.layer["size"]
    s = row.layer["stride"] or size
    out_h, out_w = (h - size) // s + 1, (w - size) // s + 1
    in_n, out_n = c * h * w, c * out_h * out_w
    steps = _size_steps(t, t("pool.size_rule"), f"floor(({h} - {size})/{s}) + 1 = {out_h}",
                        f"floor(({w} - {size})/{s}) + 1 = {out_w}")
    steps.append(Step(t("pool.kept"), t("pool.kept_rule"), f"{out_n:,}/{in_n:,} = {_num(round(100 * out_n / in_n, 1))}%"))
    notes = [t(f"{row.layer['type']}.note", size=size, lost=size * size - 1, channels=c)]
    rows, cols = h - ((out_h - 1) * s + size), w - ((out_w - 1) * s + size)
    if rows or cols:
        notes.append(t("pool.remainder", rows=rows, cols=cols))
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
    "residual": _residual,
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
