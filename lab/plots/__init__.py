"""Figures and pictures: pure functions of data (plotly figures, SVG, image grids), for pages and reports."""
