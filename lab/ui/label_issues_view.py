"""Suspected label errors on the Explain page: from a ranking of the training set to a retrained run.

A button ranks the run's training images by confident learning (:func:`lab.insight.mistakes.label_issues`):
``folds`` small models trained with the run's own settings, each asked about the images it never saw.
That training runs on the page's own thread, one ranking at a time on the server, and only when it is
small (``WORK_LIMITS``); bigger work is refused before it starts and handed to
``python -m lab mistakes RUN --label-issues``. The probabilities are kept in the run folder, so the
ranking shows without the button from then on, from the page and the command line alike.

Each suspect shows its image, given label, suggested label and score, and a mark: keep (the default),
drop, or relabel as a class. Marks live in session state per run (they outlive reruns and page
switches); saving them writes a corrections version of the data set (the user's images are never
touched), and "retrain" queues the run's settings on it, grouped with the run so Compare shows both.
"""

from __future__ import annotations

import threading

import streamlit as st

from lab.classroom.exercise import check_run, queue_priority
from lab.data import DatasetError, load_dataset
from lab.data.corrections import Change, Corrected, split_name
from lab.insight.errors import InsightError
from lab.insight.mistakes import (
    COLUMNS,
    Listing,
    cached_scores,
    label_issue_scores,
    label_issues,
    retrain_config,
    run_data,
    scoring_settings,
    write_fixes,
)
from lab.jobs import QuotaExceeded
from lab.model.spec import SpecError, analyze
from lab.plots.images import display_scale, to_hwc, upscale
from lab.runs.compare import rows_to_csv
from lab.runs.view import RunInfo
from lab.train.device import resolve_device
from lab.train.engine import ConfigError
from lab.ui.i18n import t
from lab.ui.state import dataset_name, job_manager, markdown_safe, visitor

MARKS_KEY = "explain.issues.marks"  # {run id: {train image id: mark}}: outlives the widgets
SAVED_KEY = "explain.issues.saved"  # {run id: the marks saved, the data set written, the run queued on it}
KEEP, DROP, RELABEL = "keep", "drop", "relabel"  # a mark is KEEP, DROP or "relabel:<class index>"
SHOWN, GRID_COLUMNS, SIDE = 24, 4, 96
TRILLION = 1e12
# Multiply-accumulates of training (forward and backward, ~3 forward passes per image) a ranking may do on
# the page. tests/test_label_issues.py's ranking, gap_cam on 4,000 shapes images at 24 px, 4-fold, 8 epochs,
# is 1.7 trillion and took about 45 s on 2 CPU cores, so the CPU limit is about 80 s there; it lets through
# the Train page's default run (gap_cam, 4 epochs on shapes: 6,000 images scored, 2.2 trillion). The GPU
# limit is an estimate (twenty times the CPU's), not a measurement.
WORK_LIMITS = {"cpu": 3 * TRILLION, "gpu": 60 * TRILLION}


@st.cache_resource(show_spinner=False)
def _ranking_lock() -> threading.Lock:
    """One ranking at a time on the whole server: each trains on the thread of the page that asked."""
    return threading.Lock()


def training_work(run: RunInfo, data: Corrected, settings: dict) -> float:
    """Multiply-accumulates the k-fold training does: ``folds`` models, each trained on all folds but one
    of the images for the epochs, a backward pass costing about two forward ones."""
    macs = analyze(run.config.get("spec", {}), data.dataset.shape, len(data.dataset.classes)).total_macs
    return 3.0 * macs * settings["images"] * (settings["folds"] - 1) * settings["epochs"]


def _plan(settings: dict, work: float) -> dict:
    """The numbers the plan and the refusal say."""
    return {"folds": settings["folds"], "images": settings["images"], "epochs": settings["epochs"],
            "share": settings["images"] * (settings["folds"] - 1) // settings["folds"], "needed": work / TRILLION}


def _rank(run: RunInfo, data: Corrected, settings: dict) -> bool:
    """The plan and the button that trains the k-fold models; True once the scores are in the run folder.

    Work over this server's limit gets no button: the rule, and the command that does it in a terminal."""
    device = resolve_device("auto")
    limit = WORK_LIMITS["cpu" if device.type == "cpu" else "gpu"]
    work = training_work(run, data, settings)
    if work > limit:
        st.info(t("explain.issues.too_big", **_plan(settings, work), limit=limit / TRILLION, device=device.type))
        st.code(f"python -m lab mistakes {run.id} --label-issues", language="bash")
        return False
    st.caption(t("explain.issues.plan", **_plan(settings, work)))
    if not st.button(t("explain.issues.rank"), key="explain.issues.rank"):
        return False
    lock = _ranking_lock()
    if not lock.acquire(blocking=False):
        st.info(t("explain.issues.busy"))
        return False
    bar = st.progress(0.0)

    def progress(fold: int, folds: int) -> None:
        bar.progress(fold / folds, text=t("explain.issues.training", fold=fold + 1, folds=folds))

    try:
        label_issue_scores(job_manager().store, run, data, settings["folds"], device=str(device), progress=progress)
    except InsightError as err:
        st.error(t("explain.issues.cannot", error=markdown_safe(err)))
        return False
    finally:
        lock.release()
        bar.empty()
    return True


@st.cache_data(max_entries=8, show_spinner=False)
def _suspects(run_dir: str, stamp: int, top: int) -> Listing:
    """Every suspect of the run, the likeliest error first; ``stamp`` is the saved scores' version."""
    return label_issues(run_dir, top=top, data_dir=job_manager().data_dir)


# ---------------------------------------------------------------- marks


def _marks(run_id: str) -> dict[int, str]:
    return st.session_state.setdefault(MARKS_KEY, {}).setdefault(run_id, {})


def _mark_key(run_id: str, image_id: int) -> str:
    return f"explain.issues.mark.{run_id}.{image_id}"


def _remember(run_id: str, image_id: int) -> None:
    """``on_change`` of a mark's box: kept beside the widgets, which a page switch forgets."""
    _marks(run_id)[image_id] = st.session_state[_mark_key(run_id, image_id)]


def _mark_all(run_id: str, rows: list[dict], classes: list[str], action: str) -> None:
    """``on_click`` of a shortcut: every suspect kept, dropped or relabelled as its suggested class."""
    marks = _marks(run_id)
    for row in rows:
        mark = f"{RELABEL}:{classes.index(row['predicted'])}" if action == RELABEL else action
        marks[row["id"]] = st.session_state[_mark_key(run_id, row["id"])] = mark


def _mark_label(mark: str, classes: list[str]) -> str:
    action, _, index = mark.partition(":")
    return t("explain.issues.relabel", name=classes[int(index)]) if index else t(f"explain.issues.{action}")


def _changes(marks: dict[int, str], classes: list[str]) -> list[Change]:
    """The marks other than keep, as corrections of the base data set's training images."""
    changes = []
    for image_id, mark in sorted(marks.items()):
        action, _, index = mark.partition(":")
        if action != KEEP:
            changes.append(Change("train", image_id, action, classes[int(index)] if index else ""))
    return changes


def _grid(run: RunInfo, rows: list[dict], base, classes: list[str]) -> None:
    """Each suspect's image and labels, and its mark."""
    marks, scale = _marks(run.id), display_scale(base.shape[1], SIDE)
    options = [KEEP, DROP, *(f"{RELABEL}:{i}" for i in range(len(classes)))]
    for start in range(0, len(rows), GRID_COLUMNS):
        for column, row in zip(st.columns(GRID_COLUMNS), rows[start:start + GRID_COLUMNS]):
            key = _mark_key(run.id, row["id"])
            st.session_state.setdefault(key, marks.get(row["id"], KEEP))  # back after a page switch
            caption = t("explain.issues.image", id=row["id"], given=markdown_safe(row["given"]),
                        suggested=markdown_safe(row["predicted"]), score=row["label_issue_score"])
            column.image(upscale(to_hwc(base.train_x[row["id"]]), scale), caption=caption, width=SIDE)
            given = f"{RELABEL}:{classes.index(row['given'])}"  # relabelling as its own label changes nothing
            column.selectbox(t("explain.issues.mark", id=row["id"]), [o for o in options if o != given], key=key,
                             format_func=lambda mark: _mark_label(mark, classes), label_visibility="collapsed",
                             on_change=_remember, args=(run.id, row["id"]))


def _shortcuts(run: RunInfo, rows: list[dict]) -> None:
    drop_col, relabel_col, keep_col = st.columns(3)
    for column, action, label in ((drop_col, DROP, "explain.issues.all_drop"),
                                  (relabel_col, RELABEL, "explain.issues.all_relabel"),
                                  (keep_col, KEEP, "explain.issues.keep_all")):
        column.button(t(label, count=len(rows)), key=f"explain.issues.all.{action}", on_click=_mark_all,
                      args=(run.id, rows, run.classes, action))


# ---------------------------------------------------------------- save and retrain


def _save(run: RunInfo, marks: dict[int, str]) -> bool:
    """Write the marks as a new version of the run's data set; False (and why) when they cannot be."""
    try:
        dataset, count = write_fixes(run, _changes(marks, run.classes), job_manager().data_dir)
    except (DatasetError, InsightError) as err:
        st.error(t("explain.issues.cannot_save", error=markdown_safe(err)))
        return False
    st.session_state.setdefault(SAVED_KEY, {})[run.id] = {"marks": dict(marks), "dataset": dataset, "count": count}
    return True


def _retrain(run: RunInfo, saved: dict) -> bool:
    """Queue the run's settings on the saved version as this session's own run, grouped with the run;
    False (and why) when the queue, the exercise or the settings refuse it."""
    by = visitor()
    try:
        retrain = retrain_config(job_manager().store, run, saved["dataset"])
        config = retrain.config
        check_run(config, by)
        run_id = job_manager().submit(config, by=by, priority=queue_priority(config, by))
    except (ConfigError, SpecError, QuotaExceeded, DatasetError) as err:
        st.error(t("explain.issues.cannot_retrain", error=markdown_safe(err)))
        return False
    retrain.group(job_manager().store, run)
    saved.update(queued=run_id, name=config.name, sweep=config.sweep["id"])
    return True


def _open_compare(run: RunInfo, saved: dict) -> None:
    """Compare with the original and the retrained run selected, and their sweep on its sweep tab."""
    from lab.ui.compare_view import SELECT_KEY, SWEEP_KEY  # it imports the Train page: imported on use
    from lab.ui.train_view import COMPARE_PAGE

    st.session_state[SELECT_KEY] = [run.id, saved["queued"]]
    st.session_state[SWEEP_KEY] = saved["sweep"]
    st.switch_page(COMPARE_PAGE)


def _save_and_retrain(run: RunInfo) -> None:
    """What the marks come to and the save button; once saved, the new version's name and the retrain
    button; once queued, the way to Compare. Each step reruns the page to show the next."""
    marked = {image_id: mark for image_id, mark in _marks(run.id).items() if mark != KEEP}
    drops = sum(mark == DROP for mark in marked.values())
    st.caption(t("explain.issues.marked", drop=drops, relabel=len(marked) - drops))
    saved = st.session_state.get(SAVED_KEY, {}).get(run.id)
    if not saved or saved["marks"] != marked:  # nothing saved yet, or the marks changed since
        if st.button(t("explain.issues.save"), key="explain.issues.save", disabled=not marked, type="primary",
                     help=t("explain.issues.save.help")) and _save(run, marked):
            st.rerun()
        return
    st.success(t("explain.issues.saved", count=saved["count"]))
    st.code(dataset_name(saved["dataset"]), language=None)  # the name as data: a folder's name, never its path
    if "queued" not in saved:
        if st.button(t("explain.issues.retrain"), key="explain.issues.retrain", type="primary",
                     help=t("explain.issues.retrain.help")) and _retrain(run, saved):
            st.rerun()
        return
    st.success(t("explain.issues.queued", name=markdown_safe(saved["name"])))
    if st.button(t("explain.issues.compare"), key="explain.issues.compare"):
        _open_compare(run, saved)


# ---------------------------------------------------------------- section


def render_label_issues(run: RunInfo) -> None:
    """The "Suspected label errors" section: rank (once), mark, save as a version, retrain."""
    st.subheader(t("explain.issues"))
    st.caption(t("explain.issues.caption"))
    data_dir = job_manager().data_dir
    try:
        data = run_data(run, data_dir)
        settings = scoring_settings(run, data)
        if cached_scores(run, data, settings) is None and not _rank(run, data, settings):
            return
        with st.spinner(t("explain.issues.listing")):
            listing = _suspects(str(run.path), run.layout.label_issues.stat().st_mtime_ns, settings["images"])
            base = load_dataset(split_name(run.config.get("dataset", ""))[0], data_dir,
                                image_size=run.config.get("image_size", 0))
    except (InsightError, DatasetError, OSError) as err:
        st.info(t("explain.issues.unavailable", error=markdown_safe(err)))
        return
    st.caption(markdown_safe(listing.note))  # lab's words (English): how many, among what, by which method
    if not listing.rows:
        st.success(t("explain.issues.none"))
        return
    _shortcuts(run, listing.rows)
    shown = listing.rows[:SHOWN]
    _grid(run, shown, base, run.classes)
    if len(listing.rows) > len(shown):
        st.caption(t("explain.issues.more", shown=len(shown), count=len(listing.rows)))
    st.download_button(t("explain.issues.csv", count=len(listing.rows)), rows_to_csv(listing.rows, COLUMNS),
                       file_name=f"{run.id}-label-issues.csv", mime="text/csv", on_click="ignore",
                       key="explain.issues.csv")
    _save_and_retrain(run)
