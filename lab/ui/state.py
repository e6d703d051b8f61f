"""Per-session draft, the server-wide job manager and embedding worker, and the runs as pages read them.

The draft is what a user is working on: dataset, model spec, augmentation and
training settings. It is a plain dict in ``st.session_state`` so it survives
page switches and reruns and never leaks into another browser session. The
job manager and the embedding worker are shared by everyone (``st.cache_resource``):
runs are shared on disk, drafts are not.

Pages read runs through :func:`list_runs` and :func:`shown_run` (a
:class:`~lab.runs.store.RunInfo`: the same for a live, an ended and a pre-restart
run), progress within an epoch through ``job_manager().state``, and change runs
through :func:`annotate_run`, :func:`delete_run` and ``job_manager().stop`` as this
session's :func:`visitor`.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import streamlit as st

from lab.classroom.exercise import current_exercise, starting_draft
from lab.data import DatasetError, DatasetInfo, list_datasets, load_dataset
from lab.data.dataset import shrunk_shape
from lab.data.registry import FOLDER_PREFIX
from lab.insight.worker import EmbeddingWorker
from lab.jobs import JobManager
from lab.model.layers import Shape
from lab.model.presets import get_preset, get_preset_info
from lab.model.spec import Summary, analyze
from lab.runs import access
from lab.runs.access import Visitor
from lab.runs.layout import RunLayout
from lab.runs.store import STATUSES
from lab.runs.view import RunInfo
from lab.train.ranges import image_size_problem
from lab.ui.i18n import language, t

DEFAULT_PRESET = "gap_cam"
VISITOR_KEY = "visitor"
# Defaults that train the default preset on `shapes` to a good accuracy in about a minute on 2 CPU cores.
DEFAULT_TRAIN = {
    "epochs": 4, "batch_size": 64, "optimizer": "adam", "lr": 2e-3, "schedule": "onecycle",
    "weight_decay": 0.0, "label_smoothing": 0.0, "seed": 0, "device": "auto", "compile": False,
}


def default_draft() -> dict:
    return {
        "dataset": "shapes",
        "preset": DEFAULT_PRESET,
        "spec": get_preset(DEFAULT_PRESET),
        "augment": {"preset": get_preset_info(DEFAULT_PRESET).augment},
        "train": dict(DEFAULT_TRAIN),
    }


def draft() -> dict:
    """This session's draft, created on first use (from the class's exercise, when there is
    one); edit it in place. The exercise's fixed values are put back on every call, so no
    edit, share link or crafted widget value keeps another one."""
    exercise = current_exercise()
    if "draft" not in st.session_state:
        st.session_state["draft"] = starting_draft(default_draft(), exercise)
    elif exercise is not None:
        exercise.apply(st.session_state["draft"])
    return st.session_state["draft"]


def replace_draft(new: dict) -> None:
    st.session_state["draft"] = copy.deepcopy(new)


def dataset_info(name: str) -> DatasetInfo | None:
    """The registry's entry for a dataset, known without loading it (None if unknown); its words in the
    session's language."""
    return next((info for info in list_datasets(lang=language()) if info.name == name), None)


def _is_upload(name: str) -> bool:
    """Whether a dataset name is ``folder:PATH`` (an upload, or a folder on the server)."""
    return name.lower().startswith(FOLDER_PREFIX)


def dataset_name(name: str) -> str:
    """A dataset's short name: an upload's folder name, never its server path (``folder:/srv/.../uploads/<key>/x``
    is ``x``), else the registry's name. For run names and labels seen by the whole class."""
    return Path(name[len(FOLDER_PREFIX):]).name if _is_upload(name) else name


def dataset_label(name: str, yours: bool = True) -> str:
    """A dataset's name on screen: an upload by its folder's name, not its server path, marked as this
    session's (the draft's) or as someone's (a run's, on a page the class shares)."""
    if _is_upload(name):
        return t("common.your_upload" if yours else "common.upload", name=dataset_name(name))
    return name


def status_label(status: str) -> str:
    """A run status on screen ("finished" is "완료" in Korean); runs, tables and filters keep the
    English value. "live" is the Train page's word for queued or running; any other word is shown as it is."""
    return t(f"status.{status}") if status in (*STATUSES, "live") else status


# What Markdown, GitHub's extensions and Streamlit give a meaning to: links and images, emphasis, code, HTML and
# entities, headings, tables, strikethrough, LaTeX and the "@" of an e-mail link anywhere; the "." of "www." (a
# link); list markers and underlines only at the start. "(", ")" and other dots are left as they are: a "(" makes
# a link only after a "]", which is escaped, and "layer 3 (maxpool2d)" or "broken.png" stay as they read.
MARKDOWN_SPECIAL = re.compile(r"[\\`*_\[\]<>!#|~$&@]|(?<=(?i:www))\.")
LIST_MARKER = re.compile(r"^(\s*\d*)([-+=.)])")  # "- x", "+ x", "1. x", "1) x", "---", "==="
# A colon before text starts ":red[...]", ":material/icon:", ":streamlit:", an emoji shortcode or "http://".
# Streamlit finds the icons and shortcodes in the text after Markdown has dropped the backslashes, so an
# invisible word joiner after the colon is what keeps them apart.
COLON_BEFORE_TEXT = re.compile(r":(?=\S)")
WORD_JOINER = "\u2060"


def markdown_safe(text: object) -> str:
    """``text`` as plain text in an element that renders Markdown (markdown, captions, alerts, toasts, labels,
    help, progress text, image captions): a run name ``![](http://host/beacon)`` shows those characters on a
    classmate's page instead of loading the image. Every special character gets a backslash, which Markdown
    shows as the character itself, and a colon before text an invisible word joiner; line breaks become spaces,
    so a name cannot start a block. Names, owners, tags, notes, class and file names, a draft from a share link,
    and error messages quoting any of them pass through here; the page's own text (lab/locales) does not."""
    line = " ".join(str(text).splitlines())
    escaped = LIST_MARKER.sub(r"\1\\\2", MARKDOWN_SPECIAL.sub(r"\\\g<0>", line))
    return COLON_BEFORE_TEXT.sub(":" + WORD_JOINER, escaped)


def markdown_quoted(text: str, limit: int = 60) -> str:
    """A string from a URL or a file quoted in a sentence, as :func:`markdown_safe` text: at most ``limit``
    characters of it, so a 5,000-character ``?run=`` does not fill the page."""
    return markdown_safe(repr(text[:limit]))


def dataset_geometry(name: str, image_size: int = 0) -> tuple[Shape, int] | None:
    """(image shape, class count) of a dataset at a run's ``image_size`` (0: its default): from the
    registry without loading, else (an upload) from the loaded dataset; None when it cannot be loaded."""
    info = dataset_info(name)
    if info is not None:
        return shrunk_shape(info.shape, image_size), info.num_classes
    try:
        ds = load_dataset(name, image_size=image_size)
    except DatasetError:
        return None
    return ds.shape, ds.num_classes


def draft_summary() -> Summary:
    """The draft spec analysed for the chosen dataset's image shape (at the draft's image size) and class count.

    Training replaces the spec's own input and classes with the dataset's, so
    every page shows the numbers a run will really have; the spec's own are
    used only when the dataset cannot be loaded.
    """
    d = draft()
    geometry = dataset_geometry(d["dataset"], _image_size(d["train"]))
    if geometry is None:
        return analyze(d["spec"], lang=language())
    return analyze(d["spec"], *geometry, lang=language())


def _image_size(train: dict) -> int:
    """The draft's image size as the data sets take it; 0 (the default) for a value validation will refuse."""
    size = train.get("image_size", 0)
    return 0 if image_size_problem(size) else size


def owner() -> str:
    """The name this session's user typed once (runs carry it)."""
    return st.session_state.get("owner", "")


def visitor() -> Visitor:
    """This browser session's identity for lab.runs.access, made on first use: the runs it
    starts are its own to stop, rename and delete. A teacher's sign-in replaces it."""
    if VISITOR_KEY not in st.session_state:
        st.session_state[VISITOR_KEY] = Visitor()
    return st.session_state[VISITOR_KEY]


def sign_in_teacher() -> None:
    """Give this session a teacher's rights (the caller has checked the password)."""
    st.session_state[VISITOR_KEY] = Visitor(visitor().secret, teacher=True)


def sign_out_teacher() -> None:
    """Back to a student's rights, on a shared computer or before the projector: the session keeps its
    secret, so the runs it started stay its own."""
    st.session_state[VISITOR_KEY] = Visitor(visitor().secret)


@st.cache_resource
def job_manager() -> JobManager:
    """One job manager per server process, shared by all sessions."""
    return JobManager()


@st.cache_resource
def embedding_worker() -> EmbeddingWorker:
    """One embedding worker per server process, shared by all sessions: t-SNE and UMAP
    maps are made one at a time in its low-priority child process, however many
    browsers ask, so a class of forty cannot start forty t-SNEs beside the training.
    Its child starts at once and compiles UMAP in the background (app.py asks for the
    worker on the first page view)."""
    worker = EmbeddingWorker()
    worker.warm_up()
    return worker


def list_runs() -> list[RunInfo]:
    """Every run of this server, newest first, as its folder is now."""
    return job_manager().store.list()


def shown_run(run_id: str) -> RunInfo:
    """The run a page shows, read from its folder now; RunNotFound when there is none."""
    return job_manager().store.get(run_id)


def run_layout(run_id: str) -> RunLayout:
    """Where a run's files are, without reading them: for what a live view polls every second."""
    return job_manager().store.layout(run_id)


def may_change_run(run_id: str) -> bool:
    """Whether this session may stop, rename or delete the run (lab.runs.access)."""
    return access.may_change(job_manager().store.read_status(run_id), visitor())


def annotate_run(run_id: str, name: str, tags: list[str], note: str) -> dict:
    """Rename, tag and annotate a run as this session; AnnotationError, RunNotFound or AccessDenied."""
    return job_manager().store.annotate(run_id, name=name, tags=tags, note=note, by=visitor())


def delete_run(run_id: str) -> None:
    """Delete a run's folder as this session; RunNotFound or AccessDenied."""
    job_manager().store.delete(run_id, by=visitor())
