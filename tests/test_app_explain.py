"""AppTest for the Explain page: an empty lab says where to start; a trained run shows its
probabilities, every CAM method, its layers and its surest mistakes; ``?run=`` preselects;
a bad upload is one error line."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest
from support.apptest import charts, ok

from lab.cli import run_training
from lab.insight.cam import CAM_METHODS
from lab.train.engine import TrainConfig

PAGE = str(Path(__file__).resolve().parent.parent / "app_pages" / "explain.py")
WAIT_S = 90  # a guard against hanging, never a measure of speed
SHAPES = ["circle", "square", "triangle", "diamond", "ring", "plus", "cross", "star"]
MLP = {"name": "mlp", "layers": [{"type": "flatten"}, {"type": "dense", "units": 16}, {"type": "dense", "units": 10}]}


@pytest.fixture
def runs_dir(isolated_lab) -> Path:
    """The runs folder the page reads: the isolated lab's (tests/conftest.py), empty."""
    return isolated_lab.root


def page(**query) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=WAIT_S)
    at.query_params.update(query)
    return ok(at.run())


def captions(at: AppTest) -> list[str]:
    """Captions under every image on the page."""
    return [c for img in at.image for c in img.captions]


def test_an_empty_lab_says_where_to_start(runs_dir):
    at = page()
    assert "No trained runs yet" in at.info[0].value and "Train page" in at.info[0].value
    assert not at.selectbox and not at.image


def test_a_trained_run_is_explained_by_every_method_layer_and_mistake(runs_dir, copy_gap_cam_run):
    run_id = copy_gap_cam_run(runs_dir)
    at = page()
    assert at.selectbox(key="explain.run").value == run_id
    assert at.selectbox(key="explain.checkpoint").options[:2] == ["best (epoch 3)", "last"]
    figures = charts(at)
    bars = figures["Class probabilities"]["data"][0]
    assert bars["y"] == SHAPES
    titles = [method.title for method in CAM_METHODS.values()]
    assert [c for c in captions(at) if c in titles] == titles  # every method, CAM included (a GAP net)
    assert [c.split(":")[0] for c in captions(at) if c.startswith("conv2d_")] == ["conv2d_1", "conv2d_2", "conv2d_3"]
    assert any(c.startswith("First conv layer: 32 filters of 3×3") for c in captions(at))
    confusion = figures["Confusion matrix"]
    assert "2,400 validation images" in confusion["layout"]["title"]["text"]
    gallery = [b for b in at.button if b.key and b.key.startswith("explain.pick.")]
    assert len(gallery) == 12
    image_caption = captions(at)[0]
    assert image_caption.startswith("true: ") and "predicted: " in image_caption


def test_a_gallery_mistake_is_explained_with_its_true_class(runs_dir, copy_gap_cam_run):
    copy_gap_cam_run(runs_dir)
    at = page()
    first = next(b for b in at.button if b.key and b.key.startswith("explain.pick."))
    index = int(first.key.rsplit(".", 1)[1])
    first.click().run()
    ok(at)
    assert at.radio(key="explain.source").value == "mistake" and at.selectbox(key="explain.mistake").value == index
    true, predicted = (part.split(": ")[1] for part in captions(at)[0].split(" · "))
    assert true != predicted.split(" (")[0]
    at.selectbox(key="explain.target").set_value("true").run()
    assert any(f"Evidence for **{true}**" in c.value for c in ok(at).caption)
    at.selectbox(key="explain.target").set_value("3").run()
    assert any("Evidence for **diamond**" in c.value for c in ok(at).caption)


def test_the_url_preselects_a_run_and_an_unknown_one_is_a_warning(runs_dir, copy_gap_cam_run):
    run_id = copy_gap_cam_run(runs_dir)
    other = copy_gap_cam_run(runs_dir, "20990101-000000-second")
    at = page(run=run_id)
    assert at.selectbox(key="explain.run").value == run_id  # not the newest, which is listed first
    at.selectbox(key="explain.run").set_value(other).run()
    assert ok(at).query_params["run"] == other
    at = page(run="20990101-000000-nosuch")
    assert "no run '20990101-000000-nosuch'" in at.warning[0].value
    at = page(run="../" + run_id)  # a path out of the runs dir is no run at all
    assert "no run" in at.warning[0].value


def png(size=(48, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (250, 250, 250)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_upload_is_explained_and_a_bad_one_is_an_error_line(runs_dir, copy_gap_cam_run):
    copy_gap_cam_run(runs_dir)
    at = page()
    at.radio(key="explain.source").set_value("upload").run()
    assert not ok(at).error and not any(c == "Grad-CAM" for c in captions(at))
    at.file_uploader(key="explain.upload").set_value(("broken.png", b"not an image at all", "image/png")).run()
    assert "broken.png: corrupt or unreadable image" in ok(at).error[0].value
    assert "Upload an image file" in at.error[0].value
    at.file_uploader(key="explain.upload").set_value(("white.png", png(), "image/png")).run()
    assert not ok(at).error
    assert captions(at)[0].startswith("predicted: ")  # an upload has no true class
    assert not any(o.startswith("the true class") for o in at.selectbox(key="explain.target").options)
    assert sum(c == "Grad-CAM" for c in captions(at)) == 1


def test_a_net_without_convolutions_says_why_there_is_nothing_to_see(runs_dir):
    config = TrainConfig.from_dict(dict(spec=MLP, dataset="digits", epochs=1, batch_size=128, device="cpu",
                                        train_limit=300, probe_size=50))
    run_training(config, runs_dir, runs_dir.parent / "data")
    at = page()
    assert not at.error and "Class probabilities" in charts(at)
    missing = [c.value for c in at.caption if c.value.startswith("Not available:")]
    assert len(missing) == len(CAM_METHODS)  # CAM, Grad-CAM ... all need feature maps
    assert any("no convolution layer" in c.value for c in at.caption)


EXPORT_LABELS = ["PyTorch code + training loop", "Config JSON", "Report (best)", "Weights (best)", "Weights (last)",
                 "ONNX (best)"]


def test_a_finished_run_offers_its_downloads(runs_dir, copy_gap_cam_run):
    copy_gap_cam_run(runs_dir)
    at = page()
    buttons = [b for b in at.download_button if b.key.startswith("export.")]
    assert [b.label for b in buttons] == EXPORT_LABELS
    assert [b.key for b in buttons] == ["export.code.best", "export.config.best", "export.report.best",
                                        "export.weights.best", "export.weights.last", "export.onnx.best"]
    assert not any(b.disabled for b in buttons)
    assert all(b.proto.ignore_rerun for b in buttons)  # a click downloads; the page does not run again
    assert "weights_only=True" in at.download_button(key="export.weights.best").help
    at.selectbox(key="explain.checkpoint").set_value("last").run()
    assert at.download_button(key="export.onnx.last").label == "ONNX (last)"


def test_a_run_without_its_last_checkpoint_says_why_that_download_waits(runs_dir, copy_gap_cam_run):
    run_id = copy_gap_cam_run(runs_dir)
    (runs_dir / run_id / "last.pt").unlink()
    at = page()
    last = at.download_button(key="export.weights.last")
    assert last.disabled and "when the run ends" in last.help
    assert not at.download_button(key="export.weights.best").disabled
