"""The pages' text in English and Korean: ``t("build.add")`` is "Add layer" or "층 추가".

The strings live in ``lab/locales/<lang>.json``, shared with the engine (see
:mod:`lab.i18n`); ``t`` is :func:`lab.i18n.text` in the session's language, and a page
passes ``language()`` to the engine functions whose words it shows. Only text
is looked up: widget keys and the values widgets store stay language-neutral, so
switching the language mid-session keeps the draft and every widget as it is.

A session speaks the language picked in the sidebar; before any pick, the server's
``LAB_LANGUAGE``, then the browser's locale, then English. AppTest has no browser,
so tests get English unless they set ``session_state["lang"]``.
"""

from __future__ import annotations

import os

import streamlit as st

from lab.i18n import DEFAULT, LANGUAGES, LOCALES, strings, text

__all__ = ["LOCALES", "LANGUAGES", "DEFAULT", "strings", "language", "t", "language_picker"]

STATE_KEY = "lang"  # the session's pick; read by language()
PICKER_KEY = "lang.picker"  # the sidebar box's own widget key (see language_picker)
PICKER_LABEL = "Language · 언어"  # the same in every language: findable by someone who cannot read the current one


def _known(code: str | None) -> str | None:
    """'ko-KR', 'ko_KR' or 'KO' -> 'ko'; None for no code or a language the lab does not speak."""
    lang = (code or "").replace("_", "-").split("-")[0].strip().lower()
    return lang if lang in LANGUAGES else None


def language() -> str:
    """The session's language: its pick, else ``LAB_LANGUAGE``, else the browser's locale, else English."""
    return (_known(st.session_state.get(STATE_KEY)) or _known(os.environ.get("LAB_LANGUAGE"))
            or _known(st.context.locale) or DEFAULT)


def t(key: str, **values) -> str:
    """The text of ``key`` in the session's language, with ``values`` filled in.

    A key missing from a translation falls back to English, so a string added in a
    hurry never breaks a Korean page; a key missing from English is a bug and raises
    KeyError.
    """
    return text(key, language(), **values)


def _picked() -> None:
    st.session_state[STATE_KEY] = st.session_state[PICKER_KEY]


def language_picker() -> None:
    """The sidebar's language box.

    It has its own widget key, set from ``language()`` before it is drawn, and copies a
    pick into "lang": so the box always shows the language in use (also one set by the
    server default or a test), and the pick outlives a run that does not draw the box,
    which would drop a widget's own state.
    """
    st.session_state[PICKER_KEY] = language()
    st.sidebar.selectbox(PICKER_LABEL, list(LANGUAGES), key=PICKER_KEY, format_func=LANGUAGES.get,
                         on_change=_picked)
