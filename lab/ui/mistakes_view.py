"""The mistakes loop on the Explain page: from a confusion cell to its images.

Under the confusion matrix, a list of its off-diagonal cells ("true → predicted (count)", the
largest first: keyboards reach every cell, and the biggest confusions are on top). Clicking a
cell of the matrix picks the same cell. The chosen cell's images come from
:func:`lab.insight.mistakes.mistakes`, the surest first, each next to its Grad-CAM for the
predicted class (where the net found the evidence for its wrong answer); its rows download as
the same CSV as ``python -m lab mistakes --pair TRUE,PRED --format csv``.

The rows and the heatmaps are cached per (run, checkpoint file version, cell): moving between
cells recomputes only the cells not seen yet.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from lab.data import DatasetError, load_dataset
from lab.data.corrections import split_name
from lab.insight.errors import InsightError
from lab.insight.mistakes import COLUMNS, Listing, mistakes
from lab.insight.overlay import overlay
from lab.insight.tools import dataset_image, explain_images
from lab.insight.validation import Evaluation, confusion_matrix
from lab.plots.images import display_scale
from lab.runs.compare import rows_to_csv
from lab.runs.view import RunInfo
from lab.ui.i18n import t
from lab.ui.state import job_manager, markdown_safe

PAIR_KEY = "explain.mistakes.pair"
CHART_KEY = "explain.confusion"  # the confusion matrix's plotly_chart, whose clicks pick a cell
GRID_SIZE, GRID_COLUMNS = 24, 4  # images shown per cell; image + heatmap pairs per row
SIDE = 112
CAM_METHOD = "gradcam"  # applies to any net with a conv layer, unlike CAM


def confusion_pairs(matrix: np.ndarray) -> list[tuple[int, int, int]]:
    """(true, predicted, count) of every non-empty off-diagonal cell, the largest first (ties: row order)."""
    cells = [(int(true), int(pred), int(matrix[true, pred])) for true, pred in zip(*np.nonzero(matrix))
             if true != pred]
    return sorted(cells, key=lambda cell: -cell[2])


def pair_key(true: int, pred: int) -> str:
    """A cell as ``mistakes()`` takes it ('TRUE,PRED' by index, never by a name that may hold a comma)."""
    return f"{true},{pred}"


def pick_clicked_cell(classes: list[str]) -> None:
    """``on_select`` of the confusion matrix: a clicked off-diagonal cell becomes the chosen pair.

    Plotly gives the clicked cell's axis values; a class named like a number ('7') comes back as a number."""
    selection = st.session_state.get(CHART_KEY) or {}
    points = (selection.get("selection") or {}).get("points") or []
    names = [str(name) for name in classes]
    for point in points[:1]:
        true, pred = str(point.get("y")), str(point.get("x"))
        if true in names and pred in names and true != pred:
            st.session_state[PAIR_KEY] = pair_key(names.index(true), names.index(pred))


@st.cache_data(max_entries=16, show_spinner=False)
def _cell_listing(run_dir: str, checkpoint: str, stamp: int, pair: str, count: int) -> Listing:
    """Every image of the cell (``count`` of them), the surest first; ``stamp`` is the checkpoint's version."""
    return mistakes(run_dir, pair, count, checkpoint, data_dir=job_manager().data_dir)


@st.cache_data(max_entries=16, show_spinner=False)
def _cell_heatmaps(run_dir: str, checkpoint: str, stamp: int, pair: str, _loaded, _items) -> list[np.ndarray]:
    """Grad-CAM of the predicted class for each image of ``_items``; the key names them for the cache."""
    with _loaded.lock:
        return [answer.heatmap for answer in explain_images(_loaded.model, _loaded.stats, _items, CAM_METHOD)]


def _choose_pair(pairs: list[tuple[int, int, int]], classes: list[str]) -> str:
    counts = {pair_key(true, pred): count for true, pred, count in pairs}
    if st.session_state.get(PAIR_KEY) not in counts:
        st.session_state.pop(PAIR_KEY, None)

    def label(key: str) -> str:
        true, pred = (int(part) for part in key.split(","))
        return t("explain.mistakes.pair", true=classes[true], predicted=classes[pred], count=counts[key])

    return st.selectbox(t("explain.mistakes.choose"), list(counts), format_func=label, key=PAIR_KEY,
                        help=t("explain.mistakes.choose.help"))


def _grid(rows: list[dict], heatmaps: list[np.ndarray] | None, items) -> None:
    """Each image with its caption, and its Grad-CAM beside it."""
    for start in range(0, len(rows), GRID_COLUMNS):
        columns = st.columns(2 * GRID_COLUMNS)
        for offset, row in enumerate(rows[start:start + GRID_COLUMNS]):
            at = start + offset
            caption = t("explain.mistakes.image", id=row["id"], given=markdown_safe(row["given"]),
                        predicted=markdown_safe(row["predicted"]), confidence=row["confidence"])
            columns[2 * offset].image(items[at].original, caption=caption, width=SIDE)
            if heatmaps is not None:
                cam_caption = t("explain.mistakes.cam", predicted=markdown_safe(row["predicted"]))
                columns[2 * offset + 1].image(overlay(items[at].original, heatmaps[at]), caption=cam_caption,
                                              width=SIDE)


def render_mistakes(run: RunInfo, checkpoint: str, stamp: int, loaded, evaluation: Evaluation) -> None:
    """The "Mistakes" section: a cell of the confusion matrix, its images with their Grad-CAM, its CSV."""
    st.subheader(t("explain.mistakes"))
    classes = loaded.stats.classes
    pairs = confusion_pairs(confusion_matrix(evaluation.labels, evaluation.preds, len(classes)))
    if not pairs:
        st.success(t("explain.mistakes.none"))
        return
    pair = _choose_pair(pairs, classes)
    count = next(n for true, pred, n in pairs if pair_key(true, pred) == pair)
    dataset, image_size = run.config.get("dataset", ""), run.config.get("image_size", 0)
    try:
        with st.spinner(t("explain.mistakes.finding")):
            listing = _cell_listing(str(run.path), checkpoint, stamp, pair, count)
            base = load_dataset(split_name(dataset)[0], job_manager().data_dir, image_size=image_size)
    except (InsightError, DatasetError) as err:
        st.info(t("explain.mistakes.unavailable", error=markdown_safe(err)))
        return
    shown = listing.rows[:GRID_SIZE]
    scale = display_scale(loaded.stats.shape[1], SIDE)
    items = [dataset_image(base, row["id"], loaded.stats, scale) for row in shown]
    try:
        heatmaps = _cell_heatmaps(str(run.path), checkpoint, stamp, pair, loaded, items)
    except InsightError as err:
        heatmaps = None
        st.caption(t("explain.mistakes.no_cam", reason=markdown_safe(err)))
    _grid(shown, heatmaps, items)
    if len(listing.rows) > len(shown):
        st.caption(t("explain.mistakes.more", shown=len(shown), count=len(listing.rows)))
    true, pred = pair.split(",")
    st.download_button(t("explain.mistakes.csv", count=len(listing.rows)), rows_to_csv(listing.rows, COLUMNS),
                       file_name=f"{run.id}-mistakes-{true}-{pred}.csv", mime="text/csv", on_click="ignore",
                       key="explain.mistakes.csv")
