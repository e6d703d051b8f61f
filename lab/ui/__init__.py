"""Streamlit helpers shared by the pages: the only place below ``lab`` that imports streamlit."""
