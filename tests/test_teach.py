"""Teaching aids: every number in an explanation equals the summary's, in both languages, and
the summary's MACs and activation memory agree with torchinfo on every preset; receptive fields
agree with the hand-worked recurrence and with the input pixels a gradient actually reaches; the
weight-sharing counts and the flipped kernel agree with hand sums, PyTorch and SciPy; the activation
plot's gradients are autograd's."""

from __future__ import annotations

import math
import re
import string
from collections import defaultdict

import pytest
import torch
import torchinfo
from support.cli import lab
from torch import nn

from lab import i18n
from lab.model.layers import ACTIVATIONS, LAYER_TYPES, get_layer_type
from lab.model.presets import PRESETS, get_preset
from lab.model.spec import SpecNet, build_model, summarize
from lab.model.teach import LANGUAGES, RECEPTIVE, conv_weights, explain, flip_example, receptive_fields
from lab.plots.activations import PLOTTED, SATURATING, SMALL_GRADIENT, activation_figure, curve

BATCH = 3  # any batch: torchinfo's figures scale with it, ours must too
REFERENCE = {name for name, preset in PRESETS.items() if preset.reference}


def summary_and_model(name: str):
    """A preset's summary and module; torchvision's reference nets at 64 px, where they fit and are quick
    (SpecNet, not build_model: vgg16 is over the server's parameter limit)."""
    summary = summarize(get_preset(name), (3, 64, 64) if name in REFERENCE else None)
    return summary, SpecNet(summary)


def row_named(summary, name: str):
    return next(r for r in summary.rows if r.name == name)


def result(numbers: str) -> float:
    """The number after the last '=' of a step: '1*3*3*32 + 32 = 320' -> 320."""
    return float(numbers.rsplit("=", 1)[1].strip().rstrip("%").replace(",", ""))


def teach_templates(lang: str) -> dict[str, str]:
    """lab.model.teach's sentences in the locale file of ``lang``, keys without their "teach." prefix."""
    return {key.removeprefix("teach."): value for key, value in i18n.strings(lang).items() if key.startswith("teach.")}


def step_results(explanation, lang: str, key: str) -> list[float]:
    return [result(s.numbers) for s in explanation.steps if s.label == i18n.text(f"teach.{key}", lang)]


# ---------------------------------------------------------------- hand-checked text


def test_fashion_cnn_explanations_show_the_write_up_arithmetic():
    summary = summarize(get_preset("fashion_cnn"))  # on its own 1x28x28 input
    conv = explain(row_named(summary, "conv2d_1")).markdown()
    for text in ["floor((28 + 2*1 - 3)/1) + 1 = 28", "1*3*3*32 + 32 = 320", "28*28*32 * 1*3*3 = 225,792",
                 "784*25,088 + 25,088 = 19,694,080", "about 61,544 times as many"]:
        assert text in conv, text
    assert "floor((28 - 2)/2) + 1 = 14" in explain(row_named(summary, "maxpool2d_1")).markdown()
    assert "32*3*3*64 + 64 = 18,496" in explain(row_named(summary, "conv2d_2")).markdown()
    assert "64*7*7 = 3,136" in explain(row_named(summary, "flatten_1")).markdown()
    dense = explain(row_named(summary, "dense_1")).markdown()
    assert "3,136*100 + 100 = 313,700" in dense and "3,136*100 = 313,600" in dense
    assert "logits" in explain(row_named(summary, "output")).markdown()


def test_cifar_vgg_batchnorm_and_dropout_numbers():
    summary = summarize(get_preset("cifar_vgg"))
    bn = explain(row_named(summary, "batchnorm_1"))
    assert [s.numbers for s in bn.steps] == ["2*32 = 64", "2*32 = 64", "2*32 + 2*32 = 128"]
    assert "running mean and variance replace the batch's" in bn.markdown()
    model = build_model(get_preset("cifar_vgg"))
    assert len(model.layers.batchnorm_1.state_dict()) == 5  # γ, β, mean, var (32 each) + the counter
    dropout = explain(row_named(summary, "dropout_1")).markdown()
    assert "1/(1 - 0.2) = 1.25" in dropout and "0.2*8,192 = 1,638.4" in dropout
    assert "dropout does nothing" in dropout


def test_residual_explains_the_projection_sum():
    summary = summarize(get_preset("mini_resnet"))
    same = explain(row_named(summary, "residual_1")).markdown()
    assert "32*3*3*32 + 32*3*3*32 + 2*(2*32) = 18,560" in same and "shortcut is the identity" in same
    down = explain(row_named(summary, "residual_2")).markdown()
    assert "floor((32 + 2*1 - 3)/2) + 1 = 16" in down
    assert "32*3*3*64 + 64*3*3*64 + 2*(2*64) + 32*64 + 2*64 = 57,728" in down and "2,176 parameters" in down


def test_the_zoo_blocks_explain_torchvisions_numbers():
    """GoogLeNet's inception3a, DenseNet-121's first block and transition, as torchvision counts them
    (155,872, 335,040 and 33,280 parameters), and the ceil-mode pool and bias-free stem before them."""
    googlenet = summarize(get_preset("googlenet"))
    stem = explain(row_named(googlenet, "conv2d_1")).markdown()
    assert "3*7*7*64 = 9,408" in stem and "No bias" in stem
    pool = explain(row_named(googlenet, "maxpool2d_1")).markdown()
    assert "ceil((112 - 3)/2) + 1 = 56" in pool and "1 row(s) and 1 column(s) past it" in pool
    inception = explain(row_named(googlenet, "inception_1")).markdown()
    for text in ["64 + 128 + 32 + 32 = 256", "192*(64 + 96 + 16 + 32) + 96*3*3*128 + 16*3*3*32 + 2*368 = 155,872",
                 "with them these two branches need 107,175,936, 49.4% of that", "the paper's is 5x5"]:
        assert text in inception, text
    densenet = summarize(get_preset("densenet121"))
    block = explain(row_named(densenet, "dense_block_1")).markdown()
    assert "64 + 6*32 = 256" in block and "(2 + 128)*864 + 6*(2*128 + 128*3*3*32) = 335,040" in block
    assert "the last layer's input has 224" in block
    transition = explain(row_named(densenet, "transition_1")).markdown()
    assert "floor(256*0.5) = 128" in transition and "2*256 + 256*128 = 33,280" in transition
    adaptive = explain(summarize({"layers": [{"type": "adaptive_avg_pool", "size": 3}]}, (2, 7, 7), 2).rows[0])
    assert "out = 3" in adaptive.markdown() and "windows are 3 pixels wide" in adaptive.markdown()


def test_uneven_same_padding_and_pool_remainder_are_named():
    summary = summarize({"layers": [{"type": "conv2d", "filters": 4, "kernel": 2, "stride": 2},
                                    {"type": "maxpool2d", "size": 2}]}, (3, 9, 9), 2)
    conv = explain(summary.rows[0]).markdown()
    assert "floor((9 + (0+1) - 2)/2) + 1 = 5" in conv and "0 on the top/left and 1 on the bottom/right" in conv
    assert summary.rows[0].out_shape == (4, 5, 5)
    pool = explain(summary.rows[1]).markdown()
    assert "floor((5 - 2)/2) + 1 = 2" in pool and "the last 1 row(s) and 1 column(s)" in pool


def test_non_square_input_gets_a_height_and_a_width_step():
    summary = summarize({"layers": [{"type": "conv2d", "filters": 2, "padding": "valid"}]}, (1, 10, 6), 2)
    sizes = [s for s in explain(summary.rows[0]).steps if s.label in ("Output height", "Output width")]
    assert [s.numbers for s in sizes] == ["floor((10 + 2*0 - 3)/1) + 1 = 8", "floor((6 + 2*0 - 3)/1) + 1 = 4"]


@pytest.mark.parametrize("function,numbers", [
    ("relu", "relu(-2, 0, 2) = (0, 0, 2)"),
    ("sigmoid", "sigmoid(-2, 0, 2) = (0.119, 0.5, 0.881)"),
    ("leaky_relu", "leaky_relu(-2, 0, 2) = (-0.02, 0, 2)"),
    ("softmax", "softmax(-2, 0, 2) = (0.016, 0.117, 0.867)"),
])
def test_activation_examples_are_worked_out(function, numbers):
    layers = [{"type": "activation", "function": function}, {"type": "flatten"}]  # a last softmax is dropped
    assert explain(summarize({"layers": layers}, (2, 4, 4), 2).rows[0]).steps[0].numbers == numbers


# ---------------------------------------------------------------- numbers equal the summary's


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_explained_numbers_equal_the_summary(name, lang):
    summary = summarize(get_preset(name))
    dense = get_layer_type("dense")
    for row in summary.rows:
        e = explain(row, lang)
        kind = row.layer["type"]
        assert row.name in e.title and i18n.text(f"teach.type.{kind}", lang) in e.title
        params = step_results(e, lang, "batchnorm.params" if kind == "batchnorm" else "params")
        assert params == ([row.params] if row.params else []), row.name
        assert step_results(e, lang, "macs") == ([row.macs] if row.macs else []), row.name
        sizes = step_results(e, lang, "size") * 2 or step_results(e, lang, "height") + step_results(e, lang, "width")
        if sizes:
            assert tuple(sizes) == row.out_shape[1:], row.name
        if kind == "conv2d":  # the weight-sharing comparison is the registry's own dense layer
            in_n, out_n = math.prod(row.in_shape), math.prod(row.out_shape)
            assert step_results(e, lang, "conv.dense_label") == [dense.num_params((in_n,), {"units": out_n})]
        if kind == "flatten":
            assert step_results(e, lang, "flatten.values") == [row.out_shape[0]]


# ---------------------------------------------------------------- every type, both languages


def _spec_with(name: str) -> dict:
    layers = [{"type": "flatten"}, {"type": name}] if name == "dense" else [{"type": name}]
    return {"layers": layers}


def _leftover_braces(text: str) -> bool:
    return bool(re.search(r"[{}]", text))


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("name", sorted(LAYER_TYPES))
def test_every_layer_type_is_explained_in_every_language(name, lang):
    channels = 3 if LAYER_TYPES[name].takes_images else 2  # a pretrained backbone takes RGB (or grey) images
    summary = summarize(_spec_with(name), (channels, 6, 6), 3)
    row = next(r for r in summary.rows if r.layer["type"] == name)
    e = explain(row, lang)
    assert e.notes and not _leftover_braces(e.markdown())
    assert i18n.text(f"teach.type.{name}", lang) in e.title


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("function", [*ACTIVATIONS, None])
def test_every_activation_is_explained(function, lang):
    layers = [{"type": "activation", "function": function}, {"type": "flatten"},
              {"type": "activation", "function": function}, {"type": "dense"}]  # on maps and on a vector
    rows = [r for r in summarize({"layers": layers}, (2, 4, 4), 3).rows if r.layer["type"] == "activation"]
    assert len(rows) == 2
    for row in rows:
        assert not _leftover_braces(explain(row, lang).markdown())
    for conv_act in (function, None):
        conv = summarize({"layers": [{"type": "conv2d", "activation": conv_act}]}, (2, 4, 4), 3).rows[0]
        assert not _leftover_braces(explain(conv, lang).markdown())


def test_languages_share_keys_and_placeholders():
    def fields(text: str) -> set[str]:
        return {f for _, f, _, _ in string.Formatter().parse(text) if f}

    english = teach_templates("en")
    for lang in LANGUAGES:
        templates = teach_templates(lang)
        assert templates.keys() == english.keys(), lang
        for key, text in templates.items():
            assert fields(text) == fields(english[key]), (lang, key)
    assert all(f"type.{name}" in english for name in LAYER_TYPES)


def test_korean_is_korean_and_unknown_languages_are_refused():
    row = summarize(get_preset("fashion_cnn")).rows[0]
    korean = explain(row, "ko").markdown()
    assert "합성곱" in korean and "가중치 공유" in korean and "1*3*3*32 + 32 = 320" in korean
    with pytest.raises(ValueError, match="use one of: en, ko"):
        explain(row, "fr")


# ---------------------------------------------------------------- MACs and memory against torchinfo


def _spec_layer(info) -> str | None:
    """The spec layer (top-level child of ``model.layers``) a torchinfo row belongs to."""
    while info is not None and info.depth > 2:
        info = info.parent_info
    return info.var_name if info is not None and info.depth == 2 else None


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_activation_memory_equals_torchinfo(name):
    """torchinfo's "Forward/backward pass size" to the byte, in total and per spec layer."""
    summary, model = summary_and_model(name)
    stats = torchinfo.summary(model, input_size=(BATCH, *summary.input_shape), verbose=0)
    assert summary.activation_bytes(BATCH) == stats.total_output_bytes > 0
    per_layer: dict[str, int] = defaultdict(int)
    for info in stats.summary_list:
        if info.is_leaf_layer and info.num_params > 0:  # torchinfo's own rule, x2 for the gradients
            per_layer[_spec_layer(info)] += 2 * info.output_bytes
    assert {r.name: r.activation_bytes(BATCH) for r in summary.rows if r.activations} == dict(per_layer)
    assert summary.activation_bytes(2 * BATCH) == 2 * summary.activation_bytes(BATCH)


def counted_macs(model: nn.Module, input_shape) -> dict[str, tuple[int, int]]:
    """Per spec layer, from forward hooks on the real modules: (our MACs, torchinfo's extras).

    Ours: one per weight-times-input product, k*k*in_ch/groups per output value of a
    convolution and in_features per output of a linear layer. torchinfo's extras: it
    also counts each bias add (one per output value) and 2*C per batchnorm.
    """
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    handles = []

    def hook(layer: str):
        def record(mod, inp, out):
            per_image = out[0].numel()
            if isinstance(mod, nn.Conv2d):
                kh, kw = mod.kernel_size
                counts[layer][0] += per_image * kh * kw * mod.in_channels // mod.groups
            elif isinstance(mod, nn.Linear):
                counts[layer][0] += per_image * mod.in_features
            if isinstance(mod, (nn.Conv2d, nn.Linear)) and mod.bias is not None:
                counts[layer][1] += per_image
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                counts[layer][1] += 2 * mod.num_features
        return record

    for layer, child in model.layers.named_children():
        handles += [m.register_forward_hook(hook(layer)) for m in child.modules()]
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros(2, *input_shape))
    finally:
        for h in handles:
            h.remove()
    return {layer: (ours, extra) for layer, (ours, extra) in counts.items()}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_macs_equal_a_direct_count_and_torchinfo_less_its_extras(name):
    """The summary counts multiplies only (the textbook k*k*in_ch*filters*H*W); torchinfo's
    "Total mult-adds" adds bias adds and 2*C per batchnorm, and is otherwise the same number."""
    summary, model = summary_and_model(name)
    counts = counted_macs(model, summary.input_shape)
    assert {r.name: r.macs for r in summary.rows} == {r.name: counts.get(r.name, (0, 0))[0] for r in summary.rows}
    stats = torchinfo.summary(model, input_size=(BATCH, *summary.input_shape), verbose=0)
    extras = sum(extra for _, extra in counts.values())
    assert stats.total_mult_adds == BATCH * (summary.total_macs + extras)


# ---------------------------------------------------------------- receptive fields


def conv(kernel: int = 3, stride: int = 1) -> dict:
    return {"type": "conv2d", "filters": 2, "kernel": kernel, "stride": stride}


def test_receptive_fields_of_a_plain_stack_by_hand():
    """conv3, conv3, pool2, conv3: 1 + 2 = 3, 3 + 2 = 5, 5 + 1 = 6 (jump 2 from here), 6 + 2*2 = 10."""
    summary = summarize({"layers": [conv(), conv(), {"type": "maxpool2d", "size": 2}, conv()]}, (1, 16, 16), 2)
    reaches = receptive_fields(summary.rows)
    assert [reaches[r.name].field for r in summary.rows[:4]] == [(3, 3), (5, 5), (6, 6), (10, 10)]
    assert [reaches[r.name].jump for r in summary.rows[:4]] == [(1, 1), (1, 1), (2, 2), (2, 2)]
    assert set(reaches) == {r.name for r in summary.rows[:4]}  # flatten and the output layer see the whole image
    assert reaches["conv2d_2"].words() == "sees 5x5 input pixels"
    assert reaches["conv2d_2"].words("ko") == "입력 픽셀 5x5 영역을 봅니다"
    assert reaches["conv2d_2"].words(short=True) == "5x5"
    last = explain(summary.rows[3], reach=reaches["conv2d_3"]).markdown()
    assert "6 + (3-1)*2 = 10" in last and "1*2*1 = 2" not in last and "2*1 = 2" in last


def test_receptive_fields_of_blocks_take_the_largest_path():
    """A residual block at stride 2 after a 3x3 conv: its two 3x3 convs give 3 + 2*1 + 2*2 = 9 (the 1x1
    shortcut only 3); a 5x5 inception branch adds 4*jump, a two-layer dense block 2*2*jump."""
    layers = [conv(), {"type": "residual", "filters": 4, "stride": 2}, {"type": "inception", "ch1x1": 2,
              "ch3x3_reduce": 2, "ch3x3": 2, "wide_reduce": 2, "wide": 2, "pool_proj": 2},
              {"type": "dense_block", "layers": 2, "growth_rate": 2, "bn_size": 1}, {"type": "transition"}]
    summary = summarize({"layers": layers}, (1, 32, 32), 2)
    reaches = receptive_fields(summary.rows)
    fields = {name: reach.field[0] for name, reach in reaches.items()}
    assert fields == {"conv2d_1": 3, "residual_1": 9, "inception_1": 9 + 4 * 2, "dense_block_1": 17 + 2 * 2 * 2,
                      "transition_1": 25 + 1 * 2}
    assert reaches["residual_1"].jump == (2, 2) and reaches["transition_1"].jump == (4, 4)
    assert reaches["residual_1"].words() == "sees 9x9 input pixels (largest path)"
    assert reaches["residual_1"].words(short=True) == "9x9 (largest path)"
    assert reaches["transition_1"].words() == "sees 27x27 input pixels"
    words = explain(row_named(summary, "residual_1"), reach=reaches["residual_1"]).markdown()
    assert "Receptive field (largest path)" in words and "3 + (3-1)*1 + (3-1)*2 = 9" in words


def gradient_footprint(model: SpecNet, upto: str, size: int) -> tuple[int, int]:
    """The rows and columns of input pixels that the middle output value of layer ``upto`` depends on: where
    its gradient is non-zero, with every weight positive so that no path cancels or switches off."""
    for param in model.parameters():
        nn.init.constant_(param, 0.05)
    names = [name for name, _ in model.layers.named_children()]
    head = model.layers[:names.index(upto) + 1].eval()
    image = torch.ones(1, model.input_shape[0], size, size, requires_grad=True)
    out = head(image)
    out[0, :, out.shape[2] // 2, out.shape[3] // 2].sum().backward()
    reached = image.grad[0].abs().sum(0) > 0
    rows, cols = reached.any(1).nonzero(), reached.any(0).nonzero()
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize("layers", [
    [conv(5, 2), {"type": "avgpool2d", "size": 3, "stride": 2}, conv(3)],
    [conv(), {"type": "residual", "filters": 4, "stride": 2}, {"type": "residual", "filters": 4}],
    [conv(), {"type": "inception", "ch1x1": 2, "ch3x3_reduce": 2, "ch3x3": 2, "wide_reduce": 2, "wide": 2,
              "pool_proj": 2}],
    [{"type": "dense_block", "layers": 3, "growth_rate": 2, "bn_size": 1}, {"type": "transition"}, conv(3, 2)],
    [conv(), {"type": "adaptive_avg_pool", "size": 8}, {"type": "batchnorm"}, conv()],
], ids=["strided", "residual", "inception", "dense", "adaptive"])
def test_receptive_fields_are_the_pixels_a_gradient_reaches(layers):
    """The recurrence against the model itself: the input pixels on which a middle output value depends."""
    size = 64
    summary = summarize({"layers": layers}, (1, size, size), 2)
    reaches = receptive_fields(summary.rows)
    model = SpecNet(summary)
    for name, reach in reaches.items():
        assert reach.exact and max(reach.field) < size // 2, name  # well inside the image: no edge cuts it short
        assert gradient_footprint(model, name, size) == reach.field, name


def test_uneven_adaptive_pooling_gives_an_upper_bound():
    """10 pixels pooled to 3: windows 0-4, 3-7, 6-10, taken as 4 wide and 4 apart: 3 + 3*1 = 6, 6 + 2*4 = 14.
    The middle value of the next 3x3 conv really sees all 10 pooled pixels and 1 of padding on each side: 12."""
    summary = summarize({"layers": [conv(), {"type": "adaptive_avg_pool", "size": 3}, conv()]}, (1, 10, 10), 2)
    reach = receptive_fields(summary.rows)["conv2d_2"]
    assert not reach.exact and reach.words() == "sees at most 14x14 input pixels"
    assert reach.words(short=True) == "at most 14x14" and reach.words("ko", short=True) == "최대 14x14"
    assert gradient_footprint(SpecNet(summary), "conv2d_2", 10) == (10, 10)  # the image's edges cut the 12
    assert "upper bound" in explain(summary.rows[2], reach=reach).markdown()


def test_every_layer_type_has_a_receptive_field_rule():
    assert set(RECEPTIVE) == set(LAYER_TYPES)


def test_fields_wider_than_the_image_say_so():
    summary = summarize(get_preset("cifar_vgg"))  # 3x32x32: the last pool sees 36x36
    reaches = receptive_fields(summary.rows)
    assert reaches["maxpool2d_3"].field == (36, 36)
    assert "wider than the 32x32 image" in explain(row_named(summary, "maxpool2d_3"),
                                                   reach=reaches["maxpool2d_3"]).markdown()


# ---------------------------------------------------------------- weight sharing


def test_conv_weights_shared_unshared_and_dense_by_hand():
    summary = summarize(get_preset("fashion_cnn"))  # 28x28x1 -> 28x28x32 -> pool -> 14x14x64
    first = conv_weights(row_named(summary, "conv2d_1"))
    assert (first.shared, first.unshared, first.dense) == (320, 28 * 28 * 320, 784 * 25_088 + 25_088)
    assert first.unshared == 250_880
    second = conv_weights(row_named(summary, "conv2d_2"))
    assert (second.shared, second.unshared, second.dense) == (18_496, 14 * 14 * 18_496, 6_272 * 12_544 + 12_544)
    assert conv_weights(row_named(summary, "dense_1")) is None
    words = explain(row_named(summary, "conv2d_1")).markdown()
    assert "28*28*320 = 250,880" in words and "one set per output position" in words
    assert "28*28*320 = 250,880" in explain(row_named(summary, "conv2d_1"), "ko").markdown()


def test_summary_teach_prints_fields_and_weights(tmp_path):
    out = lab("summary", "fashion_cnn", "--teach", runs_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    assert re.search(r"^conv2d_1\s+sees 3x3 input pixels\s+1\s+320\s+250,880\s+19,694,080$", out.stdout, re.M)
    assert re.search(r"^maxpool2d_2\s+sees 10x10 input pixels\s+4$", out.stdout, re.M)


# ---------------------------------------------------------------- convolution or cross-correlation


def test_the_flip_example_is_pytorchs_conv2d_and_the_textbooks_convolution():
    signal = pytest.importorskip("scipy.signal")
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        patch, kernel = (torch.randint(-9, 10, (3, 3), generator=generator) for _ in range(2))
        example = flip_example(tuple(map(tuple, patch.tolist())), tuple(map(tuple, kernel.tolist())))
        torch_says = torch.nn.functional.conv2d(patch[None, None].float(), kernel[None, None].float())
        assert example.correlation == torch_says.item()
        assert example.convolution == signal.convolve2d(patch.numpy(), kernel.numpy(), mode="valid").item()
        assert example.correlation_sum.endswith(f"= {example.correlation}")
    shown = flip_example()
    assert shown.flipped == ((3, 0, -2), (-1, 1, 0), (0, 2, 1)) and shown.correlation != shown.convolution


# ---------------------------------------------------------------- activations and their gradients


def traces(figure, name: str) -> dict[str, object]:
    return {trace.legendgroup: trace for trace in figure.data if trace.meta == name}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_activation_figure_draws_each_function_with_its_gradient(lang):
    figure = activation_figure(lang)
    assert set(PLOTTED) == set(ACTIVATIONS) - {"softmax"}
    for name in PLOTTED:
        drawn = traces(figure, name)
        assert set(drawn) == ({"function", "gradient", "vanishing"} if name in SATURATING else {"function", "gradient"})
        x, y, dy = (torch.tensor(v, dtype=torch.float64) for v in (drawn["function"].x, drawn["function"].y,
                                                                   drawn["gradient"].y))
        slope = (y[2:] - y[:-2]) / (x[2:] - x[:-2])  # central differences, away from ReLU-like kinks
        smooth = (x[1:-1].abs() > 0.1)
        assert torch.allclose(slope[smooth], dy[1:-1][smooth], atol=5e-3), name
    sigmoid = traces(figure, "sigmoid")
    assert max(sigmoid["gradient"].y) == pytest.approx(0.25)
    assert max(traces(figure, "tanh")["gradient"].y) == pytest.approx(1.0)
    assert set(traces(figure, "relu")["gradient"].y) == {0.0, 1.0}
    vanishing = [(x, g) for x, g in zip(sigmoid["vanishing"].x, sigmoid["vanishing"].y) if g is not None]
    assert all(g < SMALL_GRADIENT and abs(x) > 2 for x, g in vanishing) and len(vanishing) > 100
    assert curve("sigmoid").small_beyond() == pytest.approx(2.1) and curve("relu").small_beyond() is None
    assert any("sigmoid" in a.text and "0.25" in a.text for a in figure.layout.annotations)
