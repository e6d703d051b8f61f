"""Home: what the lab does, the device, the datasets, and where to start."""

from lab.ui.home import render_home

render_home()
