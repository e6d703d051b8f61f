"""Share links: a whole draft (dataset, model, augmentation, training settings) in a URL.

A teacher builds a setup, copies the link and hands it out; opening it restores the
draft exactly. The text is versioned (``1.`` then URL-safe base64 of zlib-compressed
JSON) so a later format can still read today's links. A link is user input like any
other: its size is capped before and after decompression, its settings are
validated, and it may only name the lab's own datasets, never a path on the server
(an upload stays with the session that made it).
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib

from lab import user_json
from lab.data.registry import FOLDER_PREFIX, list_datasets
from lab.train.augment import get_augment
from lab.train.engine import ConfigError, TrainConfig

VERSION = "1"
MAX_LINK_CHARS = 8_000  # browsers and proxies cut URLs somewhere past this
MAX_JSON_BYTES = 64_000  # a spec of a hundred layers is a few KB
DRAFT_KEYS = ("dataset", "preset", "spec", "augment", "train")


class ShareError(ValueError):
    """A share link that cannot be opened; the message says why and what to do."""


def encode_setup(draft: dict) -> str:
    """The draft as compact, versioned URL-safe text."""
    payload = {key: draft[key] for key in DRAFT_KEYS if key in draft}
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return f"{VERSION}.{base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip('=')}"


def decode_setup(text: str) -> dict:
    """The draft a link holds, checked; raises :class:`ShareError` for anything else."""
    payload = _payload(text)
    _check(payload)
    return payload


def _payload(text: str) -> dict:
    if len(text) > MAX_LINK_CHARS:
        raise ShareError(f"this link is {len(text):,} characters long, more than a setup needs; ask for a new one")
    version, _, body = text.partition(".")
    if version != VERSION or not body:
        raise ShareError("this is not a CNN Lab setup link (or one from a newer lab); ask for a new one")
    try:
        packed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        inflater = zlib.decompressobj()
        raw = inflater.decompress(packed, MAX_JSON_BYTES)
        if inflater.unconsumed_tail:
            raise ShareError("this link unpacks to more than a setup can be")
        payload = user_json.loads(raw, "this link", MAX_JSON_BYTES)
    except user_json.UserJSONError as err:
        raise ShareError(f"{err}; ask for a new one") from None
    except (binascii.Error, zlib.error, ValueError) as err:
        if isinstance(err, ShareError):
            raise
        raise ShareError("this link is damaged (cut short when copied?); copy the whole link again") from None
    if not isinstance(payload, dict) or not all(key in payload for key in ("dataset", "spec", "augment", "train")):
        raise ShareError("this link does not hold a whole setup; ask for a new one")
    unknown = sorted(set(payload) - set(DRAFT_KEYS))
    if unknown:
        raise ShareError(f"this link holds unknown parts ({', '.join(unknown)}); ask for a new one")
    return payload


def _check(payload: dict) -> None:
    """Settings a run could use, on a dataset of this lab. The spec may have problems:
    the builder shows them at their layer, as for a spec the user typed."""
    dataset = payload["dataset"]
    if not isinstance(dataset, str) or dataset.lower().startswith(FOLDER_PREFIX):
        raise ShareError("the shared setup trains on someone's uploaded images, which stay on their session; "
                         "ask them to share a setup on one of the lab's datasets, or upload the images yourself")
    if dataset not in {info.name for info in list_datasets()}:
        raise ShareError(f"the shared setup uses the dataset {dataset!r}, which this lab does not have")
    if not isinstance(payload["spec"], dict) or not isinstance(payload["train"], dict):
        raise ShareError("this link's model or settings are not readable; ask for a new one")
    try:
        get_augment(payload["augment"])
        TrainConfig.from_dict({**payload["train"], "spec": payload["spec"], "dataset": dataset,
                               "augment": payload["augment"]}).validate()
    except (ValueError, TypeError, ConfigError) as err:
        raise ShareError(f"the shared settings cannot be used here: {err}") from None
