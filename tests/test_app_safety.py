"""AppTest of what a hostile classmate's strings do on other people's pages (issue 16 items 8 and 12).

A run name, an owner, a spec name from a share link or an uploaded folder's class names reach elements that
render Markdown (markdown, captions, alerts, toasts, labels, help, progress text, image captions). Each page
here is drawn over such strings and no Markdown source on it may hold an unescaped image, link or HTML tag:
``![](http://host/beacon)`` would load a remote image in every classmate's browser.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from google.protobuf.json_format import MessageToDict
from PIL import Image
from streamlit.testing.v1 import AppTest
from support.apptest import DETAILS, PAGES, WAIT_S, ok, page
from support.runs import fake_run

from lab.classroom.share import encode_setup
from lab.runs.access import Visitor
from lab.runs.compare import run_row
from lab.runs.store import RunStore
from lab.ui.compare_view import table_csv
from lab.ui.state import VISITOR_KEY, default_draft, markdown_safe

APP = str(PAGES.parent / "app.py")
NAME = "![](http://h.example/b.png)<img src=x>[a](http://h.example):red[r]"
OWNER = "![](http://h.example/o)<img src=o>"
SPEC = "`![](http://h.example/s)`:material/bolt:"  # the backtick ends a code span around it
CLASSES = [f"![c{i}](http:h{i})" for i in range(7)] + ["<img src=c>"]  # no "/": they name folders too
# What must never reach a Markdown source unescaped: an image, a link to a URL, an HTML tag, Streamlit's
# coloured text and icons.
TOKENS = ("![", "<img", "](http", ":red[", ":material/")
MARKDOWN_FIELDS = {"body", "label", "help", "caption", "captions", "text"}  # of every element and block
MARKDOWN_OPTIONS = {"Radio", "Slider"}  # whose options are Markdown too (a select box's are plain text)

pytestmark = pytest.mark.usefixtures("isolated_lab")  # tests/conftest.py


@pytest.fixture
def store(isolated_lab) -> RunStore:
    return isolated_lab


def markdown_sources(at: AppTest) -> list[str]:
    """Every string on the page, sidebar and toasts included, that Streamlit renders as Markdown."""
    found: list[str] = []

    def collect(value, rendered: bool, options: bool) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                collect(item, key in MARKDOWN_FIELDS or (options and key == "options"), options)
        elif isinstance(value, list):
            for item in value:
                collect(item, rendered, options)
        elif isinstance(value, str) and rendered:
            found.append(value)

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            collect(MessageToDict(proto), False, type(proto).__name__ in MARKDOWN_OPTIONS)
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return found


def unescaped(text: str, token: str) -> bool:
    """Whether ``token`` occurs in ``text`` without a backslash escaping its first character."""
    for match in re.finditer(re.escape(token), text):
        backslashes = len(text[:match.start()]) - len(text[:match.start()].rstrip("\\"))
        if backslashes % 2 == 0:
            return True
    return False


def assert_plain(at: AppTest, *shown: str) -> None:
    """No Markdown source on the page holds a hostile token, and each of ``shown`` is on it, as plain text."""
    sources = markdown_sources(ok(at))
    assert not [text for text in sources if any(unescaped(text, token) for token in TOKENS)]
    for text in shown:
        assert any(markdown_safe(text) in source for source in sources), text


def hostile_run(store: RunStore, name: str = NAME, **config) -> str:
    run_id = fake_run(store, name, [0.5, 0.7], **config)
    store.set_status(run_id, "finished", owner=OWNER)
    return run_id


def hostile_trained_run(store: RunStore, copy_gap_cam_run) -> str:
    """gap_cam's trained run, renamed and with class names from a hostile upload."""
    store.root.mkdir(parents=True, exist_ok=True)
    run_id = copy_gap_cam_run(store.root)
    config = store.get(run_id).config
    config["resolved"]["classes"] = CLASSES
    store.write_config(run_id, config)
    store.annotate(run_id, name=NAME)
    store.set_status(run_id, "finished", owner=OWNER)
    return run_id


def hostile_draft() -> dict:
    """A draft as a share link may carry it: a valid model with a hostile name."""
    return {**default_draft(), "spec": {"name": SPEC, "layers": [{"type": "flatten"}, {"type": "dense"}]}}


# ---------------------------------------------------------------- the escape itself


@pytest.mark.parametrize("text", [NAME, OWNER, SPEC, *CLASSES[-2:], "1. a\n# b\r\n- c | d ~e~ $x$ `f` *g* _h_",
                                  "www.h.example a@h.example &lt; \\![x](y) :smile: 10:30"])
def test_markdown_safe_escapes_every_special_character_and_keeps_the_text(text):
    safe = markdown_safe(text)
    assert not any(unescaped(safe, token) for token in (*TOKENS, "www.", "@", "*", "_", "`", "$", "#", "|", "~", "&"))
    assert "\n" not in safe and "\r" not in safe
    shown = re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", safe).replace("\u2060", "")  # what Markdown shows
    assert shown == " ".join(text.splitlines())


# ---------------------------------------------------------------- pages


def test_train_page_shows_a_hostile_run_as_plain_text(store, copy_gap_cam_run):
    run_id = hostile_trained_run(store, copy_gap_cam_run)
    hostile_run(store, "<img src=y>")
    at = page("train", run=run_id, session=DETAILS)  # title, owner, CAM strip captions, recent runs
    assert_plain(at, NAME, OWNER, "<img src=y>", CLASSES[0])
    assert_plain(page("train", run=OWNER), OWNER)  # the URL's unknown run, named in the warning


def test_compare_page_shows_hostile_runs_as_plain_text(store, copy_gap_cam_run):
    trained, plain = hostile_trained_run(store, copy_gap_cam_run), hostile_run(store, "<img src=z>")
    at = page("compare", draft=hostile_draft())
    at.multiselect(key="compare.selected").set_value([trained, plain]).run()
    at.selectbox(key="compare.edit").set_value(plain).run()
    assert_plain(at, NAME, "<img src=z>", SPEC, CLASSES[0])


def test_compare_page_names_a_run_saved_and_deleted_as_plain_text(store):
    run_id = hostile_run(store, "old")
    at = AppTest.from_file(str(PAGES / "compare.py"), default_timeout=WAIT_S)
    at.session_state[VISITOR_KEY] = Visitor(teacher=True)  # may rename and delete every run
    at.run()
    next(t for t in at.text_input if t.label == "Name").input(NAME)
    next(b for b in at.button if b.label == "Save").click().run()
    assert store.get(run_id).name == NAME
    assert_plain(at, f"Saved: {NAME}")
    at.button(key="compare.ask_delete").click().run()
    assert_plain(at)
    assert run_id in at.warning[0].value and str(store.root) not in at.warning[0].value  # its folder, no path
    at.button(key="compare.confirm_delete").click().run()
    assert_plain(at, f"Deleted {NAME}")


def test_explain_page_shows_hostile_class_names_as_plain_text(store, copy_gap_cam_run):
    run_id = hostile_trained_run(store, copy_gap_cam_run)
    at = page("explain", run=run_id)  # true and predicted class captions, evidence, the mistakes gallery
    assert_plain(at, CLASSES[0])
    assert_plain(page("explain", run=OWNER), OWNER)  # the URL's unknown run, named in the warning


def test_class_page_shows_the_best_run_and_its_owner_as_plain_text(store):
    hostile_run(store)
    at = page("gallery")
    assert_plain(at, NAME, OWNER)


def test_a_shared_setup_with_a_hostile_spec_name_is_plain_text_in_the_sidebar():
    at = AppTest.from_file(APP, default_timeout=WAIT_S)
    at.query_params["setup"] = encode_setup(hostile_draft())
    at.run()
    assert at.session_state["draft"]["spec"]["name"] == SPEC
    assert_plain(at, SPEC)


def hostile_folder(root: Path) -> Path:
    """A folder dataset whose class folders are named like ``CLASSES`` (what a zip may hold)."""
    rng = np.random.default_rng(0)
    for name in CLASSES[-2:]:
        (root / name).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


@pytest.mark.parametrize("name", ["data", "augment"])
def test_class_folders_with_hostile_names_are_plain_text_under_the_images(name, tmp_path):
    draft = {**default_draft(), "dataset": f"folder:{hostile_folder(tmp_path / 'upload')}"}
    at = page(name, draft=draft)  # sample grids' captions; the augment preview's
    assert_plain(at, CLASSES[-1])


# ---------------------------------------------------------------- server paths (item 12)


def test_compare_shows_an_uploads_name_never_its_server_path(store):
    upload = "folder:/srv/lab/data/uploads/0f3a9c/flowers"
    hostile_run(store, "on flowers", dataset=upload)
    at = page("compare")
    assert list(at.dataframe[0].value["dataset"]) == ["flowers (an upload)"]
    csv = table_csv([run_row(run) for run in store.list()])  # the table's download
    assert "flowers (an upload)" in csv and "/srv" not in csv
    dataset_filter = at.multiselect(key="compare.dataset")
    assert dataset_filter.options == ["flowers (an upload)"]
    dataset_filter.set_value([upload]).run()
    assert list(ok(at).dataframe[0].value["name"]) == ["on flowers"]


def test_a_run_on_an_upload_is_named_after_it_not_its_server_path(tmp_path):
    draft = {**default_draft(), "dataset": f"folder:{hostile_folder(tmp_path / 'flowers')}"}
    assert ok(page("train", draft=draft)).text_input(key="train.name").placeholder == "gap_cam-flowers-1"
