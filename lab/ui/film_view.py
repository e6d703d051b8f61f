"""The training film on a page: lab.plots.film's player as a Streamlit component, fed frame by frame.

The player (plain JavaScript, lab/plots/film/static) draws every panel for the chosen epoch in the
browser, so scrubbing and playing cost no rerun and no round trip. The page sends it the frames it
lacks: each session remembers how many final frames each film on screen holds (lab.insight.film caches a
frame once final), and a rerun sends only the ones after those: a live run's newest frame again, as it may
still gain its CAMs.
A player that lost its frames (its iframe was made again, e.g. after a page switch the session did not
see) asks for them by setting its value, ``{"have": n, "ask": k}``; the next run sends from ``n``.
"""

from __future__ import annotations

import streamlit as st
import streamlit.components.v1 as components

from lab.i18n import templates
from lab.insight.film import film_epochs, film_frames, film_head, film_metrics
from lab.plots.film import STATIC
from lab.runs.view import RunInfo
from lab.ui.i18n import language, t
from lab.ui.state import job_manager

HELD_KEY = "film.held"  # {widget key: (run id, frames the player holds)}
ASKED_KEY = "film.asked"  # {widget key: the last resend request answered}
HEIGHT = 900  # the player's first height; it sets its own once drawn

_player = components.declare_component("lab_film", path=str(STATIC))


def frames_to_send(widget: str, run: RunInfo) -> int:
    """Index of the first frame to send: the final frames the player holds (a live run's newest frame is
    sent again: it may still gain parts), or what the player says it holds when it asked again."""
    held_run, held = st.session_state.setdefault(HELD_KEY, {}).get(widget, (None, 0))
    held = held if held_run == run.id else 0
    asked = st.session_state.get(widget)
    answered = st.session_state.setdefault(ASKED_KEY, {})
    if isinstance(asked, dict) and asked.get("ask") != answered.get(widget):
        answered[widget] = asked.get("ask")
        held = min(held, max(int(asked.get("have") or 0), 0))
    return held


def training_film(run: RunInfo, key: str) -> None:
    """The film of ``run``, or a line saying it starts with the first epoch."""
    epochs = film_epochs(run)
    if not epochs:
        st.caption(t("film.none"))
        return
    widget = f"{key}.player"
    start = frames_to_send(widget, run)
    frames = film_frames(run, start)
    _player(head=film_head(run, job_manager().data_dir), text=templates("film.", language()),
            metrics=film_metrics(run), start=start, frames=frames, height=HEIGHT, key=widget, default=None)
    final = len(epochs) if run.layout.film_frame(epochs[-1]).exists() else len(epochs) - 1  # cached once final
    st.session_state[HELD_KEY][widget] = (run.id, final)
