"""The Data page: choose a dataset, see examples of every class and the class
balance, download one of the classic sets that is not on the server yet, or import a
zip of one's own class folders.

Datasets are loaded through ``lab.data.load_dataset``, whose in-process cache
is shared by every session; the sample grids built from them are cached with
``st.cache_data`` keyed on the dataset's name (and, for uploads that can be
replaced under one name, its classes and sizes), never on tensors.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from lab import settings
from lab.classroom.exercise import current_exercise
from lab.data import (
    Dataset,
    DatasetError,
    DatasetInfo,
    ImportReport,
    class_counts,
    download_dataset,
    download_mb,
    examples_per_class,
    import_zip,
    list_datasets,
    load_dataset,
)
from lab.model.layers import format_shape
from lab.plots.images import tile
from lab.plots.training import class_counts_figure
from lab.ui.i18n import language, t
from lab.ui.state import dataset_info, dataset_label, draft, markdown_safe, visitor

PICK, REPORT = "data.pick", "data.report"
PER_CLASS = 8  # examples shown per class


@st.cache_data(show_spinner=False, max_entries=32)
def sample_grids(name: str, fingerprint: tuple) -> list[tuple[str, np.ndarray]]:
    """(class name, one image row of up to PER_CLASS validation examples) per class.

    ``fingerprint`` only keys the cache: an upload re-imported under the same name
    has other classes or sizes and gets fresh grids.
    """
    ds = load_dataset(name)
    picks = examples_per_class(ds, PER_CLASS, split="val")
    return [(ds.classes[c], tile(ds.val_x[idx], ncols=PER_CLASS)) for c, idx in picks.items() if idx]


def _fingerprint(ds: Dataset) -> tuple:
    return tuple(ds.classes), len(ds.train_y), len(ds.val_y)


def _pick_changed() -> None:
    """Adopt the picked dataset into the draft only when it can be loaded now."""
    choice = st.session_state[PICK]
    info = dataset_info(choice)
    if info is None or info.available:
        draft()["dataset"] = choice


def _option_label(name: str, infos: dict[str, DatasetInfo]) -> str:
    info = infos.get(name)
    if info is None:
        return dataset_label(name)
    status = (t("common.built_in") if info.offline else t("common.ready") if info.available
              else t("data.status.missing"))
    return t("data.option", title=info.title, shape=format_shape(info.shape), classes=info.num_classes,
             status=status)


def render_picker() -> DatasetInfo | None:
    """The dataset selectbox; returns the picked dataset's registry entry (None for an upload)."""
    infos = {i.name: i for i in list_datasets(lang=language())}
    current = draft()["dataset"]
    options = list(infos) if current in infos else [*infos, current]
    if st.session_state.get(PICK) not in options:
        st.session_state[PICK] = current
    choice = st.selectbox(t("data.dataset"), options, key=PICK, on_change=_pick_changed,
                          format_func=lambda n: _option_label(n, infos))
    return infos.get(choice)


def _render_overview(ds: Dataset, info: DatasetInfo | None) -> None:
    if info is not None:
        st.caption(info.description)
    cols = st.columns(4)
    cols[0].metric(t("data.image_shape"), format_shape(ds.shape))
    cols[1].metric(t("common.classes"), ds.num_classes)
    cols[2].metric(t("data.train_images"), f"{len(ds.train_y):,}")
    cols[3].metric(t("data.val_images"), f"{len(ds.val_y):,}")


def _render_examples(name: str, ds: Dataset) -> None:
    st.subheader(t("data.examples"))
    grids = sample_grids(name, _fingerprint(ds))
    cols = st.columns(2)
    for i, (label, grid) in enumerate(grids):
        cols[i % 2].image(grid, caption=markdown_safe(label))  # an upload's folder name


def _render_balance(ds: Dataset) -> None:
    st.subheader(t("data.balance"))
    train = class_counts(ds.train_y, ds.num_classes)
    val = class_counts(ds.val_y, ds.num_classes)
    st.plotly_chart(class_counts_figure(ds.classes, train, val, language()), config={"displayModeBar": False})


def _render_download(info: DatasetInfo) -> None:
    """A Download button for a set the lab can fetch; once it is here the draft takes it and the page
    runs again to show it. lab.data.download does the work, one download per set for every session."""
    size = download_mb(info.name)
    if size is None or not st.button(t("data.download", title=info.title, size=size), key="data.download",
                                     type="primary", icon=":material/download:"):
        return
    bar = st.progress(0.0, text=t("data.download_starting", title=info.title))
    try:
        download_dataset(info.name, settings.data_dir(), lang=language(),
                         progress=lambda fraction, message: bar.progress(fraction, text=markdown_safe(message)))
    except DatasetError as err:
        bar.empty()
        st.error(t("data.download_failed", error=markdown_safe(err)))
        return
    draft()["dataset"] = info.name
    st.rerun()


def render_dataset(name: str, info: DatasetInfo | None) -> None:
    """Overview, examples and balance of a dataset, or why it cannot be shown (and a way to get it)."""
    if info is not None and not info.available:
        st.warning(t("data.not_here", title=info.title, draft=markdown_safe(dataset_label(draft()["dataset"])),
                     how=markdown_safe(info.how_to_get)))
        _render_download(info)
        return
    label = markdown_safe(dataset_label(name))
    try:
        with st.spinner(t("data.loading", name=label)):
            ds = load_dataset(name)
    except DatasetError as err:
        st.error(t("data.load_error", name=label, error=markdown_safe(err)))
        return
    _render_overview(ds, info)
    _render_examples(name, ds)
    _render_balance(ds)


def _use_import() -> None:
    report: ImportReport = st.session_state[REPORT]
    draft()["dataset"] = report.dataset_name
    st.session_state[PICK] = report.dataset_name


def _import(upload) -> None:
    """Import the uploaded zip with a progress bar; keeps the report for the summary."""
    bar = st.progress(0.0, text=t("data.reading_zip"))
    try:
        report = import_zip(upload, owner=visitor().key,  # this session's folder: classmates' uploads stay theirs
                            progress=lambda fraction, message: bar.progress(fraction, text=markdown_safe(message)))
    except DatasetError as err:
        bar.empty()
        st.error(t("data.import_failed", error=markdown_safe(err)))
        return
    bar.empty()
    st.session_state[REPORT] = report


def _render_report(report: ImportReport) -> None:
    st.success(t("data.imported", name=markdown_safe(report.name), classes=len(report.classes),
                 kept=report.total_kept))
    st.dataframe([{"class": c, "images kept": report.kept[c]} for c in report.classes], hide_index=True,
                 column_config={"class": t("data.col.class"), "images kept": t("data.col.kept")})
    if report.skipped:
        items = "; ".join(f"{n:,} × {why}" for why, n in sorted(report.skipped.items()))
        st.warning(t("data.skipped", items=markdown_safe(items)))
    if report.dropped_classes:
        st.warning(t("data.dropped", folders=markdown_safe(", ".join(report.dropped_classes))))
    st.button(t("data.use_import"), key="data.use_import", type="primary", on_click=_use_import,
              icon=":material/check:")


def render_upload() -> None:
    """Upload a zip of class folders (cat/*.jpg, dog/*.jpg, ...) and import it."""
    st.subheader(t("data.upload.heading"))
    st.caption(t("data.upload.caption"))
    limit_mb = max(1, settings.limits().max_upload_bytes // 2**20)
    upload = st.file_uploader(t("data.upload.label"), type="zip", key="data.upload", max_upload_size=limit_mb)
    if upload is not None and st.button(t("data.import"), key="data.import", icon=":material/upload:"):
        _import(upload)
    report = st.session_state.get(REPORT)
    if report is not None:
        _render_report(report)


def data_page() -> None:
    """The whole Data page; app_pages/data.py only calls this. A class's exercise that fixes
    the dataset shows that one, with no picker and no upload."""
    st.title(t("nav.data"))
    exercise = current_exercise()
    if exercise is not None and exercise.locks("data"):
        st.info(t("data.exercise_locked", dataset=markdown_safe(exercise.dataset or dataset_label(draft()["dataset"]))),
                icon=":material/lock:")
        render_dataset(draft()["dataset"], dataset_info(draft()["dataset"]))
        return
    info = render_picker()
    render_dataset(st.session_state[PICK], info)
    st.divider()
    render_upload()
