"""The Class page: the exercise, and every student's runs ranked by best accuracy.

The table refreshes itself every few seconds, so a teacher can leave it on the
projector and watch the class fill it in. It reads the runs folder only: no
session's draft is ever shown.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lab.classroom import LEADERBOARD_COLUMNS, current_exercise, leaderboard
from lab.runs import RunNotFound
from lab.ui.compare_view import COLUMN_CONFIG
from lab.ui.state import job_manager

REFRESH_SECONDS = 5
BEST_KEY = "class.best_per_student"


def _board(best_per_student: bool) -> None:
    try:
        rows = leaderboard(job_manager().store.list(), current_exercise(), best_per_student)
    except RunNotFound:  # a run deleted while the folder was read: the next refresh is whole
        return
    if not rows:
        st.info("No runs yet. Each student's runs appear here as they train.")
        return
    ranked = [r for r in rows if r["rank"] is not None]
    if ranked:
        st.metric("Best so far", f"{ranked[0]['best_val_acc']:.1%}", help=f"{ranked[0]['owner'] or 'no name'}: "
                  f"{ranked[0]['name']}")
    st.dataframe(pd.DataFrame(rows, columns=LEADERBOARD_COLUMNS), hide_index=True,
                 column_config={**COLUMN_CONFIG, "rank": "#", "owner": "student", "name": "run", "id": "run id"})


def render_gallery_page() -> None:
    exercise = current_exercise()
    st.title(exercise.title if exercise and exercise.title else "Class")
    if exercise and exercise.text:
        st.markdown(exercise.text)
    st.caption("Every run in this lab" + (f" on {exercise.dataset}" if exercise and exercise.dataset else "")
               + ", ranked by best validation accuracy. Students appear under the name they typed in the sidebar.")
    best = st.toggle("Best run per student", value=True, key=BEST_KEY)
    st.fragment(run_every=REFRESH_SECONDS)(_board)(best)
