"""The architecture picture: one box per layer, drawn like the classic CNN diagrams.

A feature map (C, H, W) is a cuboid seen at an angle: its front face is as tall
as the map is high, its depth into the page follows the map's width, and its
thickness follows the channel count. Flat vectors are thin bars as tall as
their length. All three use log scales, so a 224-pixel map and a 7-pixel map,
or 3 and 512 channels, still fit on one screen and stay comparable.

A pure function of a :class:`lab.model.spec.Summary`: the builder calls it on every
edit, tests call it without Streamlit. Its few words (the input's name, "params", where a
broken spec stops) come from lab/locales in the ``lang`` the page passes; layer type names
and shapes are the same in every language.

A block that is a small network of its own (residual, inception, dense block) is one box
like any layer, its label saying what is inside: "skip", "4 branches", "6 layers,
concatenated" (``diagram.mark.<type>``).
"""

from __future__ import annotations

import math

import plotly.graph_objects as go

from lab.i18n import DEFAULT, text
from lab.model.layers import Shape, format_shape
from lab.model.spec import Summary

# Colours by layer type, after PlotNeuralNet: convolutions warm, pooling red, dense blue.
COLOURS = {
    "input": "#d9d9d9",
    "conv2d": "#f4c95d",
    "backbone": "#8d6a9f",
    "residual": "#f29e4c",
    "inception": "#e07a1f",
    "dense_block": "#d1495b",
    "transition": "#edae49",
    "maxpool2d": "#e4572e",
    "avgpool2d": "#e4572e",
    "adaptive_avg_pool": "#e4572e",
    "batchnorm": "#a0c4ff",
    "dropout": "#c9c9c9",
    "activation": "#b5e48c",
    "flatten": "#b392ac",
    "global_avg_pool": "#b392ac",
    "dense": "#5e81f4",
}
FALLBACK_COLOUR = "#bbbbbb"
MARKED = ("residual", "inception", "dense_block")  # blocks whose label says what is inside (diagram.mark.<type>)
GAP = 1.2  # space between blocks, in the same units as the block sizes
SLANT = (0.55, 0.4)  # how far the back face sits right and up, per unit of depth
MARGIN = {"l": 10, "r": 10, "t": 90, "b": 70}  # room for the slanted labels and the legend


def side(pixels: int) -> float:
    """Drawn length for a map side: grows with log2, never zero (1 -> 2, 32 -> 9.5)."""
    return 2.0 + 1.5 * math.log2(max(pixels, 1))


def length(units: int) -> float:
    """Drawn height of a flat vector; flatter than ``side`` so a 3,136-long vector
    does not dwarf the maps it came from (10 -> 4, 3136 -> 11.5)."""
    return 1.0 + 0.9 * math.log2(max(units, 1))


def thickness(channels: int) -> float:
    """Drawn thickness for a channel count (3 channels -> about 1 unit, 512 -> about 4.4)."""
    return 0.3 + 0.45 * math.log2(max(channels, 1))


def _cuboid(x: float, shape: Shape) -> tuple[list, list, float]:
    """Outline of a map's front, top and side faces as one path (None-separated);
    returns the path and the block's right edge."""
    c, h, w = shape
    tall, thick, deep = side(h), thickness(c), side(w) * 0.5
    dx, dy = deep * SLANT[0], deep * SLANT[1]
    x0, x1, y0, y1 = x, x + thick, -tall / 2, tall / 2
    front = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    top = [(x0, y1), (x1, y1), (x1 + dx, y1 + dy), (x0 + dx, y1 + dy), (x0, y1)]
    right = [(x1, y0), (x1 + dx, y0 + dy), (x1 + dx, y1 + dy), (x1, y1), (x1, y0)]
    xs, ys = [], []
    for face in (front, top, right):
        xs += [p[0] for p in face] + [None]
        ys += [p[1] for p in face] + [None]
    return xs, ys, x1 + dx


def _bar(x: float, shape: Shape) -> tuple[list, list, float]:
    """A flat vector: a thin bar as tall as its (log-scaled) length."""
    tall, wide = length(shape[0]), 0.5
    y0, y1 = -tall / 2, tall / 2
    return [x, x + wide, x + wide, x, x], [y0, y0, y1, y1, y0], x + wide


def _block(fig: go.Figure, x: float, name: str, kind: str, shape: Shape, hover: str, label: str = "") -> float:
    """Add one layer's block as one trace, labelled ``label`` (default its name); returns where the next
    block starts."""
    xs, ys, right = _cuboid(x, shape) if len(shape) == 3 else _bar(x, shape)
    colour = COLOURS.get(kind, FALLBACK_COLOUR)
    fig.add_trace(go.Scatter(
        x=xs, y=ys, name=name, mode="lines", fill="toself", fillcolor=colour,
        line={"color": "#444444", "width": 1}, hoveron="fills", text=hover, hoverinfo="text",
        showlegend=False,
    ))
    top = max(y for y in ys if y is not None)
    fig.add_annotation(x=x, y=min(y for y in ys if y is not None), yshift=-4,
                       text=format_shape(shape), showarrow=False, xanchor="left", yanchor="top",
                       textangle=-45, font={"size": 10, "color": "#444444"})
    fig.add_annotation(x=x, y=top, yshift=4, text=label or name, showarrow=False, xanchor="left",
                       yanchor="bottom", textangle=-45, font={"size": 10})
    return right + GAP


def architecture_figure(summary: Summary, lang: str = DEFAULT) -> go.Figure:
    """One trace per layer (plus the input), named like the model's children.

    Layers after a problem have no known shape and are left out; the builder
    shows the problem at its layer.
    """
    fig = go.Figure()
    if len(summary.input_shape) == 3:  # unknown when the spec's header itself is invalid
        name = text("diagram.input", lang)
        x = _block(fig, 0.0, name, "input", summary.input_shape, f"{name}<br>{format_shape(summary.input_shape)}")
        for row in summary.rows:
            hover = text("diagram.hover", lang, name=row.name, type=row.layer["type"],
                         shape=format_shape(row.out_shape), params=row.params)
            x = _block(fig, x, row.name, row.layer["type"], row.out_shape, hover, _label(row.name, row.layer, lang))
    fig.add_annotation(text=_legend(summary), showarrow=False, xref="paper", yref="paper",
                       x=0, y=1, yshift=80, xanchor="left", yanchor="top", align="left")
    if summary.problems:
        fig.add_annotation(text=text("diagram.stops", lang, problem=summary.problems[0]), showarrow=False,
                           xref="paper", yref="paper", x=0, y=0, yshift=-60, xanchor="left", yanchor="bottom",
                           font={"color": "#c0392b"})
    _fit(fig)
    return fig


def _label(name: str, layer: dict, lang: str) -> str:
    """'inception_1 · 4 branches' for a block, the layer's name otherwise."""
    kind = layer["type"]
    if kind not in MARKED:
        return name
    mark = text(f"diagram.mark.{kind}", lang, layers=layer.get("layers"))
    return f"{name} · {mark}"


def _legend(summary: Summary) -> str:
    """Coloured squares naming the layer types present, in order of appearance."""
    kinds = list(dict.fromkeys(r.layer["type"] for r in summary.rows))
    return "  ".join(f'<span style="color:{COLOURS.get(k, FALLBACK_COLOUR)}">\u25a0</span> {k}' for k in kinds)


def _fit(fig: go.Figure, page_width: float = 950.0) -> None:
    """Lock the aspect, show exactly the drawing, and pick the height it needs at a
    typical page width: a short model draws large, a long one stays in one row."""
    xs = [x for t in fig.data for x in t.x if x is not None] or [0.0, 1.0]
    ys = [y for t in fig.data for y in t.y if y is not None] or [0.0, 1.0]
    # the last labels lean right past the last block: leave them room
    x_range, y_range = [min(xs) - 1, max(xs) + 4], [min(ys) - 1, max(ys) + 1]
    per_unit = page_width / (x_range[1] - x_range[0])
    height = int(min(max((y_range[1] - y_range[0]) * per_unit + MARGIN["t"] + MARGIN["b"], 300), 520))
    fig.update_xaxes(visible=False, range=x_range)
    fig.update_yaxes(visible=False, range=y_range, scaleanchor="x", scaleratio=1)
    fig.update_layout(height=height, margin=MARGIN, plot_bgcolor="white", hovermode="closest")
