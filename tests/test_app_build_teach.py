"""AppTest for the Build page's lecture-note aids, in English and Korean: each layer's receptive field and
each conv's weights without sharing and as a dense layer in the table, the receptive field in the layer
arithmetic, and the two notes (convolution is cross-correlation; activations and their gradients)."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest
from support.apptest import PAGES, WAIT_S, ok

from lab.model.presets import get_preset
from lab.model.spec import summarize
from lab.model.teach import conv_weights, flip_example, receptive_fields
from lab.ui.state import default_draft

WORDS = {  # what each language calls the parts this test looks for
    "en": {"sees": "sees 3x3 input pixels", "flip": "Convolution in deep learning is cross-correlation",
           "activations": "Activation functions and their gradients", "field": "Receptive field",
           "largest": "(largest path)"},
    "ko": {"sees": "입력 픽셀 3x3 영역을 봅니다", "flip": "딥러닝의 합성곱은 교차상관입니다",
           "activations": "활성화 함수와 그 기울기", "field": "수용 영역", "largest": "(가장 큰 경로)"},
}


def build_page(lang: str, preset: str = "gap_cam") -> AppTest:
    """The Build page in ``lang`` with a preset's layers as the draft (on the default data set, shapes)."""
    at = AppTest.from_file(str(PAGES / "build.py"), default_timeout=WAIT_S)
    draft = default_draft()
    draft["spec"] = get_preset(preset)
    at.session_state["draft"], at.session_state["lang"] = draft, lang
    return ok(at.run())


def expander(at, label: str):
    return next(e for e in at.expander if e.label == label)


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_table_shows_receptive_fields_and_weights_without_sharing(isolated_lab, lang):
    at = build_page(lang)
    draft = at.session_state["draft"]
    summary = summarize(draft["spec"], (3, 32, 32), 8)  # the draft's data set: shapes
    table = at.dataframe[0].value.set_index("name")
    reaches = receptive_fields(summary.rows)
    assert table.loc["conv2d_1", "receptive field"] == "3x3" and table.loc["conv2d_3", "receptive field"] == "18x18"
    assert list(table["receptive field"]) == [reaches[r.name].words(lang, short=True) if r.name in reaches else ""
                                              for r in summary.rows]
    first = conv_weights(summary.rows[0])
    assert (table.loc["conv2d_1", "without sharing"], table.loc["conv2d_1", "as dense"]) == \
           (32 * 32 * 896, 3 * 32 * 32 * 32 * 32 * 32 + 32 * 32 * 32) == (first.unshared, first.dense)
    assert table["without sharing"].notna().sum() == sum(r.layer["type"] == "conv2d" for r in summary.rows)
    arithmetic = next(m.value for m in at.markdown if m.value.startswith("**conv2d_1 · "))
    assert WORDS[lang]["field"] in arithmetic and "1 + (3-1)*1 = 3" in arithmetic and WORDS[lang]["sees"] in arithmetic


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_a_residual_block_says_largest_path(isolated_lab, lang):
    at = build_page(lang, "mini_resnet")
    table = at.dataframe[0].value.set_index("name")
    assert table.loc["residual_1", "receptive field"].endswith(WORDS[lang]["largest"])


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_two_notes_show_the_flip_and_the_gradients(isolated_lab, lang):
    at = build_page(lang)
    example = flip_example()
    flip = expander(at, WORDS[lang]["flip"])
    grids = [tuple(tuple(map(int, line.split())) for line in c.value.splitlines()) for c in flip.code]
    assert grids == [example.patch, example.kernel, example.flipped]
    shown = " ".join(m.value for m in flip.markdown)
    assert f"`{example.correlation_sum}`" in shown and f"`{example.convolution_sum}`" in shown
    assert "= 17" in example.correlation_sum and "= 23" in example.convolution_sum
    notes = expander(at, WORDS[lang]["activations"])
    assert "0.25" in " ".join(m.value for m in notes.markdown)
    figures = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]  # the architecture has no title
    figure = next(f for f in figures if f["layout"].get("title", {}).get("text") == WORDS[lang]["activations"])
    assert {trace["meta"] for trace in figure["data"]} >= {"relu", "sigmoid", "tanh"}
