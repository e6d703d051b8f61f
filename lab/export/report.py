"""A run as one self-contained HTML page: to hand in, mail to a teacher, or open offline later.

Sections, in order: the settings and the layer table; accuracy and loss per epoch; the
training film (every epoch's curves cursor, accuracy per class, confusion matrix, feature space and
CAM strip, played by lab.plots.film's player, inlined); the final feature-space map (PCA of the probe, when the run recorded one); CAM
heatmaps of one validation image per class (the ones recorded during training at
the checkpoint's epoch, else computed now from the checkpoint); the confusion
matrix of the checkpoint on the whole validation set.

Nothing is fetched when the page opens: plotly.js is inlined once in ``<head>``
(4.8 MB, most of the file), each chart is a div it draws, and pictures are PNGs in
``data:`` URLs. No Streamlit here: the Explain page's download button and
``python -m lab export RUN --what report`` both call :func:`run_report`.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import torch
from plotly.offline import get_plotlyjs

from lab.data import Dataset, DatasetError, load_dataset
from lab.data.images import png_data_url
from lab.i18n import templates
from lab.insight.cam import auto_method, get_cam_method
from lab.insight.errors import InsightError
from lab.insight.film import film_epochs, film_frames, film_head, film_metrics
from lab.insight.load import InputStats, load_run_model
from lab.insight.maps import map_frames
from lab.insight.overlay import overlay_samples
from lab.insight.probe import cam_sample_indices, load_cams
from lab.insight.validation import confusion_matrix, evaluate
from lab.model.spec import summarize
from lab.plots.film import film_html
from lab.plots.images import display_scale, to_hwc, upscale
from lab.plots.insight import confusion_figure, feature_space_figure
from lab.plots.training import epoch_figure
from lab.runs.view import RunInfo
from lab.train.augment import get_augment

SECTIONS = {"config": "Configuration", "curves": "Training curves", "film": "Training film",
            "feature-space": "Feature space",
            "cam": "Where it looks (CAM)", "confusion": "Confusion matrix"}
SAMPLE_SIDE = 96  # on-page pixels of each CAM sample image
CHART_CONFIG = {"displaylogo": False, "responsive": True}

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
table.settings td { padding: 2px 14px 2px 0; vertical-align: top; } table.settings td:first-child { color: #666; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 12px; }
.samples { display: flex; flex-wrap: wrap; gap: 14px; }
figure { margin: 0; } figcaption { font-size: 12px; color: #444; } .note { color: #666; font-size: 14px; }
"""


def _esc(value: object) -> str:
    return html.escape(str(value))


def _chart(fig: go.Figure, div_id: str) -> str:
    """A div and the script that draws it with the plotly.js inlined in <head>."""
    return pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id, config=CHART_CONFIG)


def _note(text: str) -> str:
    return f'<p class="note">{_esc(text)}</p>'


def _augment_text(augment) -> str:
    """'none', or the keys the run changed: 'hflip=0.5, crop_padding=4'."""
    config = get_augment(augment)
    return "none" if config.is_identity else repr(config)[len("AugmentConfig("):-1]


def _config_section(run: RunInfo, checkpoint: str, epoch: int | None) -> str:
    cfg, resolved = run.config, run.config.get("resolved", {})
    summary = summarize(cfg["spec"], tuple(resolved["input"]), len(resolved["classes"]))
    best = f"{run.best_val_acc:.2%} at epoch {run.best_epoch}" if run.best else "no epoch finished"
    rows = {
        "run": f"{run.id} ({run.state})", "dataset": f"{cfg.get('dataset')}: {len(resolved['classes'])} classes",
        "model": f"{summary.name}, {summary.total_params:,} parameters",
        "epochs": f"{len(run.metrics)} of {cfg.get('epochs')}", "batch size": cfg.get("batch_size"),
        "optimizer": f"{cfg.get('optimizer')}, lr {cfg.get('lr')}, schedule {cfg.get('schedule')}, "
                     f"weight decay {cfg.get('weight_decay')}",
        "label smoothing": cfg.get("label_smoothing"), "augmentation": _augment_text(cfg.get("augment")),
        "seed": cfg.get("seed"), "device": run.status.get("device", cfg.get("device")),
        "best validation accuracy": best, "checkpoint shown below": f"{checkpoint} (epoch {epoch})",
    }
    if run.note:
        rows["note"] = run.note
    table = "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in rows.items())
    return f'<table class="settings">{table}</table>\n<pre>{_esc(summary.table())}</pre>'


def _curves_section(run: RunInfo) -> str:
    if not run.metrics:
        return _note("No epoch has finished yet.")
    return "\n".join(_chart(epoch_figure(run.metrics, metric), f"curve-{metric}") for metric in ("acc", "loss"))


def _film_section(run: RunInfo, data_dir) -> str:
    """Every epoch at once, played in the page by the same player as the Train page's (no plotly needed)."""
    if not film_epochs(run):
        return _note("No epoch has finished yet.")
    return film_html(film_head(run, data_dir), film_metrics(run), film_frames(run), templates("film.")) + _note(
        "Drag the scrubber or press Play: the curves' cursor, the accuracy per class, the confusion matrix, "
        "the feature space and the heatmaps all show the chosen epoch.")


def _feature_section(run: RunInfo, classes: list[str]) -> str:
    """The PCA map of the probe at the last recorded epoch: how the classes lie apart at the end, titled
    with that epoch's validation accuracy (and ★ when it was a new best)."""
    epochs = run.probe_epochs
    if not epochs:
        return _note("The run did not record the feature-space probe (it was trained with insight off).")
    fig = feature_space_figure(map_frames(run.layout, "pca", [epochs[-1]]), classes, "pca", metrics=run.metrics)
    return _chart(fig, "feature-space-map") + _note(
        "Each point is a validation image of the probe, placed by PCA of the features the probe layer "
        "records (by default what the output layer reads); colour is its true class, a cross marks a mistake. "
        "Only distances mean something.")


def _cam_samples(run: RunInfo, model: torch.nn.Module, stats: InputStats, ds: Dataset, checkpoint: str,
                 epoch: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """(val indices, heatmaps, predictions, confidences, where they come from): recorded at the
    checkpoint's epoch when the run kept them, else computed now with the run's own choice of method."""
    if epoch is not None and epoch in run.cam_epochs:
        cams = load_cams(run.layout, epoch)
        return (cams.indices, cams.heatmaps, cams.preds, cams.confidence,
                f"recorded during training at epoch {epoch}: {cams.method} at layer {cams.layer}")
    indices = cam_sample_indices(ds.val_y.numpy(), len(stats.classes))
    labels = ds.val_y[indices]
    result = get_cam_method(auto_method(model))(model)(stats.normalize(ds.val_x[indices]), "true", labels)
    return (indices, result.heatmaps.numpy(), result.preds.numpy(), result.confidence.numpy(),
            f"computed from the {checkpoint} checkpoint (epoch {epoch}): {result.method} at layer {result.layer}")


def _cam_section(run: RunInfo, model: torch.nn.Module, stats: InputStats, ds: Dataset, checkpoint: str,
                 epoch: int | None) -> str:
    """One validation image per class beside its heatmap for its true class."""
    try:
        indices, heatmaps, preds, confidence, source = _cam_samples(run, model, stats, ds, checkpoint, epoch)
    except InsightError as err:  # e.g. a net without convolutions: no feature maps to explain
        return _note(f"No heatmaps for this model: {err}")
    images = ds.val_x[torch.as_tensor(indices)]
    scale = display_scale(stats.shape[1], SAMPLE_SIDE)
    overlays = overlay_samples(images, heatmaps, alpha=0.5, scale=scale)
    figures = []
    for image, heat, index, pred, conf in zip(images, overlays, indices, preds, confidence):
        picture = upscale(to_hwc(image), scale)
        gap = np.full((picture.shape[0], 4, 3), 255, np.uint8)
        true = stats.classes[int(ds.val_y[int(index)])]
        caption = f"{true} → {stats.classes[int(pred)]} ({float(conf):.0%}), val image {int(index)}"
        figures.append(f'<figure><img src="{png_data_url(np.concatenate([picture, gap, heat], axis=1))}" '
                       f'alt="{_esc(true)}"><figcaption>{_esc(caption)}</figcaption></figure>')
    return (_note(f"Evidence for each image's true class, {source}. Caption: true → predicted (confidence).")
            + f'<div class="samples">{"".join(figures)}</div>')


def _confusion_section(model: torch.nn.Module, stats: InputStats, ds: Dataset) -> str:
    evaluation = evaluate(model, stats, ds.val_x, ds.val_y)
    matrix = confusion_matrix(evaluation.labels, evaluation.preds, len(stats.classes))
    return _chart(confusion_figure(matrix, stats.classes), "confusion-matrix")


def _page(title: str, intro: str, sections: Iterable[tuple[str, str]]) -> str:
    body = "\n".join(f'<section id="{key}">\n<h2>{_esc(SECTIONS[key])}</h2>\n{content}\n</section>'
                     for key, content in sections)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{_esc(title)}</title>\n'
            f"<style>{STYLE}</style>\n<script>{get_plotlyjs()}</script>\n</head>\n<body>\n"
            f"<header>\n<h1>{_esc(title)}</h1>\n{intro}\n</header>\n{body}\n"
            f"<footer>{_note('Made by CNN Lab on ' + time.strftime('%Y-%m-%d %H:%M'))}</footer>\n</body>\n</html>\n")


def run_report(run: RunInfo, checkpoint: str = "best", data_dir=None) -> str:
    """The report of ``run`` at ``checkpoint`` ('best', 'last' or an epoch) as one HTML document.

    Sections that need the validation images (CAM samples, confusion matrix) say so
    instead when the run's dataset is not on this machine. InsightError when the
    checkpoint does not exist.
    """
    model, _, stats = load_run_model(run.path, checkpoint, data_dir=data_dir)
    epoch = run.load_checkpoint(checkpoint).get("epoch")
    sections = [("config", _config_section(run, checkpoint, epoch)), ("curves", _curves_section(run)),
                ("film", _film_section(run, data_dir)), ("feature-space", _feature_section(run, stats.classes))]
    try:
        ds = load_dataset(run.config["dataset"], data_dir, image_size=run.config.get("image_size", 0))
    except DatasetError as err:
        missing = _note(f"The run's dataset is not available here, so this needs it: {err}")
        sections += [("cam", missing), ("confusion", missing)]
    else:
        sections += [("cam", _cam_section(run, model, stats, ds, checkpoint, epoch)),
                     ("confusion", _confusion_section(model, stats, ds))]
    intro = _note(f"Run {run.id} · {run.state} · {run.config.get('dataset')} · best validation accuracy "
                  + (f"{run.best_val_acc:.2%} (epoch {run.best_epoch})" if run.best else "not yet measured"))
    return _page(f"Run report: {run.name}", intro, sections)
