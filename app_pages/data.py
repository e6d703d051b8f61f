"""Data: pick a dataset, look at its classes, or import a zip of your own."""

from lab.ui.data_view import data_page

data_page()
