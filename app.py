"""CNN Lab: `streamlit run app.py`. Builds the navigation; each page lives in app_pages/
(not pages/: that name turns on Streamlit's old automatic navigation for deep links).
"""

import streamlit as st

from lab.ui.sidebar import render_sidebar

st.set_page_config(page_title="CNN Lab", page_icon="🧪", layout="wide")

PAGES = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/data.py", title="Data", icon=":material/image:"),
    st.Page("app_pages/build.py", title="Build", icon=":material/layers:"),
    st.Page("app_pages/augment.py", title="Augment", icon=":material/casino:"),
    st.Page("app_pages/train.py", title="Train", icon=":material/monitoring:"),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("app_pages/explain.py", title="Explain", icon=":material/visibility:"),
]

page = st.navigation(PAGES)
render_sidebar()
page.run()
