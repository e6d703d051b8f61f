"""The lab's text in English and Korean: ``text("build.add", "ko")`` is "층 추가".

Every string a page shows lives in ``lab/locales/<lang>.json`` under a flat dotted key
grouped by where it appears, so a translator edits two files side by side and
tests/test_i18n.py can prove both have the same keys and placeholders. The pages read
them through :func:`lab.ui.i18n.t` (the session's language); the engine's own words
that reach a page (chart titles, dataset and preset descriptions, the model summary's
notes, the device badge) through :func:`text` with the ``lang`` its caller passes, so
the engine never needs Streamlit and its English default is what the CLI prints.

Plotly's own placeholders (``%{x}``) never appear in a template: callers pass them as
values, so a translator only ever sees ``{name}`` fields.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

__all__ = ["LOCALES", "LANGUAGES", "DEFAULT", "strings", "text"]

LOCALES = Path(__file__).parent / "locales"
LANGUAGES = {"en": "English", "ko": "한국어"}  # each in its own language: readable whichever is on
DEFAULT = "en"


@functools.cache
def strings(lang: str) -> dict[str, str]:
    """One language's key -> text table, read once per process."""
    return json.loads((LOCALES / f"{lang}.json").read_text(encoding="utf-8"))


def text(key: str, lang: str = DEFAULT, **values) -> str:
    """The text of ``key`` in ``lang``, with ``values`` filled in.

    A key missing from a translation falls back to English, so a string added in a
    hurry never breaks a Korean page; a key missing from English is a bug and raises
    KeyError, and so does an unknown language (ValueError), rather than guessing.
    """
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; use one of: {', '.join(LANGUAGES)}")
    template = strings(lang).get(key) or strings(DEFAULT)[key]
    return template.format(**values)


def templates(prefix: str, lang: str = DEFAULT) -> dict[str, str]:
    """Every key under ``prefix`` (without it) -> its template, placeholders unfilled: for a page part
    written in JavaScript (the training film), which fills them itself."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; use one of: {', '.join(LANGUAGES)}")
    merged = {**strings(DEFAULT), **{k: v for k, v in strings(lang).items() if v}}
    return {key[len(prefix):]: value for key, value in merged.items() if key.startswith(prefix)}
