"""Build: the model, layer by layer, with live shapes, counts, a picture and export."""

from lab.ui.builder import build_page

build_page()
