"""Class: the exercise and the class leaderboard, refreshing itself."""

from lab.ui.gallery_view import render_gallery_page

render_gallery_page()
