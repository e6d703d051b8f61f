"""CNN Lab: `streamlit run app.py`. Builds the navigation; each page lives in pages/."""

import streamlit as st

from lab.ui.sidebar import render_sidebar

st.set_page_config(page_title="CNN Lab", page_icon="🧪", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/data.py", title="Data", icon=":material/image:"),
    st.Page("pages/build.py", title="Build", icon=":material/layers:"),
    st.Page("pages/augment.py", title="Augment", icon=":material/casino:"),
    st.Page("pages/train.py", title="Train", icon=":material/monitoring:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare:"),
]

page = st.navigation(PAGES)
render_sidebar()
page.run()
