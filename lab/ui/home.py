"""The Home page: what the lab does, the device, the datasets, quick starts, the write-ups' experiments and a guide.

Quick starts set the whole draft (dataset, model, augmentation) to a well-known
write-up's, so the next pages only need "Train". The write-ups' experiments go
further: a card per named experiment (lab.runs.experiment) queues every run of the
write-up's study, with its own settings and epochs shrunk for a demo if asked, as
the Compare page queues a sweep, and opens Compare on them. When a write-up's data
set is not on this server, both fall back to one that is and say so instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from lab.data import DatasetInfo, list_datasets
from lab.data.registry import FOLDER_PREFIX
from lab.model.layers import format_shape
from lab.model.presets import get_preset, get_preset_info
from lab.runs.experiment import EXPERIMENTS, UPLOAD, Experiment, plan_named_experiment
from lab.train.engine import ConfigError
from lab.ui.compare_view import queue_plan
from lab.ui.i18n import language, t
from lab.ui.sidebar import device_badge
from lab.ui.state import dataset_label, draft, markdown_safe, owner

# Page scripts as registered in app.py, with the text keys of their title and of what each is for.
GUIDE = [
    ("app_pages/data.py", "nav.data", "home.guide.data"),
    ("app_pages/build.py", "nav.build", "home.guide.build"),
    ("app_pages/augment.py", "nav.augment", "home.guide.augment"),
    ("app_pages/train.py", "nav.train", "home.guide.train"),
    ("app_pages/compare.py", "nav.compare", "home.guide.compare"),
    ("app_pages/explain.py", "nav.explain", "home.guide.explain"),
]


@dataclass(frozen=True)
class QuickStart:
    """A write-up's experiment as a draft: the first available dataset of ``datasets`` is used."""

    title: str  # a text key (lab.ui.i18n)
    preset: str
    datasets: tuple[str, ...]  # preferred first; the last ones should be offline
    augment: str


QUICK_STARTS = [
    QuickStart("home.quick.fashion", "fashion_cnn", ("fashion-mnist", "digits", "shapes"), "none"),
    QuickStart("home.quick.cifar", "cifar_vgg", ("cifar10", "shapes"), "keras_basic"),
    QuickStart("home.quick.cam", "gap_cam", ("shapes",), "none"),
]


# The epochs-scale choices of a write-up's card: its own epochs, or shrunk alike for a classroom demo.
EPOCHS_SCALES = (1.0, 0.5, 0.2, 0.1)
OPEN_COMPARE = "home.open_compare"  # set while a Start click queues its runs: the rerun that follows opens Compare
COMPARE_PAGE = "app_pages/compare.py"
# What a card adds under itself, by experiment: the transfer experiment's caveat, (heading, text) keys.
EXPANDERS = {"transfer-vs-scratch": ("home.transfer.why_heading", "home.transfer.why")}


def pick_dataset(wanted: tuple[str, ...], infos: list[DatasetInfo]) -> tuple[str, str]:
    """The first available dataset of ``wanted``, and a note when it is not the first choice."""
    available = {info.name for info in infos if info.available}
    name = next((n for n in wanted if n in available), wanted[-1])
    if name == wanted[0]:
        return name, ""
    how = next((i.how_to_get for i in infos if i.name == wanted[0]), "")
    return name, t("home.fallback", wanted=wanted[0], name=name, how=markdown_safe(how)).strip()


def apply_quick_start(start: QuickStart, infos: list[DatasetInfo]) -> str:
    """Set the draft to a quick start; returns the message to show."""
    dataset, note = pick_dataset(start.datasets, infos)
    d = draft()
    d.update(dataset=dataset, spec=get_preset(start.preset), preset=start.preset, augment={"preset": start.augment})
    d["train"] = {**d["train"], **get_preset_info(start.preset).train}
    message = t("home.quick.applied", preset=start.preset, dataset=dataset, augment=start.augment)
    return f"{message} {note}" if note else message


def _quick_start_clicked(index: int) -> None:
    st.session_state["home.message"] = apply_quick_start(QUICK_STARTS[index], list_datasets(lang=language()))


def writeup_dataset(experiment: Experiment, infos: list[DatasetInfo], current: str) -> tuple[str, str]:
    """The data set a write-up's card trains on, and a caption saying so (and why, for a stand-in).

    A write-up on the user's own images takes the draft's upload; until there is one, and when a write-up's
    data set is not on this server, a stand-in lets the class see the comparison run."""
    if experiment.dataset == UPLOAD:
        if current.lower().startswith(FOLDER_PREFIX):
            return current, t("home.writeup.uses_upload", dataset=markdown_safe(dataset_label(current)))
        dataset, _ = pick_dataset(experiment.stand_ins, infos)
        return dataset, t("home.writeup.upload_instead", dataset=dataset)
    dataset, note = pick_dataset((experiment.dataset, *experiment.stand_ins), infos)
    return dataset, (t("home.writeup.uses_instead", dataset=dataset, wanted=experiment.dataset) if note
                     else t("home.writeup.uses", dataset=dataset))


def _start_writeup(name: str, dataset: str, scale: float) -> None:
    """Plan and queue a write-up's runs, then open Compare on them; or say why nothing was queued."""
    try:
        configs = plan_named_experiment(name, dataset, epochs_scale=scale, owner=owner())
    except ConfigError as err:
        st.error(t("home.writeup.cannot", error=markdown_safe(err)))
        return
    st.session_state[OPEN_COMPARE] = True
    queue_plan(configs)  # reruns the page once every run is queued (and selects them on Compare)
    del st.session_state[OPEN_COMPARE]  # it returned: nothing was queued, and it has shown why


def _render_writeup(name: str, experiment: Experiment, infos: list[DatasetInfo]) -> None:
    dataset, uses = writeup_dataset(experiment, infos, draft()["dataset"])
    with st.container(border=True, height="stretch", key=f"writeup-{name}"):  # the key: a handle for the browser
        st.markdown(f"**{t(f'experiment.{name}.title')}**")
        st.caption(t(f"experiment.{name}.description"))
        st.caption(t("home.writeup.runs", runs=markdown_safe(", ".join(run.label for run in experiment.runs))))
        scale = st.radio(t("home.writeup.scale"), EPOCHS_SCALES, key=f"home.writeup.scale.{name}", horizontal=True,
                         format_func=lambda value: f"×{value:g}", help=t("home.writeup.scale.help"))
        st.caption(t("home.writeup.size", epochs=sum(experiment.epochs(scale))))
        st.caption(uses)
        if st.button(t("home.writeup.start"), key=f"home.writeup.start.{name}", type="primary",
                     icon=":material/science:"):
            _start_writeup(name, dataset, scale)
        if name in EXPANDERS:
            heading, text = EXPANDERS[name]
            with st.expander(t(heading), icon=":material/help:"):
                st.markdown(t(text))


def _render_writeups(infos: list[DatasetInfo]) -> None:
    st.subheader(t("home.writeup.heading"))
    st.caption(t("home.writeup.caption"))
    cols = st.columns(2)
    for index, (name, experiment) in enumerate(EXPERIMENTS.items()):
        with cols[index % 2]:
            _render_writeup(name, experiment, infos)


def dataset_rows(infos: list[DatasetInfo]) -> list[dict]:
    """The datasets table: offline ones first, then what is ready, then the rest."""
    ordered = sorted(infos, key=lambda i: (not i.offline, not i.available))
    return [
        {"name": i.name, "title": i.title, "shape": format_shape(i.shape), "classes": i.num_classes,
         "train": i.train_size, "val": i.val_size,
         "status": t("common.built_in") if i.offline else t("common.ready") if i.available
         else t("home.status.missing")}
        for i in ordered
    ]


def _render_datasets(infos: list[DatasetInfo]) -> None:
    st.subheader(t("home.datasets"))
    labels = {column: t(f"home.col.{column}") for column in ("name", "title", "shape", "classes", "status")}
    counts = {column: st.column_config.NumberColumn(t(f"home.col.{column}"), format="localized")
              for column in ("train", "val")}
    st.dataframe(dataset_rows(infos), hide_index=True, width="stretch", column_config={**labels, **counts})
    for info in infos:
        if not info.available:
            st.caption(f"**{info.title}**: {markdown_safe(info.how_to_get)}")


def _render_quick_starts(infos: list[DatasetInfo]) -> None:
    st.subheader(t("home.quick.heading"))
    st.caption(t("home.quick.caption"))
    cols = st.columns(len(QUICK_STARTS))
    for index, (col, start) in enumerate(zip(cols, QUICK_STARTS)):
        dataset, note = pick_dataset(start.datasets, infos)
        with col.container(border=True, height="stretch"):
            st.markdown(f"**{t(start.title)}**")
            st.caption(get_preset_info(start.preset, language()).description)
            st.caption(t("home.quick.uses_instead", preset=start.preset, dataset=dataset, wanted=start.datasets[0])
                       if note else t("home.quick.uses", preset=start.preset, dataset=dataset))
            st.button(t("home.quick.use"), key=f"home.quick.{index}", on_click=_quick_start_clicked, args=(index,),
                      icon=":material/bolt:")
    message = st.session_state.pop("home.message", None)
    if message:
        st.success(message)


def _render_guide() -> None:
    st.subheader(t("home.guide.heading"))
    for page, title, text in GUIDE:
        st.page_link(page, label=t(title))
        st.caption(t(text))


def render_home() -> None:
    """The whole Home page; app_pages/home.py only calls this."""
    if st.session_state.pop(OPEN_COMPARE, False):  # a write-up's runs were just queued: watch them there
        st.switch_page(COMPARE_PAGE)
    st.title("CNN Lab")
    st.markdown(t("home.intro"))
    cols = st.columns(len(GUIDE))
    for col, (page, title, _) in zip(cols, GUIDE):
        with col:
            st.page_link(page, label=t(title), icon=":material/arrow_forward:")
    st.caption(t("home.device", device=device_badge(language())))
    infos = list_datasets(lang=language())
    _render_quick_starts(infos)
    _render_writeups(infos)
    _render_datasets(infos)
    _render_guide()
