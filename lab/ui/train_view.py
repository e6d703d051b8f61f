"""The Train page: settings bound to the draft, Start, a live view of the attached run, recent runs.

Training runs in ``JobManager`` worker threads, never on the script thread
(a rerun would kill it) and the workers never call Streamlit: the page only
reads ``job_manager().state(run_id)`` and the run folder. The live view is a
fragment that polls once a second only while its run is queued or running (or a
t-SNE/UMAP map is still being made for it); when that ends it triggers one full
rerun, which redraws it without ``run_every`` so the polling stops.

The fragment draws only what changes within an epoch: progress and the batch-loss
curve. Below it, the training film (lab.ui.film_view: every panel at one epoch, played in
the browser) or, under "Details", the separate epoch curves, feature space with t-SNE/UMAP
and the CAM strip with its own choices (lab.ui.insight_view). Both are drawn outside the
fragment, by full reruns, which the fragment triggers when an epoch or a map has landed:
they go out once an epoch, not once a second (the film sends only its new frames). On the
2-core dev machine every figure built per second took CPU from the training thread
(`python -m lab bench --live-ui` measures what watching costs).

The attached run id lives in session state (page switches) and in the URL as
``?run=<id>`` (a browser reload starts a new session but keeps the URL).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import streamlit as st

from lab.classroom.exercise import check_run, current_exercise, queue_priority
from lab.data.dataset import data_megabytes
from lab.jobs import QuotaExceeded, RunState
from lab.model.init import INITS
from lab.model.layers import format_shape
from lab.model.spec import SpecError
from lab.plots.training import batch_loss_figure, batch_loss_svg, epoch_figure
from lab.runs import access
from lab.runs.compare import run_labels
from lab.runs.layout import RunLayout
from lab.runs.store import LIVE_STATUSES, RunNotFound
from lab.runs.sweep import plan_repeats
from lab.runs.view import RunInfo
from lab.train.device import DEVICE_CHOICES
from lab.train.engine import MAX_NAME, MOMENTUM_OPTIMIZERS, OPTIMIZERS, SCHEDULES, ConfigError, TrainConfig
from lab.train.finetune import FREEZE_POLICIES, run_notes
from lab.train.ranges import TYPICAL_LR, Range, setting_ranges
from lab.ui.film_view import training_film
from lab.ui.i18n import language, t
from lab.ui.insight_view import (
    LATEST,
    cam_strip,
    feature_space,
    insight_stamp,
    knn_chart,
    maps_pending,
    method_choice,
    no_cams_reason,
)
from lab.ui.state import (
    dataset_info,
    dataset_name,
    draft,
    draft_summary,
    job_manager,
    list_runs,
    markdown_quoted,
    markdown_safe,
    may_change_run,
    owner,
    run_layout,
    shown_run,
    status_label,
    visitor,
)
from lab.ui.train_extras_view import class_accuracy_chart, lr_finder

POLL_SECONDS = 1.0
RECENT_RUNS = 10
QUERY_KEY = "run"
CURRENT_KEY, MY_RUNS_KEY, NAME_KEY = "train.current", "train.my_runs", "train.name"
INIT_KEY, FREEZE_KEY = "train.init_from", "train.freeze"
REPEATS_KEY, MAX_REPEATS = "train.repeats", 5  # "repeat N times": seeds seed..seed+N-1, grouped on Compare
OPEN_COMPARE = "train.open_compare"  # set while Start queues repeats: the rerun that follows opens Compare on them
COMPARE_PAGE = "app_pages/compare.py"
FRESH = ""  # init_from of a run that starts from fresh weights
INSIGHT_KEY = "train.insight"
METHOD_KEY, CAM_EPOCH_KEY, ALPHA_KEY = f"{INSIGHT_KEY}.method", f"{INSIGHT_KEY}.cam_epoch", f"{INSIGHT_KEY}.alpha"
DRAWN_KEY = f"{INSIGHT_KEY}.drawn"  # the _stamp the full-rerun pictures on screen were drawn from
CHART_CONFIG = {"displayModeBar": False}
VIEW_KEY, FILM_KEY = "train.view", "train.film"
FILM, DETAILS = "film", "details"  # the attached run as one film, or as the separate charts with more choices
VIEWS = (FILM, DETAILS)
DEFAULTS = TrainConfig()  # the type and fallback value of every setting


class Setting(NamedTuple):
    """One TrainConfig field on the page: a number box (allowed), a select box (options) or a switch
    (bool default)."""

    label: str
    allowed: Range | None = None  # a number box's min, max and step: what TrainConfig.validate accepts
    options: tuple[str, ...] = ()
    help: str = ""
    explain: Callable[[str], str] | None = None  # a select box's option -> its one line, shown under the box
    optimizers: tuple[str, ...] = ()  # shown only with these optimizers (the ones that read the setting)


def _settings() -> dict[str, Setting]:
    """The widgets in page order, labelled in the session's language; number boxes take their bounds
    from lab.train.ranges (this server's limits included), as validation does. Option values
    (adam, onecycle, auto) are the config's own words in every language."""
    ranges = setting_ranges()
    return {
        "epochs": Setting(t("train.setting.epochs"), ranges["epochs"], help=t("train.setting.epochs.help")),
        "batch_size": Setting(t("train.setting.batch_size"), ranges["batch_size"],
                              help=t("train.setting.batch_size.help")),
        "train_limit": Setting(t("train.setting.train_limit"), ranges["train_limit"],
                               help=t("train.setting.train_limit.help")),
        "seed": Setting(t("train.setting.seed"), ranges["seed"], help=t("train.setting.seed.help")),
        "optimizer": Setting(t("train.setting.optimizer"), options=OPTIMIZERS,
                             explain=lambda name: t(f"train.optimizer.{name}", lr=TYPICAL_LR[name])),
        "momentum": Setting(t("train.setting.momentum"), ranges["momentum"], help=t("train.setting.momentum.help"),
                            optimizers=MOMENTUM_OPTIMIZERS),
        "nesterov": Setting("Nesterov", help=t("train.setting.nesterov.help"), optimizers=("sgd",)),  # a name
        "lr": Setting(t("train.setting.lr"), ranges["lr"], help=t("train.setting.lr.help")),
        "schedule": Setting(t("train.setting.schedule"), options=SCHEDULES, help=t("train.setting.schedule.help")),
        "weight_decay": Setting(t("train.setting.weight_decay"), ranges["weight_decay"]),
        "init": Setting(t("train.setting.init"), options=tuple(INITS), help=t("train.setting.init.help"),
                        explain=lambda name: t(f"train.init.{name}")),
        "label_smoothing": Setting(t("train.setting.label_smoothing"), ranges["label_smoothing"],
                                   help=t("train.setting.label_smoothing.help")),
        "device": Setting(t("train.setting.device"), options=DEVICE_CHOICES, help=t("train.setting.device.help")),
        "compile": Setting("torch.compile", help=t("train.setting.compile.help")),  # a function's name: not translated
        "image_size": Setting(t("train.setting.image_size"), ranges["image_size"],
                              help=t("train.setting.image_size.help")),
    }


COLUMNS = (("epochs", "batch_size", "train_limit", "seed"),
           ("optimizer", "momentum", "nesterov", "lr", "schedule", "weight_decay"),
           ("init", "label_smoothing", "device", "compile"))


def _widget_key(key: str) -> str:
    return f"train.{key}"


def _fit(key: str, value: object, setting: Setting) -> object:
    """A draft value in the form its widget accepts: float fields as floats, numbers inside the bounds
    (a value outside them is one validation refuses anyway)."""
    if setting.allowed is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    number = type(getattr(DEFAULTS, key))
    return min(max(number(value), number(setting.allowed.low)), number(setting.allowed.high))


def _sync_settings(train: dict, table: dict[str, Setting]) -> None:
    """Copy the draft into the widget keys before they are drawn, fitted to them (and back into the draft)."""
    for key, setting in table.items():
        value = _fit(key, train.get(key, getattr(DEFAULTS, key)), setting)
        if setting.options and value not in setting.options:
            continue  # left in the draft: validation names it and the valid choices
        train[key] = st.session_state[_widget_key(key)] = value


def _store_settings() -> None:
    """``on_change`` of every setting widget: the widgets become the draft's training settings (a setting
    hidden for this optimizer has no widget state, and keeps its draft value)."""
    train = draft()["train"]
    for key in _settings():
        if _widget_key(key) in st.session_state:
            train[key] = st.session_state[_widget_key(key)]


def _setting_widget(key: str, setting: Setting, fixed: bool) -> None:
    """One setting's widget; a setting the class's exercise fixes is shown, locked."""
    help_text = " ".join(filter(None, [setting.help, t("train.fixed") if fixed else ""]))
    common = dict(key=_widget_key(key), on_change=_store_settings, help=help_text or None, disabled=fixed)
    if setting.options:
        chosen = st.selectbox(setting.label, setting.options, **common)
        if setting.explain:
            st.caption(setting.explain(chosen))
    elif isinstance(getattr(DEFAULTS, key), bool):
        st.toggle(setting.label, **common)
    else:
        number, allowed = type(getattr(DEFAULTS, key)), setting.allowed
        st.number_input(setting.label, min_value=number(allowed.low), max_value=number(allowed.high),
                        step=number(allowed.step), format="%g" if number is float else None, **common)


def _settings_form(train: dict, sources: list[RunInfo]) -> None:
    table = _settings()
    _sync_settings(train, table)
    exercise = current_exercise()
    fixed = exercise.train if exercise else {}
    for column, keys in zip(st.columns(len(COLUMNS)), COLUMNS):
        with column:
            for key in keys:
                if not table[key].optimizers or train.get("optimizer") in table[key].optimizers:
                    _setting_widget(key, table[key], key in fixed)
    lr_finder(lambda: build_config(draft(), ""))  # beside the rate it sets; the run's name plays no part
    chosen = bool(train.get("init_from") or train.get("freeze") or train.get("image_size"))
    with st.expander(t("train.transfer"), icon=":material/move_down:", expanded=chosen):
        start_col, freeze_col, size_col = st.columns(3)
        with start_col:
            _init_from_widget(train, sources, "init_from" in fixed)
        with freeze_col:
            _freeze_widget(train, "freeze" in fixed)
        with size_col:
            _setting_widget("image_size", table["image_size"], "image_size" in fixed)
            line = _data_line(train)
            if line:
                st.caption(line)


# ---------------------------------------------------------------- transfer learning and image size


def weight_sources(runs: list[RunInfo]) -> list[RunInfo]:
    """The runs a new run may start from: finished, with their best weights on disk."""
    return [run for run in runs if run.state == "finished" and run.layout.checkpoint("best").exists()]


def _store_transfer() -> None:
    """``on_change`` of the start-from and freeze boxes."""
    train = draft()["train"]
    train["init_from"] = st.session_state[INIT_KEY]
    train["freeze"] = list(st.session_state[FREEZE_KEY])


def _init_from_widget(train: dict, sources: list[RunInfo], fixed: bool) -> None:
    """Fresh weights, or the best weights of one of this lab's finished runs. A run the draft names that is not
    one of them (deleted since, or from a share link) is shown as it is, and init_from_problem says why."""
    labels = run_labels(sources)
    value = train.get("init_from") or FRESH
    options = [FRESH, *labels] if value in labels or value == FRESH else [FRESH, *labels, value]
    st.session_state[INIT_KEY] = train["init_from"] = value

    def label(run_id: str) -> str:
        if run_id == FRESH:
            return t("train.init_from.fresh")
        return labels.get(run_id) or t("train.init_from.unknown", run=run_id)

    help_text = " ".join(filter(None, [t("train.init_from.help"), t("train.fixed") if fixed else ""]))
    st.selectbox(t("train.init_from"), options, key=INIT_KEY, format_func=label, on_change=_store_transfer,
                 help=help_text, disabled=fixed)


def _freeze_widget(train: dict, fixed: bool) -> None:
    """The layers with weights of the draft's model, and the named policies (everything but the output layer,
    the layers loaded from the start-from run); names the model no longer has stay shown, for validation to name."""
    value = train.get("freeze") or []
    value = value if isinstance(value, list) else []  # anything else: validation names what it takes
    weighted = [row.name for row in draft_summary().rows if row.params]
    options = list(dict.fromkeys([*FREEZE_POLICIES, *weighted, *map(str, value)]))
    st.session_state[FREEZE_KEY] = train["freeze"] = [str(name) for name in value]
    help_text = " ".join(filter(None, [t("train.freeze.help"), t("train.fixed") if fixed else ""]))
    st.multiselect(t("train.freeze"), options, key=FREEZE_KEY, on_change=_store_transfer, help=help_text,
                   disabled=fixed, format_func=lambda n: t(f"train.freeze.{n}") if n in FREEZE_POLICIES else n,
                   placeholder=t("train.freeze.none"))


def _data_line(train: dict) -> str:
    """What the images take on the device at the draft's image size: the figure the server's data limit bounds
    (a run says it again when it starts). Empty for an upload, whose image count is known only once loaded."""
    info, shape = dataset_info(draft()["dataset"]), draft_summary().input_shape
    if info is None or len(shape) != 3:
        return ""
    limit = train.get("train_limit") or info.train_size
    images = min(limit, info.train_size) + info.val_size
    return t("train.data_memory", shape=format_shape(shape), images=f"{images:,}",
             mb=f"{data_megabytes(images, shape):,.1f}")


def init_from_problem(train: dict, sources: list[RunInfo]) -> str:
    """Why the draft's start-from run cannot be used ('' when it can), before a run is queued to fail on it."""
    run_id = train.get("init_from") or FRESH
    if run_id == FRESH or any(run.id == run_id for run in sources):
        return ""
    return t("train.init_from.missing", run=markdown_quoted(str(run_id)))


def build_config(d: dict, name: str) -> TrainConfig:
    """The run's settings from the draft; raises ConfigError for unknown or out-of-range ones."""
    config = TrainConfig.from_dict({**d["train"], "spec": d["spec"], "dataset": d["dataset"],
                                    "augment": d["augment"], "name": name, "owner": owner()})
    config.validate()
    return config


def default_name(d: dict, runs: list[RunInfo]) -> str:
    """'gap_cam-shapes-3': spec, dataset and one more than the highest number already used. An upload is
    named by its folder, never its server path; the number always fits in a run name's length."""
    spec = d["spec"].get("name", "model") if isinstance(d["spec"], dict) else str(d["spec"])
    prefix = f"{spec}-{dataset_name(d['dataset'])}-"[:MAX_NAME - 6]
    used = [int(r.name[len(prefix):]) for r in runs if r.name.startswith(prefix) and r.name[len(prefix):].isdigit()]
    return f"{prefix}{max(used, default=0) + 1}"


def attach(run_id: str | None) -> None:
    """Make ``run_id`` the run this session shows, in session state and in the URL (None detaches)."""
    if run_id:
        st.session_state[CURRENT_KEY] = run_id
        st.query_params[QUERY_KEY] = run_id
    else:
        st.session_state.pop(CURRENT_KEY, None)
        st.query_params.pop(QUERY_KEY, None)


def attached_run() -> str | None:
    """The URL's run (a reload or a shared link) or else this session's current one, mirrored to both."""
    run_id = st.query_params.get(QUERY_KEY) or st.session_state.get(CURRENT_KEY)
    attach(run_id)
    return run_id


def _start(d: dict, name: str) -> None:
    """Submit the draft as a run and attach it; settings out of range or outside the class's exercise, or a
    quota of the shared server it would pass, become one error line (the quota's says which and what to do).
    The run's model and data are checked by its worker: a bad one ends it failed."""
    try:
        config = build_config(d, name)
        check_run(config, visitor())
        run_id = job_manager().submit(config, by=visitor(), priority=queue_priority(config, visitor()))
    except (ConfigError, SpecError, QuotaExceeded) as err:
        st.error(t("train.cannot_start", error=markdown_safe(err)))
        return
    st.session_state.setdefault(MY_RUNS_KEY, []).append(run_id)
    attach(run_id)


def _start_repeats(d: dict, name: str, repeats: int) -> None:
    """Queue the draft ``repeats`` times, with seeds seed..seed+repeats-1, as one configuration of a sweep
    (lab.runs.sweep.plan_repeats), then open Compare, where its mean and spread are; or say why not."""
    from lab.ui.compare_view import queue_plan  # compare_view imports this module: imported on use

    try:
        config = build_config(d, name)
        configs = plan_repeats(config, range(config.seed, config.seed + repeats))
        for repeat in configs:  # the last seeds may pass the seed range
            repeat.validate()
    except (ConfigError, SpecError) as err:
        st.error(t("train.cannot_start", error=markdown_safe(err)))
        return
    st.session_state[OPEN_COMPARE] = True
    queue_plan(configs)  # reruns the page once every run is queued (and selects them on Compare)
    del st.session_state[OPEN_COMPARE]  # it returned: nothing was queued, and it has shown why


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}"


def _queue_place(state: RunState) -> str:
    if state.queue_position > 1:
        return t("train.progress.queued", place=state.queue_position)
    if state.queue_position == 1:
        return t("train.progress.next")
    return t("train.progress.starting")  # out of the queue, not training yet


def _queue_wait(state: RunState) -> str:
    """When a queued run should start: paused by the teacher, an estimate in whole minutes (the pace of
    the last run on its dataset makes it rough), or '' before any run on its dataset has finished."""
    if state.queue_paused:
        return t("train.progress.paused")
    if not state.queue_position or state.start_in_seconds is None:
        return ""
    if state.start_in_seconds < 60:
        return t("train.progress.starts_soon")
    return t("train.progress.starts_in", minutes=round(state.start_in_seconds / 60))


def progress_text(state: RunState) -> str:
    """One line for the progress bar: where the run is (its place in the queue and when it should start),
    how fast, how long is left."""
    if state.status == "queued":
        return " · ".join(filter(None, [_queue_place(state), _queue_wait(state)]))
    if not state.batch:
        return t("train.progress.first_batches", epoch=max(state.epoch, 1), epochs=state.epochs)
    parts = [t("train.progress.epoch", epoch=state.epoch, epochs=state.epochs),
             t("train.progress.batch", batch=state.batch, batches=state.batches),
             t("train.progress.speed", speed=state.images_per_sec)]
    if state.eta_seconds is not None:
        parts.append(t("train.progress.eta", left=_clock(state.eta_seconds)))
    return " · ".join(parts)


def outcome_text(state: RunState) -> str:
    """What a run that has ended achieved: status, best validation accuracy and its epoch, the message."""
    best = state.best
    result = (t("train.outcome.best", acc=best["val_acc"], epoch=best["epoch"], epochs=state.epochs)
              if best else t("train.outcome.none"))
    message = f" — {markdown_safe(state.message)}" if state.message else ""  # the engine's words (English)
    return t("train.outcome", status=status_label(state.status).capitalize(), result=result, message=message)


OUTCOME_ELEMENT = {"finished": st.success, "stopped": st.warning, "interrupted": st.warning}  # else st.error


def _batch_loss(state: RunState) -> None:
    """A plain SVG while the curve is redrawn every second (a plotly redraw costs the browser
    ten times more), the interactive chart once the run has ended."""
    if state.batch_losses and state.live:
        st.image(batch_loss_svg(state.batch_losses, lang=language()), width="stretch")
    elif state.batch_losses:
        st.plotly_chart(batch_loss_figure(state.batch_losses, lang=language()), config=CHART_CONFIG)


def _epoch_charts(state: RunState) -> None:
    """Accuracy and loss per epoch: drawn by the full rerun that follows each epoch, not every second."""
    acc_col, loss_col = st.columns(2)
    if state.metrics:
        acc_col.plotly_chart(epoch_figure(state.metrics, "acc", language()), config=CHART_CONFIG)
        loss_col.plotly_chart(epoch_figure(state.metrics, "loss", language()), config=CHART_CONFIG)
    elif state.live:
        acc_col.caption(t("train.epoch_charts_soon"))


def _insight(run: RunInfo) -> None:
    """Feature space with the k-NN accuracy beside it, then the CAM strip of the latest or a chosen epoch."""
    st.subheader(t("train.feature_space"))
    method = method_choice(METHOD_KEY)
    map_col, knn_col = st.columns([3, 1])
    with map_col:
        feature_space(run, method, key=INSIGHT_KEY)
    with knn_col:
        knn_chart(run, INSIGHT_KEY)
    st.subheader(t("common.where_it_looks"))
    epochs = run.cam_epochs
    if not epochs:
        st.caption(no_cams_reason(run))
        return
    epoch_col, alpha_col = st.columns(2)
    choice = epoch_col.selectbox(t("common.epoch"), [LATEST, *reversed(epochs)], key=CAM_EPOCH_KEY,
                                 format_func=lambda e: t("train.cam_epoch.latest", epoch=epochs[-1]) if e == LATEST
                                 else t("common.epoch_n", epoch=e))
    alpha = alpha_col.slider(t("common.heatmap_opacity"), 0.0, 1.0, 0.5, 0.05, key=ALPHA_KEY)
    cam_strip(run, epochs[-1] if choice == LATEST else choice, alpha)


def _method() -> str:
    return st.session_state.get(METHOD_KEY, "pca")


def _stamp(run_id: str) -> tuple:
    """What the full-rerun pictures were drawn from: epochs ended, and the insight files landed."""
    return len(job_manager().state(run_id).metrics), insight_stamp(run_layout(run_id), _method())


def _should_poll(state: RunState, run: RunLayout) -> bool:
    """Poll while the run is live or one of its maps is still being made in the background."""
    return state.live or maps_pending(run, _method())


def _stop(run_id: str) -> None:
    """``on_click`` of Stop; the button is drawn only for those allowed, but a teacher may have signed out."""
    try:
        job_manager().stop(run_id, by=visitor())
    except access.AccessDenied as err:
        st.toast(markdown_safe(err))  # it names the run's owner


def _run_panel(run_id: str, polling: bool) -> None:
    """Body of the live fragment: progress and Stop while live, the outcome once ended, the curves.
    A full rerun when the polling should change or new insight has landed."""
    state = job_manager().state(run_id)
    st.subheader(t("train.run_title", name=markdown_safe(state.name or run_id)))
    by = [t("train.run_by", owner=markdown_safe(state.owner))] if state.owner else []
    st.caption(" · ".join([t("train.run_id", id=markdown_safe(run_id)), *by]))
    if state.live:
        bar, stop = st.columns([5, 1], vertical_alignment="bottom")
        bar.progress(state.progress, text=progress_text(state))
        if may_change_run(run_id):
            stop.button(t("train.stop"), key=f"stop-{run_id}", on_click=_stop, args=(run_id,),
                        help=t("train.stop.help"))
        else:
            stop.caption(t("train.not_yours"))
    else:
        OUTCOME_ELEMENT.get(state.status, st.error)(outcome_text(state))
    _batch_loss(state)
    if polling != _should_poll(state, run_layout(run_id)) or _stamp(run_id) != st.session_state.get(DRAWN_KEY):
        st.rerun()  # the run ended, a map started, or an epoch or map landed: redraw the whole page


def _attached_view(run_id: str) -> None:
    """The attached run, polled once a second only while it is live or its maps are being made,
    and its feature space and CAM strip as of this (full) run of the page."""
    try:
        run = shown_run(run_id)
    except RunNotFound:
        st.warning(t("train.no_such_run", run=markdown_quoted(run_id)))
        attach(None)
        return
    state = job_manager().state(run_id)
    polling = _should_poll(state, run.layout)
    st.session_state[DRAWN_KEY] = _stamp(run_id)
    st.fragment(run_every=POLL_SECONDS if polling else None)(_run_panel)(run_id, polling)
    for note in run_notes(run.config, language()):  # its images' memory, the layers loaded and frozen
        st.caption(markdown_safe(note))
    st.session_state.setdefault(VIEW_KEY, FILM)
    view = st.segmented_control(t("film.view"), VIEWS, key=VIEW_KEY, label_visibility="collapsed",
                                format_func=lambda v: t(f"film.view.{v}"))
    if view == DETAILS:
        _epoch_charts(state)
        class_accuracy_chart(state.metrics, run.classes)
        _insight(run)
    else:  # the film, also when the user clicks the chosen view off
        st.subheader(t("film.title"))
        st.caption(t("film.caption"))
        training_film(run, key=FILM_KEY)


def _recent_runs(runs: list[RunInfo], current: str | None) -> None:
    """The newest runs of everyone, each one click from being the attached run."""
    st.subheader(t("train.recent"))
    if not runs:
        st.caption(t("train.no_runs"))
        return
    widths = [4, 2, 2, 2, 1]
    for column, title in zip(st.columns(widths), ("name", "owner", "status", "best_val_acc", "")):
        column.caption(t(f"compare.col.{title}") if title else "")  # the Compare table's headers
    mine = set(st.session_state.get(MY_RUNS_KEY, []))
    for run in runs[:RECENT_RUNS]:
        name, who, status, acc, button = st.columns(widths, vertical_alignment="center")
        shown = markdown_safe(run.name)
        name.markdown(f"**{shown}**" if run.id == current else shown)
        who.markdown(markdown_safe(run.status.get("owner") or "") or (t("train.you") if run.id in mine else "—"))
        # drawn once: queued/running would go stale
        status.write(status_label("live" if run.state in LIVE_STATUSES else run.state))
        acc.write(f"{run.best_val_acc:.1%}" if run.best_val_acc is not None else "—")
        button.button(t("train.open"), key=f"open-{run.id}", on_click=attach, args=(run.id,),
                      disabled=run.id == current)


def _start_problem(d: dict, name: str, sources: list[RunInfo]) -> str:
    """What keeps Start disabled, as the page shows it ('' when nothing does)."""
    try:
        build_config(d, name)
    except (ConfigError, SpecError) as err:
        return t("train.fix_first", problem=markdown_safe(err))
    return init_from_problem(d["train"], sources)


def render_train_page() -> None:
    """Draw the page: settings, Start, the attached run (live or ended), recent runs."""
    if st.session_state.pop(OPEN_COMPARE, False):  # repeats were just queued: watch them side by side there
        st.switch_page(COMPARE_PAGE)
    d = draft()
    st.title(t("nav.train"))
    st.caption(t("train.caption"))
    runs = list_runs()
    sources = weight_sources(runs)
    _settings_form(d["train"], sources)
    name_col, repeats_col, start_col = st.columns([3, 1, 1], vertical_alignment="bottom")
    name = name_col.text_input(t("train.run_name"), key=NAME_KEY, placeholder=default_name(d, runs)).strip()
    repeats = repeats_col.number_input(t("train.repeats"), min_value=1, max_value=MAX_REPEATS, value=1, step=1,
                                       key=REPEATS_KEY, help=t("train.repeats.help"))
    problem = _start_problem(d, name, sources)
    if problem:
        st.error(problem)
    if start_col.button(t("train.start"), type="primary", disabled=bool(problem)):
        if repeats > 1:
            _start_repeats(d, name or default_name(d, runs), repeats)
        else:
            _start(d, name or default_name(d, runs))
        runs = list_runs()
    current = attached_run()
    if current:
        _attached_view(current)
    _recent_runs(runs, current)
