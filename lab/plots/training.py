"""Plotly figure builders for training curves: pure functions of plain data.

The pages call these with what ``JobManager.state`` or ``RunStore`` returns
(lists of dicts and tuples), so the same figure serves a live run, a finished
run and a run from before a restart, and the builders are testable without
Streamlit. Their words come from lab/locales in the ``lang`` the page passes
(English by default, as reports use them). Figures are compact (small height, tight
margins) because the Train page shows them side by side.

While a run trains, the Train page redraws its batch-loss curve every second, and a
plotly redraw costs the browser about 0.1 s of CPU each time (a student's laptop, or the
server itself when the browser runs there): :func:`batch_loss_svg` draws the same curve
as a plain SVG, which costs next to nothing, and the page switches to the interactive
:func:`batch_loss_figure` once the run has ended.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from lab.i18n import DEFAULT, text

MAX_LOSS_POINTS = 300  # batch-loss points drawn; more only costs bandwidth on each live redraw
FIGURE_HEIGHT = 260
TRAIN_COLOR, VAL_COLOR = "#1f77b4", "#ff7f0e"
SVG_TEXT_COLOR = "#808495"  # an SVG shown as an image cannot take the page's colour: a grey that reads on both themes

# One entry per epoch metric the pages chart: (train key, val key, axis title, y range or None).
# The axis title is the English one; a figure shows text(f"plot.metric.{metric}", lang).
EPOCH_METRICS = {
    "acc": ("train_acc", "val_acc", "accuracy", [0, 1]),
    "loss": ("train_loss", "val_loss", "loss", None),
}


def thin(points: Sequence[tuple[float, float]], max_points: int = MAX_LOSS_POINTS) -> list[tuple[float, float]]:
    """At most ``max_points`` (x, y) points: consecutive runs averaged into one point each.

    Averaging (rather than keeping every k-th point) keeps the curve's level and
    smooths batch noise the way a student expects from a "loss curve"; the last
    point always ends the curve, so the newest loss is visible while training.
    """
    if max_points < 1:
        raise ValueError(f"max_points must be at least 1, got {max_points}")
    n = len(points)
    if n <= max_points:
        return [(float(x), float(y)) for x, y in points]
    out = []
    for i in range(max_points):
        chunk = points[i * n // max_points:(i + 1) * n // max_points]
        out.append((float(chunk[-1][0]), sum(float(y) for _, y in chunk) / len(chunk)))
    return out


def _layout(title: str, x_title: str, y_title: str, **extra) -> dict:
    """Shared layout: small, titled, legend on top, no wasted margins.

    Given whole to the Figure constructor: plotly validates a layout dict in one pass,
    while ``update_layout``/``update_xaxes`` parse property paths one by one (5x slower,
    and the live Train page builds the batch-loss figure every second).
    """
    return {
        "title": {"text": title, "x": 0, "xanchor": "left", "font": {"size": 14}},
        "height": FIGURE_HEIGHT,
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1},
        "hovermode": "x unified",
        "xaxis": {"title": {"text": x_title}},
        "yaxis": {"title": {"text": y_title}},
        **extra,
    }


def batch_loss_figure(points: Sequence[tuple[int, float]], max_points: int = MAX_LOSS_POINTS,
                      lang: str = DEFAULT) -> go.Figure:
    """Training loss against optimizer step, thinned to ``max_points`` points."""
    shown = np.asarray(thin(points, max_points), dtype=float).reshape(-1, 2)  # arrays validate in one go
    mode = "lines" if len(shown) > 20 else "lines+markers"  # a lone first point must be visible
    trace = go.Scatter(x=shown[:, 0], y=shown[:, 1], mode=mode, name=text("plot.batch_loss", lang),
                       line={"color": TRAIN_COLOR, "width": 1.5})
    return go.Figure(trace, layout=_layout(text("plot.batch_loss.title", lang), text("plot.step", lang),
                                           text("plot.metric.loss", lang)))


def batch_loss_svg(points: Sequence[tuple[int, float]], max_points: int = MAX_LOSS_POINTS,
                   lang: str = DEFAULT) -> str:
    """The curve of :func:`batch_loss_figure` as an SVG document (title, three loss ticks, first and
    last step): what the live page redraws every second. Non-finite losses (a diverging run) are
    left out; with none left, the title alone."""
    shown = [(x, y) for x, y in thin(points, max_points) if math.isfinite(y)]
    width, height, left, right, top, bottom = 1000, FIGURE_HEIGHT, 56, 990, 36, FIGURE_HEIGHT - 40
    title = html.escape(text("plot.batch_loss.title", lang))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
             f'role="img" aria-label="{title}" font-family="sans-serif" font-size="12" fill="{SVG_TEXT_COLOR}">',
             f"<title>{title}</title>", f'<text x="0" y="18" font-size="14">{title}</text>']
    if shown:
        xs, ys = zip(*shown)
        x_low, x_high = xs[0], max(xs[-1], xs[0] + 1)
        pad = 0.0 if max(ys) > min(ys) else max(abs(ys[0]) * 0.1, 0.1)  # a flat curve sits mid-height
        y_low, y_high = min(ys) - pad, max(ys) + pad

        def at(x: float, y: float) -> tuple[float, float]:
            return (left + (x - x_low) / (x_high - x_low) * (right - left),
                    bottom - (y - y_low) / (y_high - y_low) * (bottom - top))

        for value in (y_low, (y_low + y_high) / 2, y_high):
            _, y = at(x_low, value)
            parts.append(f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{SVG_TEXT_COLOR}" '
                         f'stroke-opacity="0.3"/><text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                         f"{value:.3g}</text>")
        parts += [f'<text x="{left}" y="{bottom + 16}">{xs[0]:g}</text>',
                  f'<text x="{right}" y="{bottom + 16}" text-anchor="end">{xs[-1]:g}</text>',
                  f'<text x="{(left + right) / 2}" y="{bottom + 32}" text-anchor="middle">'
                  f'{html.escape(text("plot.step", lang))}</text>',
                  f'<text transform="translate(12 {(top + bottom) / 2}) rotate(-90)" text-anchor="middle">'
                  f'{html.escape(text("plot.metric.loss", lang))}</text>']
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (at(*point) for point in shown))
        parts.append(f'<polyline points="{path}" fill="none" stroke="{TRAIN_COLOR}" stroke-width="1.5"/>'
                     if len(shown) > 1 else f'<circle cx="{path.split(",")[0]}" cy="{path.split(",")[1]}" r="4" '
                     f'fill="{TRAIN_COLOR}"/>')
    return "".join(parts) + "</svg>"


def epoch_figure(metrics: Sequence[dict], metric: str, lang: str = DEFAULT) -> go.Figure:
    """Train vs validation ``metric`` ('acc' or 'loss') per epoch, one marker per epoch."""
    if metric not in EPOCH_METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of: {', '.join(EPOCH_METRICS)}")
    train_key, val_key, _, y_range = EPOCH_METRICS[metric]
    label, epoch = text(f"plot.metric.{metric}", lang), text("plot.epoch", lang)
    epochs = [m["epoch"] for m in metrics]
    traces = [go.Scatter(x=epochs, y=[m[key] for m in metrics], mode="lines+markers", name=name,
                         line={"color": color})
              for key, name, color in ((train_key, text("plot.train", lang), TRAIN_COLOR),
                                       (val_key, text("plot.validation", lang), VAL_COLOR))]
    x_axis = {"title": {"text": epoch}, **({"dtick": 1} if len(epochs) <= 20 else {})}
    y_axis = {"title": {"text": label}, **({"range": y_range, "tickformat": ".0%"} if y_range else {})}
    return go.Figure(traces, layout=_layout(text(f"plot.epoch.title.{metric}", lang), epoch, label,
                                            xaxis=x_axis, yaxis=y_axis))


def class_counts_figure(classes: list[str], train: list[int], val: list[int], lang: str = DEFAULT) -> go.Figure:
    """Grouped bars of images per class, so an unbalanced dataset is obvious at a glance."""
    fig = go.Figure([go.Bar(name=text("plot.train", lang), x=classes, y=train),
                     go.Bar(name=text("plot.val", lang), x=classes, y=val)])
    fig.update_layout(barmode="group", height=280, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      yaxis_title=text("plot.images", lang), legend={"orientation": "h", "y": 1.12})
    return fig


MAX_CLASS_LINES = 12  # more lines than this are a tangle: a heatmap of class x epoch instead
HEATMAP_ROW_PX = 18


def has_class_accuracy(metrics: Sequence[dict]) -> bool:
    """Whether the epochs recorded accuracy per class (runs from before issue 19 did not)."""
    return any(isinstance(m.get("val_class_acc"), list) for m in metrics)


def class_accuracy_figure(metrics: Sequence[dict], classes: Sequence[str], lang: str = DEFAULT) -> go.Figure:
    """Validation accuracy of each class per epoch, so a student sees which classes are learned first and
    which never: a line per class, or a class x epoch heatmap when there are more than MAX_CLASS_LINES.

    A class with no validation image (null in ``val_class_acc``) leaves a gap. Class names are the data
    set's, escaped: plotly reads tags such as ``<b>`` in trace names and tick labels. Epochs recorded
    without per-class accuracy are left out."""
    rows = [m for m in metrics if isinstance(m.get("val_class_acc"), list)]
    count = max((len(m["val_class_acc"]) for m in rows), default=0)
    names = [html.escape(str(name)) for name in classes[:count]]
    names += [str(i) for i in range(len(names), count)]  # a run whose class names were not recorded
    epochs = [m["epoch"] for m in rows]
    per_class = [[(m["val_class_acc"] + [None] * count)[i] for m in rows] for i in range(count)]
    epoch, accuracy = text("plot.epoch", lang), text("plot.metric.acc", lang)
    x_axis = {"title": {"text": epoch}, **({"dtick": 1} if len(epochs) <= 20 else {})}
    title = text("plot.class_acc.title", lang)
    if count > MAX_CLASS_LINES:
        heatmap = go.Heatmap(x=epochs, y=names, z=per_class, zmin=0, zmax=1, colorscale="Viridis",
                             colorbar={"tickformat": ".0%", "title": {"text": accuracy}},
                             hovertemplate="%{y} · " + epoch + " %{x}: %{z:.0%}<extra></extra>")
        height = max(FIGURE_HEIGHT, HEATMAP_ROW_PX * count + 80)
        return go.Figure(heatmap, layout=_layout(title, epoch, "", xaxis=x_axis, height=height, hovermode="closest",
                                                 yaxis={"autorange": "reversed", "automargin": True}))
    lines = [go.Scatter(x=epochs, y=values, mode="lines+markers", name=name,
                        hovertemplate="%{y:.0%}")
             for name, values in zip(names, per_class)]
    y_axis = {"title": {"text": accuracy}, "range": [0, 1.02], "tickformat": ".0%"}
    return go.Figure(lines, layout=_layout(title, epoch, accuracy, xaxis=x_axis, yaxis=y_axis,
                                           legend={"orientation": "v"}))
