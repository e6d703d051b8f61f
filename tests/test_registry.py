"""lab.registry and every table built on it: one spelling rule, one refusal, each caller's own error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from lab.data.dataset import DatasetError
from lab.data.registry import DATASETS, normalise
from lab.export.files import EXPORTS, ExportError, get_export
from lab.insight.cam import CAM_METHODS, get_cam_method
from lab.insight.embed import EMBEDDINGS, METHODS, normalize_method
from lab.insight.errors import InsightError
from lab.model.layers import ACTIVATIONS, LAYER_TYPES, SpecError, get_layer_type, normalize_activation
from lab.model.presets import PRESETS, get_preset
from lab.registry import Registry, fold
from lab.train.augment import AUGMENT_PRESETS, AugmentError, augment_label, get_augment


class ToyError(ValueError):
    pass


def toy(**aliases: str) -> Registry[int]:
    return Registry("colour", {"dark_red": 1, "sky-blue": 2, "grey": 3}, ToyError, aliases=aliases, also=("none",))


def name_of_entry(registry: Registry, entry: Any) -> str:
    return next(name for name, candidate in registry.items() if candidate is entry)


# Each table through its module's public function, read back as a canonical name.
TABLES: dict[str, tuple[Registry, Callable[[str], str], type[Exception]]] = {
    "layer type": (LAYER_TYPES, lambda name: get_layer_type(name).name, SpecError),
    "activation": (ACTIVATIONS, normalize_activation, SpecError),
    "preset": (PRESETS, lambda name: get_preset(name)["name"], SpecError),
    "augmentation preset": (AUGMENT_PRESETS, lambda name: augment_label(get_augment(name)), AugmentError),
    "dataset": (DATASETS, normalise, DatasetError),
    "CAM method": (CAM_METHODS, lambda name: name_of_entry(CAM_METHODS, get_cam_method(name)), InsightError),
    "embedding method": (EMBEDDINGS, normalize_method, InsightError),
    "export": (EXPORTS, lambda name: name_of_entry(EXPORTS, get_export(name)), ExportError),
}


def spellings(name: str) -> set[str]:
    """How people and old files write a name: other case, '-' for '_' and back, spaces, padding."""
    return {name, name.upper(), name.title(), name.replace("_", "-"), name.replace("-", "_"),
            name.replace("_", " "), f"  {name}\t"}


def test_case_spaces_underscores_and_hyphens_do_not_count():
    assert fold("Leaky-ReLU") == fold("leaky_relu") == fold(" leaky relu ") == "leakyrelu"
    assert fold("Grad-CAM++") == "gradcam++"  # other characters stay: '++' names a different method


def test_a_name_is_found_by_any_spelling_and_indexing_stays_canonical():
    colours = toy(red="dark_red")
    assert [colours.name_of(s) for s in ("Dark Red", "dark-red", "RED", "sky_blue")] == \
           ["dark_red", "dark_red", "dark_red", "sky-blue"]
    assert colours.lookup("Sky Blue") == 2 and colours.recognises("GREY") and not colours.recognises("gray")
    assert list(colours) == ["dark_red", "sky-blue", "grey"] and len(colours) == 3
    assert "red" not in colours and colours.get("dark-red") is None  # a mapping over canonical names only


@pytest.mark.parametrize("name", ["gray", "", None, 3, ["grey"]])
def test_an_unknown_name_raises_the_callers_error_listing_every_name(name):
    with pytest.raises(ToyError) as err:
        toy().lookup(name)
    assert str(err.value) == f"unknown colour {name!r}; use one of: dark_red, sky-blue, grey, none"


@pytest.mark.parametrize("entries, aliases, fragment", [
    ({"grey": 3}, {"gray": "silver"}, "'gray' points to 'silver'"),  # an alias to nothing
    ({"dark_red": 1}, {"dark-red": "dark_red"}, "'dark-red' already means 'dark_red'"),  # the rule covers it
    ({"dark_red": 1, "darkred": 2}, {}, "'darkred' already means 'dark_red'"),  # two names, one spelling
    ({"grey": 3, "silver": 4}, {"gray": "grey", "GRAY": "silver"}, "'GRAY' already means 'grey'"),
])
def test_a_mistake_in_a_table_is_refused_when_it_is_built(entries, aliases, fragment):
    with pytest.raises(ValueError, match=fragment):
        Registry("colour", entries, ToyError, aliases=aliases)


@pytest.mark.parametrize("kind", TABLES)
def test_every_table_accepts_every_spelling_of_its_names_and_aliases(kind):
    registry, canonical, _ = TABLES[kind]
    assert registry.kind == kind
    for name in registry:
        assert {canonical(spelling) for spelling in spellings(name)} == {name}
    for alias, name in registry.aliases.items():
        assert {canonical(spelling) for spelling in spellings(alias)} == {name}


@pytest.mark.parametrize("kind", TABLES)
def test_every_table_refuses_an_unknown_name_with_the_list(kind):
    registry, canonical, error = TABLES[kind]
    with pytest.raises(error) as err:
        canonical("no-such-thing")
    assert type(err.value) is error
    assert str(err.value).startswith(f"unknown {kind} 'no-such-thing'; use one of: {', '.join(registry)}")


def test_the_tables_keep_their_aliases():
    assert get_layer_type("FC").name == "dense" and get_layer_type("GlobalAveragePooling2D").name == "global_avg_pool"
    assert normalize_activation("Swish") == "silu"
    assert [normalize_activation(n) for n in ("none", "Linear", "", None)] == [None] * 4
    assert normalise("FMNIST") == normalise("Fashion_MNIST") == "fashion-mnist" and normalise("cifar-10") == "cifar10"
    assert get_cam_method("Grad-CAM++") is get_cam_method("gradcam_plusplus") is CAM_METHODS["gradcam++"]
    assert normalize_method("t-SNE") == "tsne" and METHODS == ("pca", "tsne", "umap")


def test_names_a_table_accepts_outside_its_entries_are_listed_in_its_refusal():
    with pytest.raises(SpecError, match=r"use one of: relu, .*, softmax, none$"):
        normalize_activation("relu6")
    with pytest.raises(DatasetError, match=r"cifar10, folder:PATH \(a folder or \.zip of class folders\)$"):
        normalise("imagenet")
