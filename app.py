"""CNN Lab: `streamlit run app.py`. Builds the navigation; each page lives in app_pages/
(not pages/: that name turns on Streamlit's old automatic navigation for deep links).
"""

import streamlit as st

from lab.ui.i18n import t
from lab.ui.sidebar import render_sidebar
from lab.ui.state import embedding_worker

st.set_page_config(page_title="CNN Lab", page_icon="🧪", layout="wide")
embedding_worker()  # once per server: its child compiles UMAP now, not on a user's first click

PAGES = [
    st.Page("app_pages/home.py", title=t("nav.home"), icon=":material/home:", default=True),
    st.Page("app_pages/data.py", title=t("nav.data"), icon=":material/image:"),
    st.Page("app_pages/build.py", title=t("nav.build"), icon=":material/layers:"),
    st.Page("app_pages/augment.py", title=t("nav.augment"), icon=":material/casino:"),
    st.Page("app_pages/train.py", title=t("nav.train"), icon=":material/monitoring:"),
    st.Page("app_pages/compare.py", title=t("nav.compare"), icon=":material/compare:"),
    st.Page("app_pages/explain.py", title=t("nav.explain"), icon=":material/visibility:"),
    st.Page("app_pages/gallery.py", title=t("nav.class"), icon=":material/leaderboard:"),
]

page = st.navigation(PAGES)
render_sidebar()
page.run()
