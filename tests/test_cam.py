"""CAM methods: every method by registry, exactness of CAM, the pointing game on shapes,
hooks that never leak, the overlay, and ``python -m lab explain``."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from lab.cli import main
from lab.data import load_dataset
from lab.insight.cam import CAM_METHODS, explain, get_cam_method, pointing_hits, resolve_targets
from lab.insight.errors import InsightError
from lab.insight.hooks import hook_count
from lab.insight.load import load_run_model
from lab.insight.overlay import COLORMAPS, colorize, overlay
from lab.model.presets import PRESETS, get_preset
from lab.model.spec import build_model

# Full-size reference presets (224 px, up to 138M parameters) are checked against torchvision in test_zoo.
TRAINABLE_PRESETS = [name for name in PRESETS if not PRESETS[name].reference]


def _ends_in_gap(preset: str) -> bool:
    """Global average pooling, then the output layer (a dropout between them is allowed): the design CAM is
    defined for."""
    types = [layer["type"] for layer in get_preset(preset)["layers"]]
    return "global_avg_pool" in types and set(types[types.index("global_avg_pool") + 1:]) <= {"dropout", "dense"}


@pytest.fixture(scope="module")
def trained(gap_cam_run):
    """The briefly trained gap_cam, the shapes dataset and its normalised val images."""
    model, _, stats = load_run_model(gap_cam_run.run_dir, "last")
    ds = load_dataset("shapes")
    return model, ds, stats.normalize(ds.val_x)


def _untrained(preset: str) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    spec = get_preset(preset)
    model = build_model(spec)
    return model, torch.randn(2, *spec["input"])


# ---------------------------------------------------------------- registry


@pytest.mark.parametrize("preset", TRAINABLE_PRESETS)
@pytest.mark.parametrize("method", list(CAM_METHODS))
def test_every_method_on_every_preset_gives_finite_maps_in_unit_range(method, preset):
    model, x = _untrained(preset)
    model.train()
    if method == "cam" and not _ends_in_gap(preset):
        with pytest.raises(InsightError, match="global_avg_pool"):
            get_cam_method(method)(model)
        return
    result = get_cam_method(method)(model)(x)
    heat = result.heatmaps
    assert heat.shape == (2, *x.shape[-2:]) and heat.dtype == torch.float32
    assert torch.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1
    assert torch.equal(result.targets, result.preds)  # default target: the predicted class
    assert model.training and hook_count(model) == 0


def test_unknown_method_is_refused_with_the_valid_names():
    with pytest.raises(InsightError) as err:
        get_cam_method("gradcam3000")
    for name in CAM_METHODS:
        assert name in str(err.value)
    assert get_cam_method("Grad-CAM") is get_cam_method("grad_cam") is CAM_METHODS["gradcam"]
    assert get_cam_method("gradcam_plusplus") is CAM_METHODS["gradcam++"]


def test_a_layer_without_feature_maps_is_refused_naming_the_valid_ones():
    model, _ = _untrained("gap_cam")
    with pytest.raises(InsightError, match="conv2d_1.*batchnorm_3"):
        get_cam_method("gradcam")(model, "global_avg_pool_1")
    with pytest.raises(InsightError, match="unknown layer 'conv9'"):
        get_cam_method("gradcam")(model, "conv9")
    with pytest.raises(InsightError, match="feeding global_avg_pool"):
        get_cam_method("cam")(model, "conv2d_2")


def test_targets_pred_true_and_a_given_class():
    logits = torch.tensor([[0.1, 2.0, 0.3], [3.0, 0.0, 1.0]])
    assert resolve_targets(None, logits).tolist() == [1, 0]
    assert resolve_targets("pred", logits).tolist() == [1, 0]
    assert resolve_targets("true", logits, torch.tensor([2, 2])).tolist() == [2, 2]
    assert resolve_targets(2, logits).tolist() == [2, 2]
    assert resolve_targets([0, 1], logits).tolist() == [0, 1]
    with pytest.raises(InsightError, match="needs the images' labels"):
        resolve_targets("true", logits)
    with pytest.raises(InsightError, match="out of range"):
        resolve_targets(3, logits)
    with pytest.raises(InsightError, match="unknown target"):
        resolve_targets("banana", logits)


# ---------------------------------------------------------------- exactness


def test_cam_equals_the_class_weighted_sum_of_the_last_feature_maps(trained):
    model, ds, x = trained
    xb, targets = x[:16], ds.val_y[:16]
    result = get_cam_method("cam")(model)(xb, "true", targets)
    names = [n for n, _ in model.layers.named_children()]
    with torch.no_grad():
        maps = model.layers[:names.index("batchnorm_3") + 1](xb)  # (16, 128, 8, 8): what GAP averages
        linear = model.layers.output.linear
        direct = torch.einsum("bk,bkhw->bhw", linear.weight[targets], maps)
        logits = model(xb)
    assert result.layer == "batchnorm_3"
    torch.testing.assert_close(result.raw, direct, rtol=1e-4, atol=1e-4)
    # CAM is exact: its spatial mean plus the bias is the logit itself.
    torch.testing.assert_close(direct.mean(dim=(1, 2)) + linear.bias[targets],
                               logits.gather(1, targets[:, None])[:, 0], rtol=1e-4, atol=1e-4)
    # Display = ReLU, bilinear upsampling, scaling to [0, 1].
    up = F.interpolate(direct.clamp_min(0)[:, None], size=(32, 32), mode="bilinear", align_corners=False)[:, 0]
    low, high = up.amin(dim=(1, 2), keepdim=True), up.amax(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(result.heatmaps, (up - low) / (high - low), rtol=1e-4, atol=1e-5)


def test_gradcam_at_the_gap_input_equals_cam(trained):
    """Grad-CAM's weights there are the output weights / (h*w): the same map once scaled."""
    model, ds, x = trained
    cam = explain(model, x[:16], "cam", target="true", labels=ds.val_y[:16])
    grad = explain(model, x[:16], "gradcam", layer="batchnorm_3", target="true", labels=ds.val_y[:16])
    torch.testing.assert_close(cam, grad, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- the pointing game


@pytest.mark.parametrize("method", ["cam", "gradcam"])
def test_pointing_game_on_shapes_beats_the_random_baseline(trained, method):
    model, ds, x = trained
    heat = torch.cat([explain(model, x[i:i + 600], method, target="true", labels=ds.val_y[i:i + 600])
                      for i in range(0, len(x), 600)])
    hits = pointing_hits(heat, ds.val_boxes).float().mean().item()
    boxes = ds.val_boxes
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / (32 * 32)).mean().item()
    random_maps = torch.rand(heat.shape, generator=torch.Generator().manual_seed(0))
    baseline = pointing_hits(random_maps, boxes).float().mean().item()
    print(f"pointing game {method}: {hits:.3f} of {len(heat)} val images; random {baseline:.3f}; "
          f"box area {area:.3f}")
    assert abs(baseline - area) < 0.05  # a random point hits at about the box's share of the image
    assert hits >= 0.8 and hits > baseline + 0.3


# ---------------------------------------------------------------- hooks


def test_fifty_explanations_leave_no_hooks_and_restore_train_mode(trained):
    model, ds, x = trained
    model = copy.deepcopy(model).train()  # the shared model stays in eval mode whatever happens
    methods = list(CAM_METHODS)
    for i in range(50):
        heat = explain(model, x[i:i + 2], methods[i % len(methods)], target="true", labels=ds.val_y[i:i + 2])
        assert heat.shape == (2, 32, 32)
    for bad in (dict(target=99), dict(target="true")):  # errors raised while the hook is in place
        with pytest.raises(InsightError):
            explain(model, x[:2], "gradcam", **bad)
    assert hook_count(model) == 0
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
    assert model.training
    assert all(p.grad is None for p in model.parameters())  # autograd.grad: no .grad left behind


# ---------------------------------------------------------------- display


def test_overlay_is_a_pure_blend_of_image_and_colour_map():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    heat = rng.random((6, 5))
    before = image.copy(), heat.copy()
    out = overlay(image, heat, alpha=0.4, cmap="viridis")
    assert out.dtype == np.uint8 and out.shape == (6, 5, 3)
    expected = np.round(0.6 * image + 0.4 * colorize(heat, "viridis").astype(float))
    assert np.abs(out.astype(int) - expected).max() <= 1
    assert np.array_equal(image, before[0]) and np.array_equal(heat, before[1])
    assert np.array_equal(overlay(image, heat, alpha=0.0), image)
    assert np.array_equal(overlay(image, heat, alpha=1.0, cmap="jet"), colorize(heat, "jet"))
    grey = overlay(image[:, :, 0], heat, alpha=0.0)
    assert grey.shape == (6, 5, 3) and np.array_equal(grey[:, :, 1], image[:, :, 0])


def test_colour_maps_and_refusals():
    assert colorize(np.array([[0.0, 1.0]]), "jet").tolist() == [[[0, 0, 128], [128, 0, 0]]]
    assert colorize(np.array([[0.0, 1.0]]), "gray").tolist() == [[[0, 0, 0], [255, 255, 255]]]
    for cmap in COLORMAPS:
        assert colorize(np.linspace(0, 1, 11)[None], cmap).shape == (1, 11, 3)
    with pytest.raises(InsightError, match="jet"):
        colorize(np.zeros((2, 2)), "rainbow")
    with pytest.raises(InsightError, match="differ in size"):
        overlay(np.zeros((4, 4, 3), np.uint8), np.zeros((3, 4)))
    with pytest.raises(InsightError, match="alpha"):
        overlay(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4)), alpha=2)


# ---------------------------------------------------------------- the command line


def _image_folder(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(folder / "wide.png")
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(folder / "grey.jpg")
    (folder / "notes.txt").write_text("not an image")
    return folder, {"wide": (40, 50), "grey": (64, 64)}


def test_cli_explain_writes_a_heatmap_and_an_overlay_per_image(gap_cam_run, tmp_path, capsys):
    folder, sizes = _image_folder(tmp_path)
    out = tmp_path / "out"
    code = main(["explain", gap_cam_run.run_id, "--runs-dir", str(gap_cam_run.runs_dir), "--images", str(folder),
                 "--method", "cam", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    for stem, (h, w) in sizes.items():
        heat = np.load(out / f"{stem}.npy")
        assert heat.dtype == np.float32 and heat.shape == (h, w)
        assert np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1
        with Image.open(out / f"{stem}.png") as png:
            assert png.size == (w, h) and png.mode == "RGB"
        assert f"{stem}: predicted" in printed and "%" in printed
    assert not (out / "notes.npy").exists()


def test_cli_explain_dataset_images_true_target_and_epoch_zero(gap_cam_run, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["explain", str(gap_cam_run.run_dir), "--images", "dataset:shapes", "--method", "gradcam++",
                 "--target", "true", "--epoch", "0", "--out", str(out)])
    assert code == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if ": predicted" in line]
    assert len(lines) == 8 and all("true" in line for line in lines)
    assert len(list(out.glob("*.npy"))) == 8 and np.load(next(out.glob("*.npy"))).shape == (32, 32)


@pytest.mark.parametrize("argv, message", [
    (["nope-run", "--method", "gradcam"], "no run 'nope-run'"),
    (["{run}", "--method", "gradcam-9000"], "unknown CAM method"),
    (["{run}", "--method", "gradcam", "--epoch", "7"], "no weights saved for epoch 7"),
    (["{run}", "--method", "gradcam", "--target", "true"], "needs labelled images"),
])
def test_cli_explain_bad_input_exits_2_with_one_line(gap_cam_run, tmp_path, capsys, argv, message):
    folder, _ = _image_folder(tmp_path)
    argv = [a.format(run=gap_cam_run.run_id) for a in argv]
    code = main(["explain", *argv, "--runs-dir", str(gap_cam_run.runs_dir), "--images", str(folder),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
