"""Download buttons for a run: its code with a training loop, weights, ONNX model, config and report.

Files are made when a button is clicked, not when the page draws (``st.download_button``
takes a callable): an ONNX export or a report takes a second or more, and most visits
download nothing. The callable re-reads the run folder, so a report of a run still
training has every epoch finished by the time of the click.
"""

from __future__ import annotations

import functools
import importlib.util

import streamlit as st

from lab.export.files import EXPORTS, export_file_name, export_run
from lab.runs.store import open_run
from lab.runs.view import RunInfo
from lab.ui.i18n import t


def _fresh_export(run_folder: str, what: str, checkpoint: str, data_dir) -> bytes:
    """The export, from the run folder as it is now (Streamlit calls this on click, off the script thread)."""
    store, run_id = open_run(run_folder)
    return export_run(store.get(run_id), what, checkpoint, data_dir)


def _tag(checkpoint: str) -> str:
    return t(f"explain.checkpoint.{checkpoint}") if checkpoint in ("best", "last") else t("common.epoch_n",
                                                                                           epoch=checkpoint)


def _button(column, run: RunInfo, what: str, checkpoint: str, data_dir, label: str, why_not: str = "") -> None:
    """One lazy download button; ``why_not`` disables it and says why. The help otherwise is lab.export.files'
    description of the file (English)."""
    kind = EXPORTS[what]
    column.download_button(label, data=functools.partial(_fresh_export, str(run.path), what, checkpoint, data_dir),
                           file_name=export_file_name(run, what, checkpoint), mime=kind.mime,
                           key=f"export.{what}.{checkpoint}", icon=":material/download:", on_click="ignore",
                           disabled=bool(why_not), help=why_not or kind.description,
                           width="stretch")


def render_exports(run: RunInfo, checkpoint: str, data_dir=None) -> None:
    """Buttons for ``run``: code and config; weights at best and at last; ONNX and the report at
    ``checkpoint`` (the page's pick). A checkpoint not written yet (last, while the run trains)
    disables its button and says so."""
    tag = _tag(checkpoint)
    st.caption(t("export.caption"))
    code_col, config_col, report_col = st.columns(3)
    _button(code_col, run, "code", checkpoint, data_dir, t("export.code"))
    _button(config_col, run, "config", checkpoint, data_dir, t("export.config"))
    _button(report_col, run, "report", checkpoint, data_dir, t("export.report", checkpoint=tag))
    best_col, last_col, onnx_col = st.columns(3)
    written = run.checkpoints
    for column, which in ((best_col, "best"), (last_col, "last")):
        missing = "" if which in written else t(f"export.no_weights.{which}")
        _button(column, run, "weights", which, data_dir, t("export.weights", checkpoint=_tag(which)), missing)
    onnx_missing = "" if importlib.util.find_spec("onnx") else t("export.no_onnx")
    _button(onnx_col, run, "onnx", checkpoint, data_dir, f"ONNX ({tag})", onnx_missing)
