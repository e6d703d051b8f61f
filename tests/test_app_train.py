"""AppTest for the Augment and Train pages: widgets bound to the draft, runs started and re-attached."""

from __future__ import annotations

import base64
import time
from functools import partial

import pytest
from streamlit.testing.v1 import AppTest
from support.apptest import DETAILS, WAIT_S, button, charts, ok, page, tiny_draft

from lab.insight.worker import EmbeddingWorker
from lab.jobs import RunState
from lab.runs.layout import RunLayout
from lab.train.augment import AUGMENT_PRESETS
from lab.train.ranges import setting_ranges
from lab.ui import state
from lab.ui.state import default_draft, embedding_worker, job_manager
from lab.ui.train_view import outcome_text, progress_text

MAP_WAIT_S = 300  # likewise; t-SNE in the worker's child process shares a busy machine


pytestmark = pytest.mark.usefixtures("isolated_lab")  # tests/conftest.py


# ---------------------------------------------------------------- Augment


def test_augment_page_shows_switches_and_the_preview_grid():
    at = page("augment")
    ok(at)
    assert len(at.toggle) == 11  # every AugmentConfig key but mix_prob, which the mixing share slider sets
    assert len(at.image) == 5  # the originals and 4 random draws
    assert all(len(img.value) == 6 for img in at.image)
    assert at.selectbox(key="aug.preset").value == "none"


def test_a_preset_sets_the_switches_and_the_draft():
    at = page("augment")
    at.selectbox(key="aug.preset").select("cifar_standard").run()
    ok(at)
    on = {t.key.removeprefix("aug.on."): t.value for t in at.toggle}
    expected = {k: v > 0 for k, v in AUGMENT_PRESETS["cifar_standard"].to_dict().items() if k != "mix_prob"}
    assert on == expected
    assert at.session_state["draft"]["augment"] == {"preset": "cifar_standard"}


def test_changing_a_setting_makes_the_draft_custom_and_keeps_only_changed_keys():
    at = page("augment")
    at.toggle(key="aug.on.rotation").set_value(True).run()
    ok(at)
    assert at.session_state["draft"]["augment"] == {"rotation": 15.0}
    assert at.selectbox(key="aug.preset").value == "custom"
    at.toggle(key="aug.on.rotation").set_value(False).run()
    assert at.session_state["draft"]["augment"] == {"preset": "none"}


def test_mixup_shows_the_mixed_labels_under_the_preview():
    at = page("augment")
    originals, *draws = at.image
    assert all(not c for img in draws for c in img.captions)  # no mixing: no label under the draws
    at.toggle(key="aug.on.mixup").set_value(True).run()
    ok(at)
    originals, *draws = at.image
    captions = [c for img in draws for c in img.captions]
    assert len(captions) == 24 and any(" / " in c for c in captions)  # e.g. "circle 0.62 / star 0.38"
    assert all(c.split()[0] in set(originals.captions) for c in captions)


def test_redraw_changes_the_preview():
    at = page("augment", draft={**default_draft(), "augment": {"preset": "strong"}})
    before = [img.value for img in at.image[1:]]
    button(at, "Redraw").click().run()
    ok(at)
    assert at.session_state["aug.seed"] == 1
    assert [img.value for img in at.image[1:]] != before


# ---------------------------------------------------------------- Train


def wait_for_outcome(at: AppTest) -> AppTest:
    """Rerun the page (as the fragment would) until the run has ended."""
    deadline = time.monotonic() + WAIT_S
    while not (at.success or at.warning or at.error) and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
    return at


def test_train_page_renders_the_default_draft():
    at = page("train")
    ok(at)
    assert at.number_input(key="train.epochs").value == default_draft()["train"]["epochs"]
    assert at.selectbox(key="train.optimizer").value == default_draft()["train"]["optimizer"]
    assert not button(at, "Start training").disabled
    assert at.text_input(key="train.name").placeholder == "gap_cam-shapes-1"


def test_start_trains_to_a_finished_run_with_curves_and_a_recent_row():
    at = page("train", draft=tiny_draft(), owner="kim", session=DETAILS)
    button(at, "Start training").click().run()
    ok(at)
    run_id = at.query_params["run"]
    assert at.session_state["train.my_runs"] == [run_id]
    at = wait_for_outcome(at)
    ok(at)
    assert "Finished" in at.success[0].value and "best validation accuracy" in at.success[0].value
    assert at.subheader[0].value == "Run tiny-digits-1"
    state = job_manager().state(run_id)
    assert state.status == "finished" and state.owner == "kim" and state.epochs == 1
    assert at.get("plotly_chart")  # batch loss, accuracy and loss curves
    assert at.button(key=f"open-{run_id}").disabled  # the row of the attached run
    feature_space = charts(at)["Feature space (PCA)"]  # the insight sections, from the run folder
    assert [f["name"] for f in feature_space["frames"]] == ["0", "1"]  # untrained, and after epoch 1
    assert len(at.image[0].captions) == 10  # the CAM strip: one digit of each class


def test_a_live_run_draws_its_batch_loss_as_an_svg_and_an_ended_one_as_a_chart():
    at = page("train", draft=tiny_draft(epochs=50))
    button(at, "Start training").click().run()
    run_id = at.query_params["run"]
    try:
        deadline = time.monotonic() + WAIT_S
        while not job_manager().state(run_id).batch_losses and time.monotonic() < deadline:
            time.sleep(0.2)
        at.run()
        ok(at)
        assert job_manager().state(run_id).live
        svgs = [url for image in at.image for url in image.value if url.startswith("data:image/svg+xml")]
        assert len(svgs) == 1 and "Training loss per batch" in base64.b64decode(svgs[0].split(",", 1)[1]).decode()
        assert "Training loss per batch" not in charts(at)  # no plotly redraw every second
    finally:
        job_manager().stop(run_id)
    job_manager().wait(run_id, WAIT_S)
    at.run()
    assert "Training loss per batch" in charts(at)


def test_a_reload_reattaches_the_run_from_the_url():
    first = page("train", draft=tiny_draft())
    button(first, "Start training").click().run()
    run_id = first.query_params["run"]
    job_manager().wait(run_id, WAIT_S)
    reloaded = page("train", run=run_id)  # a new session: only the URL knows the run
    ok(reloaded)
    assert reloaded.session_state["train.current"] == run_id
    assert "Finished" in reloaded.success[0].value


def test_open_in_recent_runs_attaches_that_run():
    at = page("train", draft=tiny_draft())
    button(at, "Start training").click().run()
    run_id = at.query_params["run"]
    job_manager().wait(run_id, WAIT_S)
    fresh = page("train")
    assert "run" not in fresh.query_params and not fresh.success
    fresh.button(key=f"open-{run_id}").click().run()
    ok(fresh)
    assert fresh.query_params["run"] == run_id and "Finished" in fresh.success[0].value


@pytest.mark.parametrize("run_id", ["20990101-000000-abcdef", "../../etc", "/etc/passwd", ".."])
def test_an_unknown_run_in_the_url_is_a_warning_not_a_crash(run_id):
    at = page("train", run=run_id)  # a typo, or a path someone hopes the page will read
    ok(at)
    assert "no run" in at.warning[0].value and "run" not in at.query_params


def test_an_out_of_range_setting_is_an_error_and_blocks_start():
    at = page("train", draft=tiny_draft(lr=0.0))
    ok(at)
    assert "lr must be" in at.error[0].value
    assert button(at, "Start training").disabled


def test_an_invalid_spec_ends_its_run_failed_with_the_reason():
    bad = tiny_draft()
    bad["spec"] = {"name": "bad", "layers": [{"type": "conv2d", "filters": 0}]}
    at = page("train", draft=bad)
    button(at, "Start training").click().run()  # the worker builds the model, not the page
    ok(at)
    run_id = at.query_params["run"]
    assert job_manager().wait(run_id, WAIT_S).status == "failed"
    at.run()
    ok(at)
    assert "Failed" in at.error[0].value and "filters must be at least 1" in at.error[0].value


def test_every_number_box_takes_its_bounds_from_the_settings_table(monkeypatch):
    monkeypatch.setenv("LAB_MAX_EPOCHS", "7")  # a server's limit is the bound where one applies
    at = page("train")
    ok(at)
    ranges = setting_ranges()
    boxes = {box.key.removeprefix("train."): box for box in at.number_input if box.key != "train.repeats"}  # no setting
    assert set(boxes) == {"epochs", "batch_size", "train_limit", "seed", "lr", "weight_decay", "label_smoothing",
                          "image_size"}
    for name, box in boxes.items():
        assert (box.min, box.max, box.step) == (ranges[name].low, ranges[name].high, ranges[name].step), name
    assert boxes["epochs"].max == 7


def test_a_setting_changed_on_the_page_goes_into_the_draft():
    at = page("train", draft=tiny_draft())
    at.number_input(key="train.epochs").set_value(3).run()
    at.selectbox(key="train.schedule").select("cosine").run()
    ok(at)
    assert at.session_state["draft"]["train"]["epochs"] == 3
    assert at.session_state["draft"]["train"]["schedule"] == "cosine"


def test_the_feature_space_and_cam_strip_of_a_trained_run(tmp_path, copy_gap_cam_run):
    run_id = copy_gap_cam_run(tmp_path / "runs")
    at = page("train", run=run_id, session=DETAILS)
    ok(at)
    assert [s.value for s in at.subheader][1:3] == ["Feature space", "Where it looks"]
    figures = charts(at)
    space = figures["Feature space (PCA)"]
    assert [f["name"] for f in space["frames"]] == ["0", "1", "2", "3"] and space["layout"]["sliders"]
    assert "k-NN accuracy" in space["layout"]["title"]["text"] and "k-NN accuracy per epoch" in figures
    strip = at.image[0]
    assert len(strip.captions) == 8 and all(" → " in c for c in strip.captions)
    assert any("epoch 3:" in c.value for c in at.caption)
    at.slider(key="train.insight.alpha").set_value(0.9).run()
    assert ok(at).image[0].value != strip.value  # more heatmap, other pictures
    at.selectbox(key="train.insight.cam_epoch").set_value(0).run()
    assert any("epoch 0:" in c.value for c in at.caption)


def test_t_sne_is_made_off_the_page_and_shown_when_ready(tmp_path, copy_gap_cam_run, monkeypatch):
    # The server's worker runs t-SNE at the lowest priority (training first); here nothing trains,
    # and at nice 19 a test waits for whatever else the machine is doing (90 s seen on 2 busy cores).
    monkeypatch.setattr(state, "EmbeddingWorker", partial(EmbeddingWorker, nice=0))
    run_id = copy_gap_cam_run(tmp_path / "runs")
    run = RunLayout(tmp_path / "runs" / run_id)
    for epoch in (2, 3):  # two epochs are enough to show the chain; t-SNE costs seconds an epoch
        run.probe(epoch).unlink()
    at = page("train", run=run_id, session=DETAILS)
    at.radio(key="train.insight.method").set_value("tsne").run()
    ok(at)
    assert any(c.value.startswith("computing… the t-SNE maps") for c in at.caption)
    assert embedding_worker().pending(run, "tsne")  # asked for, not waited for
    deadline = time.monotonic() + MAP_WAIT_S
    while any(c.value.startswith("computing…") for c in at.caption) and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()  # as the fragment polls; epochs already made are drawn meanwhile
    ok(at)
    assert [f["name"] for f in charts(at)["Feature space (t-SNE)"]["frames"]] == ["0", "1"]


@pytest.mark.parametrize("state, expected", [
    (RunState("r", "queued", queue_position=3), "Queued: #3 in the queue"),
    (RunState("r", "queued", queue_position=1), "Queued: next to start"),
    (RunState("r", "queued"), "Starting: moving the data and the model to the device…"),
    (RunState("r", "running", epoch=1, epochs=4, batches=187), "Epoch 1/4: first batches…"),
    (RunState("r", "running", epoch=2, epochs=4, batch=30, batches=187, images_per_sec=1234.5, eta_seconds=65),
     "Epoch 2/4 · batch 30/187 · 1,234 images/s · about 1:05 left"),
])
def test_progress_text_says_where_a_live_run_is(state, expected):
    assert progress_text(state) == expected


def test_outcome_text_names_the_best_epoch_and_the_message():
    metrics = [{"epoch": 1, "val_acc": 0.61}, {"epoch": 2, "val_acc": 0.934}, {"epoch": 3, "val_acc": 0.9}]
    state = RunState("r", "stopped", "stopped by request during epoch 3", epochs=5, metrics=metrics)
    assert outcome_text(state) == ("**Stopped**: best validation accuracy 93.4% at epoch 2 of 5"
                                   " — stopped by request during epoch 3")
    assert "no epoch completed" in outcome_text(RunState("r", "failed", "ValueError: x", epochs=5))
