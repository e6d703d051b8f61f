"""Specs: shape inference and parameter counts must equal the built modules exactly."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.model.layers import ACTIVATIONS, LAYER_TYPES, SpecError
from lab.model.presets import PRESETS, get_preset
from lab.model.spec import (
    MAX_LAYERS,
    MAX_SPEC_BYTES,
    SpecNet,
    analyze,
    build_model,
    eval_mode,
    load_spec,
    parse_spec_json,
    summarize,
)

REFERENCE = {name for name, preset in PRESETS.items() if preset.reference}  # torchvision's, at 224 px


def measured_shapes(model, input_shape, device: str = "cpu") -> dict[str, tuple]:
    """Output shape of every top-level child, by running the model on a batch of 2."""
    shapes, handles = {}, []
    for name, child in model.layers.named_children():
        handles.append(child.register_forward_hook(
            lambda mod, inp, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:]))))
    try:
        model.eval()
        with torch.inference_mode():
            model(torch.randn(2, *input_shape, device=device))
    finally:
        for h in handles:
            h.remove()
    return shapes


def assert_matches_module(summary, device: str = "cpu") -> None:
    """On the "meta" device modules have shapes but no storage: the reference presets (vgg16 is over the
    server's parameter limit, and 15 billion multiply-accumulates per image) are checked there for free."""
    if device == "meta":
        with torch.device("meta"):
            model = SpecNet(summarize({"layers": summary.layers}, summary.input_shape, summary.num_classes))
    else:
        model = build_model({"layers": summary.layers}, summary.input_shape, summary.num_classes)
    assert summary.total_params == sum(p.numel() for p in model.parameters())
    shapes = measured_shapes(model, summary.input_shape, device)
    for row in summary.rows:
        assert shapes[row.name] == row.out_shape, row.name
        child = getattr(model.layers, row.name)
        assert row.params == sum(p.numel() for p in child.parameters()), row.name


def test_fashion_cnn_counts_match_the_write_up():
    summary = summarize(get_preset("fashion_cnn"))
    params = [r.params for r in summary.rows if r.params]
    assert params == [320, 18_496, 313_700, 1_010]
    assert summary.total_params == 333_526
    assert "Total params: 333,526" in summary.table()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_matches_its_module(name):
    summary = summarize(get_preset(name))
    assert summary.rows[-1].out_shape == (summary.num_classes,)
    assert_matches_module(summary, "meta" if name in REFERENCE else "cpu")


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("shape,classes", [((3, 32, 32), 6), ((1, 28, 28), 10)])
def test_presets_follow_the_dataset(name, shape, classes):
    summary = analyze(get_preset(name), shape, classes)
    if name in REFERENCE and not summary.ok:  # ImageNet's nets pool 224 px down to 7: small images may end first
        assert "1x1 map with" in str(summary.problems[0]) or "2x2 map with" in str(summary.problems[0])
        return
    assert summary.ok, summary.problems
    assert summary.input_shape == shape and summary.rows[-1].out_shape == (classes,)
    assert_matches_module(summary, "meta" if name in REFERENCE else "cpu")


def test_output_rule_replaces_units_and_drops_softmax():
    spec = {"layers": [{"type": "flatten"}, {"type": "dense", "units": 7, "activation": "softmax"},
                       {"type": "activation", "function": "softmax"}]}
    summary = summarize(spec, (1, 8, 8), 3)
    assert [r.layer["type"] for r in summary.rows] == ["flatten", "dense"]
    assert summary.rows[-1].layer["units"] == 3 and summary.rows[-1].layer["activation"] is None
    assert any("softmax" in n for n in summary.notes)


def test_output_layer_is_appended_with_flatten_when_needed():
    summary = summarize({"layers": [{"type": "conv2d", "filters": 4}]}, (1, 8, 8), 5)
    assert [r.layer["type"] for r in summary.rows] == ["conv2d", "flatten", "dense"]
    assert summary.rows[-1].note == "output layer (added)"
    assert summary.rows[-1].params == 4 * 8 * 8 * 5 + 5


@pytest.mark.parametrize("size,kernel,stride,expected", [(28, 3, 1, 28), (28, 3, 2, 14), (7, 3, 2, 4),
                                                          (8, 4, 1, 8), (9, 2, 2, 5), (5, 5, 3, 2)])
def test_same_padding_follows_keras(size, kernel, stride, expected):
    layer = {"type": "conv2d", "filters": 2, "kernel": kernel, "stride": stride, "padding": "same"}
    summary = summarize({"layers": [layer]}, (1, size, size), 2)
    assert summary.rows[0].out_shape == (2, expected, expected)
    assert_matches_module(summary)


@pytest.mark.parametrize("layers,index,fragment", [
    ([{"type": "maxpool2d", "size": 2}, {"type": "maxpool2d", "size": 2}, {"type": "maxpool2d", "size": 2}],
     3, "pools a 1x1 map"),
    ([{"type": "conv2d", "kernel": 9, "padding": "valid"}], 1, "larger than its 4x4 input"),
    ([{"type": "conv2d"}, {"type": "dense"}], 2, "add a flatten"),
    ([{"type": "conv2d", "filters": 0}], 1, "filters must be at least 1"),
    ([{"type": "flatten"}, {"type": "dense", "units": 0}], 2, "units must be at least 1"),
    ([{"type": "dropout", "rate": 1.0}], 1, "rate must be in [0, 1)"),
    ([{"type": "dropout", "rate": -0.1}], 1, "rate must be in"),
    ([{"type": "convolution3d"}], 1, "unknown layer type"),
    ([{"type": "conv2d", "activation": "relu6"}], 1, "unknown activation"),
    ([{"type": "conv2d", "filter": 3}], 1, "unknown parameter(s) filter"),
    ([{"type": "flatten"}, {"type": "maxpool2d"}], 2, "needs feature maps"),
])
def test_bad_specs_name_the_layer_and_the_fix(layers, index, fragment):
    summary = analyze({"layers": layers}, (1, 4, 4), 2)
    assert summary.problems, "expected a problem"
    problem = summary.problems[0]
    assert problem.index == index
    assert f"layer {index} (" in str(problem) and fragment in str(problem)
    with pytest.raises(SpecError):
        build_model({"layers": layers}, (1, 4, 4), 2)


@pytest.mark.parametrize("bad", [None, [], {"input": [0, 28, 28], "layers": []}, {"layers": "conv"},
                                 {"layers": [], "num_classes": 1}, {"layers": [3]}])
def test_malformed_specs_raise_spec_error(bad):
    with pytest.raises(SpecError):
        summarize(bad)


def test_load_spec_accepts_presets_json_and_files(tmp_path):
    assert load_spec("Fashion-CNN")["name"] == "fashion_cnn"
    assert load_spec('{"layers": []}') == {"layers": []}
    path = tmp_path / "m.json"
    path.write_text('{"name": "x", "layers": [{"type": "flatten"}]}')
    assert load_spec(str(path))["name"] == "x"
    with pytest.raises(SpecError, match="neither a preset"):
        load_spec("no_such_model")
    with pytest.raises(SpecError, match="not valid JSON"):
        load_spec("{broken")


def test_pasted_json_is_parsed_as_load_spec_does_with_every_layer_normalised(tmp_path):
    text = '{"name": "tiny", "layers": [{"type": "Conv2D", "filters": 4}, {"type": "global_avg_pool"}]}'
    parsed = parse_spec_json(text)
    assert parsed["name"] == "tiny" and parsed["layers"] == summarize(load_spec(text)).layers[:2]
    (tmp_path / "m.json").write_text(text)
    for not_json in (str(tmp_path / "m.json"), "fashion_cnn"):  # a browser's text is never a path or a preset
        with pytest.raises(SpecError, match="paste a JSON object"):
            parse_spec_json(not_json)
    with pytest.raises(SpecError, match="not valid JSON"):
        parse_spec_json("{broken")
    with pytest.raises(SpecError, match="'layers' must be a list"):
        parse_spec_json('{"layers": "conv"}')


def test_pasted_json_names_the_first_layer_it_cannot_normalise_as_analyze_does():
    spec = {"layers": [{"type": "conv2d"}, {"type": "warp"}, {"type": "dense", "units": 0}]}
    with pytest.raises(SpecError) as refused:
        parse_spec_json(json.dumps(spec))
    assert str(refused.value) == str(analyze(spec).problems[0])
    assert refused.value.index == 2 and "warp" in str(refused.value)


def nested(levels: int) -> list:
    """A list nested ``levels`` deep, made without recursion."""
    value: list = []
    for _ in range(levels):
        value = [value]
    return value


DEEP_TEXT = '{"layers": [{"type": "conv2d", "filters": ' + "[" * 30_000 + "]" * 30_000 + "}]}"


def test_a_spec_nested_too_deep_is_one_clear_problem_not_a_recursion_error(tmp_path):
    (tmp_path / "deep.json").write_text(DEEP_TEXT)
    for parse in (parse_spec_json, load_spec, lambda text: load_spec(str(tmp_path / "deep.json"))):
        with pytest.raises(SpecError, match="nested deeper than 32 levels"):
            parse(DEEP_TEXT)
    deep = {"layers": [{"type": "conv2d", "filters": nested(30_000)}]}  # made in code, not parsed
    with pytest.raises(SpecError, match="nested deeper than 32 levels"):
        load_spec(deep)
    assert [str(p) for p in analyze(deep).problems] == [str(analyze({"layers": [nested(40)]}).problems[0])]


def test_spec_text_is_refused_by_its_size_before_it_is_parsed(tmp_path):
    padded = '{"layers": []' + " " * MAX_SPEC_BYTES + "}"
    (tmp_path / "big.json").write_text(padded)
    for parse in (parse_spec_json, load_spec, lambda text: load_spec(str(tmp_path / "big.json"))):
        with pytest.raises(SpecError, match=f"more than the {MAX_SPEC_BYTES:,} it may be"):
            parse(padded)
    assert parse_spec_json(b'{"layers": []}', "the uploaded file") == {"layers": []}  # an upload's bytes


def test_a_spec_with_too_many_layers_is_one_problem_before_any_layer_is_looked_at():
    fits = analyze({"layers": [{"type": "dropout"}] * MAX_LAYERS}, (1, 8, 8), 2)
    assert fits.ok and len(fits.rows) == MAX_LAYERS + 2  # the flatten and output the rules add do not count
    summary = analyze({"layers": [{"type": "warp"}] * (MAX_LAYERS + 1)}, (1, 8, 8), 2)
    assert [str(p) for p in summary.problems] == [
        f"the spec has {MAX_LAYERS + 1:,} layers, more than the {MAX_LAYERS} a model may have; remove layers"]
    with pytest.raises(SpecError, match="more than the 500 a model may have"):
        parse_spec_json(json.dumps({"layers": [{"type": "flatten"}] * (MAX_LAYERS + 1)}))


def test_eval_mode_restores_the_mode_it_found_even_on_an_error():
    model = build_model(get_preset("lenet5"))
    for training in (True, False):
        model.train(training)
        with eval_mode(model):
            assert not model.training and not any(m.training for m in model.modules())
        assert model.training is training
    model.train()
    with pytest.raises(RuntimeError), eval_mode(model):
        raise RuntimeError("a failing forward")
    assert model.training


def test_every_layer_type_and_activation_builds():
    for name in LAYER_TYPES:
        layers = [{"type": "flatten"}, {"type": name}] if name == "dense" else [{"type": name}]
        channels = 3 if LAYER_TYPES[name].takes_images else 2  # a pretrained backbone takes RGB (or grey) images
        assert_matches_module(summarize({"layers": layers}, (channels, 6, 6), 3))
    for act in ACTIVATIONS:
        assert_matches_module(summarize({"layers": [{"type": "activation", "function": act}]}, (2, 6, 6), 3))


# -- property tests: random layer stacks, valid or not


def _layer_strategy():
    conv = st.fixed_dictionaries({"type": st.just("conv2d"), "filters": st.integers(0, 8),
                                  "kernel": st.integers(1, 7), "stride": st.integers(1, 3),
                                  "padding": st.sampled_from(["same", "valid", 0, 1, 2, 40, 10**9]),
                                  "activation": st.sampled_from([*ACTIVATIONS, None, "bogus"])})
    pool = st.fixed_dictionaries({"type": st.sampled_from(["maxpool2d", "avgpool2d"]), "size": st.integers(1, 5)})
    simple = st.fixed_dictionaries({"type": st.sampled_from(["batchnorm", "flatten", "global_avg_pool"])})
    dropout = st.fixed_dictionaries({"type": st.just("dropout"), "rate": st.floats(-0.5, 1.5)})
    dense = st.fixed_dictionaries({"type": st.just("dense"), "units": st.integers(0, 16),
                                   "activation": st.sampled_from([*ACTIVATIONS, None])})
    residual = st.fixed_dictionaries({"type": st.just("residual"), "filters": st.integers(1, 8),
                                      "stride": st.integers(1, 2)})
    odd = st.fixed_dictionaries({"type": st.sampled_from(["conv3d", "", "Dense", "CONV"])})
    return st.one_of(conv, pool, simple, dropout, dense, residual, odd, *_zoo_strategies())


def _zoo_strategies():
    """The lecture zoo's layers: padded and ceil-mode pools, adaptive pooling, convolutions without bias,
    inception modules, dense blocks and transitions, with valid and invalid values."""
    pool = st.fixed_dictionaries({"type": st.sampled_from(["maxpool2d", "avgpool2d"]), "size": st.integers(1, 5),
                                  "stride": st.sampled_from([None, 1, 2, 3]), "padding": st.integers(0, 3),
                                  "ceil": st.booleans()})
    conv = st.fixed_dictionaries({"type": st.just("conv2d"), "filters": st.integers(1, 6), "kernel": st.integers(1, 5),
                                  "padding": st.sampled_from(["same", "valid", 1]),
                                  "bias": st.sampled_from([True, False, 1, "no"])})
    adaptive = st.fixed_dictionaries({"type": st.just("adaptive_avg_pool"), "size": st.integers(0, 9)})
    width = st.integers(1, 5)
    inception = st.fixed_dictionaries({"type": st.just("inception"), "ch1x1": width, "ch3x3_reduce": width,
                                       "ch3x3": width, "wide_reduce": width, "wide": st.integers(0, 5),
                                       "pool_proj": width, "wide_kernel": st.sampled_from(["3x3", "5x5", "7x7"])})
    dense_block = st.fixed_dictionaries({"type": st.just("dense_block"), "layers": st.integers(0, 4),
                                         "growth_rate": st.integers(1, 5), "bn_size": st.integers(1, 4)})
    transition = st.fixed_dictionaries({"type": st.just("transition"),
                                        "compression": st.sampled_from([0.5, 1, 0.1, 0, 1.5, "half"])})
    return pool, conv, adaptive, inception, dense_block, transition


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layers=st.lists(_layer_strategy(), max_size=7),
       shape=st.tuples(st.integers(1, 3), st.integers(1, 20), st.integers(1, 20)),
       classes=st.integers(2, 5))
def test_random_specs_either_build_exactly_or_raise_spec_error(layers, shape, classes):
    summary = analyze({"layers": layers}, shape, classes)
    if summary.problems:
        assert all(isinstance(p, SpecError) and p.index is not None for p in summary.problems)
        with pytest.raises(SpecError):
            build_model({"layers": layers}, shape, classes)
        return
    assert_matches_module(summary)
    model = build_model({"layers": layers}, shape, classes).train()
    out = model(torch.randn(2, *shape))
    out.sum().backward()  # forward + backward both work
    assert out.shape == (2, classes)


ABSURD = [-1, 10**6, 10**12, 2**63, 1.5, "3", None, float("nan"), float("inf")]


@settings(max_examples=200, deadline=None)
@given(preset=st.sampled_from(sorted(PRESETS)), data=st.data())
def test_an_absurd_value_in_any_field_is_refused_at_its_layer(preset, data):
    """What a curious student types into a JSON file: refused by name, never allocated."""
    spec = get_preset(preset)
    fields = [(i, key) for i, layer in enumerate(spec["layers"]) for key in layer if key != "type"]
    index, key = data.draw(st.sampled_from(fields))
    value = data.draw(st.sampled_from(ABSURD))
    spec["layers"][index][key] = value
    summary = analyze(spec)
    if summary.ok:  # None is a fine activation
        if preset not in REFERENCE:  # those are over the parameter limit or slow to build: checked on "meta"
            build_model(spec).forward(torch.zeros(1, *summary.input_shape))
        return
    assert summary.problems[0].index == index + 1, (key, value, summary.problems)
    with pytest.raises(SpecError):
        build_model(spec)
