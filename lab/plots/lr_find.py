"""The learning-rate finder's curve (:mod:`lab.train.lr_find`): loss against a log-scaled rate, the suggestion marked.

A pure function of the finder's result, so the Train page, the CLI's ``--plot`` file and the tests draw the
same figure. The y axis follows the smoothed curve: one raw loss of a blown-up step can be ten times the
rest, and would flatten everything a student should read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import plotly.graph_objects as go

from lab.i18n import DEFAULT, text
from lab.plots.training import TRAIN_COLOR, VAL_COLOR, _layout

if TYPE_CHECKING:
    from lab.train.lr_find import LrFindResult


def lr_find_figure(result: LrFindResult, lang: str = DEFAULT) -> go.Figure:
    """Each step's loss (faint), the smoothed loss, and a star at the suggested rate naming its rule."""
    at = result.suggestion_index
    suggestion = text("plot.lr_find.suggestion", lang, lr=result.suggestion,
                      rule=text(f"plot.lr_find.rule.{result.rule}", lang))
    traces = [
        go.Scatter(x=result.lrs, y=result.losses, mode="lines", name=text("plot.lr_find.loss", lang),
                   line={"color": TRAIN_COLOR, "width": 1}, opacity=0.35),
        go.Scatter(x=result.lrs, y=result.smoothed, mode="lines", name=text("plot.lr_find.smoothed", lang),
                   line={"color": TRAIN_COLOR, "width": 2}),
        go.Scatter(x=[result.suggestion], y=[result.smoothed[at]], mode="markers", name=suggestion,
                   marker={"color": VAL_COLOR, "size": 14, "symbol": "star"}),
    ]
    low = min(min(result.losses), min(result.smoothed))
    high = max(result.smoothed)
    pad = 0.05 * (high - low) or 0.1
    x_title, y_title = text("plot.lr_find.lr", lang), text("plot.metric.loss", lang)
    layout = _layout(text("plot.lr_find.title", lang), x_title, y_title,
                     xaxis={"type": "log", "title": {"text": x_title}, "exponentformat": "power"},
                     yaxis={"title": {"text": y_title}, "range": [low - pad, high + pad]})
    return go.Figure(traces, layout=layout)
