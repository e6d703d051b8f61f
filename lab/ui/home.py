"""The Home page: what the lab does, the device, the datasets, quick starts and a guide.

Quick starts redo the experiments of well-known write-ups in one click: each
sets the whole draft (dataset, model, augmentation) so the next pages only
need "Train". When a write-up's dataset is not on this server, the quick start
falls back to an offline one and says so instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from lab.data import DatasetInfo, list_datasets
from lab.model.layers import format_shape
from lab.model.presets import get_preset, get_preset_info
from lab.ui.i18n import language, t
from lab.ui.sidebar import device_badge
from lab.ui.state import draft, markdown_safe

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
    _render_datasets(infos)
    _render_guide()
