"""Share links: a draft survives the round trip exactly; a bad or hostile link is one clear message."""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lab.classroom.share import MAX_LINK_CHARS, ShareError, decode_setup, encode_setup
from lab.model.presets import PRESETS, get_preset, get_preset_info
from lab.ui.state import default_draft

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def preset_draft(name: str) -> dict:
    d = default_draft()
    d.update(preset=name, spec=get_preset(name), augment={"preset": get_preset_info(name).augment})
    d["train"].update(epochs=7, batch_size=50, lr=0.0125, optimizer="sgd", label_smoothing=0.1)
    return d


def pack(payload) -> str:
    raw = zlib.compress(json.dumps(payload).encode())
    return "1." + base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_draft_round_trips_exactly_in_a_short_link(name):
    d = preset_draft(name)
    d["augment"] = {"hflip": 0.5, "rotation": 12.5, "cutout": 8}  # a hand-made augmentation too
    link = encode_setup(d)
    assert decode_setup(link) == d
    assert link.startswith("1.") and len(link) < 1200 and link.isascii() and " " not in link


@pytest.mark.parametrize("link, fragment", [
    ("2.abc", "newer lab"),
    ("1.", "newer lab"),
    ("hello", "not a CNN Lab setup link"),
    (encode_setup(default_draft())[:-20], "damaged"),
    ("1." + "A" * (MAX_LINK_CHARS + 1), "characters long"),
    (pack(["not", "a", "dict"]), "whole setup"),
    (pack({**default_draft(), "dataset": "folder:/etc"}), "uploaded images"),
    (pack({**default_draft(), "dataset": "imagenet"}), "does not have"),
    (pack({**default_draft(), "train": {"epochs": 10**6}}), "epochs must be"),
    (pack({**default_draft(), "train": {"rm -rf": 1}}), "unknown setting"),
    (pack({**default_draft(), "augment": {"hflip": 7}}), "cannot be used"),
    (pack({**default_draft(), "admin": True}), "unknown parts"),
])
def test_a_bad_link_is_refused_with_what_to_do(link, fragment):
    with pytest.raises(ShareError, match=fragment):
        decode_setup(link)


def test_a_link_that_inflates_without_end_is_refused_while_inflating():
    bomb = "1." + base64.urlsafe_b64encode(zlib.compress(b" " * 5_000_000, 9)).decode()
    assert len(bomb) < MAX_LINK_CHARS
    with pytest.raises(ShareError, match="more than a setup"):
        decode_setup(bomb)


def test_opening_a_link_makes_it_the_draft_once_and_leaves_the_url(isolated_lab):
    shared = preset_draft("fashion_cnn") | {"dataset": "digits"}
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["setup"] = encode_setup(shared)
    at.run()
    assert not at.exception and not at.error
    assert at.session_state["draft"] == shared and "setup" not in at.query_params
    at.session_state["draft"]["train"]["epochs"] = 3  # a later edit is not undone by a rerun
    at.run()
    assert at.session_state["draft"]["train"]["epochs"] == 3
    link = at.sidebar.get("code")[0].proto.code_text
    assert decode_setup(link.split("setup=")[1]) == at.session_state["draft"]


def test_a_damaged_link_is_one_error_and_keeps_the_draft(isolated_lab):
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["setup"] = encode_setup(default_draft())[:-9]
    at.run()
    assert not at.exception
    assert len(at.error) == 1 and "damaged" in at.error[0].value
    assert at.session_state["draft"] == default_draft()
