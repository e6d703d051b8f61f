"""What the Explain, Train and Compare pages compute, headless: the validation pass, the
confusion matrix and the surest mistakes, every conv layer's maps and the first filters,
one image by every CAM method, uploads, checkpoints, map frames, CAM strips, and the figures."""

from __future__ import annotations

import base64
import io
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from lab.data import load_dataset
from lab.insight.activations import MAX_MAPS, TILE_SIDE, conv_feature_maps, filters_grid, maps_grid
from lab.insight.cam import CAM_METHODS
from lab.insight.errors import InsightError
from lab.insight.hooks import hook_count
from lab.insight.load import load_run_model
from lab.insight.maps import map_frames, mapped_epochs
from lab.insight.overlay import overlay_samples
from lab.insight.probe import load_cams, load_probe
from lab.insight.tools import dataset_image, explain_methods, upload_image
from lab.insight.validation import Evaluation, confident_mistakes, confusion_matrix, evaluate
from lab.insight.worker import EmbeddingWorker
from lab.model.presets import get_preset
from lab.model.spec import analyze, build_model
from lab.plots.images import display_scale
from lab.plots.insight import WRONG, confusion_figure, feature_space_figure, knn_figure, probability_figure, spread
from lab.runs.layout import RunLayout
from lab.runs.store import RunStore
from lab.runs.view import RunInfo


@pytest.fixture(scope="module")
def trained(gap_cam_run):
    """The run's best model, its input statistics and the shapes dataset."""
    model, _, stats = load_run_model(gap_cam_run.run_dir, "best")
    return model, stats, load_dataset("shapes")


@pytest.fixture(scope="module")
def evaluation(trained) -> Evaluation:
    model, stats, ds = trained
    return evaluate(model, stats, ds.val_x, ds.val_y)


def png_bytes(size=(40, 30), color=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------- the validation set


def test_confusion_matrix_by_hand():
    labels, preds = np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 0, 2])
    assert confusion_matrix(labels, preds, 3).tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]


def test_evaluation_agrees_with_training_and_the_matrix_counts_every_image(gap_cam_run, trained, evaluation):
    _, _, ds = trained
    best = max(gap_cam_run.result.history, key=lambda m: m["val_acc"])
    accuracy = (evaluation.preds == evaluation.labels).mean()
    assert accuracy == pytest.approx(best["val_acc"], abs=1e-3)  # the trainer's own val pass
    assert evaluation.probs.shape == (len(ds.val_y), 8) and np.allclose(evaluation.probs.sum(1), 1, atol=1e-4)
    matrix = confusion_matrix(evaluation.labels, evaluation.preds, 8)
    assert matrix.sum() == len(ds.val_y)
    assert matrix.sum(1).tolist() == np.bincount(ds.val_y.numpy(), minlength=8).tolist()  # rows: true class
    assert np.trace(matrix) == (evaluation.preds == evaluation.labels).sum()


def test_confident_mistakes_are_wrong_and_surest_first(evaluation):
    picked = confident_mistakes(evaluation, 12)
    wrong = np.flatnonzero(evaluation.preds != evaluation.labels)
    assert 0 < len(picked) == min(12, len(wrong))
    assert (evaluation.preds[picked] != evaluation.labels[picked]).all()
    confidence = evaluation.confidence[picked]
    assert (np.diff(confidence) <= 0).all() and confidence[0] == evaluation.confidence[wrong].max()
    right = Evaluation(np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]], np.float32))
    assert confident_mistakes(right, 5).tolist() == []
    mixed = Evaluation(np.array([0, 0, 1]), np.array([[0.4, 0.6], [0.1, 0.9], [0.3, 0.7]], np.float32))
    assert confident_mistakes(mixed, 5).tolist() == [1, 0]


# ---------------------------------------------------------------- inside the network


@pytest.mark.parametrize("preset", ["gap_cam", "mini_resnet", "lenet5"])
def test_feature_maps_have_the_shapes_of_the_spec_summary_and_leave_no_hooks(preset):
    torch.manual_seed(0)
    spec = get_preset(preset)
    model = build_model(spec).train()
    layers = conv_feature_maps(model, torch.randn(1, *spec["input"]))
    expected = {row.name: row.out_shape for row in analyze(spec).rows if row.layer["type"] in ("conv2d", "residual")}
    assert [layer.name for layer in layers] == list(expected)
    for layer in layers:
        channels, h, w = expected[layer.name]
        assert layer.channels == channels and layer.maps.shape == (min(channels, MAX_MAPS), h, w)
    assert model.training and hook_count(model) == 0


def test_maps_and_filters_become_grids_of_tiles(trained):
    model, stats, ds = trained
    layers = conv_feature_maps(model, stats.normalize(ds.val_x[:1]))
    deepest = layers[-1].maps  # (16, 8, 8)
    side = 8 * display_scale(8, TILE_SIDE) + 2
    assert maps_grid(deepest).shape == (2 * side + 2, 8 * side + 2, 3)
    filters = filters_grid(model)  # 32 kernels of 3x3, RGB
    side = 3 * display_scale(3, TILE_SIDE) + 2
    assert filters.shape == (4 * side + 2, 8 * side + 2, 3) and filters.dtype == np.uint8
    grey = filters_grid(build_model(get_preset("lenet5")))
    assert (grey[..., 0] == grey[..., 1]).all()  # one input channel: grey kernels
    dead = maps_grid(np.zeros((3, 4, 4), np.float32))  # not stretched to bright: viridis' darkest colour
    assert dead[2, 2].tolist() == [0x44, 0x01, 0x54]


# ---------------------------------------------------------------- one image, every method


def test_every_method_explains_one_image_at_its_display_size(trained):
    model, stats, ds = trained
    item = dataset_image(ds, 5, stats, scale=4)
    assert item.original.shape == (128, 128, 3) and item.label == int(ds.val_y[5])
    answer = explain_methods(model, stats, item, "true")
    assert list(answer.heatmaps) == list(CAM_METHODS) and not answer.missing
    assert answer.target == item.label and answer.probs.sum() == pytest.approx(1, abs=1e-4)
    for heat in answer.heatmaps.values():
        assert heat.shape == (128, 128) and 0 <= heat.min() and heat.max() <= 1
    other = explain_methods(model, stats, item, "3")
    assert other.target == 3 and not np.allclose(other.heatmaps["gradcam"], answer.heatmaps["gradcam"])
    assert hook_count(model) == 0


def test_cam_is_missing_with_a_reason_on_a_net_without_global_average_pooling(trained):
    _, stats, ds = trained
    model = build_model(get_preset("tiny_vgg"), stats.shape, len(stats.classes)).eval()
    answer = explain_methods(model, stats, dataset_image(ds, 0, stats))
    assert "global_avg_pool" in answer.missing["cam"] and set(answer.heatmaps) == set(CAM_METHODS) - {"cam"}


def test_an_upload_is_read_like_a_file_and_a_bad_one_says_what_to_upload(trained):
    _, stats, _ = trained
    item = upload_image("photo.png", png_bytes((400, 300)), stats, display_side=160)
    assert item.model_input.shape == (3, 32, 32) and item.model_input.dtype == torch.uint8
    assert item.original.shape == (120, 160, 3) and item.label is None
    assert tuple(item.model_input[:, 0, 0].tolist()) == (200, 30, 30)
    with pytest.raises(InsightError, match="broken.png: corrupt or unreadable image. Upload an image file"):
        upload_image("broken.png", b"not a picture", stats)
    with pytest.raises(InsightError, match="notes.txt: not an image.*png"):
        upload_image("notes.txt", b"hello", stats)
    with pytest.raises(InsightError, match="larger than"):
        upload_image("huge.png", png_bytes((5000, 10)), stats)


def test_checkpoint_choices_are_what_can_be_opened(gap_cam_run, tmp_path):
    run = RunStore(gap_cam_run.runs_dir).get(gap_cam_run.run_id)
    assert run.checkpoints == ["best", "last", "0", "1", "2", "3"]
    assert all(run.checkpoint(choice).is_file() for choice in run.checkpoints)
    assert RunInfo("empty", tmp_path, {}, {}).checkpoints == []


# ---------------------------------------------------------------- feature space and CAM strip


def test_map_frames_make_pca_maps_and_wait_for_heavy_ones(gap_cam_run, tmp_path):
    run = RunLayout(tmp_path / "run")
    shutil.copytree(RunLayout(gap_cam_run.run_dir).probe_dir, run.probe_dir)
    assert mapped_epochs(run, "pca") == []
    frames = map_frames(run, "pca", [3, 0, 1, 2])
    assert [f.epoch for f in frames] == [0, 1, 2, 3] and mapped_epochs(run, "pca") == [0, 1, 2, 3]
    probe = load_probe(run, 3)
    assert frames[-1].points.shape == (400, 2) and np.array_equal(frames[-1].preds, probe.preds)
    assert all(np.array_equal(f.indices, probe.indices) for f in frames)
    with pytest.raises(InsightError, match="not made yet"):
        map_frames(run, "tsne", [0])


def test_the_worker_says_which_maps_are_pending(gap_cam_run, tmp_path):
    run = RunLayout(tmp_path / "run")
    run.probe_dir.mkdir(parents=True)
    shutil.copy(RunLayout(gap_cam_run.run_dir).probe(0), run.probe(0))
    worker = EmbeddingWorker(processes=False)
    try:
        worker.request(run, "tsne")
        assert worker.pending(run, "t-SNE") and not worker.pending(run, "pca")
        assert worker.wait(timeout=120)
        assert not worker.pending(run, "tsne") and mapped_epochs(run, "tsne") == [0]
    finally:
        worker.close()


def test_cam_samples_overlay_their_images_enlarged(gap_cam_run):
    cams = load_cams(RunLayout(gap_cam_run.run_dir), 3)
    images = load_dataset("shapes").val_x[cams.indices]
    pictures = overlay_samples(images, cams.heatmaps, alpha=0.5, scale=3)
    assert len(pictures) == 8 and all(p.shape == (96, 96, 3) and p.dtype == np.uint8 for p in pictures)
    plain = overlay_samples(images[:1], cams.heatmaps[:1], alpha=0.0, scale=3)[0]
    assert np.array_equal(plain[::3, ::3], images[0].permute(1, 2, 0).numpy())  # alpha 0: the image itself


# ---------------------------------------------------------------- figures


def test_the_feature_space_animates_every_epoch_and_marks_mistakes(gap_cam_run, tmp_path):
    run = RunLayout(tmp_path / "run")
    shutil.copytree(RunLayout(gap_cam_run.run_dir).probe_dir, run.probe_dir)
    frames = map_frames(run, "pca", [0, 1, 2, 3])
    classes = [f"c{i}" for i in range(8)]
    fig = feature_space_figure(frames, classes, "pca")
    assert [f.name for f in fig.frames] == ["0", "1", "2", "3"]
    assert fig.layout.sliders[0].active == 3 and fig.layout.updatemenus[0].buttons[0].label == "▶ Play"
    last = frames[-1]
    shown = fig.data[:8]  # one trace per class; the legend-only traces follow
    assert sum(len(t.x) for t in shown) == 400
    crosses = sum(int((np.frombuffer(base64.b64decode(t.marker.symbol["bdata"]), np.uint8) == WRONG).sum())
                  for t in shown)
    assert crosses == int((last.preds != last.labels).sum()) > 0
    assert "epoch 3" in fig.layout.title.text and "k-NN accuracy" in fig.layout.title.text
    assert all(len(frame.data) == 8 for frame in fig.frames)
    single = feature_space_figure(frames[1:2], classes, "tsne")
    assert not single.frames and not single.layout.sliders and "t-SNE" in single.layout.title.text
    with pytest.raises(ValueError):
        feature_space_figure([], classes)


def test_spread_keeps_the_ends():
    assert spread([0, 1, 2], 5) == [0, 1, 2]
    picked = spread(list(range(101)), 10)
    assert len(picked) == 10 and picked[0] == 0 and picked[-1] == 100


def test_small_figures_carry_their_numbers():
    matrix = np.array([[5, 1], [2, 7]])
    confusion = confusion_figure(matrix, ["a", "b"])
    assert np.array_equal(np.asarray(confusion.data[0].z), matrix)
    assert "15 validation images · 80.0% right" in confusion.layout.title.text
    bars = probability_figure(np.array([0.1, 0.7, 0.2]), ["a", "b", "c"], label=2).data[0]
    assert list(bars.y) == ["a", "b", "c"] and bars.marker.color[1] != bars.marker.color[2] != bars.marker.color[0]
    knn = knn_figure([{"epoch": 0, "knn_acc": 0.2}, {"epoch": 1, "knn_acc": 0.8}]).data[0]
    assert list(knn.x) == [0, 1] and list(knn.y) == [0.2, 0.8]
