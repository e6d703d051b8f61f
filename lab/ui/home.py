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
from lab.layers import format_shape
from lab.presets import get_preset, get_preset_info
from lab.ui.sidebar import device_badge
from lab.ui.state import draft, markdown_safe

# Page scripts as registered in app.py, with what each is for.
GUIDE = [
    ("app_pages/data.py", "Data", "Pick a dataset, look at examples of every class and at the class balance, "
                              "or upload a zip of your own class folders."),
    ("app_pages/build.py", "Build", "Stack layers (or start from a preset), edit their settings and watch shapes "
                                "and parameter counts update; export the model as PyTorch code."),
    ("app_pages/augment.py", "Augment", "Choose random flips, shifts, rotations and more, and preview them on "
                                    "real images before training."),
    ("app_pages/train.py", "Train", "Start a run, watch loss and accuracy live, the feature space form and the "
                                "heatmaps sharpen; stop it when you have seen enough."),
    ("app_pages/compare.py", "Compare", "Every run in one table with curves overlaid, and sweeps over epochs and "
                                    "batch sizes."),
    ("app_pages/explain.py", "Explain", "Why a trained net says what it says: class probabilities, CAM heatmaps, "
                                    "every layer's feature maps, its surest mistakes."),
]


@dataclass(frozen=True)
class QuickStart:
    """A write-up's experiment as a draft: the first available dataset of ``datasets`` is used."""

    title: str
    preset: str
    datasets: tuple[str, ...]  # preferred first; the last ones should be offline
    augment: str


QUICK_STARTS = [
    QuickStart("Fashion-MNIST with two conv layers", "fashion_cnn", ("fashion-mnist", "digits", "shapes"), "none"),
    QuickStart("CIFAR-10 VGG with keras_basic augmentation", "cifar_vgg", ("cifar10", "shapes"), "keras_basic"),
    QuickStart("CAM-ready GAP net on shapes", "gap_cam", ("shapes",), "none"),
]


def pick_dataset(wanted: tuple[str, ...], infos: list[DatasetInfo]) -> tuple[str, str]:
    """The first available dataset of ``wanted``, and a note when it is not the first choice."""
    available = {info.name for info in infos if info.available}
    name = next((n for n in wanted if n in available), wanted[-1])
    if name == wanted[0]:
        return name, ""
    how = next((i.how_to_get for i in infos if i.name == wanted[0]), "")
    return name, f"'{wanted[0]}' is not on this server, so this uses '{name}'. {how}".strip()


def apply_quick_start(start: QuickStart, infos: list[DatasetInfo]) -> str:
    """Set the draft to a quick start; returns the message to show."""
    dataset, note = pick_dataset(start.datasets, infos)
    d = draft()
    d.update(dataset=dataset, spec=get_preset(start.preset), preset=start.preset, augment={"preset": start.augment})
    d["train"] = {**d["train"], **get_preset_info(start.preset).train}
    message = f"Draft set: {start.preset} on {dataset}, augmentation {start.augment}. Go to Train when ready."
    return f"{message} {note}" if note else message


def _quick_start_clicked(index: int) -> None:
    st.session_state["home.message"] = apply_quick_start(QUICK_STARTS[index], list_datasets())


def dataset_rows(infos: list[DatasetInfo]) -> list[dict]:
    """The datasets table: offline ones first, then what is ready, then the rest."""
    ordered = sorted(infos, key=lambda i: (not i.offline, not i.available))
    return [
        {"name": i.name, "title": i.title, "shape": format_shape(i.shape), "classes": i.num_classes,
         "train": i.train_size, "val": i.val_size,
         "status": "built in" if i.offline else "ready" if i.available else "not here: see below"}
        for i in ordered
    ]


def _render_datasets(infos: list[DatasetInfo]) -> None:
    st.subheader("Datasets")
    st.dataframe(dataset_rows(infos), hide_index=True, width="stretch",
                 column_config={"train": st.column_config.NumberColumn(format="localized"),
                                "val": st.column_config.NumberColumn(format="localized")})
    for info in infos:
        if not info.available:
            st.caption(f"**{info.title}**: {markdown_safe(info.how_to_get)}")


def _render_quick_starts(infos: list[DatasetInfo]) -> None:
    st.subheader("Redo a write-up in minutes")
    st.caption("One click sets the dataset, the model and the augmentation; then go to Train.")
    cols = st.columns(len(QUICK_STARTS))
    for index, (col, start) in enumerate(zip(cols, QUICK_STARTS)):
        dataset, note = pick_dataset(start.datasets, infos)
        with col.container(border=True, height="stretch"):
            st.markdown(f"**{start.title}**")
            st.caption(get_preset_info(start.preset).description)
            uses = f"Uses `{start.preset}` on `{dataset}`"
            st.caption(f"{uses} ({start.datasets[0]} is not on this server)" if note else uses)
            st.button("Use this", key=f"home.quick.{index}", on_click=_quick_start_clicked, args=(index,),
                      icon=":material/bolt:")
    message = st.session_state.pop("home.message", None)
    if message:
        st.success(markdown_safe(message))


def _render_guide() -> None:
    st.subheader("Guide")
    for page, title, text in GUIDE:
        st.page_link(page, label=title)
        st.caption(text)


def render_home() -> None:
    """The whole Home page; app_pages/home.py only calls this."""
    st.title("CNN Lab")
    st.markdown(
        "Build a convolutional network layer by layer, train it live and look inside it. "
        "The flow is **Data → Build → Augment → Train**, then **Compare** runs; your choices travel "
        "with you as a draft (see the sidebar)."
    )
    cols = st.columns(len(GUIDE))
    for col, (page, title, _) in zip(cols, GUIDE):
        with col:
            st.page_link(page, label=title, icon=":material/arrow_forward:")
    st.caption(f"Training runs on: **{device_badge()}**")
    infos = list_datasets()
    _render_quick_starts(infos)
    _render_datasets(infos)
    _render_guide()
