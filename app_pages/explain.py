"""Explain: why a trained run answers what it does: probabilities, CAM heatmaps, layers, mistakes."""

from lab.ui.explain_view import render_explain_page

render_explain_page()
