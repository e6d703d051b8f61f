"""lab.user_json: JSON from users is bounded in size and depth before anything else reads it."""

from __future__ import annotations

import base64
import zlib

import pytest

from lab.classroom.share import ShareError, decode_setup
from lab.user_json import UserJSONError, depth, loads


def test_depth_is_counted_without_recursion() -> None:
    assert depth(1) == 0 and depth([]) == 1 and depth({"a": [1, {"b": []}]}) == 4
    deep: list = []
    for _ in range(100_000):  # far past Python's recursion limit
        deep = [deep]
    assert depth(deep) == 100_001


@pytest.mark.parametrize("levels", [33, 30_000])
def test_deep_nesting_is_one_clear_error(levels: int) -> None:
    with pytest.raises(UserJSONError, match="the spec is nested deeper than 32 levels, more than any spec"):
        loads("[" * levels + "]" * levels, "the spec", max_bytes=100_000)


def test_plain_values_pass_and_non_json_is_json_s_own_error() -> None:
    assert loads("null", "x", 10) is None and loads('{"a": [1]}', "x", 100) == {"a": [1]}
    with pytest.raises(ValueError, match="Expecting property name"):
        loads("{oops", "x", 100)


def test_size_is_checked_before_parsing() -> None:
    with pytest.raises(UserJSONError, match="the spec file is 2,000,002 bytes, more than the 1,000,000"):
        loads('"' + "x" * 2_000_000 + '"', "the spec file", max_bytes=1_000_000)


def test_a_share_link_nested_30000_deep_is_refused_with_a_message() -> None:
    raw = '{"dataset": "shapes", "spec": {"layers": ' + "[" * 30_000 + "]" * 30_000 + '}, "augment": {}, "train": {}}'
    link = "1." + base64.urlsafe_b64encode(zlib.compress(raw.encode(), 9)).decode().rstrip("=")
    with pytest.raises(ShareError, match="this link is nested deeper than 32 levels.*; ask for a new one"):
        decode_setup(link)
