"""Home, Data and Build pages through Streamlit's AppTest: they render without an
exception, the widgets drive the draft, and the Build page's table, totals and
inline errors follow every edit."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from support.apptest import switch_page
from support.files import classes_zip, zip_bytes

from lab.data import list_datasets, load_dataset
from lab.model.presets import get_preset
from lab.model.spec import summarize

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture
def app(isolated_lab) -> AppTest:
    """The app on its Home page, in the isolated lab (tests/conftest.py)."""
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def widget_key(at: AppTest, suffix: str) -> str:
    """A Build widget's key; its version prefix changes on structural edits."""
    keys = [w.key for w in [*at.number_input, *at.selectbox, *at.button] if w.key and w.key.endswith(suffix)]
    assert len(keys) == 1, (suffix, keys)
    return keys[0]


def expander(at: AppTest, position: int):
    return next(e for e in at.expander if e.label.startswith(f"{position}. "))


# ---------------------------------------------------------------- Home


def test_home_shows_guide_datasets_and_quick_starts(app):
    names = set(app.dataframe[0].value["name"])
    assert {"shapes", "digits"} <= names
    assert any("Guide" == s.value for s in app.subheader)
    assert len([b for b in app.button if b.key and b.key.startswith("home.quick.")]) == 3


def test_quick_start_sets_the_draft_and_the_build_page_follows(app):
    switch_page(app, "app_pages/build.py")  # the editor's widgets now exist for the default preset
    switch_page(app, "app_pages/home.py")
    app.button(key="home.quick.0").click().run()
    draft = app.session_state["draft"]
    assert draft["preset"] == "fashion_cnn" and draft["spec"]["name"] == "fashion_cnn"
    assert draft["dataset"] in ("fashion-mnist", "digits", "shapes")
    assert draft["augment"] == {"preset": "none"}
    assert "fashion_cnn" in app.success[0].value
    switch_page(app, "app_pages/build.py")
    table = app.dataframe[0].value
    assert list(table["type"])[:3] == ["conv2d", "maxpool2d", "conv2d"]
    assert app.number_input(key=widget_key(app, ".0.filters")).value == 32


def test_quick_start_for_cifar_uses_keras_basic(app):
    app.button(key="home.quick.1").click().run()
    draft = app.session_state["draft"]
    assert draft["spec"]["name"] == "cifar_vgg" and draft["augment"] == {"preset": "keras_basic"}
    available = {i.name for i in list_datasets() if i.available}
    assert draft["dataset"] == ("cifar10" if "cifar10" in available else "shapes")


# ---------------------------------------------------------------- Data


@pytest.mark.parametrize("name", ["shapes", "digits"])
def test_data_page_shows_examples_and_balance(app, name):
    switch_page(app, "app_pages/data.py")
    app.selectbox(key="data.pick").select(name).run()
    assert not app.exception
    assert app.session_state["draft"]["dataset"] == name
    captions = [img.proto.imgs[0].caption for img in app.get("image")]
    assert sorted(captions) == sorted(load_dataset(name).classes)  # one row of examples per class, named
    assert len(app.get("plotly_chart")) == 1
    assert app.get("file_uploader")[0].label == "Zip of class folders"


def _import_upload(at: AppTest, name: str, content: bytes) -> AppTest:
    at.file_uploader(key="data.upload").set_value((name, content, "application/zip")).run()
    at.button(key="data.import").click().run()
    assert not at.exception
    return at


def test_two_students_upload_the_same_file_name_and_each_trains_on_their_own(app, tmp_path):
    switch_page(app, "app_pages/data.py")
    _import_upload(app, "flowers.zip", zip_bytes(classes_zip(n=3)))
    app.button(key="data.use_import").click().run()
    classmate = switch_page(AppTest.from_file(APP, default_timeout=60).run(), "app_pages/data.py")
    _import_upload(classmate, "flowers.zip", zip_bytes(classes_zip(n=5)))
    classmate.button(key="data.use_import").click().run()
    mine, theirs = app.session_state["draft"]["dataset"], classmate.session_state["draft"]["dataset"]
    assert mine != theirs
    assert len(load_dataset(mine).train_y) + len(load_dataset(mine).val_y) == 6  # not replaced by theirs
    assert len(load_dataset(theirs).train_y) + len(load_dataset(theirs).val_y) == 10
    assert "flowers (your upload)" in app.sidebar.markdown[0].value


def test_a_file_that_is_not_a_zip_is_one_error_line(app):
    switch_page(app, "app_pages/data.py")
    _import_upload(app, "photos.zip", b"these are not the bytes of a zip")
    assert len(app.error) == 1 and "Import failed" in app.error[0].value and "zip" in app.error[0].value
    assert app.session_state["draft"]["dataset"] == "shapes"


def test_unavailable_dataset_shows_how_to_get_it_and_keeps_the_draft(app):
    missing = [i for i in list_datasets() if not i.available]
    if not missing:
        pytest.skip("every dataset is available on this machine")
    switch_page(app, "app_pages/data.py")
    app.selectbox(key="data.pick").select(missing[0].name).run()
    assert not app.exception and not app.error
    assert app.session_state["draft"]["dataset"] == "shapes"
    assert "not on this server" in app.warning[0].value


# ---------------------------------------------------------------- Build


def test_build_page_follows_a_preset_picked_with_the_widget(app):
    switch_page(app, "app_pages/build.py")
    default_total = metric(app, "Parameters")
    app.selectbox(key="build.preset").select("fashion_cnn")
    app.button(key="build.load_preset").click().run()
    expected = summarize(get_preset("fashion_cnn"), (3, 32, 32), 8).total_params  # on 'shapes'
    assert metric(app, "Parameters") == f"{expected:,}" != default_total
    table = app.dataframe[0].value
    assert table["params"].sum() == expected
    assert list(table["name"])[-1] == "output"


def test_adding_a_layer_grows_the_table(app):
    switch_page(app, "app_pages/build.py")
    rows = len(app.dataframe[0].value)
    app.selectbox(key="build.add_type").select("dense")  # appended after the old output layer
    app.button(key="build.add").click().run()
    table = app.dataframe[0].value
    assert len(table) == rows + 1
    assert list(table["name"])[-2:] == ["dense_1", "output"]
    assert expander(app, rows + 1).label.startswith(f"{rows + 1}. Dense")


def test_editing_a_value_updates_table_and_totals(app):
    switch_page(app, "app_pages/build.py")
    app.number_input(key=widget_key(app, ".0.filters")).set_value(16).run()
    first = app.dataframe[0].value.iloc[0]
    assert first["output shape"] == "16x32x32" and first["params"] == 3 * 9 * 16 + 16
    spec = app.session_state["draft"]["spec"]
    assert metric(app, "Parameters") == f"{summarize(spec, (3, 32, 32), 8).total_params:,}"


def test_pooling_too_far_shows_the_error_at_that_layer(app):
    switch_page(app, "app_pages/build.py")
    app.number_input(key=widget_key(app, ".2.size")).set_value(40).run()  # layer 3: maxpool on 32x32
    assert not app.exception
    inline = expander(app, 3).error
    assert len(inline) == 1 and "Layer 3 (maxpool2d)" in inline[0].value and "40x40" in inline[0].value
    assert not expander(app, 2).error
    assert metric(app, "Parameters") == "—"
    assert any("layer 3 (maxpool2d)" in e.value for e in app.error)


def test_dense_before_flatten_is_named_at_its_layer(app):
    switch_page(app, "app_pages/build.py")
    app.selectbox(key=widget_key(app, ".0.newtype")).select("dense")
    app.button(key=widget_key(app, ".0.insert")).click().run()
    assert app.session_state["draft"]["spec"]["layers"][1]["type"] == "dense"
    inline = expander(app, 2).error
    assert inline and "needs a flat vector" in inline[0].value and "Layer 2 (dense)" in inline[0].value


def test_moves_and_deletes_keep_each_layers_values(app):
    switch_page(app, "app_pages/build.py")
    app.number_input(key=widget_key(app, ".0.filters")).set_value(12).run()
    app.number_input(key=widget_key(app, ".3.filters")).set_value(40).run()  # layer 4, the second conv
    app.button(key=widget_key(app, ".0.down")).click().run()  # conv1 <-> batchnorm
    layers = app.session_state["draft"]["spec"]["layers"]
    assert [layers[0]["type"], layers[1]["type"]] == ["batchnorm", "conv2d"]
    assert app.number_input(key=widget_key(app, ".1.filters")).value == 12
    assert app.number_input(key=widget_key(app, ".3.filters")).value == 40
    app.button(key=widget_key(app, ".0.del")).click().run()  # the batchnorm, now first
    assert app.number_input(key=widget_key(app, ".0.filters")).value == 12
    assert app.number_input(key=widget_key(app, ".2.filters")).value == 40
    app.button(key=widget_key(app, ".0.dup")).click().run()
    assert [app.number_input(key=widget_key(app, f".{i}.filters")).value for i in (0, 1, 3)] == [12, 12, 40]
    assert not app.exception


def test_a_layer_the_registry_refuses_can_still_be_seen_and_deleted(app):
    """A draft from elsewhere (an old run, a hand-edited session) may hold anything."""
    switch_page(app, "app_pages/build.py")
    app.session_state["draft"]["spec"] = {"name": "odd", "layers": [
        {"type": "warp"}, {"type": "dropout", "rate": 1.0}, {"type": "conv2d", "filters": "many"}]}
    app.run()
    assert not app.exception
    assert "unknown layer type" in expander(app, 1).error[0].value
    assert app.number_input(key=widget_key(app, ".1.rate")).value == 0.5  # invalid 1.0: default shown
    assert app.number_input(key=widget_key(app, ".2.filters")).value == 32
    app.button(key=widget_key(app, ".0.del")).click().run()
    assert [layer["type"] for layer in app.session_state["draft"]["spec"]["layers"]] == ["dropout", "conv2d"]
    assert not app.exception


def test_invalid_json_import_shows_a_message(app):
    switch_page(app, "app_pages/build.py")
    before = app.session_state["draft"]["spec"]
    app.text_area(key="build.json_text").input('{"layers": [').run()
    app.button(key="build.load_json").click().run()
    assert not app.exception
    assert any("not valid JSON" in e.value for e in app.error)
    assert app.session_state["draft"]["spec"] == before


def test_json_import_with_a_bad_layer_names_it(app):
    switch_page(app, "app_pages/build.py")
    app.text_area(key="build.json_text").input('{"layers": [{"type": "conv2d"}, {"type": "warp"}]}').run()
    app.button(key="build.load_json").click().run()
    assert any("layer 2" in e.value and "unknown layer type" in e.value for e in app.error)


def test_json_import_replaces_the_layers(app):
    switch_page(app, "app_pages/build.py")
    text = '{"name": "tiny", "layers": [{"type": "conv2d", "filters": 4}, {"type": "global_avg_pool"}]}'
    app.text_area(key="build.json_text").input(text).run()
    app.button(key="build.load_json").click().run()
    assert list(app.dataframe[0].value["name"]) == ["conv2d_1", "global_avg_pool_1", "output"]
    assert app.number_input(key=widget_key(app, ".0.filters")).value == 4


def test_export_buttons_and_code_preview(app):
    switch_page(app, "app_pages/build.py")
    assert len(app.get("download_button")) == 2
    app.toggle(key="build.show_code").set_value(True).run()
    assert "class Net(nn.Module)" in app.code[0].value


def arithmetic(at: AppTest) -> str:
    """The Layer arithmetic panel: the markdown that explains the selected layer."""
    name = at.selectbox(key="build.explain").value
    return next(m.value for m in at.markdown if m.value.startswith(f"**{name} · "))


def test_selecting_a_layer_shows_its_arithmetic(app):
    switch_page(app, "app_pages/build.py")  # gap_cam on 'shapes': 3x32x32 images
    assert app.selectbox(key="build.explain").value == "conv2d_1"
    assert "3*3*3*32 + 32 = 896" in arithmetic(app) and "Weight sharing" in arithmetic(app)
    app.selectbox(key="build.explain").select("maxpool2d_1").run()
    assert "floor((32 - 2)/2) + 1 = 16" in arithmetic(app) and "strongest response" in arithmetic(app)
    app.selectbox(key="build.explain").select("batchnorm_1").run()
    assert "2*32 + 2*32 = 128" in arithmetic(app)
    app.number_input(key=widget_key(app, ".0.filters")).set_value(16).run()  # the numbers follow edits
    assert "2*16 + 2*16 = 64" in arithmetic(app)


def test_arithmetic_survives_deleting_the_explained_layer(app):
    switch_page(app, "app_pages/build.py")
    app.selectbox(key="build.explain").select("conv2d_3").run()
    app.button(key=widget_key(app, ".6.del")).click().run()  # layer 7, the third conv
    assert not app.exception
    assert app.selectbox(key="build.explain").value in {r.name for r in summarize(
        app.session_state["draft"]["spec"], (3, 32, 32), 8).rows}
    assert arithmetic(app)


def test_activation_memory_and_macs_follow_the_drafts_batch_size(app):
    switch_page(app, "app_pages/build.py")
    summary = summarize(app.session_state["draft"]["spec"], (3, 32, 32), 8)
    assert metric(app, "Activation memory (batch 64)") == f"{summary.activation_bytes(64) / 1e6:,.1f} MB"
    table = app.dataframe[0].value
    assert list(table["MACs"]) == [r.macs for r in summary.rows]
    assert table["memory (MB)"].sum() == pytest.approx(summary.activation_bytes(64) / 1e6)
    app.session_state["draft"]["train"]["batch_size"] = 128
    app.run()
    assert metric(app, "Activation memory (batch 128)") == f"{summary.activation_bytes(128) / 1e6:,.1f} MB"
