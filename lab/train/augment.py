"""Augmentation settings: one flat, JSON-able config of known keys, their ranges and presets.

``get_augment`` turns what a user, the CLI or a saved run holds (a preset name, JSON, a
dict, a config) into a validated :class:`AugmentConfig`; ``augment_label`` and
``canonical`` name it back for tables and drafts. The operations that apply a config
to a batch on the device are in :mod:`lab.train.augment_ops`, which imports this
module and nothing imports back: pages, share links and exercises read settings
without the batch code.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from lab.registry import Registry


class AugmentError(ValueError):
    """An augmentation spec that cannot be used; the message says what is valid."""


@dataclass(frozen=True, repr=False)
class AugmentConfig:
    """Flat, JSON-able augmentation settings; every key is off by default.

    Saved with each run (``to_dict``) and rebuilt with ``get_augment``. Ranges are
    in ``AUGMENT_RANGES`` and checked on construction.
    """

    hflip: float = 0.0  # probability of a horizontal (left-right) flip
    vflip: float = 0.0  # probability of a vertical (up-down) flip
    rotation: float = 0.0  # max degrees; angle uniform in [-rotation, rotation]
    shift: float = 0.0  # max translation, fraction of width (x) and height (y), independent
    zoom: float = 0.0  # content scale uniform in [1 - zoom, 1 + zoom], same for both axes
    crop_padding: int = 0  # pixels of zero padding per side, then a random crop back to size
    cutout: int = 0  # side in pixels of a square set to 0 at a random centre
    brightness: float = 0.0  # added to every pixel, uniform in [-brightness, brightness]
    contrast: float = 0.0  # factor around the image mean, uniform in [1 - contrast, 1 + contrast]
    cutmix: float = 0.0  # Beta(alpha, alpha) for the CutMix area; 0 = off
    mixup: float = 0.0  # Beta(alpha, alpha) for the MixUp weight; 0 = off
    mix_prob: float = 1.0  # probability a batch is mixed; with both mixes on, each is picked 50/50

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _checked(f.name, getattr(self, f.name), f.default))

    def __repr__(self) -> str:
        """Only the keys that differ from the defaults, so the UI can show it as is."""
        changed = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if v != _DEFAULTS[k])
        return f"AugmentConfig({changed})"

    def to_dict(self) -> dict[str, Any]:
        """All keys with plain Python values; ``get_augment`` accepts it back."""
        return dataclasses.asdict(self)

    @property
    def geometric(self) -> bool:
        """True when an affine warp (not just flips) is needed."""
        return self.rotation > 0 or self.shift > 0 or self.zoom > 0

    @property
    def mixes_labels(self) -> bool:
        """True when targets can be soft (CutMix or MixUp may fire)."""
        return (self.cutmix > 0 or self.mixup > 0) and self.mix_prob > 0

    @property
    def is_identity(self) -> bool:
        """True when ``augment_batch`` returns its input unchanged."""
        return not (
            self.hflip > 0
            or self.vflip > 0
            or self.geometric
            or self.crop_padding > 0
            or self.cutout > 0
            or self.brightness > 0
            or self.contrast > 0
            or self.mixes_labels
        )


class KeyRange(NamedTuple):
    """Allowed values of one key (for validation, error messages and UI sliders)."""

    low: float
    high: float  # math.inf when unbounded
    high_open: bool  # True: ``high`` itself is not allowed
    unit: str

    def __str__(self) -> str:
        """Reads after 'must be', e.g. 'in [0, 1) (fraction of width/height)'."""
        if self.high == math.inf:
            return f">= {self.low:g} ({self.unit})"
        return f"in [{self.low:g}, {self.high:g}{')' if self.high_open else ']'} ({self.unit})"


AUGMENT_RANGES: dict[str, KeyRange] = {
    "hflip": KeyRange(0, 1, False, "probability"),
    "vflip": KeyRange(0, 1, False, "probability"),
    "rotation": KeyRange(0, 180, False, "degrees"),
    "shift": KeyRange(0, 1, True, "fraction of width/height"),
    "zoom": KeyRange(0, 1, True, "fraction of scale"),
    "crop_padding": KeyRange(0, math.inf, False, "pixels"),
    "cutout": KeyRange(0, math.inf, False, "pixels"),
    "brightness": KeyRange(0, 1, False, "intensity in [0, 1] space"),
    "contrast": KeyRange(0, 1, False, "fraction of contrast"),
    "cutmix": KeyRange(0, math.inf, False, "Beta alpha, 0 = off"),
    "mixup": KeyRange(0, math.inf, False, "Beta alpha, 0 = off"),
    "mix_prob": KeyRange(0, 1, False, "probability"),
}

_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(AugmentConfig)}


def _checked(key: str, value: Any, default: Any) -> float | int:
    """``value`` coerced to the key's type (int or float) if it is in range, else AugmentError."""
    allowed = AUGMENT_RANGES[key]
    whole = isinstance(default, int)
    kind = "a whole number" if whole else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AugmentError(f"{key} must be {kind} {allowed}, got {value!r}")
    if whole and not float(value).is_integer():
        raise AugmentError(f"{key} must be {kind} {allowed}, got {value!r}")
    too_high = value >= allowed.high if allowed.high_open else value > allowed.high
    if value < allowed.low or too_high:
        raise AugmentError(f"{key} must be {allowed}, got {value!r}")
    return int(value) if whole else float(value)


CUSTOM = "custom"  # augment_label of a config that matches no preset
AUGMENT_PRESETS: Registry[AugmentConfig] = Registry("augmentation preset", {
    "none": AugmentConfig(),
    # Keras ImageDataGenerator(rotation_range=15, width_shift_range=0.1,
    # height_shift_range=0.1, horizontal_flip=True), as in the common Keras CIFAR-10
    # write-ups; 'border' padding reproduces its default fill_mode='nearest'.
    "keras_basic": AugmentConfig(rotation=15.0, shift=0.1, hflip=0.5),
    # The standard CIFAR recipe: RandomCrop(32, padding=4) + RandomHorizontalFlip().
    "cifar_standard": AugmentConfig(crop_padding=4, hflip=0.5),
    # The speedrun preset's: crop and flip, plus cutout against overfitting in long one-cycle runs.
    "speedrun": AugmentConfig(crop_padding=4, hflip=0.5, cutout=8),
    "strong": AugmentConfig(crop_padding=4, hflip=0.5, cutout=8, cutmix=1.0),
    # Digits must not be flipped (a mirrored 3 is not a 3).
    "mnist_basic": AugmentConfig(rotation=10.0, shift=0.1, zoom=0.1),
}, AugmentError)


def _from_dict(spec: dict[str, Any]) -> AugmentConfig:
    overrides = dict(spec)
    base = AUGMENT_PRESETS.lookup(overrides.pop("preset")) if "preset" in overrides else AugmentConfig()
    unknown = [k for k in overrides if k not in _DEFAULTS]
    if unknown:
        hints = difflib.get_close_matches(str(unknown[0]), _DEFAULTS, n=1)
        hint = f" (did you mean {hints[0]!r}?)" if hints else ""
        raise AugmentError(
            f"unknown augmentation key {unknown[0]!r}{hint}; "
            f"valid keys: preset, {', '.join(_DEFAULTS)}"
        )
    return dataclasses.replace(base, **overrides)


def get_augment(spec: str | dict[str, Any] | AugmentConfig | None) -> AugmentConfig:
    """Turn what a user, the CLI or a saved run holds into a validated config.

    Accepts a preset name (case, spaces, '-' and '_' ignored), a JSON object string, a dict
    (optionally ``{"preset": NAME, **overrides}``), a config, or None (no augmentation).
    """
    if spec is None:
        return AUGMENT_PRESETS["none"]
    if isinstance(spec, AugmentConfig):
        return spec
    if isinstance(spec, str) and spec.lstrip().startswith("{"):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as err:
            raise AugmentError(f"augmentation spec is not valid JSON: {err}") from None
    if isinstance(spec, dict):
        return _from_dict(spec)
    if isinstance(spec, str):
        return AUGMENT_PRESETS.lookup(spec)
    raise AugmentError(
        "augmentation spec must be a preset name, a JSON object, a dict or an "
        f"AugmentConfig, got {type(spec).__name__}"
    )


def augment_label(cfg: AugmentConfig) -> str:
    """Short name for run tables and legends: the preset it equals, else 'custom'."""
    return next((name for name, preset in AUGMENT_PRESETS.items() if preset == cfg), CUSTOM)


def canonical(cfg: AugmentConfig) -> dict:
    """The draft form of a config: ``{"preset": name}`` when it is a preset, else only the changed keys.

    One form per config keeps the draft readable in the sidebar and in a run's
    config, and lets the preset box show the preset whenever the sliders match one.
    """
    name = augment_label(cfg)
    if name != CUSTOM:
        return {"preset": name}
    base = AugmentConfig().to_dict()
    return {k: v for k, v in cfg.to_dict().items() if v != base[k]}
