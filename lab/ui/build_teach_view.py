"""The Build page's two lecture notes that belong to no layer: deep learning's "convolution" is
cross-correlation (the kernel flipped or not, on one worked patch), and the activation functions with
their gradients (why sigmoid and tanh make gradients vanish).

Display only: the numbers come from lab.model.teach and lab.plots.activations, the words from
lab/locales (``build.teach.*``).
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from lab.model.teach import Grid, flip_example
from lab.plots.activations import SMALL_GRADIENT, activation_figure, curve
from lab.ui.i18n import language, t


def _grid_text(grid: Grid) -> str:
    """A small integer matrix as aligned monospace rows."""
    width = max(len(str(v)) for row in grid for v in row)
    return "\n".join(" ".join(str(v).rjust(width) for v in row) for row in grid)


def render_flip_note() -> None:
    """One patch, the kernel and the kernel turned by 180°, and both sums of products."""
    example = flip_example()
    with st.expander(t("build.teach.flip.title"), icon=":material/flip:"):
        st.write(t("build.teach.flip.text"))
        for col, key, grid in zip(st.columns(3), ("patch", "kernel", "flipped"),
                                  (example.patch, example.kernel, example.flipped)):
            col.caption(t(f"build.teach.flip.{key}"))
            col.code(_grid_text(grid), language=None)
        st.markdown(t("build.teach.flip.correlation", sum=example.correlation_sum))
        st.markdown(t("build.teach.flip.convolution", sum=example.convolution_sum))


def _facts() -> dict[str, str]:
    """The numbers the activations text quotes, read off the same curves the figure draws."""
    facts = {"small": f"{SMALL_GRADIENT:g}"}
    for name in ("sigmoid", "tanh"):
        c = curve(name)
        facts[f"{name}_peak"] = f"{c.peak:.3g}"
        facts[f"{name}_edge"] = f"{c.small_beyond():.3g}"
    return facts


@st.cache_data(show_spinner=False)
def _activations(lang: str) -> tuple[dict[str, str], go.Figure]:
    """The same for every session: made once per language, not on each of the Build page's many reruns."""
    return _facts(), activation_figure(lang)


def render_activations_note() -> None:
    facts, figure = _activations(language())
    with st.expander(t("build.teach.activations.title"), icon=":material/show_chart:"):
        st.write(t("build.teach.activations.text", **facts))
        st.plotly_chart(figure, config={"displayModeBar": False})


def render_teach_notes() -> None:
    """Both notes, at the foot of the page."""
    render_flip_note()
    render_activations_note()
