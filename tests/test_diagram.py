"""The architecture picture: one named trace per layer, sizes that follow the shapes."""

from __future__ import annotations

import pytest

from lab.model.layers import LAYER_TYPES
from lab.model.presets import PRESETS, get_preset
from lab.model.spec import analyze
from lab.plots.diagram import COLOURS, architecture_figure


def extent(trace) -> tuple[float, float]:
    """(height, width) of a block's drawing."""
    xs = [x for x in trace.x if x is not None]
    ys = [y for y in trace.y if y is not None]
    return max(ys) - min(ys), max(xs) - min(xs)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_one_trace_per_layer_named_like_the_model(name):
    summary = analyze(get_preset(name))
    fig = architecture_figure(summary)
    assert [t.name for t in fig.data] == ["input", *(r.name for r in summary.rows)]


def test_block_height_shrinks_with_the_map_and_thickness_grows_with_channels():
    spec = {"layers": [
        {"type": "conv2d", "filters": 8}, {"type": "maxpool2d"}, {"type": "conv2d", "filters": 32},
        {"type": "maxpool2d"}, {"type": "conv2d", "filters": 128}, {"type": "maxpool2d"},
    ]}
    fig = architecture_figure(analyze(spec, (3, 64, 64), 10))
    maps = {t.name: extent(t) for t in fig.data}
    heights = [maps[n][0] for n in ("conv2d_1", "conv2d_2", "conv2d_3")]
    assert heights == sorted(heights, reverse=True) and len(set(heights)) == 3
    pooled = [maps[n][0] for n in ("input", "maxpool2d_1", "maxpool2d_2", "maxpool2d_3")]
    assert pooled == sorted(pooled, reverse=True) and len(set(pooled)) == 4
    # same map size (64x64), more channels: a thicker (wider) block
    assert maps["conv2d_1"][1] > maps["input"][1]


def test_flat_layers_are_thin_bars_growing_with_length():
    spec = {"layers": [{"type": "flatten"}, {"type": "dense", "units": 500}, {"type": "dense", "units": 20}]}
    fig = architecture_figure(analyze(spec, (1, 8, 8), 3))
    bars = {t.name: extent(t) for t in fig.data if t.name != "input"}
    assert all(width < 1 for _, width in bars.values())
    assert bars["dense_1"][0] > bars["output"][0]


def test_a_spec_with_a_problem_draws_up_to_it_and_says_so():
    summary = analyze({"layers": [{"type": "conv2d"}, {"type": "dense"}, {"type": "conv2d"}]}, (1, 8, 8), 3)
    fig = architecture_figure(summary)
    assert [t.name for t in fig.data] == ["input", "conv2d_1"]
    assert any("layer 2 (dense)" in a.text for a in fig.layout.annotations)


def test_an_invalid_header_gives_an_empty_figure_not_an_error():
    fig = architecture_figure(analyze({"input": [0, 0], "layers": []}))
    assert len(fig.data) == 0


def test_every_layer_type_has_a_colour():
    assert set(LAYER_TYPES) <= set(COLOURS)
