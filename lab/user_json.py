"""JSON a user typed, pasted, uploaded or linked, parsed within bounds.

``json.loads`` recurses once per nesting level: a share link or a spec nested 30,000
deep raised ``RecursionError`` (not ``ValueError``) out of the page, and an 18 MB spec
file became a million layers before any check looked at it. So the size is checked
before parsing, and the depth, without recursion, right after it; both fail as
:class:`UserJSONError`, which says what to change. Text that is not JSON raises
json's own ``ValueError``, for the caller to word.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32  # a spec is four levels deep (spec -> layers -> layer -> list); a share link wraps one more


class UserJSONError(ValueError):
    """Text that is not JSON the lab can take; the message names what it was and what to change."""


def loads(text: str | bytes, what: str, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """``text`` parsed; UserJSONError when it is larger than ``max_bytes`` or nested deeper than ``max_depth``
    (``what`` names it in the message: "the spec file", "this link"), ValueError when it is not JSON."""
    size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    if size > max_bytes:
        raise UserJSONError(f"{what} is {size:,} bytes, more than the {max_bytes:,} it may be")
    try:
        too_deep = depth(value := json.loads(text)) > max_depth
    except RecursionError:
        too_deep = True
    if too_deep:
        raise UserJSONError(f"{what} is nested deeper than {max_depth} levels, more than any spec or setup")
    return value


def depth(value: Any) -> int:
    """Nesting depth of lists and dicts (a scalar is 0), walked with a stack, not recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in children)
    return deepest
