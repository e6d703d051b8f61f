"""Augment: pick augmentations for the draft and preview them on its dataset."""

from lab.ui.augment_view import render_augment_page

render_augment_page()
