"""The Class page: the exercise, and every student's runs ranked by best accuracy.

The table refreshes itself every few seconds, so a teacher can leave it on the
projector and watch the class fill it in. It reads the runs folder only: no
session's draft is ever shown. A signed-in teacher also gets the queue's controls
(lab.ui.queue_view) below the table; students never see them.
"""

from __future__ import annotations

import streamlit as st

from lab.classroom.exercise import LEADERBOARD_COLUMNS, current_exercise, leaderboard
from lab.runs.store import RunNotFound
from lab.ui.compare_view import column_config, run_frame
from lab.ui.i18n import t
from lab.ui.queue_view import queue_section
from lab.ui.state import list_runs, markdown_safe, visitor

REFRESH_SECONDS = 5
BEST_KEY = "class.best_per_student"


def _board(best_per_student: bool) -> None:
    try:
        rows = leaderboard(list_runs(), current_exercise(), best_per_student)
    except RunNotFound:  # a run deleted while the folder was read: the next refresh is whole
        return
    if not rows:
        st.info(t("class.no_runs"))
        return
    ranked = [r for r in rows if r["rank"] is not None]
    if ranked:
        best = ranked[0]
        st.metric(t("class.best"), f"{best['best_val_acc']:.1%}",
                  help=": ".join([markdown_safe(best["owner"]) or t("class.no_name"), markdown_safe(best["name"])]))
    st.dataframe(run_frame(rows, LEADERBOARD_COLUMNS), hide_index=True,
                 column_config={**column_config(), "rank": "#", "owner": t("class.col.owner"),
                                "name": t("class.col.name"), "id": t("class.col.id")})


def render_gallery_page() -> None:
    exercise = current_exercise()
    st.title(exercise.title if exercise and exercise.title else t("nav.class"))  # the teacher's words as written
    if exercise and exercise.text:
        st.markdown(exercise.text)
    st.caption(t("class.caption.dataset", dataset=exercise.dataset) if exercise and exercise.dataset
               else t("class.caption"))
    best = st.toggle(t("class.best_per_student"), value=True, key=BEST_KEY)
    st.fragment(run_every=REFRESH_SECONDS)(_board)(best)
    if visitor().teacher:
        st.fragment(run_every=REFRESH_SECONDS)(queue_section)()
