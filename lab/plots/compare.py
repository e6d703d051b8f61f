"""Plotly figures that put runs side by side: pure functions of plain data.

Runs come in as ``(label, metrics)`` pairs, ``metrics`` being the per-epoch rows
of metrics.jsonl, so the figures are the same for live, finished and
pre-restart runs. One colour per run across every figure; in the curves the
validation line is solid and the train line dashed, in the same colour, so a
legend click hides or shows a run's pair together. Words come from lab/locales in the
``lang`` the page passes (English by default, as the exported HTML has always been).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.colors import qualitative

from lab.i18n import DEFAULT, text
from lab.plots.training import EPOCH_METRICS
from lab.runs.compare import elapsed, overfit_epoch
from lab.runs.sweep import AXES, varied_axes
from lab.train.engine import best_row

Series = Sequence[tuple[str, Sequence[dict]]]  # (run label, its metrics rows)
COLORS = qualitative.Plotly
HEIGHT = 340
X_AXES = ("epoch", "time")  # what curves go against; named by compare.x.<axis> in lab/locales, as the page's radio


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str) -> go.Figure:
    fig.update_layout(title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 14}}, height=HEIGHT,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend={"font": {"size": 11}},
                      hovermode="closest")
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title)
    return fig


def color(i: int) -> str:
    """The colour of the ``i``-th run, the same in every comparison figure."""
    return COLORS[i % len(COLORS)]


def curves_figure(series: Series, metric: str, x: str = "epoch", lang: str = DEFAULT) -> go.Figure:
    """Every run's train (dashed) and validation (solid) ``metric`` ('acc' or 'loss') against
    epoch or cumulative training time (``x`` = 'epoch' or 'time')."""
    if metric not in EPOCH_METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of: {', '.join(EPOCH_METRICS)}")
    if x not in X_AXES:
        raise ValueError(f"unknown x axis {x!r}; use one of: {', '.join(X_AXES)}")
    train_key, val_key, _, y_range = EPOCH_METRICS[metric]
    label, x_title = text(f"plot.metric.{metric}", lang), text(f"compare.x.{x}", lang)
    split = {val_key: text("plot.validation", lang), train_key: text("plot.train", lang)}
    fig = go.Figure()
    for i, (name, metrics) in enumerate(series):
        xs = [m["epoch"] for m in metrics] if x == "epoch" else elapsed(metrics)
        for key, dash, shown in ((val_key, "solid", True), (train_key, "dash", False)):
            fig.add_trace(go.Scatter(
                x=xs, y=[m[key] for m in metrics], mode="lines+markers", name=name, legendgroup=name,
                showlegend=shown, line={"color": color(i), "dash": dash}, marker={"size": 5},
                hovertemplate=f"{name}<br>{split[key]} {label} %{{y:.4g}}<br>{x_title} %{{x:.4g}}<extra></extra>"))
    _layout(fig, text(f"plot.curves.title.{metric}", lang), x_title, label)
    if y_range:
        fig.update_yaxes(range=y_range, tickformat=".0%")
    return fig


def best_acc_figure(series: Series, lang: str = DEFAULT) -> go.Figure:
    """Best validation accuracy of each run, labelled with the epoch it was reached at."""
    fig = go.Figure()
    for i, (name, metrics) in enumerate(series):
        best = best_row(metrics)
        acc = best["val_acc"] if best else None
        fig.add_trace(go.Bar(x=[name], y=[acc], name=name, marker_color=color(i), showlegend=False,
                             text=[text("plot.best.bar", lang, acc=acc, epoch=best["epoch"]) if best
                                   else text("plot.best.none", lang)],
                             textposition="outside", hovertemplate=f"{name}: %{{y:.2%}}<extra></extra>"))
    _layout(fig, text("plot.best.title", lang), "", text("plot.metric.acc", lang))
    fig.update_yaxes(range=[0, 1.1], tickformat=".0%")
    return fig


def gap_figure(series: Series, lang: str = DEFAULT) -> go.Figure:
    """Train minus validation accuracy per epoch; a star marks the epoch after which each run overfits
    (its lowest validation loss, with every later epoch worse)."""
    fig = go.Figure()
    fig.add_hline(y=0, line={"color": "#999", "width": 1})
    for i, (name, metrics) in enumerate(series):
        gaps = {m["epoch"]: m["train_acc"] - m["val_acc"] for m in metrics}
        fig.add_trace(go.Scatter(x=list(gaps), y=list(gaps.values()), mode="lines+markers", name=name,
                                 legendgroup=name, line={"color": color(i)}, marker={"size": 5},
                                 hovertemplate=text("plot.gap.hover", lang, run=name, epoch="%{x}", gap="%{y:.1%}")
                                 + "<extra></extra>"))
        start = overfit_epoch(metrics)
        if start is not None:
            fig.add_trace(go.Scatter(
                x=[start], y=[gaps[start]], mode="markers", legendgroup=name, showlegend=False,
                marker={"symbol": "star", "size": 14, "color": color(i), "line": {"width": 1, "color": "#333"}},
                hovertemplate=text("plot.gap.overfit", lang, run=name, epoch=start) + "<extra></extra>"))
    _layout(fig, text("plot.gap.title", lang), text("plot.epoch", lang), text("plot.gap.axis", lang))
    fig.update_yaxes(tickformat=".0%")
    return fig


def _tag(axis: str, value) -> str:
    """A summary value as run names show it; summaries already hold an augmentation as its label."""
    return f"aug-{value}" if axis == "augment" else AXES[axis].tag(value)


def sweep_figure(rows: Sequence[dict], lang: str = DEFAULT) -> go.Figure:
    """Best validation accuracy per combination of a sweep summary (``lab.runs.sweep.summarize_sweep``):
    a heat-map when exactly two settings vary (the classic batch size x epochs grid),
    grouped bars otherwise (first varied setting on x, the others as groups)."""
    varied = varied_axes(rows)
    if len(varied) == 2:
        return _sweep_heatmap(rows, *varied, lang=lang)
    fig = go.Figure()
    x_axis, groups = (varied[0], varied[1:]) if varied else (None, [])
    by_group: dict[str, list[dict]] = {}
    for row in rows:
        key = " · ".join(_tag(axis, row[axis]) for axis in groups) or text("plot.sweep.best", lang)
        by_group.setdefault(key, []).append(row)
    for i, (group, members) in enumerate(by_group.items()):
        fig.add_trace(go.Bar(
            x=[_tag(x_axis, r[x_axis]) if x_axis else r["name"] for r in members],
            y=[r["best_val_acc"] for r in members], name=group, marker_color=color(i),
            text=[f"{r['best_val_acc']:.1%}" if r["best_val_acc"] is not None else "" for r in members],
            textposition="outside"))
    _layout(fig, text("plot.sweep.title", lang), _axis_title(x_axis, lang) if x_axis else "",
            text("plot.metric.acc", lang))
    fig.update_layout(barmode="group", showlegend=bool(groups))
    fig.update_yaxes(range=[0, 1.1], tickformat=".0%")
    return fig


def _axis_title(axis: str, lang: str) -> str:
    """A swept setting's name ("batch sizes"): in English, ``lab.runs.sweep.AXES[axis].label``."""
    return text(f"plot.sweep.axis.{axis}", lang)


def _sweep_heatmap(rows: Sequence[dict], y_axis: str, x_axis: str, lang: str = DEFAULT) -> go.Figure:
    ys = list(dict.fromkeys(r[y_axis] for r in rows))
    xs = list(dict.fromkeys(r[x_axis] for r in rows))
    grid = {(r[y_axis], r[x_axis]): r["best_val_acc"] for r in rows}
    z = [[grid.get((y, x)) for x in xs] for y in ys]
    fig = go.Figure(go.Heatmap(
        z=z, x=[_tag(x_axis, v) for v in xs], y=[_tag(y_axis, v) for v in ys], colorscale="Viridis",
        # the colours span the sweep's own range
        colorbar={"tickformat": ".0%", "title": {"text": text("plot.sweep.best", lang)}},
        text=[["" if v is None else f"{v:.1%}" for v in line] for line in z], texttemplate="%{text}",
        hovertemplate="%{y} · %{x}: %{text}<extra></extra>"))
    _layout(fig, text("plot.sweep.title", lang), _axis_title(x_axis, lang), _axis_title(y_axis, lang))
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category", autorange="reversed")
    return fig


def figures_html(figures: dict[str, go.Figure], lang: str = DEFAULT) -> str:
    """One self-contained HTML page holding the figures (plotly.js inlined once): opens offline, stays interactive.

    ``figures`` maps each heading, already in ``lang``, to its figure."""
    parts = [f"<h2>{html.escape(title)}</h2>" + fig.to_html(full_html=False, include_plotlyjs=i == 0)
             for i, (title, fig) in enumerate(figures.items())]
    title = html.escape(text("plot.html.title", lang))
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body style='font-family: sans-serif'>{''.join(parts)}</body></html>")
