"""The Build page's parts: where a model starts from, the layer editor, the live
summary, the architecture picture and the export buttons.

One module of ~420 lines on purpose: every part edits the same draft through the one
widget-key scheme below; what is not Streamlit lives in lab/model/.

The draft spec (``draft()["spec"]``) is the one source of truth. Every edit is a
widget callback that changes the draft *before* the rerun, so each run starts by
analysing the current draft and every layer row can show its own shape, count
and problem where it is drawn.

Widget keys are ``b{version}.{position}.{param}``. A value edit keeps the
version; a structural edit (move, delete, insert, duplicate, load) bumps it, so
no widget state can stick to the layer that moved into its slot. A change made
elsewhere (Home's quick starts) is noticed by comparing the spec with the one
this editor last saw, and bumps the version too.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import streamlit as st

from lab import settings
from lab.classroom.exercise import Exercise, current_exercise
from lab.export.code import code_refusal, pytorch_code, spec_json
from lab.model.backbone import ALL, BACKBONES, FROZEN, IMAGENET, RANDOM
from lab.model.layers import ACTIVATIONS, LAYER_TYPES, LayerType, Param, SpecError, format_shape, normalize_layer
from lab.model.presets import PRESETS, get_preset, get_preset_info
from lab.model.spec import LayerRow, Summary, analyze, check_size, parse_spec_json
from lab.model.teach import conv_weights, explain, receptive_fields
from lab.plots.diagram import architecture_figure
from lab.ui.build_teach_view import render_teach_notes
from lab.ui.i18n import DEFAULT, language, strings, t
from lab.ui.state import dataset_label, draft, draft_summary, markdown_safe

VERSION, SEEN, OPEN = "build.version", "build.seen", "build.open"
ACTIVATION_CHOICES = ["none", *ACTIVATIONS]
PADDING_CHOICES: list[Any] = ["same", "valid", 0, 1, 2, 3, 4, 5]
PARAMS_PER_ROW = 3  # the editor column is narrow; conv's five parameters take two rows
FLOAT_STEP = 0.01
FRACTION_STEP = 0.05  # a transition's compression: 0.5 (DenseNet-BC) and 1 (DenseNet) are a few clicks apart
WEIGHT_FILES = ("*.pt", "*.pth")  # what the models folder's weight files are called
MAX_WEIGHT_FILES = 50  # offered in the backbone's weights box; more are named in a JSON spec
MB = 1e6  # torchinfo's megabyte, so the figures match its "Forward/backward pass size (MB)"


# ---------------------------------------------------------------- draft bookkeeping


def _spec() -> dict:
    return draft()["spec"]


def _layers() -> list[dict]:
    return _spec().setdefault("layers", [])


def _signature(spec: dict) -> str:
    return json.dumps(spec, sort_keys=True, default=str)


def _version() -> int:
    """Current key version; bumped first if the spec was changed outside this editor."""
    if st.session_state.get(SEEN) != _signature(_spec()):
        _commit(structural=True)
    return st.session_state.get(VERSION, 0)


def _commit(structural: bool, open_at: int | None = None) -> None:
    """Record an edit: the spec as now seen, and a new key version for structural ones."""
    if structural:
        st.session_state[VERSION] = st.session_state.get(VERSION, 0) + 1
        st.session_state[OPEN] = open_at
    st.session_state[SEEN] = _signature(_spec())


def _replace_spec(spec: dict, preset: str | None) -> None:
    d = draft()
    d["spec"], d["preset"] = spec, preset
    _commit(structural=True)


# ---------------------------------------------------------------- callbacks


def _set_value(index: int, name: str, key: str, linear_is_none: bool = False) -> None:
    """A parameter widget's ``on_change``; an activation box's "none" (linear) is the spec's null."""
    value = st.session_state[key]
    _layers()[index][name] = None if linear_is_none and value == "none" else value
    _commit(structural=False)


def _set_name(key: str) -> None:
    _spec()["name"] = st.session_state[key].strip() or "model"
    _commit(structural=False)


def _move(index: int, delta: int) -> None:
    layers, target = _layers(), index + delta
    if 0 <= target < len(layers):
        layers[index], layers[target] = layers[target], layers[index]
        _commit(structural=True, open_at=target)


def _delete(index: int) -> None:
    del _layers()[index]
    _commit(structural=True)


def _duplicate(index: int) -> None:
    _layers().insert(index + 1, copy.deepcopy(_layers()[index]))
    _commit(structural=True, open_at=index + 1)


def _insert(index: int, type_key: str) -> None:
    """Insert a layer of the type chosen in ``type_key``'s widget, with its defaults; one that works on the
    images themselves (a pretrained backbone) goes first, the only place it may be."""
    kind = st.session_state[type_key]
    index = 0 if LAYER_TYPES[kind].takes_images else index
    _layers().insert(index, normalize_layer({"type": kind}))
    _commit(structural=True, open_at=index)


def _load_preset(key: str) -> None:
    _replace_spec(get_preset(st.session_state[key]), st.session_state[key])


def _start_empty() -> None:
    _replace_spec({"name": "my_cnn", "layers": []}, None)


# ---------------------------------------------------------------- import


def _import_json(text_key: str, file_key: str) -> None:
    """Load the uploaded file, else the pasted text; its size is checked before it is decoded or parsed."""
    upload = st.session_state.get(file_key)
    try:
        if upload:
            spec = parse_spec_json(upload.getvalue(), "the uploaded file")
        else:
            spec = parse_spec_json(st.session_state.get(text_key, ""), "the pasted text")
    except SpecError as err:
        st.session_state["build.import_error"] = str(err)
        return
    st.session_state["build.import_error"] = None
    _replace_spec(spec, None)


# ---------------------------------------------------------------- rendering


def render_start(exercise: Exercise | None) -> None:
    """Preset, imported JSON or an empty model: three ways to begin (only the exercise's
    presets when the class has one, and only presets when it locks the model)."""
    if exercise is not None and exercise.locks("build"):
        _preset_picker(exercise.presets)
        return
    preset_tab, json_tab, empty_tab = st.tabs([t("build.tab.preset"), t("build.tab.json"), t("build.tab.empty")])
    with preset_tab:
        _preset_picker(exercise.presets if exercise and exercise.presets else tuple(PRESETS))
    with json_tab:
        st.file_uploader(t("build.json_file"), type="json", key="build.json_file")
        st.text_area(t("build.json_text"), key="build.json_text", height=120,
                     placeholder='{"name": "my_cnn", "layers": [{"type": "conv2d", "filters": 32}]}')
        st.button(t("build.load_json"), key="build.load_json", on_click=_import_json,
                  args=("build.json_text", "build.json_file"))
        if st.session_state.get("build.import_error"):
            st.error(t("build.import_error", error=markdown_safe(st.session_state["build.import_error"])))
    with empty_tab:
        st.write(t("build.empty_text"))
        st.button(t("build.start_empty"), key="build.empty", on_click=_start_empty)


def _preset_picker(names: tuple[str, ...]) -> None:
    names = list(names)
    current = draft().get("preset")
    choice = st.selectbox(t("common.preset"), names, index=names.index(current) if current in names else 0,
                          key="build.preset")
    info = get_preset_info(choice, language())
    st.caption(info.description)
    if info.idea:  # what is new in this architecture (lab/locales preset.idea.<family>)
        st.info(info.idea, icon=":material/lightbulb:")
    if info.reference:
        _reference_note(choice, info.spec)
    st.button(t("build.load_preset"), key="build.load_preset", on_click=_load_preset, args=("build.preset",),
              help=t("build.load_preset.help"))


def _reference_note(name: str, spec: dict) -> None:
    """What a reference preset (torchvision's full-size net) is for: its numbers at its own 224-pixel input,
    which the Build table, sized for the draft's data set, does not show; over this server's limit it can
    only be read, not trained."""
    total, limit = analyze(spec).total_params, settings.limits().max_params
    shape = format_shape(tuple(spec["input"]))
    if total > limit:
        st.warning(t("build.preset.reference_over", name=name, params=f"{total:,}", shape=shape,
                     classes=f"{spec['num_classes']:,}", limit=f"{limit:,}"), icon=":material/menu_book:")
    else:
        st.caption(t("build.preset.reference", name=name, params=f"{total:,}", shape=shape,
                     classes=f"{spec['num_classes']:,}"))


def render_header(summary: Summary, dataset: str, version: int, batch_size: int) -> None:
    """Name field and the numbers that matter at a glance."""
    st.text_input(t("build.model_name"), value=_spec().get("name", "model"), key=f"b{version}.name",
                  on_change=_set_name, args=(f"b{version}.name",))
    cols = st.columns(5)
    cols[0].metric(t("build.input"), format_shape(summary.input_shape) if summary.input_shape else "?",
                   help=t("build.input.help", dataset=markdown_safe(dataset_label(dataset))))
    cols[1].metric(t("common.classes"), summary.num_classes)
    cols[2].metric(t("build.params"), f"{summary.total_params:,}" if summary.ok else "—")
    cols[3].metric(t("build.macs"), f"{summary.total_macs:,}" if summary.ok else "—", help=t("build.macs.help"))
    memory = summary.activation_bytes(batch_size) / MB
    cols[4].metric(t("build.memory", batch=batch_size), f"{memory:,.1f} MB" if summary.ok else "—",
                   help=t("build.memory.help"))


def render_problems(summary: Summary) -> None:
    """The summary of what is wrong; each problem is also shown at its layer."""
    if summary.ok:
        st.success(t("build.valid"), icon=":material/check_circle:")
        return
    for problem in summary.problems:
        st.error(markdown_safe(problem), icon=":material/error:")  # may quote a share link's layer type


def _row_for(summary: Summary, position: int, layer: dict) -> LayerRow | None:
    """The summary row of the user's layer at a 1-based position (None when its shape is unknown)."""
    row = next((r for r in summary.rows if r.index == position), None)
    return row if row is not None and row.layer["type"] == layer.get("type") else None


def type_title(kind: str) -> str:
    """A layer type's name in the session's language (the layer arithmetic's own words for it)."""
    return t(f"teach.type.{kind}")


def _label(position: int, layer: dict, row: LayerRow | None, problem: SpecError | None) -> str:
    kind = str(layer.get("type"))
    title = type_title(kind) if kind in LAYER_TYPES else markdown_safe(kind)
    if problem is not None:
        return t("build.layer.problem", position=position, title=title)
    if row is None:
        return f"{position}. {title}"
    key = "build.layer.output" if row.name == "output" else "build.layer.label"
    return t(key, position=position, title=title, shape=format_shape(row.out_shape), params=row.params)


def _param_label(kind: str, name: str) -> str:
    """A parameter's label: ``build.param.<type>.<name>`` where one name means different things (a pool's
    window ``size``, a backbone's image ``size``), else ``build.param.<name>``."""
    own = f"{kind}.{name}"
    return t(f"build.param.{own}") if f"build.param.{own}" in strings(DEFAULT) else t(f"build.param.{name}")


def _options(choices: list, value: Any) -> list:
    """A select box's choices, with the layer's own value added when it is not one of them (a file named in
    a JSON spec, more stages than another model has), so the widget shows what the spec holds."""
    return choices if value in choices else [*choices, value]


def _weights_widget(label: str, value: Any, shown: dict, common: dict) -> None:
    """ImageNet, random or a weights file the server's operator put in the models folder."""
    folder = settings.models_dir()
    files = sorted({f.name for pattern in WEIGHT_FILES for f in folder.glob(pattern) if f.is_file()})
    options = _options([IMAGENET, RANDOM, *files[:MAX_WEIGHT_FILES]], value)
    st.selectbox(label, options, index=options.index(value),
                 format_func=lambda v: t(f"build.weights.{v}") if v in (IMAGENET, RANDOM) else v, **common)


def _trainable_widget(label: str, value: Any, shown: dict, common: dict) -> None:
    """Frozen, all, or the last N of the chosen model's stages."""
    stages = len(BACKBONES[shown["model"]].stages)
    options = _options([FROZEN, ALL, *range(1, stages + 1)], value)
    st.selectbox(label, options, index=options.index(value), format_func=lambda v: (
        t(f"build.trainable.{v}") if v in (FROZEN, ALL) else t("build.trainable.last", count=v, total=stages)),
        **common)


def _fraction_widget(label: str, value: Any, shown: dict, common: dict) -> None:
    """A fraction above 0 and at most 1 (a transition's compression)."""
    st.number_input(label, min_value=FLOAT_STEP, max_value=1.0, value=float(value), step=FRACTION_STEP,
                    format="%.2f", **common)


# A "custom" parameter's rule is a function (lab.model.base.Param.check), so which widget offers its values is
# said here, by parameter name; tests/test_app_zoo.py checks every custom parameter of the registry has one.
CUSTOM_WIDGETS = {"weights": _weights_widget, "trainable": _trainable_widget, "compression": _fraction_widget}


def _param_widget(kind: str, name: str, param: Param, key: str, index: int, shown: dict) -> None:
    """One widget for one parameter of a layer of type ``kind``, chosen by the parameter's kind in the registry;
    ``shown`` is every parameter's value as the widgets show it (a backbone's stages depend on its model)."""
    label, value = _param_label(kind, name), shown[name]
    common = {"key": key, "help": param.help, "on_change": _set_value,
              "args": (index, name, key, param.kind == "activation")}
    if param.kind == "activation":
        choice = value if value in ACTIVATION_CHOICES else "none"
        st.selectbox(label, ACTIVATION_CHOICES, index=ACTIVATION_CHOICES.index(choice),
                     format_func=lambda v: t("build.none") if v == "none" else v, **common)
    elif param.kind == "bool":
        st.checkbox(label, value=bool(value), **common)
    elif param.kind == "choice":
        options = list(param.choices)
        st.selectbox(label, options, index=options.index(value), format_func=lambda v: v or t("build.choice.run"),
                     **common)  # "": a layer's init left to the run's
    elif param.kind == "custom":
        CUSTOM_WIDGETS[name](label, value, shown, common)
    elif param.kind == "padding":
        options = PADDING_CHOICES if value in PADDING_CHOICES else [*PADDING_CHOICES, value]
        st.selectbox(label, options, index=options.index(value),
                     format_func=lambda v: f"{v} px" if isinstance(v, int) else v, **common)
    elif param.kind == "int":
        low = int(param.low) if param.low is not None else None
        high = int(param.high) if param.high is not None else None
        st.number_input(label, min_value=low, max_value=high, value=value, step=1,
                        placeholder=t("build.default"), **common)
    else:  # float; its upper bound is exclusive, so the widget stops one step below it
        high = param.high - FLOAT_STEP if param.high is not None else None
        value = float(value) if high is None else min(float(value), high)
        st.number_input(label, min_value=param.low, max_value=high, value=value, step=FLOAT_STEP,
                        format="%.2f", **common)


def _layer_buttons(index: int, count: int, version: int) -> None:
    """Move, duplicate, insert after and delete: icon buttons in one wrapping row."""
    key = f"b{version}.{index}"
    with st.container(horizontal=True, gap="small"):
        st.button(":material/arrow_upward:", key=f"{key}.up", help=t("build.move_up"), disabled=index == 0,
                  on_click=_move, args=(index, -1))
        st.button(":material/arrow_downward:", key=f"{key}.down", help=t("build.move_down"),
                  disabled=index == count - 1, on_click=_move, args=(index, 1))
        st.button(":material/content_copy:", key=f"{key}.dup", help=t("build.duplicate"), on_click=_duplicate,
                  args=(index,))
        with st.popover(t("build.insert_after"), icon=":material/add:"):
            st.selectbox(t("build.layer_type"), list(LAYER_TYPES), key=f"{key}.newtype", format_func=type_title)
            st.button(t("build.insert"), key=f"{key}.insert", on_click=_insert, args=(index + 1, f"{key}.newtype"))
        st.button(":material/delete:", key=f"{key}.del", help=t("build.delete"), on_click=_delete, args=(index,))


def _shown_value(kind: LayerType, name: str, raw: Any) -> Any:
    """What a widget starts from: the layer's own value in canonical form, or the
    default when that value is invalid (the problem is shown above the widgets)."""
    try:
        return normalize_layer({"type": kind.name, name: raw})[name]
    except SpecError:
        return kind.params[name].default


def _layer_editor(index: int, layer: dict, summary: Summary, version: int) -> None:
    position, count = index + 1, len(_layers())
    problem = summary.problem_at(position)
    row = _row_for(summary, position, layer)
    kind = LAYER_TYPES.get(str(layer.get("type")))
    opened = problem is not None or st.session_state.get(OPEN) == index
    with st.expander(_label(position, layer, row, problem), expanded=opened, key=f"b{version}.{index}.box",
                     icon=":material/error:" if problem else None):
        if problem is not None:
            st.error(t("build.layer.error", position=position, type=markdown_safe(problem.layer_type),
                       reason=markdown_safe(problem.reason)))
        params = list(kind.params.items()) if kind else []  # unknown type: only the buttons (delete)
        shown = {name: _shown_value(kind, name, layer.get(name, param.default)) for name, param in params}
        for start in range(0, len(params), PARAMS_PER_ROW):
            for col, (name, param) in zip(st.columns(PARAMS_PER_ROW), params[start:start + PARAMS_PER_ROW]):
                with col:
                    _param_widget(kind.name, name, param, f"b{version}.{index}.{name}", index, shown)
        if kind and not params:
            st.caption(t("build.no_params"))
        if row is not None and row.note:
            st.caption(row.note)
        if row is not None:  # what the layer does beyond its numbers, e.g. how a backbone resizes the images
            for note in kind.notes(row.in_shape, row.layer, language()):
                st.info(note, icon=":material/info:")
        _layer_buttons(index, count, version)


def render_layers(summary: Summary, version: int) -> None:
    """One expander per layer, with its parameters as widgets built from the registry."""
    layers = _layers()
    if not layers:
        st.info(t("build.no_layers"))
    for index, layer in enumerate(layers):
        _layer_editor(index, layer, summary, version)
    cols = st.columns([2, 1], vertical_alignment="bottom")
    cols[0].selectbox(t("build.new_layer"), list(LAYER_TYPES), key="build.add_type",
                      format_func=lambda kind: f"{type_title(kind)} ({kind})")
    cols[1].button(t("build.add"), key="build.add", icon=":material/add:", type="primary", width="stretch",
                   on_click=_insert, args=(len(layers), "build.add_type"))


def table_rows(summary: Summary, batch_size: int) -> list[dict]:
    """The live table: one row per layer as built, then one per problem. Next to a conv's parameters, the
    weights it would need without sharing and as a dense layer (lab.model.teach)."""
    reaches = receptive_fields(summary.rows)
    rows = []
    for r in summary.rows:
        reach, weights = reaches.get(r.name), conv_weights(r)
        rows.append({"#": r.index, "name": r.name, "type": r.layer["type"], "output shape": format_shape(r.out_shape),
                     "receptive field": reach.words(language(), short=True) if reach else "", "params": r.params,
                     "without sharing": weights.unshared if weights else None,
                     "as dense": weights.dense if weights else None, "MACs": r.macs,
                     "memory (MB)": r.activation_bytes(batch_size) / MB, "note": r.note})
    rows += [
        {"#": p.index, "name": "", "type": p.layer_type or "", "output shape": "?", "receptive field": "",
         "params": None, "without sharing": None, "as dense": None, "MACs": None, "memory (MB)": None,
         "note": t("build.table.problem", reason=p.reason)}
        for p in summary.problems
    ]
    return rows


def render_table(summary: Summary, batch_size: int) -> None:
    """The table of table_rows; its column names stay the data's, the headers shown are translated."""
    st.dataframe(table_rows(summary, batch_size), hide_index=True, width="stretch", column_config={
        "#": st.column_config.NumberColumn(width=30),
        "name": t("build.col.name"),
        "type": t("build.col.type"),
        "output shape": t("build.col.output_shape"),
        "receptive field": st.column_config.TextColumn(t("build.col.field"), width="small",
                                                       help=t("build.col.field.help")),
        "params": st.column_config.NumberColumn(t("build.col.params"), format="localized", width="small"),
        "without sharing": st.column_config.NumberColumn(t("build.col.unshared"), format="localized", width="small",
                                                         help=t("build.col.unshared.help")),
        "as dense": st.column_config.NumberColumn(t("build.col.dense"), format="localized", width="small",
                                                  help=t("build.col.dense.help")),
        "MACs": st.column_config.NumberColumn(t("build.col.macs"), format="localized", width="small",
                                              help=t("build.col.macs.help")),
        "memory (MB)": st.column_config.NumberColumn(t("build.col.memory"), format="%.2f", width="small",
                                                     help=t("build.col.memory.help", batch=batch_size)),
        "note": st.column_config.TextColumn(t("build.col.note"), width="medium"),
    })
    st.caption(t("build.teach.sharing"))
    for note in summary.notes:
        st.caption(t("build.note", note=note))


def render_arithmetic(summary: Summary) -> None:
    """One layer's arithmetic, in words and with its numbers, so every figure in the table can be redone by hand."""
    if not summary.rows:
        return
    rows = {r.name: r for r in summary.rows}
    name = st.selectbox(t("build.explain"), list(rows), key="build.explain",
                        format_func=lambda n: f"{rows[n].index}. {n} ({rows[n].layer['type']})")
    reach = receptive_fields(summary.rows).get(name)
    with st.container(border=True):
        st.markdown(explain(rows[name], lang=language(), reach=reach).markdown())


def render_diagram(summary: Summary) -> None:
    st.plotly_chart(architecture_figure(summary, language()), config={"displayModeBar": False})


def _too_big(summary: Summary) -> str | None:
    """Why a valid spec cannot be built on this server (its SpecError's message), or None: the code
    export builds the model, so a spec over the limits is refused there as a run would be."""
    try:
        check_size(summary)
    except SpecError as err:
        return str(err)
    return None


def render_export(summary: Summary) -> None:
    """Spec JSON always; PyTorch code only for a valid spec this server can build (made lazily, on click)."""
    spec = copy.deepcopy(_spec())
    shape, classes = summary.input_shape, summary.num_classes
    name = summary.name or "model"
    too_big = (_too_big(summary) or code_refusal(summary)) if summary.ok else None
    exportable = summary.ok and too_big is None
    cols = st.columns(2)
    cols[0].download_button(t("build.spec_json"), data=spec_json(spec, shape, classes), file_name=f"{name}.json",
                            mime="application/json", icon=":material/download:", on_click="ignore",
                            width="stretch")
    cols[1].download_button(t("build.pytorch_code"), data=functools.partial(pytorch_code, spec, shape, classes),
                            file_name=f"{name}.py", mime="text/x-python", icon=":material/download:",
                            on_click="ignore", disabled=not exportable, width="stretch",
                            help=None if exportable else too_big or t("build.pytorch_code.help"))
    if too_big is not None:
        st.warning(too_big, icon=":material/warning:")
    elif exportable and st.toggle(t("build.show_code"), key="build.show_code"):
        st.code(pytorch_code(spec, shape, classes), language="python")


def build_page() -> None:
    """The whole Build page; app_pages/build.py only calls this."""
    d = draft()
    version = _version()  # notices outside edits before any widget is drawn
    summary = draft_summary()
    st.title(t("nav.build"))
    st.caption(t("build.caption", dataset=markdown_safe(dataset_label(d["dataset"]))))
    exercise = current_exercise()
    locked = exercise is not None and exercise.locks("build")
    if locked:
        st.info(t("build.exercise_locked", presets=", ".join(exercise.presets)), icon=":material/lock:")
    with st.expander(t("build.start_from"), icon=":material/restart_alt:", expanded=locked):
        render_start(exercise)
    batch_size = d["train"]["batch_size"]
    render_header(summary, d["dataset"], version, batch_size)
    render_problems(summary)
    left, right = st.columns([1, 1.25], gap="medium")
    with left:
        st.subheader(t("build.layers"))
        if not locked:
            render_layers(summary, version)
    with right:
        st.subheader(t("build.summary"))
        render_table(summary, batch_size)
        st.subheader(t("build.arithmetic"))
        render_arithmetic(summary)
    st.subheader(t("build.architecture"))
    render_diagram(summary)
    st.subheader(t("build.export"))
    render_export(summary)
    render_teach_notes()  # last: notes for the whole lecture, not about this model
