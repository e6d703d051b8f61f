"""The Compare page: the experiment table, runs side by side, run edits, and sweeps.

One module of ~550 lines on purpose: its sections share the page's selection, filters and
outcome line; what is not Streamlit lives in lab/runs/compare.py and lab/plots/compare.py.

Everything is read from the runs dir on each rerun (``RunStore.list``), so the
page is the same after a server restart; a run whose server died reads
``interrupted`` with the epochs it completed. The live parts are a sweep's
progress (a fragment that polls while the sweep has queued or running runs and
triggers one full rerun when the last one ends, as the Train page does) and the
runs' feature-space maps side by side, polled while a t-SNE/UMAP map is made.

Actions that change the runs dir (save, delete, queue) end with a rerun, so
everything below them is drawn from the new state; their outcome line is kept
in session state across that rerun (``_flash``).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st

from lab.classroom.exercise import check_run, queue_priority
from lab.jobs import QuotaExceeded
from lab.plots.compare import (
    X_AXES,
    best_acc_figure,
    curves_figure,
    figures_html,
    gap_figure,
    spread_best_figure,
    spread_curves_figure,
    sweep_figure,
)
from lab.runs.access import AccessDenied, may_change
from lab.runs.compare import (
    GROUP_COLUMNS,
    RUN_COLUMNS,
    aggregate,
    aggregate_rows,
    close_pairs,
    configuration_labels,
    filter_rows,
    group_rows,
    has_repeats,
    repeated,
    rows_to_csv,
    run_labels,
    run_row,
    with_spread,
)
from lab.runs.store import LIVE_STATUSES, AnnotationError, RunNotFound
from lab.runs.sweep import (
    MAX_REPEATS,
    SUMMARY_COLUMNS,
    default_sweep_name,
    describe_plan,
    group_sweeps,
    parse_values,
    plan_sweep,
    summarize_sweep,
    sweep_of,
    with_repeats,
)
from lab.runs.view import RunInfo
from lab.train.augment import AUGMENT_PRESETS, augment_label, get_augment
from lab.train.engine import OPTIMIZERS, ConfigError, TrainConfig
from lab.ui.i18n import language, t
from lab.ui.insight_view import cam_strip, feature_space, maps_pending, method_choice, no_cams_reason
from lab.ui.state import (
    annotate_run,
    dataset_label,
    delete_run,
    draft,
    draft_summary,
    job_manager,
    list_runs,
    markdown_safe,
    status_label,
    visitor,
)
from lab.ui.train_view import build_config

POLL_SECONDS = 1.0
SELECT_KEY, X_KEY, EDIT_KEY, DELETE_KEY = "compare.selected", "compare.x", "compare.edit", "compare.delete"
FILTER_KEY, STATUS_KEY, DATASET_KEY = "compare.filter", "compare.status", "compare.dataset"
SWEEP_KEY, FLASH_KEY, DRAFT_AUGMENT = "compare.sweep", "compare.flash", "draft"
INSIGHT_METHOD_KEY = "compare.insight.method"
# Plotly's own toolbar saves PNGs in the browser (kaleido is not needed on the server).
CHART_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}
TABLE_ORDER = ["name", "owner", "tags", "dataset", "spec", "params", "augment", "optimizer", "lr", "batch_size",
               "epochs", "seed", "epochs_done", "best_val_acc", "best_epoch", "final_train_loss", "final_train_acc",
               "final_val_loss", "final_val_acc", "train_val_gap", "seconds_per_epoch", "images_per_sec", "status",
               "sweep", "created", "note"]
Number = st.column_config.NumberColumn
NUMBER_FORMATS = {"params": "localized", "lr": "%g", "best_val_acc": "percent", "final_train_loss": "%.4f",
                  "final_train_acc": "percent", "final_val_loss": "%.4f", "final_val_acc": "percent",
                  "train_val_gap": "percent", "seconds_per_epoch": "%.2f", "images_per_sec": "%.0f"}
SUMMARY_SHOWN = [column for column in SUMMARY_COLUMNS if column not in ("group", "id")]
# A repeated configuration's results as text cells 'mean ± std', in the units of the run table.
SPREAD_FORMATS = {"best_val_acc": ".1%", "best_epoch": ".1f", "final_train_loss": ".4f", "final_train_acc": ".1%",
                  "final_val_loss": ".4f", "final_val_acc": ".1%", "seconds_per_epoch": ".2f"}
GROUPED_ORDER = ["name", "n", "seeds", "dataset", "spec", "augment", "optimizer", "lr", "batch_size", "epochs",
                 *SPREAD_FORMATS, "status", "sweep"]


def column_config() -> dict:
    """The run tables' headers in the session's language: the columns keep their names (filters, CSV)."""
    config = {column: t(f"compare.col.{column}") for column in TABLE_ORDER}
    config.update({column: Number(config[column], format=fmt) for column, fmt in NUMBER_FORMATS.items()})
    config["train_val_gap"] = Number(config["train_val_gap"], format="percent",
                                     help=t("compare.col.train_val_gap.help"))
    return config


def run_frame(rows: list[dict], columns: Sequence[str] = RUN_COLUMNS) -> pd.DataFrame:
    """Rows as a table to show: the status column in the session's language, an upload by its name (not its
    server path, which names a classmate's upload folder), the rows as they were."""
    frame = pd.DataFrame(rows, columns=columns)
    frame["status"] = frame["status"].map(status_label)
    if "dataset" in frame:
        frame["dataset"] = frame["dataset"].map(_run_dataset, na_action="ignore")  # a sweep's summary has none
    return frame


def _run_dataset(name: str) -> str:
    return dataset_label(name, yours=False)


def table_csv(rows: list[dict], columns: Sequence[str] = RUN_COLUMNS) -> str:
    """A run table as CSV: the stored values and column names, but an upload named as in the table, not by
    its server path."""
    return rows_to_csv([{**row, "dataset": _run_dataset(row["dataset"])} if row.get("dataset") else row
                        for row in rows], columns)


# ---------------------------------------------------------------- shared


def _flash(kind: str, text: str) -> None:
    """Keep an outcome line for the next rerun (actions rerun so the page shows their result)."""
    st.session_state[FLASH_KEY] = (kind, text)


def _show_flash() -> None:
    kind, text = st.session_state.pop(FLASH_KEY, (None, ""))
    if kind:
        getattr(st, kind)(text)


def _table(rows: list[dict], columns: Sequence[str] = TABLE_ORDER) -> None:
    st.dataframe(run_frame(rows), hide_index=True, column_order=columns, column_config=column_config())


def _grouped_view(configurations: list[dict], key: str) -> None:
    """Repeated configurations (``lab.runs.compare.aggregate_rows``) as one row each, every result as
    mean ± std; its CSV (numbers, std in columns of their own); which differences are within the spread."""
    title = t("compare.repeats.title")
    st.markdown(f"**{title}**")
    st.caption(t("compare.repeats.caption"))
    names = configuration_labels(configurations)
    cells = [{**row, "name": name, **{column: with_spread(row[column], row[f"{column}_std"], fmt)
                                      for column, fmt in SPREAD_FORMATS.items()}}
             for row, name in zip(configurations, names)]
    st.dataframe(run_frame(cells, GROUP_COLUMNS), hide_index=True, column_order=GROUPED_ORDER,
                 column_config={column: t(f"compare.col.{column}") for column in GROUPED_ORDER})
    st.download_button(t("compare.repeats.download"), table_csv(configurations, GROUP_COLUMNS),
                       file_name="cnn-lab-mean-std.csv", mime="text/csv", on_click="ignore", key=f"{key}.repeats.csv")
    _spread_note(configurations, names)


def _spread_note(configurations: list[dict], names: list[str]) -> None:
    """In words, which configurations differ in mean best validation accuracy by less than their spread
    (the rule of ``lab.runs.compare.within_spread``), or that none do; said only where two have a spread."""
    if len(repeated(configurations)) < 2:
        return
    pairs = close_pairs(configurations)
    if not pairs:
        st.caption(t("compare.repeats.apart"))
        return
    listed = ", ".join(
        t("compare.repeats.pair", a=markdown_safe(names[i]), b=markdown_safe(names[j]),
          diff=f"{abs(configurations[i]['best_val_acc'] - configurations[j]['best_val_acc']):.1%}",
          spread=f"{max(configurations[i]['best_val_acc_std'], configurations[j]['best_val_acc_std']):.1%}")
        for i, j in pairs)
    st.info(t("compare.repeats.close", pairs=listed))


# ---------------------------------------------------------------- runs tab


def _filtered(rows: list[dict]) -> list[dict]:
    """The filter widgets above the table, applied to ``rows``."""
    text_col, status_col, dataset_col = st.columns([3, 2, 2])
    text = text_col.text_input(t("compare.filter"), key=FILTER_KEY, placeholder=t("compare.filter.placeholder"))
    statuses = status_col.multiselect(t("compare.status"), sorted({r["status"] for r in rows}), key=STATUS_KEY,
                                      format_func=status_label)
    datasets = dataset_col.multiselect(t("data.dataset"), sorted({r["dataset"] for r in rows}), key=DATASET_KEY,
                                       format_func=_run_dataset)
    return filter_rows(rows, text, statuses, datasets)


def _selection(shown: list[dict], labels: dict[str, str]) -> list[str]:
    """The runs picked for comparison: the table's rows, plus picks a filter now hides (kept, not dropped)."""
    chosen = [run_id for run_id in st.session_state.get(SELECT_KEY, []) if run_id in labels]
    st.session_state[SELECT_KEY] = chosen  # deleted runs leave the selection before the widget is drawn
    options = [r["id"] for r in shown] + [run_id for run_id in chosen if run_id not in {r["id"] for r in shown}]
    return st.multiselect(t("compare.selected"), options, key=SELECT_KEY, format_func=labels.get,
                          placeholder=t("compare.selected.placeholder"))


def _comparison(runs: list[RunInfo], labels: dict[str, str]) -> None:
    """Curves overlaid, best accuracies, generalisation gaps, and the HTML export of all four."""
    empty = [labels[r.id] for r in runs if not r.metrics]
    if empty:
        st.caption(t("compare.no_epoch_yet", runs=markdown_safe(", ".join(empty))))
    x = st.radio(t("compare.x"), list(X_AXES), format_func=lambda axis: t(f"compare.x.{axis}"), horizontal=True,
                 key=X_KEY)
    series, lang, spread = [(labels[r.id], r.metrics) for r in runs], language(), _spread_series(runs)
    if spread:  # a configuration's repeats as one mean line with its band, one bar with error bars
        figures = {"acc": spread_curves_figure(spread, "acc", x, lang),
                   "loss": spread_curves_figure(spread, "loss", x, lang), "best": spread_best_figure(spread, lang)}
        st.caption(t("compare.repeats.bands"))
    else:
        figures = {"acc": curves_figure(series, "acc", x, lang), "loss": curves_figure(series, "loss", x, lang),
                   "best": best_acc_figure(series, lang)}
    figures["gap"] = gap_figure(series, lang)  # each run's own: where each one starts to overfit
    names = list(figures)
    for pair in (names[:2], names[2:]):
        for column, name in zip(st.columns(2), pair):
            column.plotly_chart(figures[name], config=CHART_CONFIG, key=f"compare.chart.{name}")
    # The HTML holds the charts as shown, under headings in the same language.
    headed = {t(f"compare.chart.{name}"): figure for name, figure in figures.items()}
    st.download_button(t("compare.download_charts"), data=lambda: figures_html(headed, lang),
                       file_name="cnn-lab-comparison.html", mime="text/html", on_click="ignore",
                       help=t("compare.download_charts.help"))
    st.caption(t("compare.png_hint"))
    _insight_side_by_side(runs, labels)


def _spread_series(runs: list[RunInfo]) -> list[tuple[str, list[list[dict]]]] | None:
    """The runs as (configuration label, each repeat's metrics), or None when no configuration is repeated."""
    rows = [run_row(r) for r in runs]
    if not has_repeats(rows):
        return None
    groups, metrics = group_rows(rows), {r.id: r.metrics for r in runs}
    names = configuration_labels([aggregate(group) for group in groups])
    return [(name, [metrics[row["id"]] for row in group]) for name, group in zip(names, groups)]


def _insight_side_by_side(runs: list[RunInfo], labels: dict[str, str]) -> None:
    """Each run's feature-space map and CAM strip at one common epoch, two runs to a row.

    A fragment that polls while a t-SNE/UMAP map of these runs is still being made."""
    st.subheader(t("compare.insight"))
    recorded = [r for r in runs if r.probe_epochs]
    if not recorded:
        st.caption(t("compare.insight.none"))
        return
    if len(recorded) < len(runs):
        missing = ", ".join(labels[r.id] for r in runs if r not in recorded)
        st.caption(t("compare.insight.missing", runs=markdown_safe(missing)))
    polling = any(maps_pending(r.layout, st.session_state.get(INSIGHT_METHOD_KEY, "pca")) for r in recorded)
    st.fragment(run_every=POLL_SECONDS if polling else None)(_insight_panel)(recorded, labels, polling)


def _insight_panel(runs: list[RunInfo], labels: dict[str, str], polling: bool) -> None:
    """Body of the side-by-side fragment: method, epoch and opacity for all, then one column per run."""
    method_col, epoch_col, alpha_col = st.columns(3)
    with method_col:
        method = method_choice(INSIGHT_METHOD_KEY)
    common = sorted(set.intersection(*(set(r.probe_epochs) for r in runs)))
    epoch = common[-1]
    if len(common) > 1:
        epoch = epoch_col.select_slider(t("common.epoch"), common, value=common[-1], key="compare.insight.epoch",
                                        help=t("compare.insight.epoch.help"))
    alpha = alpha_col.slider(t("common.heatmap_opacity"), 0.0, 1.0, 0.5, 0.05, key="compare.insight.alpha")
    for row in range(0, len(runs), 2):
        for column, run in zip(st.columns(2), runs[row:row + 2]):
            with column:
                st.markdown(f"**{markdown_safe(labels[run.id])}**")
                feature_space(run, method, epoch, key=f"compare.insight.{run.id}")
                if epoch in run.cam_epochs:
                    cam_strip(run, epoch, alpha)
                else:
                    st.caption(no_cams_reason(run))
    if polling != any(maps_pending(r.layout, method) for r in runs):
        st.rerun()  # a map started or landed: a full rerun redraws with the right polling


def _save(run_id: str, name: str, tags: str, note: str) -> None:
    try:
        annotate_run(run_id, name, tags.split(","), note)
    except (AnnotationError, RunNotFound, AccessDenied) as err:
        st.error(t("compare.not_saved", error=markdown_safe(err)))
        return
    _flash("success", t("compare.saved", name=markdown_safe(name.strip())))
    st.rerun()


def _ask_delete(run_id: str) -> None:
    st.session_state[DELETE_KEY] = run_id


def _cancel_delete() -> None:
    st.session_state.pop(DELETE_KEY, None)


def _delete(run_id: str, label: str) -> None:
    """``on_click`` of the confirmation: remove the run's folder and forget it in this session."""
    st.session_state.pop(DELETE_KEY, None)
    st.session_state.pop(EDIT_KEY, None)
    st.session_state[SELECT_KEY] = [i for i in st.session_state.get(SELECT_KEY, []) if i != run_id]
    try:
        delete_run(run_id)
    except (RunNotFound, AccessDenied) as err:
        _flash("error", t("compare.not_deleted", error=markdown_safe(err)))
        return
    _flash("success", t("compare.deleted", run=markdown_safe(label)))


def _delete_controls(run: RunInfo, label: str) -> None:
    """Delete asks first; a live run cannot be deleted (its trainer still writes into the folder)."""
    if run.state in LIVE_STATUSES:
        st.caption(t("compare.live_no_delete"))
        return
    if st.session_state.get(DELETE_KEY) != run.id:
        st.button(t("compare.ask_delete"), key="compare.ask_delete", on_click=_ask_delete, args=(run.id,))
        return
    st.warning(t("compare.confirm_delete.text", run=markdown_safe(label), folder=run.id))  # not the server's path
    yes, no, _ = st.columns([1, 1, 4])
    yes.button(t("compare.confirm_delete"), type="primary", key="compare.confirm_delete", on_click=_delete,
               args=(run.id, label))
    no.button(t("compare.cancel_delete"), key="compare.cancel_delete", on_click=_cancel_delete)


def _manage(runs: list[RunInfo], labels: dict[str, str]) -> None:
    with st.expander(t("compare.manage")):
        by_id = {r.id: r for r in runs}
        run = by_id[st.selectbox(t("compare.run"), list(by_id), format_func=labels.get, key=EDIT_KEY)]
        if not may_change(run.status, visitor()):
            st.caption(t("compare.not_yours"))
            return
        form = f"compare.form.{run.id}"  # one form per run, so its fields start from that run's values
        with st.form(form):  # keyed fields: a language switch while typing keeps the text
            name = st.text_input(t("compare.form.name"), value=run.name, key=f"{form}.name")
            tags = st.text_input(t("compare.form.tags"), value=", ".join(run.tags), help=t("compare.form.tags.help"),
                                 key=f"{form}.tags")
            note = st.text_area(t("compare.form.note"), value=run.note, placeholder=t("compare.form.note.placeholder"),
                                key=f"{form}.note")
            if st.form_submit_button(t("compare.form.save")):
                _save(run.id, name, tags, note)
        _delete_controls(run, labels[run.id])


def _runs_tab(runs: list[RunInfo]) -> None:
    if not runs:
        st.info(t("compare.no_runs"))
        return
    labels = run_labels(runs)
    rows = [run_row(r) for r in runs]
    shown = _filtered(rows)
    _table(shown)
    st.download_button(t("compare.download_table"), table_csv(shown), file_name="cnn-lab-runs.csv",
                       mime="text/csv", on_click="ignore")
    if has_repeats(shown):
        _grouped_view(aggregate_rows(shown), "compare")
    selected = _selection(shown, labels)
    by_id = {r.id: r for r in runs}
    if selected:
        _comparison([by_id[run_id] for run_id in selected], labels)
    else:
        st.caption(t("compare.choose_runs"))
    _manage(runs, labels)


# ---------------------------------------------------------------- sweep tab


def _augment_choice(choice: str, d: dict) -> str:
    return (t("compare.sweep.draft_augment", augment=augment_label(get_augment(d["augment"])))
            if choice == DRAFT_AUGMENT else choice)


def _sweep_values(d: dict) -> dict[str, list]:
    """The value lists as typed; raises SweepError for text that is not a list of values."""
    train = d["train"]
    bs, ep = train.get("batch_size", 64), train.get("epochs", 5)
    cols = st.columns(3)
    texts = {
        "batch_size": cols[0].text_input(t("compare.sweep.batch_sizes"), f"{bs}, {bs * 2}", key="sweep.batch_size",
                                         help=t("compare.sweep.batch_sizes.help")),
        "epochs": cols[1].text_input(t("compare.sweep.epochs"), f"{ep}, {ep * 2}", key="sweep.epochs",
                                     help=t("compare.sweep.epochs.help")),
        "lr": cols[2].text_input(t("compare.sweep.lrs"), f"{train.get('lr', 1e-3):g}", key="sweep.lr",
                                 help=t("compare.sweep.lrs.help")),
    }
    optimizers = cols[0].multiselect(t("compare.sweep.optimizers"), OPTIMIZERS, [train.get("optimizer", "adam")],
                                     key="sweep.optimizer")
    augments = cols[1].multiselect(t("compare.sweep.augments"), [DRAFT_AUGMENT, *AUGMENT_PRESETS], [DRAFT_AUGMENT],
                                   key="sweep.augment", format_func=lambda c: _augment_choice(c, d))
    values = {axis: parse_values(axis, text) for axis, text in texts.items()}
    values["optimizer"] = optimizers
    values["augment"] = [d["augment"] if a == DRAFT_AUGMENT else a for a in augments]
    return values


def queue_plan(configs: list[TrainConfig]) -> None:
    """Submit every combination to the shared job queue as one batch, then show the new sweep (here, and on
    this page for Home's experiment and Train's repeats). The sweep is queued whole or not at all: a
    combination the class's exercise does not allow, or a quota the whole batch would pass, queues nothing,
    and the error is shown where the call was made. Its priority is the lowest of its runs': a sweep goes
    ahead of free exploration only when every run of it follows the exercise."""
    by = visitor()
    try:
        for config in configs:
            check_run(config, by)
        priority = min(queue_priority(config, by) for config in configs)
        with st.spinner(t("compare.sweep.queueing", count=len(configs))):
            job_manager().submit_all(configs, by=by, priority=priority)
    except (ConfigError, QuotaExceeded) as err:
        st.error(t("compare.sweep.cannot_queue", error=markdown_safe(err)))
        return
    st.session_state[SWEEP_KEY] = configs[0].sweep["id"]
    _flash("success", t("compare.sweep.queued", name=markdown_safe(configs[0].sweep["name"]), count=len(configs)))
    st.rerun()


def _plan_form(d: dict) -> None:
    """The sweep settings, the plan they make, and the button that queues it."""
    name_col, repeats_col = st.columns([2, 1])
    try:
        base = build_config(d, "")
    except ConfigError as err:
        st.error(t("compare.sweep.fix_draft", error=markdown_safe(err)))
        return
    name = name_col.text_input(t("compare.sweep.name"), key="sweep.name", placeholder=default_sweep_name(base),
                               help=t("compare.sweep.name.help"))
    repeats = repeats_col.number_input(t("compare.sweep.repeats"), 1, MAX_REPEATS, 1, key="sweep.repeats",
                                       help=t("compare.sweep.repeats.help"))
    try:
        configs = plan_sweep(base, _sweep_values(d), name)
        if repeats > 1:  # seeds 0..N-1; once keeps the draft's own seed
            configs = with_repeats(configs, list(range(repeats)))
    except ConfigError as err:
        st.error(t("compare.sweep.cannot_plan", error=markdown_safe(err)))
        return
    st.caption(t("compare.sweep.plan", plan=markdown_safe(describe_plan(configs))))  # lab.runs.sweep's words (English)
    if st.button(t("compare.sweep.queue", count=len(configs)), type="primary", key="sweep.queue"):
        queue_plan(configs)


def _sweep_label(runs: list[RunInfo]) -> str:
    record = sweep_of(runs[0])
    return t("compare.sweep.label", name=record["name"], count=len(runs), created=record.get("created", ""))


def _select_runs(run_ids: list[str]) -> None:
    st.session_state[SELECT_KEY] = run_ids
    _flash("info", t("compare.sweep.selected"))


def _sweep_progress(runs: list[RunInfo]) -> bool:
    """Progress bar while any run of the sweep is live (True), else an outcome line (False)."""
    states = [job_manager().state(r.id) for r in runs]
    live = [s for s in states if s.live]
    if live:
        running = [s for s in live if s.status == "running"]
        now = (t("compare.sweep.now", run=markdown_safe(running[0].name), epoch=max(running[0].epoch, 1),
                 epochs=running[0].epochs)
               if running else t("compare.sweep.waiting"))
        done = len(states) - len(live)
        st.progress(sum(s.progress for s in states) / len(states),
                    text=t("compare.sweep.progress", done=done, total=len(states), now=now))
        return True
    failed = [s.name for s in states if s.status != "finished"]
    if failed:
        st.warning(t("compare.sweep.unfinished", runs=markdown_safe(", ".join(failed))))
    else:
        st.success(t("compare.sweep.done", count=len(states)))
    return False


def _sweep_panel(sweep_id: str, polling: bool) -> None:
    """Body of the sweep fragment: progress, the summary table and its figure."""
    runs = group_sweeps(list_runs()).get(sweep_id, [])
    if not runs:
        st.warning(t("compare.sweep.all_deleted"))
        return
    live = _sweep_progress(runs)
    if polling and not live:
        st.rerun()  # ended since the last poll: a full rerun redraws the page without polling
    total = sweep_of(runs[0]).get("total", len(runs))
    if total > len(runs):
        st.caption(t("compare.sweep.some_deleted", deleted=total - len(runs), total=total))
    rows = summarize_sweep(runs)
    figure_rows = rows
    if has_repeats(rows):
        figure_rows = aggregate_rows(rows)
        _grouped_view(figure_rows, f"sweep.{sweep_id}")
        with st.expander(t("compare.repeats.each_run")):
            _table(rows, SUMMARY_SHOWN)
    else:
        _table(rows, SUMMARY_SHOWN)
    st.plotly_chart(sweep_figure(figure_rows, language()), config=CHART_CONFIG, key=f"sweep.figure.{sweep_id}")
    st.download_button(t("compare.sweep.download"), rows_to_csv(rows, SUMMARY_COLUMNS),
                       file_name=f"cnn-lab-sweep-{sweep_id}.csv", mime="text/csv", on_click="ignore")


def _sweep_tab(runs: list[RunInfo]) -> None:
    d = draft()
    st.caption(t("compare.sweep.caption", model=markdown_safe(draft_summary().name),
                 dataset=markdown_safe(dataset_label(d["dataset"]))))
    _plan_form(d)
    sweeps = group_sweeps(runs)
    if not sweeps:
        st.caption(t("compare.sweep.none"))
        return
    st.subheader(t("compare.sweep.results"))
    if st.session_state.get(SWEEP_KEY) not in sweeps:
        st.session_state.pop(SWEEP_KEY, None)
    sweep_id = st.selectbox(t("compare.sweep"), list(sweeps), key=SWEEP_KEY,
                            format_func=lambda s: _sweep_label(sweeps[s]))
    live = any(r.state in LIVE_STATUSES for r in sweeps[sweep_id])
    st.fragment(run_every=POLL_SECONDS if live else None)(_sweep_panel)(sweep_id, live)
    # Outside the fragment: a click inside one reruns only the fragment, and the Runs tab must redraw.
    st.button(t("compare.sweep.compare"), key=f"sweep.select.{sweep_id}", on_click=_select_runs,
              args=([r.id for r in sweeps[sweep_id]],), help=t("compare.sweep.compare.help"))


# ---------------------------------------------------------------- page


def render_compare_page() -> None:
    """Draw the page: the runs table and comparison, and the sweep planner and results."""
    st.title(t("nav.compare"))
    st.caption(t("compare.caption"))
    with st.container():  # with or without a flash, so the tabs keep their place and a rerun the tab picked
        _show_flash()
    runs = list_runs()
    runs_tab, sweep_tab = st.tabs([t("compare.tab.runs"), t("compare.tab.sweep")])
    with runs_tab:
        _runs_tab(runs)
    with sweep_tab:
        _sweep_tab(runs)
