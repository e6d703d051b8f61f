"""A run's feature space and its CAM strip, as the Train and Compare pages draw them.

Everything is read from the run folder through its :class:`~lab.runs.store.RunInfo`
and :class:`~lab.runs.layout.RunLayout`, so a live run, a finished one and one from
before a restart look the same. PCA maps are made on the
page thread (milliseconds); t-SNE and UMAP only by the server's one
``EmbeddingWorker``: until their maps land the page says "computing…" and polls.

The animation can keep only the untrained epoch and those where the best validation
accuracy improved ("best epochs only"), as the CIFAR write-up drew its t-SNE.

Figures are cached per (run, method, epochs shown, their accuracies): a live page redraws every second,
and building a plotly figure each time costs CPU and, in Streamlit, memory (streamlit
issues 6510 and 8834). The same figure re-sent is the same message, which Streamlit's
message cache does not send to the browser again.
"""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import streamlit as st
import torch

from lab.data import DatasetError, load_dataset
from lab.insight.best import best_epochs_only, improving_epochs, val_accuracies
from lab.insight.cam import get_cam_method
from lab.insight.embed import HEAVY, METHODS
from lab.insight.errors import InsightError
from lab.insight.maps import map_frames, mapped_epochs
from lab.insight.overlay import overlay_samples
from lab.insight.probe import load_cams
from lab.plots.images import display_scale
from lab.plots.insight import METHOD_TITLES, feature_space_figure, knn_figure, spread
from lab.runs.layout import RunLayout
from lab.runs.view import RunInfo
from lab.ui.i18n import language, t
from lab.ui.state import embedding_worker, job_manager, markdown_safe

CHART_CONFIG = {"displayModeBar": False}
CAM_SIDE = 96  # on-screen pixels of one CAM sample
LATEST = "latest"


def maps_error(run: RunLayout, method: str) -> str | None:
    """The embedding worker's failure for this run and method, if its last try failed."""
    worker = embedding_worker()
    return worker.errors.get(worker.key(run, method))


def maps_pending(run: RunLayout, method: str) -> bool:
    """Whether a recorded epoch still waits for its t-SNE/UMAP map: the page polls until it lands."""
    if method not in HEAVY or maps_error(run, method):
        return False
    return len(mapped_epochs(run, method)) < len(run.probe_epochs())


def insight_stamp(run: RunLayout, method: str) -> tuple[int, int, int]:
    """How many probe epochs, CAM epochs and (t-SNE/UMAP) maps a run has, in three globs: when
    it changes, a new epoch or map has landed and the pictures are worth drawing again."""
    maps = len(mapped_epochs(run, method)) if method in HEAVY else 0
    return len(run.probe_epochs()), len(run.cam_epochs()), maps


def ready_epochs(run: RunLayout, method: str) -> list[int]:
    """Recorded epochs whose map can be drawn now; asks the worker for the missing ones."""
    recorded = run.probe_epochs()
    if method not in HEAVY:
        return recorded  # made on the spot by map_frames
    ready = sorted(set(mapped_epochs(run, method)) & set(recorded))
    worker = embedding_worker()
    if len(ready) < len(recorded) and not maps_error(run, method) and not worker.pending(run, method):
        worker.request(run, method)
    return ready


# Cached figures are keyed by the run folder as text, which Streamlit hashes as it is.

@st.cache_resource(max_entries=24, show_spinner=False)
def _map_figure(run_folder: str, method: str, epochs: tuple[int, ...], classes: tuple[str, ...], lang: str,
                accuracies: tuple[tuple[int, float], ...], _metrics: list[dict]) -> go.Figure:
    """Keyed by the metrics' (epoch, val_acc) pairs too: a live run's epoch may land in the probe
    before its metrics row, and its title gains the accuracy once the row is there."""
    return feature_space_figure(map_frames(RunLayout(Path(run_folder)), method, epochs), classes, method, lang=lang,
                                metrics=_metrics)


@st.cache_resource(max_entries=24, show_spinner=False)
def _knn_figure(run_folder: str, epochs: tuple[int, ...], lang: str, _run: RunInfo) -> go.Figure:
    """Keyed by the recorded epochs so it is rebuilt only when one more has landed."""
    return knn_figure(_run.probe_index["epochs"], lang=lang)


def method_choice(key: str) -> str:
    """The map method radio (PCA is instant; t-SNE and UMAP are computed in the background)."""
    return st.radio(t("insight.map"), METHODS, format_func=METHOD_TITLES.get, horizontal=True, key=key,
                    help=t("insight.map.help"))


def _computing(method: str, ready: int, recorded: int, error: str | None) -> None:
    """Under the map: the worker's failure, or how many maps are still to come."""
    if error:
        st.error(t("insight.map_failed", method=METHOD_TITLES[method], error=markdown_safe(error)))
    elif ready < recorded:
        st.caption(t("insight.computing", method=METHOD_TITLES[method], count=recorded - ready))


def _animated_epochs(run: RunInfo, ready: list[int], key: str) -> list[int]:
    """The ready epochs the animation shows: all of them, or with the "best epochs only" toggle on,
    the untrained one and those where the best validation accuracy improved."""
    if st.toggle(t("insight.best_only"), key=f"{key}.best_only", help=t("insight.best_only.help")):
        ready = best_epochs_only(ready, improving_epochs(run.metrics))
    return spread(ready)


def feature_space(run: RunInfo, method: str, epoch: int | None = None, key: str = "insight") -> None:
    """The probe's map, animated over every epoch (or at one ``epoch``); "computing…" for the
    epochs whose map the worker has not made yet (the caller polls while ``maps_pending``)."""
    recorded = run.probe_epochs
    if not recorded:
        st.caption(t("insight.no_probe"))
        return
    ready = ready_epochs(run.layout, method)
    shown = _animated_epochs(run, ready, key) if epoch is None else [e for e in ready if e == epoch]
    if shown:
        accuracies = tuple(val_accuracies(run.metrics).items())
        figure = _map_figure(str(run.path), method, tuple(shown), tuple(run.classes), language(), accuracies,
                             run.metrics)
        st.plotly_chart(figure, config=CHART_CONFIG, key=f"{key}.map")
    _computing(method, len(ready) if epoch is None else len(shown), len(recorded) if epoch is None else 1,
               maps_error(run.layout, method))


def knn_chart(run: RunInfo, key: str = "insight") -> None:
    """k-NN accuracy of the probe per epoch, with a line on what it means."""
    recorded = run.probe_epochs
    if recorded:
        st.plotly_chart(_knn_figure(str(run.path), tuple(recorded), language(), run), config=CHART_CONFIG,
                        key=f"{key}.knn")
        st.caption(t("insight.knn"))


def _val_images(dataset: str, image_size: int, indices):
    """The val images at ``indices`` of the run's dataset (at its image size), or None when it cannot be loaded
    here."""
    try:
        return load_dataset(dataset, job_manager().data_dir, image_size=image_size).val_x[indices]
    except (DatasetError, IndexError):
        return None


def cam_strip(run: RunInfo, epoch: int, alpha: float) -> None:
    """The CAM samples of one epoch (one val image per class, heatmap of its true class) on their images."""
    try:
        cams = load_cams(run.layout, epoch)
    except InsightError as err:
        st.caption(markdown_safe(err))
        return
    classes = run.classes
    name = lambda c: classes[c] if 0 <= c < len(classes) else str(c)  # noqa: E731
    images = _val_images(run.config.get("dataset", ""), run.config.get("image_size", 0), cams.indices)
    if images is None:
        st.caption(t("insight.no_dataset"))
        images = torch.zeros((len(cams.heatmaps), 3, *cams.heatmaps.shape[1:]), dtype=torch.uint8)
    scale = display_scale(cams.heatmaps.shape[1], CAM_SIDE)
    pictures = overlay_samples(images, cams.heatmaps, alpha, scale)
    captions = [markdown_safe(f"{'✓' if pred == true else '✗'} {name(true)} → {name(pred)} {conf:.0%}")
                for true, pred, conf in zip(cams.labels, cams.preds, cams.confidence)]
    st.image(pictures, caption=captions, width=CAM_SIDE)
    st.caption(t("insight.cam", method=get_cam_method(cams.method).title, layer=cams.layer, epoch=cams.epoch))


def no_cams_reason(run: RunInfo) -> str:
    """Why a run has no CAM samples: the recorder's note (e.g. no feature maps to explain), or none yet."""
    note = run.probe_meta.get("cam_note", "")
    return markdown_safe(note) if note else t("insight.no_cams")
