"""Plotly figures that put runs side by side: pure functions of plain data.

Runs come in as ``(label, metrics)`` pairs, ``metrics`` being the per-epoch rows
of metrics.jsonl, so the figures are the same for live, finished and
pre-restart runs. One colour per run across every figure; in the curves the
validation line is solid and the train line dashed, in the same colour, so a
legend click hides or shows a run's pair together. Words come from lab/locales in the
``lang`` the page passes (English by default, as the exported HTML has always been).

Repeats of one configuration come in as ``(label, [metrics of each run])`` groups:
their curves are the mean with a band of ± one standard deviation, their bars the
mean with error bars. Hover texts name a trace through ``%{fullData.name}``, never
by pasting a (user-chosen) name into the template.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.colors import qualitative

from lab.i18n import DEFAULT, text
from lab.plots.training import EPOCH_METRICS
from lab.runs.compare import elapsed, epoch_spread, mean_std, overfit_epoch, with_elapsed
from lab.runs.sweep import AXES, varied_axes
from lab.train.engine import best_row

Series = Sequence[tuple[str, Sequence[dict]]]  # (run label, its metrics rows)
Groups = Sequence[tuple[str, Sequence[Sequence[dict]]]]  # (configuration label, each repeat's metrics rows)
BAND_OPACITY = {"solid": 0.25, "dash": 0.12}  # the validation band stands out; the train band stays behind it
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


def _curve_axes(metric: str, x: str, lang: str) -> tuple[str, str, list | None, str, str]:
    """(train key, validation key, y range, y title, x title) of a curves figure; a ValueError for a metric
    or x axis that does not exist."""
    if metric not in EPOCH_METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of: {', '.join(EPOCH_METRICS)}")
    if x not in X_AXES:
        raise ValueError(f"unknown x axis {x!r}; use one of: {', '.join(X_AXES)}")
    train_key, val_key, _, y_range = EPOCH_METRICS[metric]
    return train_key, val_key, y_range, text(f"plot.metric.{metric}", lang), text(f"compare.x.{x}", lang)


def curves_figure(series: Series, metric: str, x: str = "epoch", lang: str = DEFAULT) -> go.Figure:
    """Every run's train (dashed) and validation (solid) ``metric`` ('acc' or 'loss') against
    epoch or cumulative training time (``x`` = 'epoch' or 'time')."""
    train_key, val_key, y_range, label, x_title = _curve_axes(metric, x, lang)
    split = {val_key: text("plot.validation", lang), train_key: text("plot.train", lang)}
    fig = go.Figure()
    for i, (name, metrics) in enumerate(series):
        xs = [m["epoch"] for m in metrics] if x == "epoch" else elapsed(metrics)
        for key, dash, shown in ((val_key, "solid", True), (train_key, "dash", False)):
            fig.add_trace(go.Scatter(
                x=xs, y=[m[key] for m in metrics], mode="lines+markers", name=name, legendgroup=name,
                showlegend=shown, line={"color": color(i), "dash": dash}, marker={"size": 5},
                hovertemplate=f"%{{fullData.name}}<br>{split[key]} {label} %{{y:.4g}}<br>{x_title} %{{x:.4g}}<extra></extra>"))
    _layout(fig, text(f"plot.curves.title.{metric}", lang), x_title, label)
    if y_range:
        fig.update_yaxes(range=y_range, tickformat=".0%")
    return fig


def _translucent(hex_color: str, opacity: float) -> str:
    """'#636EFA' -> 'rgba(99,110,250,0.25)': a band in its line's colour that lets the lines through."""
    red, green, blue = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{opacity})"


def spread_curves_figure(groups: Groups, metric: str, x: str = "epoch", lang: str = DEFAULT) -> go.Figure:
    """Each configuration's mean train (dashed) and validation (solid) ``metric`` over its repeats, with a band
    of ± one standard deviation, epoch by epoch over the epochs all its runs reached; against epoch or mean
    cumulative training time. A configuration run once is its plain line."""
    train_key, val_key, y_range, label, x_title = _curve_axes(metric, x, lang)
    fig = go.Figure()
    for i, (name, runs) in enumerate(groups):
        epochs, times, _ = epoch_spread([with_elapsed(metrics) for metrics in runs], "elapsed")
        xs = epochs if x == "epoch" else times
        for key, dash, shown in ((val_key, "solid", True), (train_key, "dash", False)):
            _, means, stds = epoch_spread(runs, key)
            spread = len(runs) > 1 and bool(stds)
            if spread:
                upper = [m + s for m, s in zip(means, stds)]
                lower = [m - s for m, s in zip(means, stds)]
                fig.add_trace(go.Scatter(
                    x=[*xs, *xs[::-1]], y=[*upper, *lower[::-1]], fill="toself", mode="lines", name=name,
                    legendgroup=name, showlegend=False, hoverinfo="skip", line={"width": 0},
                    fillcolor=_translucent(color(i), BAND_OPACITY[dash])))
            split = text(f"plot.{'validation' if key == val_key else 'train'}", lang)
            value = "%{y:.4g} ± %{customdata:.2g}" if spread else "%{y:.4g}"
            hover = f"%{{fullData.name}}<br>{split} {label} {value}<br>{x_title} %{{x:.4g}}"
            fig.add_trace(go.Scatter(
                x=xs, y=means, customdata=stds if spread else None, mode="lines+markers", name=name,
                legendgroup=name, showlegend=shown, line={"color": color(i), "dash": dash}, marker={"size": 5},
                hovertemplate=hover + "<extra></extra>"))
    _layout(fig, text(f"plot.spread.title.{metric}", lang), x_title, label)
    if y_range:
        fig.update_yaxes(range=y_range, tickformat=".0%")
    return fig


def spread_best_figure(groups: Groups, lang: str = DEFAULT) -> go.Figure:
    """Mean best validation accuracy of each configuration over its repeats, with ± one standard deviation
    as error bars and n on the bar; a configuration run once is its bar with the epoch, as in
    :func:`best_acc_figure`."""
    fig = go.Figure()
    for i, (name, runs) in enumerate(groups):
        bests = [best_row(metrics) for metrics in runs]
        acc, std = mean_std(best["val_acc"] if best else None for best in bests)
        n = sum(best is not None for best in bests)
        if acc is None:
            label = text("plot.best.none", lang)
        elif std is None:
            label = text("plot.best.bar", lang, acc=acc, epoch=next(best for best in bests if best)["epoch"])
        else:
            label = text("plot.spread.best.bar", lang, acc=acc, spread=std, n=n)
        fig.add_trace(go.Bar(x=[name], y=[acc], name=name, marker_color=color(i), showlegend=False, text=[label],
                             error_y=_error_bars([std]),
                             textposition="outside", hovertemplate="%{x}: %{y:.2%}<extra></extra>"))
    _layout(fig, text("plot.spread.best.title", lang), "", text("plot.metric.acc", lang))
    fig.update_yaxes(range=[0, 1.1], tickformat=".0%")
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
    grouped bars otherwise (first varied setting on x, the others as groups). Rows of repeated
    configurations (``lab.runs.compare.aggregate_rows``) carry their mean and ``best_val_acc_std``:
    the cells then read mean ± std, and the bars get error bars."""
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
            error_y=_error_bars([r.get("best_val_acc_std") for r in members]),
            text=[_accuracy(r) for r in members], textposition="outside"))
    _layout(fig, text("plot.sweep.title", lang), _axis_title(x_axis, lang) if x_axis else "",
            text("plot.metric.acc", lang))
    fig.update_layout(barmode="group", showlegend=bool(groups))
    fig.update_yaxes(range=[0, 1.1], tickformat=".0%")
    return fig


def _error_bars(stds: Sequence[float | None]) -> dict:
    """Plotly's error_y for bars whose spread is known (none are drawn where no bar has one)."""
    return {"type": "data", "array": [std or 0 for std in stds], "visible": any(std is not None for std in stds)}


def _accuracy(row: dict) -> str:
    """'71.2%', or '71.2% ± 1.3%' for a repeated configuration's row, or '' before its first epoch."""
    if row["best_val_acc"] is None:
        return ""
    std = row.get("best_val_acc_std")
    return f"{row['best_val_acc']:.1%}" + (f" ± {std:.1%}" if std is not None else "")


def _axis_title(axis: str, lang: str) -> str:
    """A swept setting's name ("batch sizes"): in English, ``lab.runs.sweep.AXES[axis].label``."""
    return text(f"plot.sweep.axis.{axis}", lang)


def _sweep_heatmap(rows: Sequence[dict], y_axis: str, x_axis: str, lang: str = DEFAULT) -> go.Figure:
    ys = list(dict.fromkeys(r[y_axis] for r in rows))
    xs = list(dict.fromkeys(r[x_axis] for r in rows))
    grid = {(r[y_axis], r[x_axis]): r for r in rows}
    cells = [[grid.get((y, x)) for x in xs] for y in ys]
    fig = go.Figure(go.Heatmap(
        z=[[cell and cell["best_val_acc"] for cell in line] for line in cells], x=[_tag(x_axis, v) for v in xs],
        y=[_tag(y_axis, v) for v in ys], colorscale="Viridis",
        # the colours span the sweep's own range
        colorbar={"tickformat": ".0%", "title": {"text": text("plot.sweep.best", lang)}},
        text=[[_accuracy(cell) if cell else "" for cell in line] for line in cells], texttemplate="%{text}",
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
