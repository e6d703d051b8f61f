"""The training film's data: one frame per epoch of a run, for lab.plots.film to play in the browser.

A frame is everything the film draws for one epoch: accuracy per class and the confusion matrix on the
whole val split (from ``val_preds``), the probe's aligned PCA map with its labels and predictions, and
the CAM samples' heatmaps, shrunk to at most ``CAM_MAP_SIDE`` a side as bytes (the browser scales them
up smoothly). Curves need no frame: the metrics rows are sent whole and the film moves a cursor on them.

Frames are made from files the run already has, and each is cached as JSON in the run folder
(``RunLayout.film_frame``) once its epoch can no longer change (a later epoch has been recorded, or the
run has ended), so a page that redraws a 30-epoch film reads 30 small files and makes only the newest
frame of a live run. Everything here is plain JSON data: the page and the HTML report send it as is.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import torch
import torch.nn.functional as F

from lab.data import DatasetError, load_dataset
from lab.data.images import png_data_url
from lab.durable import atomic_write
from lab.insight.errors import InsightError
from lab.insight.maps import map_frames
from lab.insight.probe import load_cams
from lab.runs.layout import RunLayout
from lab.runs.store import LIVE_STATUSES
from lab.runs.view import RunInfo, read_json

CAM_MAP_SIDE = 32  # heatmaps travel at most this many cells a side (a 32x32 CAM is 1 KB a sample)
MAX_CONFUSION_CLASSES = 40  # beyond this a matrix of counts is no picture: the film leaves it out
POINT_DIGITS = 3  # map coordinates are rounded: the page cannot show a thousandth of the map's width
METRIC_KEYS = ("epoch", "train_loss", "val_loss", "train_acc", "val_acc", "lr")
FRAME_VERSION = 1  # bumped when a frame's content changes, so cached frames of an older lab are made again


def film_epochs(run: RunInfo) -> list[int]:
    """The epochs the film has a frame for: those with a probe or a metrics row (a run trained with
    insight off still gets curves and per-class accuracy), ascending; 0 is the untrained network."""
    return sorted(set(run.probe_epochs) | {row["epoch"] for row in run.metrics})


def film_metrics(run: RunInfo) -> list[dict]:
    """The metrics rows the film's curves draw: the per-epoch numbers only."""
    return [{key: row.get(key) for key in METRIC_KEYS} for row in run.metrics]


def film_frames(run: RunInfo, start: int = 0) -> list[dict]:
    """The frames of ``film_epochs(run)[start:]``, read from the cache or made (and cached when final)."""
    epochs = film_epochs(run)
    last_final = max(epochs, default=-1) if run.state not in LIVE_STATUSES else max(epochs, default=0) - 1
    frames = []
    for epoch in epochs[start:]:
        frame = _cached(run.layout, epoch)
        if frame is None:
            frame = make_frame(run, epoch)
            if epoch <= last_final:
                atomic_write(run.layout.film_frame(epoch),
                             lambda f, frame=frame: f.write(_dumps({"version": FRAME_VERSION, **frame})))
        frames.append(frame)
    return frames


def _dumps(data: dict) -> bytes:
    return json.dumps(data, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _cached(layout: RunLayout, epoch: int) -> dict | None:
    frame = read_json(layout.film_frame(epoch))
    if not isinstance(frame, dict) or frame.pop("version", None) != FRAME_VERSION:
        return None
    return frame


def make_frame(run: RunInfo, epoch: int) -> dict:
    """One epoch's frame; a part the run did not record for that epoch is None."""
    confusion = confusion_at(run.layout, epoch, len(run.classes))
    return {"epoch": epoch, "class_acc": _class_accuracy(run, epoch, confusion),
            "confusion": confusion.tolist() if confusion is not None and len(confusion) <= MAX_CONFUSION_CLASSES
            else None,
            **_map_part(run.layout, epoch), "cams": _cams_part(run.layout, epoch)}


def confusion_at(layout: RunLayout, epoch: int, classes: int) -> np.ndarray | None:
    """Counts (true class x predicted class) on the whole val split at ``epoch``, from the predictions the
    probe recorded; None for a run recorded without them (before issue 19, or with insight off)."""
    try:
        labels = np.load(layout.val_labels, allow_pickle=False).astype(np.int64)
        preds = np.load(layout.val_preds(epoch), allow_pickle=False).astype(np.int64)
    except (OSError, ValueError):
        return None
    if labels.shape != preds.shape or not classes:
        return None
    return np.bincount(labels * classes + preds, minlength=classes * classes).reshape(classes, classes)


def _class_accuracy(run: RunInfo, epoch: int, confusion: np.ndarray | None) -> list[float | None] | None:
    """From the confusion matrix when there is one (epoch 0 has no metrics row), else the metrics row's."""
    if confusion is not None:
        totals = confusion.sum(1)
        return [round(float(confusion[c, c] / n), 4) if n else None for c, n in enumerate(totals)]
    row = next((row for row in run.metrics if row.get("epoch") == epoch), None)
    return row.get("val_class_acc") if row else None


def _map_part(layout: RunLayout, epoch: int) -> dict:
    """The probe's aligned PCA map at ``epoch``, with labels and predictions, and its k-NN accuracy."""
    try:
        frame = map_frames(layout, "pca", [epoch])[0]
    except InsightError:
        return {"points": None, "knn_acc": None}
    points = np.round(frame.points.astype(np.float64), POINT_DIGITS)
    return {"points": {"x": points[:, 0].tolist(), "y": points[:, 1].tolist(), "label": frame.labels.tolist(),
                       "pred": frame.preds.tolist()},
            "knn_acc": round(float(frame.knn_acc), 4)}


def _cams_part(layout: RunLayout, epoch: int) -> dict | None:
    try:
        cams = load_cams(layout, epoch)
    except InsightError:
        return None
    maps = torch.from_numpy(cams.heatmaps).unsqueeze(1)
    side = max(maps.shape[-2:])
    if side > CAM_MAP_SIDE:
        maps = F.adaptive_avg_pool2d(maps, [max(1, round(n * CAM_MAP_SIDE / side)) for n in maps.shape[-2:]])
    cells = (maps.squeeze(1).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return {"h": int(cells.shape[1]), "w": int(cells.shape[2]),
            "maps": [base64.b64encode(cell.tobytes()).decode("ascii") for cell in cells],
            "preds": cams.preds.tolist(), "confidence": [round(float(c), 3) for c in cams.confidence]}


def film_head(run: RunInfo, data_dir=None) -> dict:
    """What every frame shares: the run's name, its classes, and the CAM samples' pictures with their
    method and layer (None when the run recorded no CAMs)."""
    meta = run.probe_meta
    head = {"run": run.name, "classes": run.classes, "cam": None}
    if meta.get("cam_method") and run.cam_epochs:
        pictures = cam_pictures(run, data_dir)
        head["cam"] = {"images": [png_data_url(picture) for picture in pictures],
                       "labels": _cam_labels(run),
                       "method": str(meta["cam_method"]), "layer": str(meta.get("cam_layer") or "")}
    return head


def _cam_labels(run: RunInfo) -> list[int]:
    return load_cams(run.layout, run.cam_epochs[0]).labels.tolist()


def cam_pictures(run: RunInfo, data_dir=None) -> list[np.ndarray]:
    """The CAM samples' images as RGB (H, W, 3) uint8: kept in the run folder since issue 19, else read from
    the run's data set; mid-grey squares when neither is there (an upload deleted since), so the heatmaps
    still show."""
    images = _kept_images(run.layout)
    if images is None:
        images = _dataset_images(run, data_dir)
    if images is None:
        count = len(_cam_labels(run))
        return [np.full((32, 32, 3), 128, np.uint8)] * count
    hwc = images.transpose(0, 2, 3, 1)
    return list(np.repeat(hwc, 3, axis=3) if hwc.shape[3] == 1 else hwc)


def _kept_images(layout: RunLayout) -> np.ndarray | None:
    try:
        with np.load(layout.cam_images, allow_pickle=False) as z:
            return z["images"]
    except (OSError, ValueError, KeyError):
        return None


def _dataset_images(run: RunInfo, data_dir) -> np.ndarray | None:
    indices = run.probe_meta.get("cam_indices")
    try:
        val_x = load_dataset(run.config.get("dataset", ""), data_dir, image_size=run.config.get("image_size", 0)).val_x
        return val_x[indices].numpy() if indices else None
    except (DatasetError, IndexError, TypeError):
        return None
