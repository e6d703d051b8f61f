"""The Augment page: one switch and one slider per augmentation key, presets, a live preview.

The draft (``draft()['augment']``) is the only source of truth. Every run copies
it into the widgets' session keys before they are drawn, and every widget's
``on_change`` writes all of them back as one validated ``AugmentConfig``. So a
preset picked here, a preset the Build page applied, and a page switch (which
drops widget state) all end up showing the same settings.
"""

from __future__ import annotations

import math
from itertools import chain, zip_longest
from typing import NamedTuple

import streamlit as st
import torch

from lab.classroom.exercise import current_exercise
from lab.data import Dataset, DatasetError, examples_per_class, load_dataset
from lab.plots.images import display_scale, to_hwc, upscale
from lab.train.augment import (
    AUGMENT_PRESETS,
    AUGMENT_RANGES,
    CUSTOM,
    AugmentConfig,
    AugmentError,
    augment_label,
    canonical,
    get_augment,
)
from lab.train.augment_ops import preview
from lab.ui.i18n import t
from lab.ui.state import dataset_label, draft, markdown_safe

PREVIEW_IMAGES = 6
PREVIEW_DRAWS = 4
PREVIEW_PIXELS = 88  # about how tall each preview image is drawn
PRESET_KEY, SEED_KEY = "aug.preset", "aug.seed"


class Control(NamedTuple):
    """How one AugmentConfig key's slider moves; its label is the text ``augment.control.<key>``."""

    step: float
    on_value: float  # what the slider starts at when the switch is first turned on
    ui_max: float = 0.0  # slider end for open or unbounded ranges (0 = the range's own end)


# Grouped as the pipeline runs (see lab.train.augment): geometry, crop, photometric + cutout, mixing.
# A group's title is the text ``augment.group.<name>``.
GROUPS: dict[str, dict[str, Control]] = {
    "geometry": {
        "hflip": Control(0.05, 0.5),
        "vflip": Control(0.05, 0.5),
        "rotation": Control(1.0, 15.0),
        "shift": Control(0.01, 0.1, ui_max=0.5),
        "zoom": Control(0.01, 0.1, ui_max=0.5),
        "crop_padding": Control(1, 4),
    },
    "colour": {
        "brightness": Control(0.05, 0.2),
        "contrast": Control(0.05, 0.2),
        "cutout": Control(1, 8),
    },
    "mixing": {
        "cutmix": Control(0.1, 1.0, ui_max=2.0),
        "mixup": Control(0.05, 0.2, ui_max=2.0),
    },
}
CONTROLS: dict[str, Control] = dict(chain.from_iterable(g.items() for g in GROUPS.values()))
PIXEL_KEYS = ("crop_padding", "cutout")  # whole pixels: their slider end follows the image size


def mixed_label(target: torch.Tensor, classes: list[str]) -> str:
    """'cat 0.62 / dog 0.38' for a soft target, just 'cat' when one class holds (almost) all of it."""
    weights, idx = target.topk(min(2, len(classes)))
    if len(idx) < 2 or weights[1] < 0.005:
        return classes[int(idx[0])]
    return f"{classes[int(idx[0])]} {weights[0]:.2f} / {classes[int(idx[1])]} {weights[1]:.2f}"


def _on_key(key: str) -> str:
    return f"aug.on.{key}"


def _value_key(key: str) -> str:
    return f"aug.value.{key}"


def _sync_widgets(cfg: AugmentConfig) -> None:
    """Copy the draft's config into the widget keys (before any widget is drawn this run)."""
    state = st.session_state
    for key, control in CONTROLS.items():
        value = getattr(cfg, key)
        state[_on_key(key)] = value > 0
        if value > 0:
            state[_value_key(key)] = value
        elif not state.get(_value_key(key)):  # off: the slider keeps the user's last value
            state[_value_key(key)] = type(value)(control.on_value)
    state[_value_key("mix_prob")] = cfg.mix_prob
    state[PRESET_KEY] = augment_label(cfg)


def _store_widgets() -> None:
    """``on_change`` of every switch and slider: the widgets become the draft's config."""
    state = st.session_state
    values = {key: state[_value_key(key)] if state[_on_key(key)] else 0 for key in CONTROLS}
    draft()["augment"] = canonical(get_augment({**values, "mix_prob": state[_value_key("mix_prob")]}))


def _store_preset() -> None:
    """``on_change`` of the preset box: a preset replaces every setting ('custom' keeps them)."""
    name = st.session_state[PRESET_KEY]
    if name != CUSTOM:
        draft()["augment"] = {"preset": name}


def _slider_max(key: str, value: float, image_side: int) -> float:
    """The slider's end: the range's own end, a UI cap for open ranges, the image size for pixels."""
    allowed = AUGMENT_RANGES[key]
    if key in PIXEL_KEYS:
        cap = image_side // 2 if key == "crop_padding" else image_side
    elif allowed.high == math.inf or allowed.high_open:
        cap = CONTROLS[key].ui_max
    else:
        cap = allowed.high
    return max(cap, value)


def _control(key: str, image_side: int) -> None:
    """One switch with its slider beneath it, disabled while the switch is off."""
    control, label = CONTROLS[key], t(f"augment.control.{key}")
    on = st.toggle(label, key=_on_key(key), on_change=_store_widgets, help=f"{key}: {AUGMENT_RANGES[key]}")
    value = st.session_state[_value_key(key)]
    cast = int if key in PIXEL_KEYS else float
    st.slider(label, min_value=cast(min(control.step, value)),
              max_value=cast(_slider_max(key, value, image_side)),
              step=cast(control.step), key=_value_key(key), on_change=_store_widgets, disabled=not on,
              label_visibility="collapsed")


def _controls(cfg: AugmentConfig, image_side: int) -> None:
    """The settings: preset box, then one column per group of keys. A class's exercise may
    offer only some presets (then no hand-made settings) or fix the first one."""
    exercise = current_exercise()
    offered = exercise.augment_presets if exercise is not None else ()
    st.selectbox(t("common.preset"), list(offered) or [*AUGMENT_PRESETS, CUSTOM], key=PRESET_KEY,
                 on_change=_store_preset, help=t("augment.preset.help"), disabled=exercise is not None
                 and exercise.locks("augment"))
    if offered:
        st.caption(t("augment.exercise_presets"))
        return
    for column, (group, controls) in zip(st.columns(len(GROUPS)), GROUPS.items()):
        with column:
            st.markdown(f"**{t(f'augment.group.{group}')}**")
            for key in controls:
                _control(key, image_side)
            if group == "mixing":
                st.slider(t("augment.mix_share"), 0.0, 1.0, step=0.05, key=_value_key("mix_prob"),
                          on_change=_store_widgets, disabled=not (cfg.cutmix or cfg.mixup),
                          help=f"mix_prob: {AUGMENT_RANGES['mix_prob']}")


def preview_indices(ds: Dataset, count: int = PREVIEW_IMAGES) -> list[int]:
    """``count`` training images, one class after another, so the preview shows varied classes."""
    per_class = examples_per_class(ds, k=-(-count // ds.num_classes), split="train")
    order = (i for group in zip_longest(*per_class.values()) for i in group if i is not None)
    return [i for _, i in zip(range(count), order)]


def _row(images: torch.Tensor, captions: list[str] | None) -> None:
    """One row of (n, C, H, W) uint8 images, enlarged so 8x8 digits are as visible as 32x32 shapes.

    A fixed width keeps every tile the same size: with the default width a long
    mixed label would widen (and so enlarge) its image.
    """
    scale = display_scale(images.shape[-2], target=PREVIEW_PIXELS)
    st.image([upscale(to_hwc(x), scale) for x in images], caption=captions and [markdown_safe(c) for c in captions],
             width=images.shape[-1] * scale)  # captions: class names, an upload's folder names


def _preview(ds: Dataset, cfg: AugmentConfig) -> None:
    """The same training images under several random draws, with mixed labels for CutMix/MixUp."""
    idx = torch.tensor(preview_indices(ds))
    images, labels = ds.train_x[idx], ds.train_y[idx]
    pixels, targets = preview(images, labels, cfg, ds.num_classes, draws=PREVIEW_DRAWS,
                              seed=st.session_state.setdefault(SEED_KEY, 0))
    head, button = st.columns([4, 1], vertical_alignment="bottom")
    head.subheader(t("augment.preview"))
    button.button(t("augment.redraw"), icon="🎲", on_click=_redraw, help=t("augment.redraw.help"))
    st.caption(t("augment.original"))
    _row(images, [ds.classes[int(y)] for y in labels])
    for draw in range(PREVIEW_DRAWS):
        st.caption(t("augment.draw", number=draw + 1))
        captions = [mixed_label(target, ds.classes) for target in targets[draw]] if cfg.mixes_labels else None
        _row(pixels[draw], captions)


def _redraw() -> None:
    st.session_state[SEED_KEY] = st.session_state.get(SEED_KEY, 0) + 1


def render_augment_page() -> None:
    """Draw the page: settings bound to the draft, then the preview on the draft's dataset."""
    d = draft()
    st.title(t("nav.augment"))
    st.caption(t("augment.caption"))
    try:
        cfg = get_augment(d["augment"])
    except AugmentError as err:
        st.error(t("augment.reset", error=markdown_safe(err)))
        d["augment"] = {"preset": "none"}
        cfg = get_augment(d["augment"])
    try:
        ds = load_dataset(d["dataset"])
    except DatasetError as err:
        ds = None
        st.error(t("augment.dataset_error", name=markdown_safe(dataset_label(d["dataset"])),
                   error=markdown_safe(err)))
    _sync_widgets(cfg)
    _controls(cfg, ds.shape[-1] if ds else 32)
    if ds is not None:
        _preview(ds, cfg)
