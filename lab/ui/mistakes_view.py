"""The mistakes loop on the Explain page: from a confusion cell to its images.

Under the confusion matrix, a list of its off-diagonal cells ("true → predicted (count)", the
largest first: keyboards reach every cell, and the biggest confusions are on top). Clicking a
cell of the matrix picks the same cell. The chosen cell's images come from
:func:`lab.insight.mistakes.mistakes`, the surest first, each next to its Grad-CAM for the
predicted class (where the net found the evidence for its wrong answer) and the epochs in which
it was right and wrong (the run's recorded predictions, :func:`lab.insight.mistakes.prediction_history`:
an image learned and then forgotten reads differently from one never learned); its rows download as
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
from lab.insight.mistakes import COLUMNS, History, Listing, mistakes, prediction_history, run_data
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
STRIP_EPOCHS = 30  # the ✓/✗ strip shows the last this many epochs; the words cover them all
LISTED_SPANS = 3  # "right at epochs 2–4, 7, 9–12": more spans than this are counted instead


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


def _spans(epochs: list[int]) -> tuple[str, int]:
    """Epochs as spans of consecutive numbers and how many spans: [2, 3, 4, 7] -> ('2–4, 7', 2)."""
    spans: list[list[int]] = []
    for epoch in epochs:
        if spans and epoch == spans[-1][-1] + 1:
            spans[-1].append(epoch)
        else:
            spans.append([epoch])
    return ", ".join(str(s[0]) if len(s) == 1 else f"{s[0]}–{s[-1]}" for s in spans), len(spans)


def history_line(epochs: list[int], right: np.ndarray) -> str:
    """One image's record as a ✓/✗ strip and words: '✗✓✓✗✗ · right at epochs 2–3; wrong since epoch 4'.
    Epoch 0 (the untrained net's guess) is left out: being right by chance there says nothing."""
    trained = [(epoch, bool(ok)) for epoch, ok in zip(epochs, right) if epoch > 0]
    if not trained:
        return ""
    strip = "".join("✓" if ok else "✗" for _, ok in trained[-STRIP_EPOCHS:])
    strip = ("…" if len(trained) > STRIP_EPOCHS else "") + strip
    right_epochs = [epoch for epoch, ok in trained if ok]
    if not right_epochs:
        return t("explain.mistakes.history", strip=strip, summary=t("explain.mistakes.history.never"))
    listed, count = _spans(right_epochs)
    summary = (t("explain.mistakes.history.right_at", epochs=listed) if count <= LISTED_SPANS
               else t("explain.mistakes.history.right_count", right=len(right_epochs), total=len(trained)))
    if not trained[-1][1]:  # forgotten: wrong from the first epoch after it was last right
        since = next(epoch for epoch, _ in trained if epoch > right_epochs[-1])
        summary = t("explain.mistakes.history.then_wrong", right=summary, epoch=since)
    return t("explain.mistakes.history", strip=strip, summary=summary)


def _histories(run: RunInfo, rows: list[dict]) -> History | None:
    """The shown images' predictions at every recorded epoch; their ids are the base data set's, so a run on
    a corrected version finds them through its own val split."""
    val_ids = run_data(run, job_manager().data_dir).val_ids
    return prediction_history(run, np.searchsorted(val_ids, [row["id"] for row in rows]))


def _grid(rows: list[dict], heatmaps: list[np.ndarray] | None, items, history: History | None) -> None:
    """Each image with its caption and its record by epoch, and its Grad-CAM beside it."""
    right = history.right() if history is not None else None
    for start in range(0, len(rows), GRID_COLUMNS):
        columns = st.columns(2 * GRID_COLUMNS)
        for offset, row in enumerate(rows[start:start + GRID_COLUMNS]):
            at = start + offset
            caption = t("explain.mistakes.image", id=row["id"], given=markdown_safe(row["given"]),
                        predicted=markdown_safe(row["predicted"]), confidence=row["confidence"])
            columns[2 * offset].image(items[at].original, caption=caption, width=SIDE)
            if right is not None:
                columns[2 * offset].caption(history_line(history.epochs, right[:, at]))
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
            shown = listing.rows[:GRID_SIZE]
            history = _histories(run, shown)
    except (InsightError, DatasetError) as err:
        st.info(t("explain.mistakes.unavailable", error=markdown_safe(err)))
        return
    scale = display_scale(loaded.stats.shape[1], SIDE)
    items = [dataset_image(base, row["id"], loaded.stats, scale) for row in shown]
    try:
        heatmaps = _cell_heatmaps(str(run.path), checkpoint, stamp, pair, loaded, items)
    except InsightError as err:
        heatmaps = None
        st.caption(t("explain.mistakes.no_cam", reason=markdown_safe(err)))
    if history is None:
        st.caption(t("explain.mistakes.no_history"))
    _grid(shown, heatmaps, items, history)
    if len(listing.rows) > len(shown):
        st.caption(t("explain.mistakes.more", shown=len(shown), count=len(listing.rows)))
    true, pred = pair.split(",")
    st.download_button(t("explain.mistakes.csv", count=len(listing.rows)), rows_to_csv(listing.rows, COLUMNS),
                       file_name=f"{run.id}-mistakes-{true}-{pred}.csv", mime="text/csv", on_click="ignore",
                       key="explain.mistakes.csv")
