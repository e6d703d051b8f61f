"""Plotly figures for looking inside a network: pure functions of plain data.

The feature-space picture is one scatter trace per true class (colour = what the
image is), with misclassified points drawn as crosses; with several epochs it is a
plotly animation, one frame per epoch, its own slider and play button. Each point keeps
its place in its trace, so plotly moves it from frame to frame instead of redrawing the
cloud: with the maps aligned epoch to epoch, a student watches the classes pull apart.
Each frame is titled with its epoch's validation accuracy (the k-NN number beside it), and
the epochs where the best accuracy improved are marked ★ in the title and on the slider,
as the CIFAR write-up titled the t-SNE it drew each time the best accuracy improved.
Arrays go in as numpy, which plotly sends as compact binary. Words come from lab/locales in
the ``lang`` the page passes (English by default).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from functools import partial

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from lab.i18n import DEFAULT, text
from lab.insight.best import UNTRAINED, improving_epochs, val_accuracies
from lab.insight.maps import MapFrame

HEIGHT = 420
SMALL_HEIGHT = 260
MAX_FRAMES = 40  # animation frames at most: each carries every probe point to the browser
RIGHT, WRONG = 0, 4  # plotly marker symbols: circle, x
PRED_COLOR, TRUE_COLOR, OTHER_COLOR = "#ff7f0e", "#2ca02c", "#9fb7d3"
METHOD_TITLES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
BEST_MARK = "★"  # an epoch where the best validation accuracy improved, in its title and on the slider


def class_colors(count: int) -> list[str]:
    """One colour per class: plotly's ten for ten classes or fewer, else 24 darker ones."""
    palette = qualitative.Plotly if count <= len(qualitative.Plotly) else qualitative.Dark24
    return [palette[i % len(palette)] for i in range(count)]


def spread(epochs: Sequence[int], count: int = MAX_FRAMES) -> list[int]:
    """At most ``count`` of ``epochs``, evenly spaced, always with the first and the last,
    so a 200-epoch run still animates from start to end."""
    epochs = list(epochs)
    if len(epochs) <= count:
        return epochs
    picks = np.unique(np.linspace(0, len(epochs) - 1, count).round().astype(int))
    return [epochs[i] for i in picks]


def _typed(array: np.ndarray) -> dict:
    """A uint8 array as plotly's typed-array spec, which plotly takes without checking it value
    by value: its check of a symbol array costs 40 µs a point (5 s for 40 frames of 1,000)."""
    return {"dtype": "u1", "bdata": base64.b64encode(np.ascontiguousarray(array, np.uint8).tobytes()).decode()}


def _class_traces(frame: MapFrame, classes: Sequence[str], colors: Sequence[str], lang: str) -> list[go.Scatter]:
    """One trace per class of the labels: the points, crosses where the prediction is wrong.

    A point keeps its place in its trace from frame to frame (the probe and its order are
    fixed), which is how plotly knows which point moved where: no ``ids`` needed.
    """
    names = np.asarray(classes, dtype=str)
    said = np.char.add(np.char.add(names[frame.preds], " "), np.char.mod("%d%%", np.round(frame.confidence * 100)))
    traces = []
    for c in range(len(classes)):
        mine = frame.labels == c
        wrong = frame.preds[mine] != c
        traces.append(go.Scatter(
            x=frame.points[mine, 0], y=frame.points[mine, 1], mode="markers", name=str(classes[c]),
            legendgroup=str(c), showlegend=False, text=said[mine], customdata=frame.indices[mine].astype(np.int32),
            marker={"color": colors[c], "size": np.where(wrong, 9, 6).astype(np.uint8),
                    "symbol": _typed(np.where(wrong, WRONG, RIGHT)), "opacity": 0.8},
            hovertemplate=text("plot.feature.hover", lang, true=classes[c], predicted="%{text}",
                               image="%{customdata}") + "<extra></extra>"))
    return traces


def _frame_title(frame: MapFrame, method: str, val_acc: dict[int, float], improving: set[int], lang: str) -> str:
    """"Feature space (PCA) · epoch 3 · validation accuracy 82.0% · k-NN accuracy 79.5% · ★ new best": the
    epoch's accuracy from the run's metrics; the untrained epoch 0, or one whose metrics row is not
    there (yet), says so or goes without it."""
    title = METHOD_TITLES.get(method, method)
    if frame.epoch == UNTRAINED:
        words = text("plot.feature.title.untrained", lang, method=title, knn=frame.knn_acc)
    elif frame.epoch in val_acc:
        words = text("plot.feature.title", lang, method=title, epoch=frame.epoch, val_acc=val_acc[frame.epoch],
                     knn=frame.knn_acc)
    else:
        words = text("plot.feature.title.no_val", lang, method=title, epoch=frame.epoch, knn=frame.knn_acc)
    if frame.epoch in improving:
        words += f" · {BEST_MARK} " + text("plot.feature.new_best", lang)
    return words


def _step_label(epoch: int, improving: set[int]) -> str:
    return f"{epoch} {BEST_MARK}" if epoch in improving else str(epoch)


def _animation(epochs: list[int], improving: set[int], lang: str) -> dict:
    """Layout entries for a play/pause button and an epoch slider over frames named by epoch, the
    improving epochs' steps marked."""
    move = {"frame": {"duration": 700, "redraw": True}, "transition": {"duration": 450, "easing": "cubic-in-out"},
            "mode": "immediate"}
    jump = {"frame": {"duration": 0, "redraw": True}, "transition": {"duration": 300}, "mode": "immediate"}
    return {
        "updatemenus": [{"type": "buttons", "showactive": False, "x": 0, "y": -0.02, "xanchor": "left",
                         "yanchor": "top", "direction": "left", "pad": {"t": 30, "r": 10},
                         "buttons": [{"label": text("plot.play", lang), "method": "animate",
                                      "args": [None, {**move, "fromcurrent": True}]},
                                     {"label": text("plot.pause", lang), "method": "animate",
                                      "args": [[None], {**jump, "frame": {"duration": 0, "redraw": False}}]}]}],
        "sliders": [{"active": len(epochs) - 1, "x": 0.16, "len": 0.84, "y": -0.02, "yanchor": "top",
                     "pad": {"t": 30}, "currentvalue": {"prefix": text("plot.epoch_prefix", lang)},
                     "steps": [{"label": _step_label(e, improving), "method": "animate", "args": [[str(e)], jump]}
                               for e in epochs]}],
    }


def feature_space_figure(frames: Sequence[MapFrame], classes: Sequence[str], method: str = "pca",
                         height: int = HEIGHT, lang: str = DEFAULT, metrics: Sequence[dict] = ()) -> go.Figure:
    """The probe's 2-D map at the last frame's epoch; with several frames, an animation over them.

    ``metrics`` (the run's metrics.jsonl rows) title each frame with its epoch's validation
    accuracy and mark the epochs where the best one improved. Axes are fixed over all frames
    (the maps are standardised, so they share one scale) and unlabelled: only distances mean
    something in these maps.
    """
    if not frames:
        raise ValueError("no frames to draw")
    val_acc, improving = val_accuracies(metrics), set(improving_epochs(metrics))
    title = partial(_frame_title, method=method, val_acc=val_acc, improving=improving, lang=lang)
    colors = class_colors(len(classes))
    last = frames[-1]
    fig = go.Figure(_class_traces(last, classes, colors, lang))
    # The legend has traces of its own: a class trace's legend icon would copy its first point's symbol.
    for c, name in enumerate(classes):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=str(name), legendgroup=str(c),
                                 marker={"symbol": RIGHT, "color": colors[c], "size": 9}, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=text("plot.misclassified", lang),
                             marker={"symbol": WRONG, "color": "#555", "size": 9}, hoverinfo="skip"))
    every = np.concatenate([f.points for f in frames])
    pad = 0.05 * float(np.ptp(every, axis=0).max() or 1.0)
    low, high = every.min(axis=0) - pad, every.max(axis=0) + pad
    fig.update_layout(title={"text": title(last), "x": 0, "xanchor": "left", "font": {"size": 14}},
                      height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}, hovermode="closest",
                      legend={"title": {"text": text("plot.true_class", lang)}, "itemsizing": "constant",
                              "tracegroupgap": 0}, plot_bgcolor="#fafafa")
    fig.update_xaxes(range=[low[0], high[0]], showticklabels=False, zeroline=False, title_text="")
    fig.update_yaxes(range=[low[1], high[1]], showticklabels=False, zeroline=False, title_text="")
    if len(frames) > 1:
        fig.frames = [go.Frame(name=str(f.epoch), data=_class_traces(f, classes, colors, lang),
                               traces=list(range(len(classes))),
                               layout={"title": {"text": title(f)}})
                      for f in frames]
        fig.update_layout(**_animation([f.epoch for f in frames], improving, lang))
        fig.update_layout(margin={"b": 90})
    return fig


def knn_figure(rows: Sequence[dict], height: int = SMALL_HEIGHT, lang: str = DEFAULT) -> go.Figure:
    """k-NN accuracy of the probe per epoch (rows of ``probe/index.json``): how well the
    classes separate in the full feature space, which a 2-D map only suggests."""
    epochs = [r["epoch"] for r in rows]
    fig = go.Figure(go.Scatter(x=epochs, y=[r["knn_acc"] for r in rows], mode="lines+markers", name="k-NN",
                               line={"color": PRED_COLOR},
                               hovertemplate=text("plot.knn.hover", lang, epoch="%{x}", acc="%{y:.1%}")
                               + "<extra></extra>"))
    fig.update_layout(title={"text": text("plot.knn.title", lang), "x": 0, "xanchor": "left", "font": {"size": 14}},
                      height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}, showlegend=False)
    fig.update_xaxes(title_text=text("plot.epoch", lang), dtick=1 if len(epochs) <= 20 else None)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    return fig


def probability_figure(probs: np.ndarray, classes: Sequence[str], label: int | None = None,
                       height: int = SMALL_HEIGHT, lang: str = DEFAULT) -> go.Figure:
    """The model's probability for every class, the predicted bar in orange and, when the
    image's class is known and the model missed it, the true class in green."""
    pred = int(np.argmax(probs))
    colors = [PRED_COLOR if c == pred else TRUE_COLOR if c == label else OTHER_COLOR for c in range(len(classes))]
    fig = go.Figure(go.Bar(x=np.asarray(probs, dtype=float), y=list(classes), orientation="h",
                           marker={"color": colors}, hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    fig.update_layout(title={"text": text("plot.probs.title", lang), "x": 0, "xanchor": "left", "font": {"size": 14}},
                      height=max(height, 22 * len(classes) + 60), margin={"l": 10, "r": 10, "t": 40, "b": 10})
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    fig.update_yaxes(autorange="reversed")
    return fig


def confusion_figure(matrix: np.ndarray, classes: Sequence[str], lang: str = DEFAULT) -> go.Figure:
    """Counts of (true class, predicted class) as a heatmap with the numbers written in:
    the diagonal is what the model gets right, everything else what it confuses."""
    total, right = int(matrix.sum()), int(np.trace(matrix))
    fig = go.Figure(go.Heatmap(z=matrix, x=list(classes), y=list(classes), colorscale="Blues", showscale=False,
                               texttemplate="%{z}",
                               hovertemplate=text("plot.confusion.hover", lang, true="%{y}", predicted="%{x}",
                                                  count="%{z}") + "<extra></extra>"))
    fig.update_layout(title={"text": text("plot.confusion.title", lang, total=total, right=right / max(total, 1)),
                             "x": 0, "xanchor": "left", "font": {"size": 14}},
                      height=max(HEIGHT, 32 * len(classes) + 120), margin={"l": 10, "r": 10, "t": 40, "b": 10})
    fig.update_xaxes(title_text=text("plot.predicted", lang), side="bottom")
    fig.update_yaxes(title_text=text("plot.true", lang), autorange="reversed")
    return fig
