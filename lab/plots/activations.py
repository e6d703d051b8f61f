"""Each activation function the lab offers, with its gradient: the picture behind "sigmoid vanishes".

The gradients come from torch autograd through the lab's own modules
(:func:`lab.model.layers.make_activation`), so the curves are exactly what backpropagation
multiplies by in a spec that uses them, leaky ReLU's 0.01 slope included. Where the
gradient of a saturating function (sigmoid, tanh) is below :data:`SMALL_GRADIENT`, the
gradient curve is drawn again in red: many such factors in a row make the gradient vanish.
A pure function of the language, for the Build page and for tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from lab.i18n import DEFAULT, text
from lab.model.layers import ACTIVATIONS, make_activation

X_RANGE = (-6.0, 6.0)  # wide enough for sigmoid and tanh to flatten out on both sides
POINTS = 241  # a step of 0.05
SMALL_GRADIENT = 0.1
SATURATING = ("sigmoid", "tanh")  # flat on both sides: the functions whose gradients vanish
# softmax turns a vector of scores into probabilities: it has no curve of one x alone
PLOTTED = tuple(name for name in ACTIVATIONS if name != "softmax")
COLUMNS = 4
FUNCTION_COLOR, GRADIENT_COLOR, VANISHING_COLOR = "#1f77b4", "#ff7f0e", "#d62728"


@dataclass(frozen=True)
class Curve:
    """One activation function sampled over :data:`X_RANGE`, with its gradient."""

    name: str
    x: list[float]
    value: list[float]
    gradient: list[float]

    @property
    def peak(self) -> float:
        """The largest gradient: 0.25 for sigmoid, 1 for tanh."""
        return max(self.gradient)

    def small_beyond(self, threshold: float = SMALL_GRADIENT) -> float | None:
        """The first sampled |x| from which on the gradient stays below ``threshold`` on both sides (None if it
        never does): 2.1 for sigmoid and 1.85 for tanh at 0.1."""
        edge = max((abs(x) for x, g in zip(self.x, self.gradient) if g >= threshold), default=-1.0)
        return min((abs(x) for x in self.x if abs(x) > edge), default=None)


def curve(name: str) -> Curve:
    """An activation and its gradient, by autograd on the module a spec would build."""
    x = torch.linspace(*X_RANGE, POINTS, requires_grad=True)
    y = make_activation(name)(x)
    (gradient,) = torch.autograd.grad(y.sum(), x)  # each y depends only on its own x: the sum's gradient is dy/dx
    return Curve(name, x.tolist(), y.tolist(), gradient.tolist())


def _rounded(value: float) -> str:
    return f"{value:.3g}"


def activation_figure(lang: str = DEFAULT) -> go.Figure:
    """One small plot per activation: the function (solid), its gradient (dashed), and for sigmoid and tanh
    the stretches where the gradient is below :data:`SMALL_GRADIENT` (red)."""
    curves = [curve(name) for name in PLOTTED]
    titles = [text("plot.activations.subplot", lang, name=c.name, peak=_rounded(c.peak)) for c in curves]
    rows = math.ceil(len(curves) / COLUMNS)
    figure = make_subplots(rows=rows, cols=COLUMNS, subplot_titles=titles, horizontal_spacing=0.06,
                           vertical_spacing=0.16)
    names = {"function": text("plot.activations.function", lang), "gradient": text("plot.activations.gradient", lang),
             "vanishing": text("plot.activations.vanishing", lang, small=SMALL_GRADIENT)}
    for i, c in enumerate(curves):
        at = {"row": i // COLUMNS + 1, "col": i % COLUMNS + 1}
        first = i == 0
        figure.add_trace(go.Scatter(x=c.x, y=c.value, name=names["function"], meta=c.name, legendgroup="function",
                                    showlegend=first, line={"color": FUNCTION_COLOR}), **at)
        figure.add_trace(go.Scatter(x=c.x, y=c.gradient, name=names["gradient"], meta=c.name, legendgroup="gradient",
                                    showlegend=first, line={"color": GRADIENT_COLOR, "dash": "dash"}), **at)
        if c.name in SATURATING:  # None breaks the red line where the gradient is large enough
            small = [g if g < SMALL_GRADIENT else None for g in c.gradient]
            figure.add_trace(go.Scatter(x=c.x, y=small, name=names["vanishing"], meta=c.name,
                                        legendgroup="vanishing", showlegend=c.name == SATURATING[0],
                                        line={"color": VANISHING_COLOR, "width": 4}), **at)
    figure.update_annotations(font_size=12)  # the subplot titles
    figure.update_layout(title={"text": text("plot.activations.title", lang), "x": 0, "xanchor": "left",
                                "font": {"size": 14}},
                         height=200 * rows + 80, margin={"l": 10, "r": 10, "t": 70, "b": 10},
                         legend={"orientation": "h", "yanchor": "bottom", "y": 1.06, "xanchor": "right", "x": 1})
    return figure
