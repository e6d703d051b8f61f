"""The Explain page: why a trained network answers what it answers, one image at a time.

Pick a run (finished or still training) and one of its checkpoints, then an image: a
validation image, one of the model's surest mistakes, or a file of your own. The page
shows the class probabilities, every CAM method's heatmap side by side for a target
class, the feature maps of every conv layer and the first layer's filters; below, the
confusion matrix on the validation set and a gallery of the most confident mistakes,
each one click from being explained, then the mistakes of one confusion cell
(:mod:`lab.ui.mistakes_view`) and the training set's suspected label errors
(:mod:`lab.ui.label_issues_view`). ``?run=<id>`` preselects a run. A folded panel
offers the run's downloads (:mod:`lab.ui.export_view`).

A model is loaded once per (run, checkpoint, file version) for the whole server and
used under a lock: CAM methods hook its layers, and two sessions hooking the same
module at once would read each other's activations. Answers are cached per image,
so moving the opacity slider recomputes nothing.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from lab.data import DatasetError, load_dataset
from lab.data.images import IMAGE_SUFFIXES
from lab.insight.activations import LayerMaps, conv_feature_maps, filters_grid, first_conv, maps_grid
from lab.insight.cam import CAM_METHODS
from lab.insight.errors import InsightError
from lab.insight.load import InputStats, load_run_model
from lab.insight.overlay import overlay
from lab.insight.tools import InputImage, MethodsAnswer, dataset_image, explain_methods, upload_image
from lab.insight.validation import Evaluation, confident_mistakes, confusion_matrix, evaluate
from lab.plots.images import display_scale, to_hwc, upscale
from lab.plots.insight import confusion_figure, probability_figure
from lab.runs.compare import run_labels
from lab.runs.view import NoCheckpoint, RunInfo
from lab.ui.export_view import render_exports
from lab.ui.i18n import language, t
from lab.ui.label_issues_view import render_label_issues
from lab.ui.mistakes_view import CHART_KEY, pick_clicked_cell, render_mistakes
from lab.ui.state import job_manager, list_runs, markdown_quoted, markdown_safe

QUERY_KEY = "run"
RUN_KEY, CHECKPOINT_KEY, SOURCE_KEY = "explain.run", "explain.checkpoint", "explain.source"
VAL_KEY, MISTAKE_KEY, UPLOAD_KEY = "explain.val_index", "explain.mistake", "explain.upload"
TARGET_KEY, ALPHA_KEY = "explain.target", "explain.alpha"
SOURCES = ("val", "mistake", "upload")  # labelled by the text keys explain.source.<source>
DISPLAY_SIDE = 160  # on-screen pixels of the explained image and its heatmaps
GALLERY_SIDE = 96
GALLERY_SIZE, GALLERY_COLUMNS = 12, 6
MISTAKES_LISTED = 100
CHART_CONFIG = {"displayModeBar": False}


@dataclass
class LoadedModel:
    """A run's model at one checkpoint, shared by every session, used under ``lock``."""

    model: torch.nn.Module
    stats: InputStats
    lock: threading.Lock


@st.cache_resource(max_entries=6, show_spinner=False)  # the page shows a spinner in the session's language
def _loaded(run_dir: str, checkpoint: str, stamp: int) -> LoadedModel:
    """``stamp`` (the checkpoint file's mtime) reloads 'best' when a live run improves it."""
    model, _, stats = load_run_model(run_dir, checkpoint)
    return LoadedModel(model, stats, threading.Lock())


def _stamp(run: RunInfo, checkpoint: str) -> int:
    return run.checkpoint(checkpoint).stat().st_mtime_ns


@st.cache_data(max_entries=6, show_spinner=False)
def _evaluation(run_dir: str, checkpoint: str, stamp: int, dataset: str, image_size: int) -> Evaluation:
    loaded = _loaded(run_dir, checkpoint, stamp)
    ds = load_dataset(dataset, job_manager().data_dir, image_size=image_size)
    with loaded.lock:
        return evaluate(loaded.model, loaded.stats, ds.val_x, ds.val_y)


@st.cache_resource(max_entries=6, show_spinner=False)
def _confusion_figure(run_dir: str, checkpoint: str, stamp: int, dataset: str, image_size: int,
                      lang: str) -> go.Figure:
    evaluation = _evaluation(run_dir, checkpoint, stamp, dataset, image_size)
    classes = _loaded(run_dir, checkpoint, stamp).stats.classes
    return confusion_figure(confusion_matrix(evaluation.labels, evaluation.preds, len(classes)), classes, lang)


@st.cache_data(max_entries=32, show_spinner=False)  # likewise
def _explained(run_dir: str, checkpoint: str, stamp: int, image_key: str, target: str,
               _item: InputImage) -> tuple[MethodsAnswer, list[LayerMaps]]:
    """Every method's heatmap and every conv layer's maps; ``image_key`` names ``_item`` for the cache."""
    loaded = _loaded(run_dir, checkpoint, stamp)
    with loaded.lock:
        answer = explain_methods(loaded.model, loaded.stats, _item, target)
        maps = conv_feature_maps(loaded.model, loaded.stats.normalize(_item.model_input[None]))
    return answer, maps


# ---------------------------------------------------------------- choosing


def explainable_runs() -> list[RunInfo]:
    """Runs with at least one checkpoint (a run saves its first after epoch 0 or 1)."""
    return [run for run in list_runs() if run.checkpoints]


def _forget_unknown_run(ids: list[str]) -> None:
    """A URL naming no explainable run (deleted, mistyped, 5,000 characters) is named once, then dropped from it."""
    wanted = st.query_params.get(QUERY_KEY)
    if wanted and wanted not in ids:
        st.warning(t("explain.no_such_run", run=markdown_quoted(wanted)))
        st.query_params.pop(QUERY_KEY)


def _sync_run_choice(ids: list[str]) -> None:
    """The URL's run preselects the picker (deep links, reloads)."""
    wanted = st.query_params.get(QUERY_KEY)
    if wanted and RUN_KEY not in st.session_state:
        st.session_state[RUN_KEY] = wanted
    if st.session_state.get(RUN_KEY) not in ids:
        st.session_state[RUN_KEY] = ids[0]


def _keep_valid(key: str, options: list) -> None:
    """Forget a widget's value that is no longer among its options (another run, another image)."""
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]


def _checkpoint_label(run: RunInfo, choice: str) -> str:
    if choice == "best" and run.best_epoch is not None:
        return t("explain.checkpoint.best_epoch", epoch=run.best_epoch)
    return t(f"explain.checkpoint.{choice}") if choice in ("best", "last") else t("common.epoch_n", epoch=choice)


def _choose_run() -> tuple[RunInfo, str] | None:
    """Run and checkpoint pickers; None (with a hint) when there is nothing to explain yet."""
    runs = explainable_runs()
    _forget_unknown_run([run.id for run in runs])
    if not runs:
        st.info(t("explain.no_runs"))
        return None
    by_id, labels = {r.id: r for r in runs}, run_labels(runs)
    _sync_run_choice(list(by_id))
    run_col, checkpoint_col = st.columns([3, 1])
    run = by_id[run_col.selectbox(t("explain.run"), list(by_id), format_func=labels.get, key=RUN_KEY)]
    st.query_params[QUERY_KEY] = run.id
    choices = run.checkpoints
    _keep_valid(CHECKPOINT_KEY, choices)
    checkpoint = checkpoint_col.selectbox(t("explain.checkpoint"), choices, key=CHECKPOINT_KEY,
                                          format_func=lambda c: _checkpoint_label(run, c),
                                          help=t("explain.checkpoint.help"))
    return run, checkpoint


def _random_val_image(count: int) -> None:
    st.session_state[VAL_KEY] = int(np.random.default_rng().integers(count))


def _pick_mistake(index: int) -> None:
    """``on_click`` of a gallery image: explain that mistake."""
    st.session_state[SOURCE_KEY] = "mistake"
    st.session_state[MISTAKE_KEY] = index


def _mistake_label(index: int, evaluation: Evaluation, classes: list[str]) -> str:
    return t("explain.mistake.label", index=index, true=classes[evaluation.labels[index]],
             predicted=classes[evaluation.preds[index]], confidence=evaluation.confidence[index])


def _choose_image(ds, evaluation: Evaluation | None, stats: InputStats) -> tuple[InputImage, str] | None:
    """The image to explain and a key naming it, from the chosen source; None when there is none yet."""
    sources = list(SOURCES) if ds is not None else ["upload"]
    _keep_valid(SOURCE_KEY, sources)
    source = st.radio(t("explain.image"), sources, format_func=lambda s: t(f"explain.source.{s}"), horizontal=True,
                      key=SOURCE_KEY)
    scale = display_scale(stats.shape[1], DISPLAY_SIDE)
    if source == "val":
        count = len(ds.val_y)
        number_col, random_col = st.columns([3, 1], vertical_alignment="bottom")
        index = number_col.number_input(t("explain.val_index", last=count - 1), 0, count - 1, key=VAL_KEY)
        random_col.button(t("explain.random"), on_click=_random_val_image, args=(count,))
        return dataset_image(ds, int(index), stats, scale), f"val:{index}"
    if source == "mistake":
        mistakes = confident_mistakes(evaluation, MISTAKES_LISTED).tolist()
        if not mistakes:
            st.success(t("explain.no_mistakes_here"))
            return None
        _keep_valid(MISTAKE_KEY, mistakes)
        index = st.selectbox(t("explain.mistake"), mistakes, key=MISTAKE_KEY,
                             format_func=lambda i: _mistake_label(i, evaluation, stats.classes))
        return dataset_image(ds, index, stats, scale), f"val:{index}"
    upload = st.file_uploader(t("explain.upload"), type=sorted(s.lstrip(".") for s in IMAGE_SUFFIXES), key=UPLOAD_KEY)
    if upload is None:
        st.caption(t("explain.upload.caption", width=stats.shape[2], height=stats.shape[1]))
        return None
    data = upload.getvalue()
    try:
        return upload_image(upload.name, data, stats, DISPLAY_SIDE), f"upload:{hashlib.sha1(data).hexdigest()}"
    except InsightError as err:
        st.error(t("explain.upload.error", error=markdown_safe(err)))
        return None


def _choose_target(item: InputImage, classes: list[str]) -> str:
    """'pred', 'true' (labelled images) or a class index as text, as ``explain_images`` takes it."""
    options = ["pred"] + (["true"] if item.label is not None else []) + [str(c) for c in range(len(classes))]
    _keep_valid(TARGET_KEY, options)
    names = {"pred": t("explain.target.pred"), "true": t("explain.target.true", name=classes[item.label])
             if item.label is not None else ""}
    return st.selectbox(t("explain.target"), options, key=TARGET_KEY,
                        format_func=lambda o: names.get(o) or t("explain.target.class", name=classes[int(o)]),
                        help=t("explain.target.help"))


# ---------------------------------------------------------------- showing


def _heatmaps(item: InputImage, answer: MethodsAnswer, classes: list[str], alpha: float) -> None:
    """Every CAM method side by side; a method that does not apply says why instead."""
    st.subheader(t("common.where_it_looks"))
    if answer.target is not None:
        st.caption(t("explain.evidence", name=markdown_safe(classes[answer.target])))
    for column, (name, method) in zip(st.columns(len(CAM_METHODS)), CAM_METHODS.items()):
        with column:
            if name in answer.heatmaps:
                st.image(overlay(item.original, answer.heatmaps[name], alpha), caption=method.title,
                         width=DISPLAY_SIDE)
            else:
                st.markdown(f"**{method.title}**")
                reason = markdown_safe(answer.missing[name])  # lab's words (English), may name a layer
                st.caption(t("explain.not_available", reason=reason))


def _inside(model: torch.nn.Module, maps: list[LayerMaps]) -> None:
    """The feature maps of every conv layer for this image, and the first layer's filters."""
    st.subheader(t("explain.inside"))
    if not maps:
        st.caption(t("explain.no_conv"))
        return
    maps_col, filters_col = st.columns([3, 1])
    with maps_col:
        for layer in maps:
            k, h, w = layer.maps.shape
            caption = t("explain.maps", layer=layer.name, channels=layer.channels, height=h, width=w)
            if k < layer.channels:
                caption = t("explain.maps.first", maps=caption, shown=k)
            st.image(maps_grid(layer.maps), caption=caption)
    with filters_col:
        conv = first_conv(model)
        kh, kw = conv.kernel_size
        st.image(filters_grid(model), caption=t("explain.filters", count=conv.out_channels, height=kh, width=kw))


def _validation(ds, evaluation: Evaluation, figure: go.Figure, stats: InputStats) -> None:
    """The confusion matrix and a gallery of the surest mistakes, each with a button to explain it."""
    st.subheader(t("explain.validation"))
    st.plotly_chart(figure, config=CHART_CONFIG, key=CHART_KEY, selection_mode="points",
                    on_select=lambda: pick_clicked_cell(stats.classes))  # a click picks the cell below
    mistakes = confident_mistakes(evaluation, GALLERY_SIZE).tolist()
    if not mistakes:
        st.success(t("explain.no_mistakes"))
        return
    st.markdown(t("explain.surest_mistakes"))
    scale = display_scale(stats.shape[1], GALLERY_SIDE)
    for row in range(0, len(mistakes), GALLERY_COLUMNS):
        for column, index in zip(st.columns(GALLERY_COLUMNS), mistakes[row:row + GALLERY_COLUMNS]):
            classes = stats.classes
            caption = (f"{classes[evaluation.labels[index]]} → {classes[evaluation.preds[index]]} "
                       f"{evaluation.confidence[index]:.0%}")
            column.image(upscale(to_hwc(ds.val_x[index]), scale), caption=markdown_safe(caption), width=GALLERY_SIDE)
            column.button(t("explain.pick"), key=f"explain.pick.{index}", on_click=_pick_mistake, args=(index,))


def render_explain_page() -> None:
    """Draw the page: run and checkpoint, image, probabilities, heatmaps, layers, validation set."""
    st.title(t("nav.explain"))
    st.caption(t("explain.caption"))
    chosen = _choose_run()
    if chosen is None:
        return
    run, checkpoint = chosen
    try:
        stamp = _stamp(run, checkpoint)
        with st.spinner(t("explain.loading")):
            loaded = _loaded(str(run.path), checkpoint, stamp)
    except (InsightError, NoCheckpoint) as err:
        st.error(t("explain.load_error", error=markdown_safe(err)))
        return
    with st.expander(t("explain.downloads"), icon=":material/download:"):
        render_exports(run, checkpoint, job_manager().data_dir)
    stats, dataset, image_size = loaded.stats, run.config.get("dataset", ""), run.config.get("image_size", 0)
    try:
        ds = load_dataset(dataset, job_manager().data_dir, image_size=image_size)
    except DatasetError as err:
        st.warning(t("explain.no_dataset", error=markdown_safe(err)))
        ds = None
    evaluation = None
    if ds is not None:
        with st.spinner(t("explain.classifying", count=len(ds.val_y))):
            evaluation = _evaluation(str(run.path), checkpoint, stamp, dataset, image_size)
    chosen_image = _choose_image(ds, evaluation, stats)
    if chosen_image is not None:
        item, image_key = chosen_image
        target_col, alpha_col = st.columns(2)
        with target_col:
            target = _choose_target(item, stats.classes)
        alpha = alpha_col.slider(t("common.heatmap_opacity"), 0.0, 1.0, 0.5, 0.05, key=ALPHA_KEY)
        with st.spinner(t("explain.explaining")):
            answer, maps = _explained(str(run.path), checkpoint, stamp, image_key, target, item)
        image_col, probs_col = st.columns([1, 2])
        pred = int(np.argmax(answer.probs))
        caption = t("explain.predicted", name=markdown_safe(stats.classes[pred]), confidence=answer.probs[pred])
        if item.label is not None:
            caption = " · ".join([t("explain.true", name=markdown_safe(stats.classes[item.label])), caption])
        image_col.image(item.original, caption=caption, width=DISPLAY_SIDE)
        probs_col.plotly_chart(probability_figure(answer.probs, stats.classes, item.label, lang=language()),
                               config=CHART_CONFIG, key="explain.probs")
        _heatmaps(item, answer, stats.classes, alpha)
        _inside(loaded.model, maps)
    if evaluation is not None:
        figure = _confusion_figure(str(run.path), checkpoint, stamp, dataset, image_size, language())
        _validation(ds, evaluation, figure, stats)
        render_mistakes(run, checkpoint, stamp, loaded, evaluation)
        render_label_issues(run)
