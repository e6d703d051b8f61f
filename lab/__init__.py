"""CNN Lab engine: specs, datasets, augmentation, training, runs.

Nothing under ``lab`` imports Streamlit except ``lab.ui``; every capability the
pages offer is a plain function here so tests and the CLI can drive it.
"""

__version__ = "0.1.0"
