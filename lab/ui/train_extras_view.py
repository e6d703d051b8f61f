"""Two parts of the Train page from issue 19: accuracy per class by epoch, and the learning-rate finder.

The finder (lab.train.lr_find) trains a throwaway copy of the draft's model on the page's own thread,
not in the job queue: a student waits for its curve with a spinner, as for a preview. So that it never
holds a shared server for long, it takes :data:`FINDER_STEPS` steps and is refused, before any training,
when their estimated work passes the device's :data:`FINDER_BUDGET` (the rule is said in the message);
the command line's ``python -m lab lr-find`` has no such cap.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace

import streamlit as st

from lab.classroom.exercise import check_run, current_exercise
from lab.data import DatasetError
from lab.model.spec import SpecError, analyze
from lab.plots.lr_find import lr_find_figure
from lab.plots.training import class_accuracy_figure, has_class_accuracy
from lab.train.device import resolve_device
from lab.train.engine import ConfigError, TrainConfig
from lab.train.lr_find import LrFindResult, lr_find
from lab.ui.i18n import language, t
from lab.ui.insight_view import CHART_CONFIG
from lab.ui.state import dataset_geometry, draft, job_manager, markdown_safe, visitor

FINDER_KEY = "train.lr_find"  # (the settings it was found for, the result) in session state
FINDER_STEPS = 100  # enough for a curve to read (the finder needs 20); a few seconds for the lab's small models
# Multiply-accumulates the finder may do: FINDER_STEPS x batch x 3 (forward and backward) x the model's per
# image. On the 2-core dev machine 2e11 (gap_cam on shapes, batch 64) took 28 s; a GPU does 100x that.
FINDER_BUDGET = {"cpu": 3e11}
GPU_BUDGET = 3e13  # any other device (CUDA, MPS)
WORK_FACTOR = 3  # a training step costs about three forward passes


def class_accuracy_chart(metrics: Sequence[dict], classes: Sequence[str]) -> None:
    """Accuracy per class by epoch, under the accuracy curves; nothing for a run from before it was recorded."""
    if has_class_accuracy(metrics):
        st.plotly_chart(class_accuracy_figure(metrics, classes, language()), config=CHART_CONFIG)


def finder_work(config: TrainConfig) -> float:
    """Multiply-accumulates the finder would do on ``config``: steps x batch x 3 x the model's per image."""
    geometry = dataset_geometry(config.dataset, config.image_size)
    if geometry is None:
        raise DatasetError(f"dataset {config.dataset!r} cannot be loaded; choose another on the Data page")
    summary = analyze(config.spec, *geometry)
    if summary.problems:
        raise summary.problems[0]
    return float(FINDER_STEPS * config.batch_size * WORK_FACTOR * summary.total_macs)


def finder_budget(config: TrainConfig) -> float:
    """The work the finder may do on the device ``config`` trains on (this server's CPU or accelerator)."""
    return FINDER_BUDGET.get(resolve_device(config.device).type, GPU_BUDGET)


def _fingerprint(config: TrainConfig) -> str:
    """The settings a curve depends on: all but the rate it replaces and the run's name."""
    return json.dumps(replace(config, lr=0.0, name="").to_dict(), sort_keys=True, default=str)


def _find(make_config: Callable[[], TrainConfig]) -> None:
    """Run the finder on the draft (as Start would build it, the class's exercise applied), or say why not."""
    st.session_state.pop(FINDER_KEY, None)
    try:
        config = make_config()
        check_run(config, visitor())
        work, budget = finder_work(config), finder_budget(config)
        if work > budget:
            st.error(t("train.lr_find.too_big", work=work / 1e9, budget=budget / 1e9, steps=FINDER_STEPS))
            return
        source = job_manager().store.source_weights(config.init_from) if config.init_from else None
        limit = FINDER_STEPS * config.batch_size  # every step sees new images; no more are loaded
        with st.spinner(t("train.lr_find.running", steps=FINDER_STEPS)):
            result = lr_find(replace(config, train_limit=min(config.train_limit or limit, limit)),
                             job_manager().data_dir, steps=FINDER_STEPS, source=source)
    except (ConfigError, SpecError, DatasetError) as err:
        st.error(t("train.lr_find.cannot", error=markdown_safe(err)))
        return
    st.session_state[FINDER_KEY] = (_fingerprint(config), result)


def _use_rate(lr: float) -> None:
    """``on_click`` of "Use this rate": the draft takes it, and the rate box shows it on the rerun."""
    draft()["train"]["lr"] = lr


def _shown_result(make_config: Callable[[], TrainConfig]) -> LrFindResult | None:
    """The last curve, while the draft's settings (but the rate) are still those it was found for."""
    found = st.session_state.get(FINDER_KEY)
    if found is None:
        return None
    try:
        fingerprint = _fingerprint(make_config())
    except (ConfigError, SpecError):
        return None
    return found[1] if found[0] == fingerprint else None


def lr_finder(make_config: Callable[[], TrainConfig]) -> None:
    """"Find a learning rate": the button, then the curve, the suggestion with its rule, and "Use this rate".
    ``make_config`` builds the draft's TrainConfig as Start does (raising ConfigError or SpecError)."""
    with st.expander(t("train.lr_find"), icon=":material/query_stats:", expanded=FINDER_KEY in st.session_state):
        st.caption(t("train.lr_find.caption", steps=FINDER_STEPS))
        if st.button(t("train.lr_find.button"), key=f"{FINDER_KEY}.run"):
            _find(make_config)
        result = _shown_result(make_config)
        if result is None:
            return
        st.plotly_chart(lr_find_figure(result, language()), config=CHART_CONFIG)
        lr = float(f"{result.suggestion:.2g}")  # the figure's and the sentence's rounding: what the box shows
        rate_col, use_col = st.columns([4, 1], vertical_alignment="center")
        rate_col.markdown(t("train.lr_find.result", lr=lr, rule=t(f"train.lr_find.rule.{result.rule}")))
        exercise = current_exercise()
        fixed = exercise is not None and "lr" in exercise.train
        use_col.button(t("train.lr_find.use"), key=f"{FINDER_KEY}.use", on_click=_use_rate, args=(lr,),
                       disabled=fixed or draft()["train"].get("lr") == lr, help=t("train.fixed") if fixed else None)
