"""The teacher's queue controls on the Class page: pause and resume, the live runs in the order they start,
stop every run of one student, clear the class's finished runs.

Drawn only in a signed-in teacher's session (the Class page checks ``visitor().teacher``), and the job
manager checks again: a session that signed out between drawing and clicking gets a toast, not the action.
The section refreshes itself with the leaderboard, so the places follow the queue on the projector.
Actions run in ``on_click`` callbacks and leave their outcome line for the next run of the section.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd
import streamlit as st

from lab.jobs import JobManager
from lab.runs.access import AccessDenied
from lab.ui.i18n import t
from lab.ui.state import job_manager, markdown_safe, status_label, visitor

OWNER_KEY, STOP_CONFIRM_KEY = "class.queue.owner", "class.queue.stop_confirm"
CLEAR_CONFIRM_KEY, MESSAGE_KEY = "class.queue.clear_confirm", "class.queue.message"
SHORT_KEY = 6  # characters of an owner key that tell two students of the same name apart (useless to impersonate)
QUEUE_COLUMNS = ["place", "owner", "name", "priority", "status"]


def live_rows(manager: JobManager) -> list[dict]:
    """Every run waiting or training, training first, then the queue in the order it will start.
    ``place``: 1 = next to start; 0 for a run holding a slot (training, or on its way there)."""
    places = {run_id: n for n, run_id in enumerate(manager.queued_ids(), 1)}
    rows = []
    for job in list(manager.jobs.values()):  # a copy: worker threads add and drop jobs meanwhile
        state = job.snapshot()
        if state.live:
            rows.append({"place": places.get(job.run_id, 0), "owner": job.config.owner, "owner_key": job.owner_key,
                         "name": state.name, "priority": job.priority, "status": state.status})
    return sorted(rows, key=lambda row: row["place"])


def owner_names(rows: list[dict]) -> dict[str, str]:
    """owner key -> whom the teacher picks in "Stop all runs of": the name typed, or 'no name'; a name two
    browser sessions share gets the start of each one's key. Runs of the command line (no key) are no
    student's."""
    names = {row["owner_key"]: row["owner"] or t("class.no_name") for row in rows if row["owner_key"]}
    shared = {name for name, n in Counter(names.values()).items() if n > 1}
    return {key: f"{name} · {key[:SHORT_KEY]}" if name in shared else name for key, name in names.items()}


def _say(kind: str, text: str) -> None:
    st.session_state[MESSAGE_KEY] = (kind, text)


def _toggle_pause() -> None:
    """``on_click`` of Pause/Resume: the job manager's pause holds every queued run, running ones go on."""
    if not visitor().teacher:  # signed out since the button was drawn
        st.toast(t("class.queue.teachers_only"))
    elif job_manager().paused:
        job_manager().resume()
    else:
        job_manager().pause()


def _stop_owner(owner_key: str, name: str) -> None:
    """``on_click`` of "Stop their runs", once confirmed."""
    st.session_state[STOP_CONFIRM_KEY] = False
    try:
        stopped = job_manager().stop_owner(owner_key, by=visitor())
    except AccessDenied as err:
        st.toast(markdown_safe(err))
        return
    _say("success", t("class.queue.stopped", count=stopped, owner=markdown_safe(name)))


def _clear_finished() -> None:
    """``on_click`` of "Clear finished runs", once confirmed."""
    st.session_state[CLEAR_CONFIRM_KEY] = False
    try:
        cleared = job_manager().clear_finished(by=visitor())
    except AccessDenied as err:
        st.toast(markdown_safe(err))
        return
    _say("success", t("class.queue.cleared", count=cleared))


def _table(rows: list[dict]) -> None:
    if not rows:
        st.caption(t("class.queue.empty"))
        return
    shown = [{**row, "place": str(row["place"]) if row["place"] else t("class.queue.training"),
              "owner": row["owner"] or t("class.no_name"), "status": status_label(row["status"])} for row in rows]
    st.dataframe(pd.DataFrame(shown, columns=QUEUE_COLUMNS), hide_index=True,
                 column_config={"place": t("class.queue.col.place"), "owner": t("class.col.owner"),
                                "name": t("class.col.name"), "priority": t("class.queue.col.priority"),
                                "status": t("compare.col.status")})


def _stop_owner_controls(rows: list[dict]) -> None:
    names = owner_names(rows)
    if not names:
        return
    counts = Counter(row["owner_key"] for row in rows)
    owner_col, confirm_col, button_col = st.columns([2, 2, 1], vertical_alignment="bottom")
    owner_key = owner_col.selectbox(t("class.queue.stop_owner"), list(names), key=OWNER_KEY,
                                    format_func=lambda key: t("class.queue.owner_runs", owner=names.get(key, key),
                                                              count=counts[key]))
    sure = confirm_col.checkbox(t("class.queue.stop_owner.confirm"), key=STOP_CONFIRM_KEY)
    button_col.button(t("class.queue.stop_owner.button"), key="class.queue.stop_owner", disabled=not sure,
                      on_click=_stop_owner, args=(owner_key, names[owner_key]), icon=":material/stop:")


def _clear_controls() -> None:
    confirm_col, button_col = st.columns([4, 1], vertical_alignment="bottom")
    sure = confirm_col.checkbox(t("class.queue.clear.confirm"), key=CLEAR_CONFIRM_KEY, help=t("class.queue.clear.help"))
    button_col.button(t("class.queue.clear"), key="class.queue.clear", disabled=not sure, on_click=_clear_finished,
                      icon=":material/delete_sweep:")


def queue_section() -> None:
    """The Queue section of a teacher's Class page: its state with Pause/Resume, the live runs, the two
    confirmed actions and the outcome of the last one."""
    manager = job_manager()
    rows = live_rows(manager)
    st.subheader(t("class.queue"))
    kind, text = st.session_state.pop(MESSAGE_KEY, (None, ""))
    if kind:
        getattr(st, kind)(text)
    queued = sum(row["place"] > 0 for row in rows)
    state_col, button_col = st.columns([4, 1], vertical_alignment="center")
    state_col.markdown(t("class.queue.paused_state" if manager.paused else "class.queue.running_state",
                         queued=queued, training=len(rows) - queued))
    button_col.button(t("class.queue.resume" if manager.paused else "class.queue.pause"), key="class.queue.pause",
                      on_click=_toggle_pause, help=t("class.queue.pause.help"),
                      icon=":material/play_arrow:" if manager.paused else ":material/pause:")
    _table(rows)
    _stop_owner_controls(rows)
    _clear_controls()
