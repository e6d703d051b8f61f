"""The Home page: what the lab does, the device, the datasets, quick starts and a guide.

Quick starts redo the experiments of well-known write-ups in one click: each
sets the whole draft (dataset, model, augmentation) so the next pages only
need "Train". When a write-up's dataset is not on this server, the quick start
falls back to an offline one and says so instead of failing.

The transfer-learning experiment goes one step further: one click queues its
runs (lab.runs.experiment) as the Compare page queues a sweep, and Compare shows
them side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from lab.data import DatasetInfo, list_datasets
from lab.model.layers import format_shape
from lab.model.presets import get_preset, get_preset_info
from lab.model.spec import analyze
from lab.runs.experiment import plan_experiment, transfer_vs_scratch
from lab.train.engine import ConfigError, TrainConfig
from lab.ui.compare_view import queue_plan
from lab.ui.i18n import language, t
from lab.ui.sidebar import device_badge
from lab.ui.state import dataset_geometry, draft, markdown_safe, owner

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


# Transfer learning vs from scratch: the galaxy write-up's question on a few hundred images of a data set in colour
# (the backbones were trained on colour photos), CIFAR-10 first, as the benchmark (python -m lab bench --transfer).
TRANSFER_FIRST, TRANSFER_LAST = "cifar10", "shapes"
TRANSFER_TRAIN = {"train_limit": 500, "epochs": 8, "batch_size": 64}  # the benchmark's images and epochs
TRANSFER_MESSAGE = "home.transfer.message"
TRANSFER_NAME = "transfer vs scratch on {dataset}"  # a run name's start, like a sweep's: the same in every language


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


def transfer_datasets(infos: list[DatasetInfo]) -> tuple[str, ...]:
    """The data sets the experiment may use, preferred first: CIFAR-10, any other in colour, ``shapes``."""
    ends = (TRANSFER_FIRST, TRANSFER_LAST)
    colour = [i.name for i in infos if i.available and i.shape[0] == 3 and i.name not in ends]
    return (TRANSFER_FIRST, *colour, TRANSFER_LAST)


def plan_transfer(dataset: str) -> list[TrainConfig]:
    """The experiment's runs on ``dataset``, each checked as a run would be (settings, and its model on this data
    set: a backbone without its weights is refused here, naming how to get them); ConfigError naming the run."""
    base = TrainConfig(dataset=dataset, owner=owner(), **TRANSFER_TRAIN)
    configs = plan_experiment(base, transfer_vs_scratch(), TRANSFER_NAME.format(dataset=dataset))
    geometry = dataset_geometry(dataset)
    for config in configs:
        summary = analyze(config.spec, *geometry)
        if not summary.ok:
            raise ConfigError(f"{config.sweep['values']['run']}: {summary.problems[0]}")
    return configs


def _queue_transfer(dataset: str) -> None:
    """Plan and queue the experiment; says where to watch it, or why nothing was queued."""
    try:
        configs = plan_transfer(dataset)
    except ConfigError as err:
        st.error(t("home.transfer.cannot", error=markdown_safe(err)))
        return
    st.session_state[TRANSFER_MESSAGE] = t("home.transfer.queued", count=len(configs),
                                           name=configs[0].sweep["name"])
    queue_plan(configs)  # reruns the page once every run is queued
    del st.session_state[TRANSFER_MESSAGE]  # it returned: nothing was queued, and it has shown why


def _render_transfer(infos: list[DatasetInfo]) -> None:
    st.subheader(t("home.transfer.heading"))
    dataset, note = pick_dataset(transfer_datasets(infos), infos)
    with st.container(border=True):
        st.markdown(t("home.transfer.text", images=TRANSFER_TRAIN["train_limit"], epochs=TRANSFER_TRAIN["epochs"]))
        st.caption(t("home.transfer.runs", runs=", ".join(run.label for run in transfer_vs_scratch())))
        st.caption(t("home.transfer.uses_instead", dataset=dataset, wanted=TRANSFER_FIRST) if note
                   else t("home.transfer.uses", dataset=dataset))
        if st.button(t("home.transfer.queue"), key="home.transfer", icon=":material/science:"):
            _queue_transfer(dataset)
        message = st.session_state.pop(TRANSFER_MESSAGE, None)
        if message:
            st.success(message)
            st.page_link("app_pages/compare.py", label=t("nav.compare"), icon=":material/arrow_forward:")
    with st.expander(t("home.transfer.why_heading"), icon=":material/help:"):
        st.markdown(t("home.transfer.why"))


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
    st.title("CNN Lab")
    st.markdown(t("home.intro"))
    cols = st.columns(len(GUIDE))
    for col, (page, title, _) in zip(cols, GUIDE):
        with col:
            st.page_link(page, label=t(title), icon=":material/arrow_forward:")
    st.caption(t("home.device", device=device_badge(language())))
    infos = list_datasets(lang=language())
    _render_quick_starts(infos)
    _render_transfer(infos)
    _render_datasets(infos)
    _render_guide()
