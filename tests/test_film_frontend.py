"""The training film's player (lab/plots/film): the report's inlined fragment is safe and self-contained.
In a real browser: tests/browser/test_film_player.py."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from lab.bench.film import synthetic_film
from lab.i18n import templates
from lab.plots.film import STATIC, film_html, script_json

BREAKOUT = "</script><script>alert(1)</script>"
DATA = re.compile(r"const data = (.*);\n  const root", re.DOTALL)


@pytest.fixture(scope="module")
def film():
    return synthetic_film(epochs=30)


def hostile_film(film):
    head, metrics, frames = film
    names = [BREAKOUT, "<!--", "a & b", "]]>", "\u2028line"] + head["classes"][5:]
    return {**head, "run": BREAKOUT, "classes": names}, metrics, frames


def test_user_strings_cannot_end_the_script_element(film):
    head, metrics, frames = hostile_film(film)
    html = film_html(head, metrics, frames, templates("film."))
    assert html.count("</script>") == 2  # the player's and the mounting script's own, nothing from the data
    data = DATA.search(html).group(1)
    assert not set("<>&\u2028") & set(data)
    assert json.loads(data)["head"] == head  # the escapes decode back to the names as given


class Links(HTMLParser):
    """Every URL a tag of the page would load (script and style content is text to the parser)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href", "srcset", "data", "action")]


def test_the_fragment_is_self_contained(film):
    html = film_html(*film[:3], templates("film."))
    links = Links()
    links.feed(html)
    assert links.urls == []
    assert not re.search(r"https?://|url\(|@import|fetch\(|XMLHttpRequest|WebSocket|import\(", html)
    assert (STATIC / "film.js").read_text() in html and (STATIC / "film.css").read_text() in html
    for source in ("film.js", "film.css"):  # the inlined files cannot end their own element early
        assert not re.search(r"</(script|style)", (STATIC / source).read_text(), re.IGNORECASE)


def test_script_json_keeps_a_diverged_loss_and_numpy_values():
    text = script_json({"loss": [math.nan, math.inf], "counts": np.arange(3), "acc": np.float32(0.5)})
    assert text == '{"loss":[NaN,Infinity],"counts":[0,1,2],"acc":0.5}'  # NaN, Infinity: JavaScript numbers
