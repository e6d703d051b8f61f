"""Compare: every run in one table, curves overlaid, run edits, and sweeps over epochs x batch sizes."""

from lab.ui.compare_view import render_compare_page

render_compare_page()
