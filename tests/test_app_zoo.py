"""The model zoo and transfer learning on the pages, through Streamlit's AppTest: the Build page edits the new
blocks and a pretrained backbone like any layer and says what each preset and backbone is; the Train page's
transfer-learning settings reach the run and the run says what it loaded and froze; Home queues the
transfer-vs-scratch experiment as one sweep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from support.apptest import WAIT_S, button, ok, page, switch_page, tiny_draft
from support.runs import fake_run

from lab.model.layers import LAYER_TYPES
from lab.model.presets import get_preset
from lab.model.spec import summarize
from lab.runs.experiment import transfer_vs_scratch
from lab.ui.builder import CUSTOM_WIDGETS
from lab.ui.state import default_draft, job_manager

APP = str(Path(__file__).resolve().parents[1] / "app.py")
BACKBONE_NOTE = "efficientnet_lite0: images are resized to 224 and scaled to [-1, 1], as its weights expect"

pytestmark = pytest.mark.usefixtures("isolated_lab")  # tests/conftest.py


def app(draft: dict | None = None, lang: str = "") -> AppTest:
    """The whole app on its Home page (page links need the navigation), in the isolated lab."""
    at = AppTest.from_file(APP, default_timeout=WAIT_S)
    if draft is not None:
        at.session_state["draft"] = draft
    if lang:
        at.session_state["lang"] = lang
    return ok(at.run())


def build_page(draft: dict | None = None, lang: str = "") -> AppTest:
    return switch_page(app(draft, lang), "app_pages/build.py")


def widget(at: AppTest, kind: str, suffix: str):
    """The Build widget of one kind whose key ends with ``suffix`` (keys start with a version that changes)."""
    found = [w for w in at.get(kind) if w.key and w.key.endswith(suffix)]
    assert len(found) == 1, (suffix, [w.key for w in at.get(kind)])
    return found[0]


def expander(at: AppTest, position: int):
    return next(e for e in at.expander if e.label.startswith(f"{position}. "))


def params(at: AppTest) -> list[int]:
    """The Build table's parameter column."""
    return list(at.dataframe[0].value["params"])


def with_spec(layers: list[dict], **train) -> dict:
    d = default_draft()
    d.update(spec={"name": "zoo", "layers": layers}, preset=None)
    d["train"].update(train)
    return d


HEAD = [{"type": "global_avg_pool"}, {"type": "dense", "units": 10}]


# ---------------------------------------------------------------- Build


def test_a_backbone_added_goes_first_with_its_note_and_its_trainable_stages():
    at = build_page()
    at.selectbox(key="build.add_type").select("backbone")
    at.button(key="build.add").click().run()
    ok(at)
    layers = at.session_state["draft"]["spec"]["layers"]
    assert layers[0]["type"] == "backbone"  # where it may be, not after the old output layer
    assert at.dataframe[0].value.iloc[0]["output shape"] == "1280x7x7"
    assert BACKBONE_NOTE in [i.value for i in expander(at, 1).info]
    trainable = widget(at, "selectbox", ".0.trainable")
    assert trainable.options[:3] == ["none (frozen)", "all", "last 1 of 7 stages"]
    trainable.select(3).run()
    assert at.session_state["draft"]["spec"]["layers"][0]["trainable"] == 3
    widget(at, "selectbox", ".0.trainable").select("none").run()  # frozen: the word, not a missing value
    assert at.session_state["draft"]["spec"]["layers"][0]["trainable"] == "none"
    widget(at, "selectbox", ".0.weights").select("none").run()
    assert at.session_state["draft"]["spec"]["layers"][0]["weights"] == "none"
    assert not ok(at).error


def test_missing_imagenet_weights_are_shown_at_the_layer_with_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no torchvision weights cached here
    monkeypatch.setenv("LAB_MODELS_DIR", str(tmp_path / "models"))
    at = build_page(with_spec([{"type": "backbone", "model": "resnet18", "weights": "imagenet"}, *HEAD]))
    inline = expander(at, 1).error
    assert len(inline) == 1 and "no ImageNet weights for resnet18 on this machine" in inline[0].value
    assert "models --download resnet18" in inline[0].value and "weights to 'none'" in inline[0].value
    widget(at, "selectbox", ".0.weights").select("none").run()  # the way out it names: train from scratch
    assert not ok(at).error and at.dataframe[0].value.iloc[0]["output shape"] == "512x7x7"


def test_bool_choice_and_fraction_parameters_have_widgets_that_edit_the_layer():
    at = build_page(with_spec([{"type": "conv2d", "filters": 8}, {"type": "inception"},
                               {"type": "dense_block", "layers": 2, "growth_rate": 4}, {"type": "transition"}, *HEAD]))
    conv, inception = params(at)[:2]
    widget(at, "checkbox", ".0.bias").uncheck().run()
    assert at.session_state["draft"]["spec"]["layers"][0]["bias"] is False and params(at)[0] == conv - 8
    widget(at, "selectbox", ".1.wide_kernel").select("3x3").run()
    assert params(at)[1] == inception - 16 * (25 - 9) * 32  # wide_reduce x (5x5 - 3x3) x wide
    assert at.dataframe[0].value.iloc[3]["output shape"] == "132x16x16"  # 256 + 2 x 4 channels, halved
    widget(at, "number_input", ".3.compression").set_value(1.0).run()
    assert at.session_state["draft"]["spec"]["layers"][3]["compression"] == 1.0
    assert at.dataframe[0].value.iloc[3]["output shape"] == "264x16x16"
    assert not ok(at).error


def test_every_custom_parameter_of_the_registry_has_a_widget():
    custom = {name for kind in LAYER_TYPES.values() for name, p in kind.params.items() if p.kind == "custom"}
    assert custom and custom <= set(CUSTOM_WIDGETS)


def test_picking_a_mini_preset_shows_what_is_new_in_its_architecture():
    at = build_page()
    at.selectbox(key="build.preset").select("googlenet_mini").run()
    assert any(i.value.startswith("What was new (2014): the inception module") for i in ok(at).info)
    at.button(key="build.load_preset").click().run()
    figure = json.loads(ok(at).get("plotly_chart")[0].proto.spec)
    labels = [a["text"] for a in figure["layout"]["annotations"]]
    assert "inception_1 · 4 branches" in labels  # the architecture picture draws the block as one, named
    assert summarize(get_preset("googlenet_mini"), (3, 32, 32), 8).total_params == sum(at.dataframe[0].value["params"])


def test_a_reference_preset_over_the_limit_says_it_is_for_its_summary_table():
    at = build_page()
    at.selectbox(key="build.preset").select("vgg16").run()
    warning = next(w.value for w in ok(at).warning if w.value.startswith("For the summary table only"))
    assert "138,357,544 parameters at 3x224x224" in warning and "limit of 50,000,000" in warning


def test_a_size_is_labelled_by_what_it_sizes_in_korean():
    at = build_page(with_spec([{"type": "backbone", "weights": "none"}, {"type": "maxpool2d"},
                               {"type": "adaptive_avg_pool"}, *HEAD]), lang="ko")
    assert [widget(at, "number_input", f".{i}.size").label for i in range(3)] == ["입력 이미지 크기", "윈도우 크기",
                                                                                  "출력 크기"]


def test_the_build_page_sizes_the_model_at_the_drafts_image_size():
    at = build_page(with_spec([{"type": "conv2d", "filters": 4}, *HEAD], image_size=16))  # shapes: 32 px
    assert next(m.value for m in at.metric if m.label == "Input") == "3x16x16"
    assert at.dataframe[0].value.iloc[0]["output shape"] == "4x16x16"


# ---------------------------------------------------------------- Train


def test_transfer_settings_reach_the_queued_run(isolated_lab):
    store = isolated_lab
    source = fake_run(store, "source", [0.5])
    store.save_checkpoint(source, "best", {"model": {}, "epoch": 1})
    job_manager().pause()  # what Start queues stays queued: nothing trains
    at = page("train", draft=tiny_draft())
    assert at.selectbox(key="train.init_from").options == ["none: fresh weights", "source"]
    at.selectbox(key="train.init_from").select(source).run()
    at.multiselect(key="train.freeze").select("conv2d_1").run()
    at.number_input(key="train.image_size").set_value(32).run()
    assert [c.value for c in ok(at).caption if "on the device" in c.value] == [
        "Images of 1x8x8: 0.1 MB on the device for 1,797 images"]  # digits: never enlarged
    button(at, "Start training").click().run()
    config = store.get(ok(at).query_params["run"]).config
    assert (config["init_from"], config["freeze"], config["image_size"]) == (source, ["conv2d_1"], 32)


def test_a_start_run_that_is_not_here_blocks_start():
    d = tiny_draft()
    d["train"]["init_from"] = "20990101-000000-abcdef"  # from a share link of another lab, or deleted
    at = page("train", draft=d)
    assert "is not a finished run with saved weights in this lab" in ok(at).error[0].value
    assert button(at, "Start training").disabled


def test_a_run_started_from_another_says_what_it_loaded_and_froze():
    first = page("train", draft=tiny_draft(train_limit=256))
    button(first, "Start training").click().run()
    source = first.query_params["run"]
    assert job_manager().wait(source, WAIT_S).status == "finished"
    second = page("train", draft=tiny_draft(train_limit=256, init_from=source, freeze=["conv2d_1"]))
    button(second, "Start training").click().run()
    run_id = second.query_params["run"]
    assert job_manager().wait(run_id, WAIT_S).status == "finished"
    notes = [c.value for c in ok(page("train", run=run_id)).caption]
    assert any(n.startswith(f"Started from run {source} (its best weights, epoch 1); loaded: conv2d\\_1, output")
               for n in notes), notes
    assert any(n.startswith("Frozen (weights and batchnorm statistics kept): conv2d\\_1;") for n in notes), notes


# ---------------------------------------------------------------- Home


def test_home_queues_the_transfer_experiment_as_one_sweep_to_watch_on_compare(isolated_lab):
    job_manager().pause()  # what Start queues stays queued: nothing trains
    at = app()
    at.button(key="home.writeup.start.transfer-vs-scratch").click().run()
    runs = isolated_lab.list()
    expected = [run.label for run in transfer_vs_scratch()]
    assert sorted(r.config["sweep"]["values"]["run"] for r in runs) == sorted(expected) and len(job_manager().queued_ids()) == 4
    assert len({r.config["sweep"]["id"] for r in runs}) == 1
    assert {(r.config["dataset"], r.config["train_limit"]) for r in runs} in ({("cifar10", 500)}, {("shapes", 500)})
    assert ok(at).title[0].value == "Compare"  # Home opened it
    assert at.success[0].value.startswith("Queued sweep transfer-vs-scratch")  # and it is the one shown


def test_a_student_cannot_queue_the_experiment_against_the_class_exercise(isolated_lab, tmp_path, monkeypatch):
    exercise = tmp_path / "exercise.toml"
    exercise.write_text('[exercise]\ntitle = "Digits"\ndataset = "digits"\n')
    monkeypatch.setenv("LAB_EXERCISE", str(exercise))
    job_manager().pause()  # what Start queues stays queued: nothing trains
    at = app()
    at.button(key="home.writeup.start.transfer-vs-scratch").click().run()
    assert "Cannot queue the sweep: this exercise trains on digits" in ok(at).error[0].value
    assert isolated_lab.list() == [] and not at.success
