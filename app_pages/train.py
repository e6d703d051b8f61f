"""Train: set the hyperparameters, start the draft as a run, watch it learn live."""

from lab.ui.train_view import render_train_page

render_train_page()
