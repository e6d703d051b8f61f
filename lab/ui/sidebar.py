"""The sidebar every page shares: device badge, the draft at a glance, the user's name."""

from __future__ import annotations

import streamlit as st

from lab.augment import augment_label, get_augment
from lab.device import describe_device
from lab.ui.state import dataset_label, draft, draft_summary


@st.cache_resource
def device_badge() -> str:
    return describe_device()


def render_sidebar() -> None:
    d = draft()
    with st.sidebar:
        st.caption(f"Device: **{device_badge()}**")
        st.text_input("Your name", key="owner", placeholder="shown on your runs",
                      help="Typed once per browser session; every run you start carries it.")
        summary = draft_summary()
        model = f"{summary.name}, {summary.total_params:,} params" if summary.ok else f"{summary.name} (has problems)"
        st.markdown(
            f"**Draft**  \n"
            f"Dataset: `{dataset_label(d['dataset'])}`  \n"
            f"Model: `{model}`  \n"
            f"Augment: `{augment_label(get_augment(d['augment']))}`"
        )
        st.page_link("app_pages/home.py", label="Guide: what each page does", icon=":material/menu_book:")
