"""The sidebar every page shares: device badge, the draft at a glance, the user's name,
and the teacher's sign-in when the server has a teacher password."""

from __future__ import annotations

import math

import streamlit as st

from lab import settings
from lab.classroom.exercise import Exercise, current_exercise
from lab.runs import access
from lab.runs.access import SignInThrottled
from lab.settings import ExerciseFileError
from lab.train.augment import augment_label, get_augment
from lab.train.device import describe_device
from lab.train.engine import MAX_OWNER
from lab.ui.i18n import language, language_picker, t
from lab.ui.share_view import open_shared_setup, share_button
from lab.ui.state import (
    dataset_label,
    draft,
    draft_summary,
    markdown_safe,
    sign_in_teacher,
    sign_out_teacher,
    visitor,
)


@st.cache_resource
def device_badge(lang: str) -> str:
    return describe_device(lang=lang)


def render_sidebar() -> None:
    exercise = _exercise_or_stop()
    open_shared_setup()  # before anything shows the draft
    d = draft()
    with st.sidebar:
        language_picker()
        if exercise is not None:
            title = exercise.title or t("sidebar.exercise.untitled")
            st.page_link("app_pages/gallery.py", label=t("sidebar.exercise", title=title), icon=":material/assignment:")
        st.caption(t("sidebar.device", device=device_badge(language())))
        st.text_input(t("sidebar.name"), key="owner", placeholder=t("sidebar.name.placeholder"),
                      help=t("sidebar.name.help"), max_chars=MAX_OWNER)  # the box says the limit as one types
        summary = draft_summary()
        name = markdown_safe(summary.name)  # a share link's spec name: anything at all
        model = (t("sidebar.model", name=name, params=summary.total_params) if summary.ok
                 else t("sidebar.model.problems", name=name))
        st.markdown(t("sidebar.draft", dataset=markdown_safe(dataset_label(d["dataset"])), model=model,
                      augment=markdown_safe(augment_label(get_augment(d["augment"])))))
        share_button()
        st.page_link("app_pages/home.py", label=t("sidebar.guide"), icon=":material/menu_book:")
        if settings.teacher_password():
            _teacher_sign_in()


def _exercise_or_stop() -> Exercise | None:
    """The class's exercise; a broken exercise file stops every page with what to fix."""
    try:
        return current_exercise()
    except ExerciseFileError as err:
        st.error(t("sidebar.broken_exercise", error=markdown_safe(err)))
        st.stop()


def _teacher_sign_in() -> None:
    """A teacher may stop, rename and delete every run; the password is the server's, never in a URL.
    Wrong passwords slow down every session of the server (lab.runs.access.PasswordGuard): a new browser
    session is free to open, so a per-session wait would slow no one down."""
    if visitor().teacher:
        st.caption(":material/school: " + t("sidebar.teacher.signed_in"))
        st.button(t("sidebar.teacher.sign_out"), key="teacher.sign_out", on_click=sign_out_teacher,
                  help=t("sidebar.teacher.sign_out.help"), icon=":material/logout:")
        return
    with st.expander(t("sidebar.teacher")), st.form("teacher.sign_in", border=False):
        password = st.text_input(t("sidebar.teacher.password"), type="password", key="teacher.password")
        if st.form_submit_button(t("sidebar.teacher.sign_in")):
            try:
                right = access.teacher_sign_in.sign_in(password)
            except SignInThrottled as wait:
                st.error(t("sidebar.teacher.throttled", seconds=math.ceil(wait.wait_s)))
                return
            if right:
                sign_in_teacher()
                st.rerun()
            st.error(t("sidebar.teacher.wrong"))
