"""Share this setup: the draft as a link, and a link opened as the draft.

The link carries the draft in its ``setup`` query parameter (lab.classroom.share). Opening
it replaces the visitor's draft once; the parameter then leaves the URL, so
later edits are not undone by a rerun and a copied address shares nothing stale.
"""

from __future__ import annotations

import streamlit as st

from lab.classroom.share import ShareError, decode_setup, encode_setup
from lab.ui.i18n import t
from lab.ui.state import draft, markdown_safe, replace_draft

QUERY_KEY = "setup"


def open_shared_setup() -> None:
    """Make the link's setup this session's draft, or say why it cannot be opened."""
    text = st.query_params.get(QUERY_KEY)
    if not text:
        return
    del st.query_params[QUERY_KEY]
    try:
        replace_draft(decode_setup(text))
    except ShareError as err:
        st.error(t("share.open_failed", error=markdown_safe(err)))
        return
    st.toast(t("share.opened"), icon=":material/share:")


def share_link() -> str:
    """The current page's address with the draft in it."""
    return f"{st.context.url or ''}?{QUERY_KEY}={encode_setup(draft())}"


def share_button() -> None:
    with st.popover(t("share.button"), icon=":material/share:", width="stretch"):
        st.caption(t("share.caption"))
        st.code(share_link(), language=None, wrap_lines=True)
