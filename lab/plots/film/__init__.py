"""The training film's player: a plain-JavaScript widget that plays a run's epochs and redraws every panel
(curves with a cursor, accuracy per class, confusion matrix, feature space, CAM strip) for the chosen one.

``STATIC`` holds it: ``film.js`` and ``film.css``, and ``index.html``, the Streamlit component page that
lab.ui.film_view declares. :func:`film_html` inlines the same player for the HTML report. The data is
lab.insight.film's: ``head`` (run name, classes, CAM pictures), the metrics rows, and one frame per epoch.
The player draws in the browser, so scrubbing and playing cost no rerun and no round trip.
"""

from __future__ import annotations

import json
from pathlib import Path

STATIC = Path(__file__).parent / "static"

# Inside <script>, "</script>" ends the element whatever quotes surround it, and "<!--" changes how the
# rest parses; JSON escapes for these characters keep every user string (run name, class names) inert.
# U+2028/U+2029 are escaped too, for JavaScript engines older than ES2019.
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                              "\u2028": "\\u2028", "\u2029": "\\u2029"})


def script_json(value) -> str:
    """``value`` as a JavaScript literal that is safe inside a <script> element. NaN and Infinity
    (a diverged run's loss) stay numbers: they are valid JavaScript, and the player skips them."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_plain).translate(_SCRIPT_SAFE)


def _plain(value):
    """NumPy scalars and arrays as Python numbers and lists, so a frame made with NumPy still serialises."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON data")


def film_html(head: dict, metrics: list[dict], frames: list[dict], text: dict) -> str:
    """The player with its data as one self-contained HTML fragment (nothing is fetched): for the report.

    ``text`` holds the labels in the reader's language (``lab.i18n.templates("film.")``)."""
    css = (STATIC / "film.css").read_text(encoding="utf-8")
    js = (STATIC / "film.js").read_text(encoding="utf-8")
    data = script_json({"head": head, "metrics": metrics, "frames": frames, "text": text})
    return (f'<div class="lab-film-report">\n<style>\n{css}</style>\n<script>\n{js}</script>\n'
            '<div class="lab-film-root"></div>\n'
            "<script>\n(function () {\n"
            f"  const data = {data};\n"
            "  const root = document.currentScript.previousElementSibling;\n"
            "  window.LabFilm.mount(root, data.head, data.text).update(data.metrics, 0, data.frames);\n"
            "})();\n</script>\n</div>\n")
