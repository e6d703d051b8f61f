"""The lecture's model zoo: torchvision's nets rebuilt layer for layer with its exact counts and outputs,
minis that train on the built-in data sets, the blocks' memory rule, the summary command at any input,
and the words that come with each architecture."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torchvision
from support.cli import lab
from torch import nn

from lab import i18n, settings
from lab.data import shapes
from lab.data.dataset import Dataset
from lab.data.registry import DATASETS, load_dataset
from lab.export.code import pytorch_code
from lab.model.layers import LAYER_TYPES, SpecError, normalize_layer
from lab.model.presets import PRESETS, get_preset, get_preset_info
from lab.model.spec import SpecNet, analyze, build_model, summarize
from lab.plots.diagram import architecture_figure
from lab.train.engine import TrainConfig, Trainer

TORCHVISION_PARAMS = {  # what torchvision reports at 3x224x224 and 1,000 classes
    "alexnet": 61_100_840, "vgg16": 138_357_544, "resnet18": 11_689_512, "googlenet": 6_624_904,
    "densenet121": 7_978_856,
}
MINIS = ("alexnet_mini", "vgg11_mini", "googlenet_mini", "resnet18_cifar", "densenet_mini")
HANGUL = "[\uac00-\ud7a3]"


def torchvision_net(name: str) -> nn.Module:
    """torchvision's model with fresh weights (weights=None: nothing is downloaded); GoogLeNet without the
    auxiliary heads, which only training on ImageNet uses."""
    extra = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    return getattr(torchvision.models, name)(weights=None, **extra)


def lab_net(name: str) -> SpecNet:
    """The reference preset as the lab builds it (SpecNet: alexnet and vgg16 are over the parameter limit)."""
    return SpecNet(summarize(get_preset(name)))


# ---------------------------------------------------------------- torchvision's nets, exactly


def test_the_reference_presets_are_marked_and_the_minis_are_not():
    assert {name for name, p in PRESETS.items() if p.reference} == set(TORCHVISION_PARAMS)
    assert all(PRESETS[name].spec["input"] == [3, 224, 224] for name in TORCHVISION_PARAMS)


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_reference_presets_have_torchvisions_counts_and_tensors_in_order(name):
    """On the meta device (shapes, no storage): every parameter and buffer, in order, as torchvision's."""
    assert summarize(get_preset(name)).total_params == TORCHVISION_PARAMS[name]
    with torch.device("meta"):
        ours, theirs = lab_net(name), torchvision_net(name)
    assert sum(p.numel() for p in theirs.parameters()) == TORCHVISION_PARAMS[name]
    assert sum(p.numel() for p in ours.parameters()) == TORCHVISION_PARAMS[name]
    assert [tuple(t.shape) for t in ours.state_dict().values()] == \
           [tuple(t.shape) for t in theirs.state_dict().values()]


def _randomise_batchnorms(model: nn.Module) -> None:
    """Running statistics and affine weights away from their 0/1 start, so a buffer in the wrong place shows."""
    generator = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            for tensor, low, high in ((m.running_mean, -0.2, 0.2), (m.running_var, 0.5, 1.5),
                                      (m.weight.data, 0.5, 1.5), (m.bias.data, -0.2, 0.2)):
                tensor.copy_(torch.empty_like(tensor).uniform_(low, high, generator=generator))


@pytest.mark.parametrize("name", ["alexnet", "resnet18", "googlenet", "densenet121"])
def test_reference_presets_compute_what_torchvision_computes(name):
    """torchvision's weights, copied tensor by tensor, give the same logits: the padding, ceil-mode pools,
    branch order and concatenations are torchvision's, not only the counts. At 64 px, where every pool
    still has work (googlenet's first ceil-mode pool makes 16 from 32, not 15), to keep it short; vgg16 has no
    layer alexnet lacks and would take 1 GB here."""
    torch.manual_seed(0)
    theirs = torchvision_net(name).eval()
    _randomise_batchnorms(theirs)
    if name == "googlenet":  # the stem's batchnorms are the lab's plain layer (PyTorch's eps); torchvision's is 0.001
        for conv in (theirs.conv1, theirs.conv2, theirs.conv3):
            conv.bn.eps = nn.BatchNorm2d(1).eps
    ours = lab_net(name).eval()
    ours.load_state_dict(dict(zip(ours.state_dict(), theirs.state_dict().values())))
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-4)


def test_alexnet_and_vgg16_are_refused_for_training_with_the_parameter_limit():
    images = torch.randint(0, 256, (8, 3, 64, 64), dtype=torch.uint8)  # both nets fit 64 px; the limit stops them
    data = Dataset("big", ["a", "b"], images, torch.arange(8) % 2, images[:4], torch.arange(4) % 2)
    limit = settings.limits().max_params
    for name in ("alexnet", "vgg16"):
        config = TrainConfig.from_dict(dict(spec=get_preset(name), epochs=1, device="cpu", insight=False))
        with pytest.raises(SpecError, match=f"over this server's limit of {limit:,}; use fewer filters or units"):
            Trainer(config, dataset=data)
        with pytest.raises(SpecError, match="parameters, over this server's limit"):
            build_model(get_preset(name))


def test_summary_prints_vgg16s_table_at_imagenet_size(tmp_path):
    done = lab("summary", "vgg16", "--input", "3,224,224", "--classes", "1000", runs_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "Total params: 138,357,544" and "input 3x224x224" in lines[0]
    assert "adaptive_avg_pool_1 (adaptive_avg_pool)" in done.stdout and "512x7x7" in done.stdout
    small = lab("summary", "googlenet", "--input", "1,64,64", "--classes", "5", runs_dir=tmp_path)
    assert small.returncode == 0 and "input 1x64x64" in small.stdout and "output (dense)" in small.stdout


@pytest.mark.parametrize("args, fragment", [
    (("--input", "3,-1"), "--input must be three positive whole numbers C,H,W such as 3,224,224; got '3,-1'"),
    (("--classes", "1"), "num_classes must be a whole number >= 2, got 1"),
])
def test_summary_refuses_a_bad_input_in_one_line(args, fragment, tmp_path):
    done = lab("summary", "vgg16", *args, runs_dir=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and done.stdout == "" and len(lines) == 1 and lines[0].startswith("error: ")
    assert fragment in lines[0]


# ---------------------------------------------------------------- every trainable preset trains


def _trainable() -> list[str]:
    limit = settings.limits().max_params
    return [name for name in PRESETS if summarize(get_preset(name)).total_params <= limit]


def _first(data: Dataset, train: int, val: int) -> Dataset:
    return Dataset(data.name, data.classes, data.train_x[:train], data.train_y[:train], data.val_x[:val],
                   data.val_y[:val])


@pytest.fixture(scope="module")
def builtin_data() -> dict[str, Dataset]:
    """The built-in data sets at 32 training and 16 validation images (shapes generated at that size, as the
    full set is), so that the 11-million-parameter nets train an epoch in seconds on 2 CPU cores."""
    def small(name: str) -> Dataset:
        return shapes.load(train_per_class=4, val_per_class=2) if name == "shapes" else \
            _first(load_dataset(name), 32, 16)

    return {name: small(name) for name, entry in DATASETS.items() if entry.offline}


def _fits(name: str, data: Dataset) -> bool:
    return analyze(get_preset(name), data.shape, data.num_classes).ok


def test_the_minis_and_the_trainable_references_fit_the_colour_data_set(builtin_data):
    trainable = _trainable()
    assert set(MINIS) | {"resnet18", "googlenet", "densenet121"} <= set(trainable)
    assert "alexnet" not in trainable and "vgg16" not in trainable
    assert all(_fits(name, builtin_data["shapes"]) for name in trainable)


@pytest.mark.parametrize("name", _trainable())
def test_every_trainable_preset_trains_an_epoch_on_each_built_in_data_set_it_fits(name, builtin_data):
    for dataset, data in builtin_data.items():
        if not _fits(name, data):
            continue
        config = TrainConfig.from_dict(dict(spec=get_preset(name), dataset=dataset, epochs=1, batch_size=16,
                                            device="cpu", insight=False, seed=0))
        result = Trainer(config, dataset=data).run()
        assert result.status == "finished", (dataset, result.message)
        epoch = result.history[0]
        assert math.isfinite(epoch["train_loss"]) and math.isfinite(epoch["val_loss"]), dataset


# ---------------------------------------------------------------- blocks: memory, export, words, picture


def saved_values_per_image(module: nn.Module, shape: tuple[int, ...], batch: int = 2) -> int:
    """Values autograd keeps for backward in one training step of ``module``, per image: every saved tensor
    once (by storage), not the input (the layer before counts it) nor the weights."""
    x = torch.randn(batch, *shape, requires_grad=True)
    skip = {x.untyped_storage().data_ptr(), *(p.untyped_storage().data_ptr() for p in module.parameters())}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        pointer = tensor.untyped_storage().data_ptr()
        if pointer not in skip:
            saved[pointer] = max(saved.get(pointer, 0), tensor.untyped_storage().nbytes() // tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        module.train()(x).sum().backward()
    return sum(saved.values()) // batch


@pytest.mark.parametrize("layer", [
    {"type": "residual", "filters": 12, "stride": 2},
    {"type": "inception", "ch1x1": 8, "ch3x3_reduce": 6, "ch3x3": 10, "wide_reduce": 3, "wide": 5, "pool_proj": 4},
    {"type": "dense_block", "layers": 4, "growth_rate": 6, "bn_size": 4},
    {"type": "transition", "compression": 0.5},
])
def test_a_blocks_memory_rule_covers_what_autograd_keeps(layer):
    """lab.model.budget refuses a batch by kept_values: it must not be below what a training step keeps, and
    as an upper estimate not far above it (it also counts each ReLU's output and the block's own)."""
    shape = (16, 12, 12)
    kind, layer = LAYER_TYPES[layer["type"]], normalize_layer(layer)
    kept = kind.kept_values(shape, kind.output_shape(shape, layer), layer)
    saved = saved_values_per_image(kind.build(shape, layer), shape)
    assert saved <= kept <= 2 * saved


@pytest.mark.parametrize("name", ["googlenet_mini", "densenet_mini"])
def test_exported_code_defines_the_blocks_and_loads_the_labs_weights(name):
    code = pytorch_code(get_preset(name))
    for needed in ("def conv_bn_relu", "class InceptionBlock") if name == "googlenet_mini" else \
            ("def dense_layer", "class DenseBlock"):
        assert code.count(needed) == 1
    namespace: dict = {"__name__": "exported"}
    exec(compile(code, "exported.py", "exec"), namespace)
    net, model = namespace["Net"]().eval(), build_model(get_preset(name)).eval()
    net.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(net(x), model(x), rtol=0, atol=0)


def test_the_picture_says_what_is_inside_a_block():
    labels = {a.text for a in architecture_figure(analyze(get_preset("densenet121"))).layout.annotations}
    assert {"dense_block_1 · 6 layers, concatenated", "dense_block_4 · 16 layers, concatenated"} <= labels
    labels = {a.text for a in architecture_figure(analyze(get_preset("googlenet_mini")), "ko").layout.annotations}
    assert "inception_1 · 4갈래 병렬" in labels and "conv2d_1" in labels
    resnet = {a.text for a in architecture_figure(analyze(get_preset("resnet18_cifar"))).layout.annotations}
    assert "residual_8 · skip" in resnet


@pytest.mark.parametrize("lang", ["en", "ko"])
@pytest.mark.parametrize("mini, reference", zip(MINIS, ["alexnet", "vgg16", "googlenet", "resnet18", "densenet121"]))
def test_each_mini_says_what_is_new_in_its_architecture_as_its_reference_does(mini, reference, lang):
    info = get_preset_info(mini, lang)
    assert len(info.idea) > 200 and info.idea == get_preset_info(reference, lang).idea
    assert info.idea != get_preset_info("lenet5", lang).idea and info.description
    if lang == "ko":
        assert re.search(HANGUL, info.idea) and re.search(HANGUL, info.description)


def test_old_specs_keep_their_parameters_and_state_dict_keys():
    """The new options default to what the layers did before: bias on, no pool padding, floor."""
    model = build_model(get_preset("cifar_vgg"))
    keys = list(model.state_dict())
    assert "layers.conv2d_1.conv.bias" in keys and summarize(get_preset("cifar_vgg")).total_params == 308_394
    assert normalize_layer({"type": "maxpool2d"}) == {"type": "maxpool2d", "size": 2, "stride": None, "padding": 0,
                                                      "ceil": False}
    assert i18n.text("teach.type.inception") == LAYER_TYPES["inception"].title
