"""The text in English and Korean (lab/locales/*.json, read by lab.i18n for the engine and
lab.ui.i18n for the pages): both files hold the same keys and placeholders, every key the code
asks for exists and every key is asked for, Korean is really Korean, the language is chosen as
documented, the engine's words that reach a page (charts, datasets, presets, the model summary's
notes, the device) come in both languages with English unchanged, and every page and the sidebar
render in both languages, with the same widget keys, draft values and stored run values."""

from __future__ import annotations

import json
import os
import re
import string
from pathlib import Path
from types import SimpleNamespace
from xml.etree import ElementTree

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest
from support.apptest import WAIT_S, switch_page, tiny_draft
from support.runs import fake_run

import lab.i18n
from lab.data import list_datasets
from lab.insight.maps import MapFrame
from lab.model.layers import LAYER_TYPES
from lab.model.presets import PRESETS, get_preset_info
from lab.model.spec import analyze
from lab.model.teach import LANGUAGES as TEACH_LANGUAGES
from lab.plots.compare import best_acc_figure, curves_figure, figures_html, gap_figure, sweep_figure
from lab.plots.diagram import architecture_figure
from lab.plots.insight import confusion_figure, feature_space_figure, knn_figure, probability_figure
from lab.plots.training import batch_loss_figure, batch_loss_svg, class_counts_figure, epoch_figure
from lab.runs.store import RunStore
from lab.runs.sweep import AXES
from lab.train.device import describe_device
from lab.ui import i18n
from lab.ui.state import job_manager

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
UI_SOURCES = [ROOT / "app.py", *sorted((ROOT / "lab" / "ui").glob("*.py"))]  # where t() is the pages' lookup
ENGINE_SOURCES = sorted((ROOT / "lab").rglob("*.py"))  # text() anywhere in lab (lab.model.teach's own t() is not ours)
EN, KO = i18n.strings("en"), i18n.strings("ko")
NOT_A_METHOD = r"(?<![\w.])"  # text(...) but not st.text(...)
KEY_CALLS = {"t": re.compile(NOT_A_METHOD + r"""t\(\s*["']([\w.-]+)["']"""),  # t("build.add", ...)
             "text": re.compile(NOT_A_METHOD + r"""text\(\s*["']([\w.-]+)["']""")}  # text("plot.epoch", lang)
DYNAMIC_CALLS = {"t": re.compile(NOT_A_METHOD + r"""t\(\s*f["']([\w.]+\.)\{"""),  # t(f"augment.control.{key}")
                 "text": re.compile(NOT_A_METHOD + r"""text\(\s*f["']([\w.]+\.)\{""")}  # text(f"preset.{key}", lang)
TEMPLATE_CALLS = re.compile(r"""templates\(\s*["']([\w.]+\.)["']""")  # templates("film.", lang): a JS part's keys
HANGUL = re.compile(r"[\uac00-\ud7a3]")
# Names a Korean text keeps as they are; with them (and placeholders, code) removed, any letter
# left in an English text must have a Korean translation.
TECHNICAL = re.compile(r"\b(CAM|Grad-CAM|t-SNE|UMAP|PCA|ReLU|Adam|SGD|JSON|PyTorch|MACs?|MB|px|CutMix|MixUp|Cutout"
                       r"|Fashion-MNIST|MNIST|CIFAR-10|CNN Lab|k-NN)\b")


def placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def needs_korean(english: str) -> bool:
    """Whether an English text has words left once names, placeholders and code are taken out."""
    return bool(re.search("[A-Za-z]", TECHNICAL.sub("", re.sub(r"\{[^}]*\}|`[^`]*`", "", english))))


def used_keys() -> tuple[set[str], tuple[str, ...], str]:
    """The keys named by t() in the pages and text() anywhere in lab; the prefixes of f-string keys;
    all those sources as one text."""
    sources = {"t": "\n".join(p.read_text(encoding="utf-8") for p in UI_SOURCES),
               "text": "\n".join(p.read_text(encoding="utf-8") for p in ENGINE_SOURCES)}
    keys = {key for name, code in sources.items() for key in KEY_CALLS[name].findall(code)}
    prefixes = tuple(prefix for name, code in sources.items() for prefix in DYNAMIC_CALLS[name].findall(code))
    prefixes += tuple(TEMPLATE_CALLS.findall("\n".join(sources.values())))
    return keys, prefixes, "\n".join(sources.values())


# ---------------------------------------------------------------- the files


def test_both_languages_have_the_same_keys():
    assert set(EN) - set(KO) == set(), "missing in ko.json"
    assert set(KO) - set(EN) == set(), "only in ko.json"


@pytest.mark.parametrize("key", sorted(EN))
def test_each_translation_has_the_same_placeholders(key):
    assert placeholders(KO[key]) == placeholders(EN[key])


def test_the_files_live_in_lab_locales_shared_by_engine_and_pages():
    assert lab.i18n.LOCALES == ROOT / "lab" / "locales" and not (ROOT / "lab" / "ui" / "locales").exists()
    assert i18n.strings is lab.i18n.strings and i18n.LANGUAGES is lab.i18n.LANGUAGES
    for lang in i18n.LANGUAGES:
        assert json.loads((ROOT / "lab" / "locales" / f"{lang}.json").read_text(encoding="utf-8")) == \
               i18n.strings(lang)


def test_every_key_the_code_asks_for_exists():
    used, _, _ = used_keys()
    assert {key for key in used if key.startswith(("build.", "plot."))} >= {"build.add", "plot.epoch"}, \
        "the scan found no t() or text() call: has the pattern changed?"
    assert sorted(used - set(EN)) == []


def test_every_key_is_used():
    """A key no source names (as a literal, or under a t(f"prefix.{...}") or text(f"prefix.{...}") call)
    is a dead string."""
    _, prefixes, code = used_keys()
    unused = [key for key in EN if f'"{key}"' not in code and not key.startswith(prefixes)]
    assert unused == []


def test_korean_texts_are_in_korean():
    untranslated = [key for key, english in EN.items() if needs_korean(english) and not HANGUL.search(KO[key])]
    assert untranslated == []


def test_layer_type_names_come_from_lab_teach_in_every_language():
    """The Build page names layer types with lab.model.teach's words: in English they are the registry's titles."""
    assert set(i18n.LANGUAGES) == set(TEACH_LANGUAGES)
    assert {kind: lab.i18n.text(f"teach.type.{kind}") for kind in LAYER_TYPES} == \
           {kind: t.title for kind, t in LAYER_TYPES.items()}


# ---------------------------------------------------------------- t() and language()


def test_t_fills_in_values_and_falls_back_to_english(monkeypatch):
    monkeypatch.setattr(i18n, "language", lambda: "ko")
    assert i18n.t("build.layer.error", position=3, type="maxpool2d", reason="x") == "3번 층 (maxpool2d): x"
    monkeypatch.setattr(lab.i18n, "strings", lambda lang: {} if lang == "ko" else EN)
    assert i18n.t("build.add") == "Add layer"  # missing in Korean: English, not a crash
    with pytest.raises(KeyError):
        i18n.t("build.no_such_key")


def test_text_is_t_without_streamlit(monkeypatch):
    assert lab.i18n.text("plot.best.bar", acc=0.5, epoch=3) == "50.0% (epoch 3)"  # English by default
    assert lab.i18n.text("plot.best.bar", "ko", acc=0.5, epoch=3) == "50.0% (에폭 3)"
    with pytest.raises(ValueError, match="unknown language 'fr'"):
        lab.i18n.text("plot.epoch", "fr")
    monkeypatch.setattr(lab.i18n, "strings", lambda lang: {} if lang == "ko" else EN)
    assert lab.i18n.text("plot.epoch", "ko") == "epoch"
    with pytest.raises(KeyError):
        lab.i18n.text("plot.no_such_key", "ko")


@pytest.mark.parametrize("state, env, locale, expected", [
    ({}, None, None, "en"),
    ({}, None, "ko-KR", "ko"),
    ({}, None, "fr-FR", "en"),
    ({}, "ko", "en-US", "ko"),  # the server's setting beats the browser
    ({}, "xx", "ko_KR", "ko"),  # an unknown setting is ignored
    ({"lang": "en"}, "ko", "ko-KR", "en"),  # the session's pick beats both
])
def test_language_order(monkeypatch, state, env, locale, expected):
    monkeypatch.setattr(i18n, "st", SimpleNamespace(session_state=state, context=SimpleNamespace(locale=locale)))
    if env is None:
        monkeypatch.delenv("LAB_LANGUAGE", raising=False)
    else:
        monkeypatch.setenv("LAB_LANGUAGE", env)
    assert i18n.language() == expected


def _picker_script():
    import streamlit as st

    from lab.ui.i18n import language_picker, t

    language_picker()
    st.button(t("build.add"))


def test_the_picker_switches_the_language_and_shows_the_one_in_use(monkeypatch):
    monkeypatch.delenv("LAB_LANGUAGE", raising=False)
    at = AppTest.from_function(_picker_script).run()
    assert at.sidebar.selectbox[0].value == "en" and at.button[0].label == "Add layer"
    at.sidebar.selectbox[0].select("ko").run()
    assert at.session_state["lang"] == "ko" and at.button[0].label == "층 추가"
    at.session_state["lang"] = "en"  # set elsewhere: the box follows
    at.run()
    assert at.sidebar.selectbox[0].value == "en" and at.button[0].label == "Add layer"


# ---------------------------------------------------------------- the engine's words

METRICS = [{"epoch": 1, "train_acc": 0.5, "val_acc": 0.4, "train_loss": 1.2, "val_loss": 1.3},
           {"epoch": 2, "train_acc": 0.7, "val_acc": 0.6, "train_loss": 0.8, "val_loss": 0.9},
           {"epoch": 3, "train_acc": 0.9, "val_acc": 0.55, "train_loss": 0.3, "val_loss": 1.0}]
SWEEP = [{"name": f"r{i}", "batch_size": b, "epochs": e, "lr": 0.01, "optimizer": "adam", "augment": "none",
          "best_val_acc": 0.5} for i, (b, e) in enumerate([(32, 1), (32, 2), (64, 1), (64, 2)])]
STOPS = {"input": [1, 8, 8], "num_classes": 10,  # the second pool finds a 2x2 map: the drawing stops there
         "layers": [{"type": "conv2d", "filters": 4}, {"type": "maxpool2d", "size": 4},
                    {"type": "maxpool2d", "size": 4}]}
FIXED_OUTPUT = {"input": [1, 8, 8], "num_classes": 10,
                "layers": [{"type": "flatten"}, {"type": "dense", "units": 3},
                           {"type": "activation", "function": "softmax"}]}


def _frame(epoch: int) -> MapFrame:
    return MapFrame(epoch=epoch, points=np.arange(8.0).reshape(4, 2), labels=np.array([0, 1, 0, 1]),
                    preds=np.array([0, 1, 1, 1]), confidence=np.full(4, 0.9), indices=np.arange(4), knn_acc=0.75)


def _figure_words(fig) -> list[str]:
    """A figure's title, axis titles, legend title and legend names, as a reader sees them."""
    layout = fig.layout
    words = [layout.title.text, layout.xaxis.title.text, layout.yaxis.title.text, layout.legend.title.text]
    return [w for w in words if w] + [trace.name for trace in fig.data if trace.name and trace.showlegend is not False]


def _svg_words(svg: str) -> list[str]:
    """An SVG chart's title and its texts that are words, not numbers."""
    root = ElementTree.fromstring(svg)
    texts = [t.text for t in root.iter() if t.tag.endswith(("}title", "}text"))]
    return [t for t in texts if not t.replace(".", "").isdigit()]


def _feature_space(lang: str) -> list[str]:
    fig = feature_space_figure([_frame(1), _frame(2)], ["cat", "dog"], "pca", lang=lang)
    buttons = fig.layout.updatemenus[0].buttons
    return [fig.layout.title.text, fig.layout.legend.title.text, fig.data[-1].name, fig.data[0].hovertemplate,
            buttons[0].label, buttons[1].label, fig.layout.sliders[0].currentvalue.prefix]


def _datasets(lang: str, root: Path) -> list[str]:
    infos = {i.name: i for i in list_datasets(root, lang)}
    return [infos["shapes"].title, infos["shapes"].description, infos["digits"].title,
            infos["mnist"].how_to_get.replace(str(root), "DATA")]


def _analyzed(lang: str) -> list[str]:
    fixed, added = analyze(FIXED_OUTPUT, lang=lang), analyze(STOPS | {"layers": STOPS["layers"][:1]}, lang=lang)
    return [*fixed.notes, fixed.rows[-1].note, *added.notes, added.rows[-1].note]


def _diagram(lang: str) -> list[str]:
    fig = architecture_figure(analyze(STOPS), lang)
    return [fig.data[0].name, fig.data[0].text, fig.data[1].text, fig.layout.annotations[-1].text]


CPU_CORES = f"{torch.get_num_threads()} threads of {os.cpu_count()} cores"
# Each engine function whose words reach a page: what it says in a language, and what it said (in
# English) before it took one. Figures from lab.plots.training, lab.plots.insight, lab.plots.compare and
# lab.plots.diagram, then datasets, presets, the model summary's notes and the device badge.
ENGINE_TEXTS = {
    "batch_loss_figure": (lambda lang, _: _figure_words(batch_loss_figure([(1, 2.0), (2, 1.5)], lang=lang)),
                          ["Training loss per batch", "step", "loss", "batch loss"]),
    "batch_loss_svg": (lambda lang, _: _svg_words(batch_loss_svg([(1, 2.0), (2, 1.5)], lang=lang)),
                       ["Training loss per batch", "Training loss per batch", "step", "loss"]),
    "epoch_figure acc": (lambda lang, _: _figure_words(epoch_figure(METRICS, "acc", lang)),
                         ["Accuracy per epoch", "epoch", "accuracy", "train", "validation"]),
    "epoch_figure loss": (lambda lang, _: _figure_words(epoch_figure(METRICS, "loss", lang)),
                          ["Loss per epoch", "epoch", "loss", "train", "validation"]),
    "class_counts_figure": (lambda lang, _: _figure_words(class_counts_figure(["a", "b"], [3, 4], [1, 2], lang)),
                            ["images", "train", "val"]),
    "feature_space_figure": (lambda lang, _: _feature_space(lang),
                             ["Feature space (PCA) · epoch 2 · k-NN accuracy 75.0%",
                              "true class", "misclassified",
                              "true: cat<br>predicted: %{text}<br>val image %{customdata}<extra></extra>",
                              "▶ Play", "❚❚ Pause", "epoch "]),
    "knn_figure": (lambda lang, _: [*_figure_words(fig := knn_figure([{"epoch": 1, "knn_acc": 0.5}], lang=lang)),
                                    fig.data[0].hovertemplate],
                   ["k-NN accuracy per epoch", "epoch", "k-NN", "epoch %{x}: %{y:.1%}<extra></extra>"]),
    "probability_figure": (lambda lang, _: _figure_words(probability_figure(np.array([0.3, 0.7]), ["a", "b"],
                                                                            lang=lang)),
                           ["Class probabilities"]),
    "confusion_figure": (lambda lang, _: [*_figure_words(fig := confusion_figure(np.array([[3, 1], [0, 4]]),
                                                                                 ["a", "b"], lang)),
                                          fig.data[0].hovertemplate],
                         ["Confusion matrix · 8 validation images · 87.5% right", "predicted", "true",
                          "true %{y}, predicted %{x}: %{z}<extra></extra>"]),
    "curves_figure": (lambda lang, _: [*_figure_words(fig := curves_figure([("7", METRICS)], "acc", "time", lang)),
                                       fig.data[0].hovertemplate],
                      ["Accuracy (solid: validation, dashed: train)", "training time (s)", "accuracy", "7",
                       "%{fullData.name}<br>validation accuracy %{y:.4g}<br>training time (s) %{x:.4g}<extra></extra>"]),
    "best_acc_figure": (lambda lang, _: [*_figure_words(fig := best_acc_figure([("a", METRICS), ("b", [])], lang)),
                                         *(bar.text[0] for bar in fig.data)],
                        ["Best validation accuracy", "accuracy", "60.0% (epoch 2)", "no epoch"]),
    "gap_figure": (lambda lang, _: [*_figure_words(fig := gap_figure([("7", METRICS)], lang)),
                                    *(trace.hovertemplate for trace in fig.data)],
                   ["Generalisation gap: train − validation accuracy (★ overfitting starts)", "epoch", "gap", "7",
                    "7<br>epoch %{x}: gap %{y:.1%}<extra></extra>",
                    "7: overfitting starts after epoch 2 (lowest validation loss)<extra></extra>"]),
    "sweep_figure": (lambda lang, _: [*_figure_words(fig := sweep_figure(SWEEP, lang)),
                                      fig.data[0].colorbar.title.text],
                     ["Best validation accuracy per combination", "epochs", "batch sizes", "best val acc"]),
    "figures_html": (lambda lang, _: re.findall("<title>(.*)</title>", figures_html({}, lang)),
                     ["CNN Lab comparison"]),
    "architecture_figure": (lambda lang, _: _diagram(lang),
                            ["input", "input<br>1x8x8", "conv2d_1 (conv2d)<br>4x8x8<br>40 params",
                             "stops at layer 3 (maxpool2d): pools a 2x2 map with a 4x4 window; remove this pooling "
                             "layer, use a smaller size, or pool less before it"]),
    "list_datasets": (_datasets,
                      ["Shapes (built in)",
                       "Synthetic 32x32 colour images of 8 shapes on cluttered backgrounds, with each object's "
                       "bounding box, so class-activation maps can be scored. Offline.",
                       "Digits 8x8 (scikit-learn)",
                       "MNIST files not found (searched DATA/MNIST/raw). To get them: run `python -m lab datasets "
                       "--download mnist` (needs internet); or put the files train-images-idx3-ubyte[.gz], "
                       "train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz] in "
                       "DATA/MNIST/raw."]),
    "get_preset_info": (lambda lang, _: [get_preset_info(name, lang).description for name in ("lenet5", "gap_cam")],
                        ["LeCun et al. (1998): two conv + average-pool stages, three dense layers, tanh.",
                         "Conv blocks -> global average pooling -> dense: the architecture CAM (Zhou et al., 2016) "
                         "explains exactly."]),
    "analyze": (lambda lang, _: _analyzed(lang),
                ["trailing softmax removed: the loss applies softmax to the logits",
                 "output layer units set to 10 to match the classes", "output layer",
                 "flatten added before the output layer", "dense output layer with 10 units added",
                 "output layer (added)"]),
    "describe_device": (lambda lang, _: [describe_device(torch.device("cpu"), lang)], [f"CPU ({CPU_CORES})"]),
}


@pytest.mark.parametrize("name", sorted(ENGINE_TEXTS))
def test_engine_words_keep_their_english(name, tmp_path):
    words, english = ENGINE_TEXTS[name]
    assert words("en", tmp_path) == english


@pytest.mark.parametrize("name", sorted(ENGINE_TEXTS))
def test_engine_words_come_in_korean(name, tmp_path):
    words, english = ENGINE_TEXTS[name]
    korean = words("ko", tmp_path)
    assert len(korean) == len(english)
    assert [k for e, k in zip(english, korean) if needs_korean(e) and not HANGUL.search(k)] == []


def test_every_preset_and_dataset_is_described_in_every_language(tmp_path):
    for lang in i18n.LANGUAGES:
        assert all(get_preset_info(name, lang).description for name in PRESETS)
        assert all(info.title and info.description for info in list_datasets(tmp_path, lang))
    assert [info.name for info in list_datasets(tmp_path, "ko")] == [info.name for info in list_datasets(tmp_path)]


def test_swept_settings_are_named_as_lab_sweep_names_them():
    """In English the sweep figure's axis titles are lab.runs.sweep's labels (its errors and plans say them too)."""
    assert {axis: lab.i18n.text(f"plot.sweep.axis.{axis}") for axis in AXES} == \
           {axis: spec.label for axis, spec in AXES.items()}


# ---------------------------------------------------------------- pages in Korean


@pytest.fixture
def korean(isolated_lab, monkeypatch) -> AppTest:
    """The app on its Home page in Korean, in the isolated lab (tests/conftest.py).

    LAB_LANGUAGE too, not only the session's "lang": AppTest's ``select`` calls a selectbox's
    format_func in the test's thread, outside the session, where only the server's setting is
    seen; with English there it would not find the Korean option it selects.
    """
    monkeypatch.setenv("LAB_LANGUAGE", "ko")
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["lang"] = "ko"
    at.run()
    assert not at.exception, at.exception
    return at


def chart_titles(at: AppTest) -> list[str]:
    """The titles of the page's plotly charts, as the browser gets them."""
    return [json.loads(chart.proto.spec)["layout"]["title"]["text"] for chart in at.get("plotly_chart")]


def test_home_in_korean(korean):
    assert [s.value for s in korean.subheader][-1] == "안내"
    assert korean.button(key="home.quick.0").label == "이 설정 사용"
    assert {"shapes", "digits"} <= set(korean.dataframe[0].value["name"])  # data columns keep their names
    korean.button(key="home.quick.0").click().run()
    assert korean.session_state["draft"]["preset"] == "fashion_cnn"
    assert korean.success[0].value.startswith("초안을 설정했습니다")


def test_data_page_in_korean(korean):
    switch_page(korean, "app_pages/data.py")
    assert korean.title[0].value == "데이터"
    assert korean.get("file_uploader")[0].label == "클래스 폴더를 담은 zip 파일"
    assert [m.label for m in korean.metric][:2] == ["이미지 형태", "클래스 수"]
    assert KO["dataset.shapes.description"] in [c.value for c in korean.caption]  # lab.data's words in Korean
    assert korean.selectbox(key="data.pick").format_func("shapes").startswith("도형 (기본 제공) · ")
    counts = json.loads(korean.get("plotly_chart")[0].proto.spec)
    assert counts["layout"]["yaxis"]["title"]["text"] == "이미지 수"
    assert [bar["name"] for bar in counts["data"]] == ["학습", "검증"]
    korean.selectbox(key="data.pick").select("digits").run()
    assert not korean.exception and korean.session_state["draft"]["dataset"] == "digits"


def test_build_page_in_korean_stores_the_same_values(korean):
    switch_page(korean, "app_pages/build.py")
    assert korean.button(key="build.add").label == "층 추가"
    assert next(e for e in korean.expander if e.label.startswith("1. ")).label.startswith("1. 합성곱 · ")
    assert any("가중치 공유" in m.value for m in korean.markdown)  # lab.model.teach's arithmetic, in Korean
    captions = [c.value for c in korean.caption]
    assert KO["preset.gap_cam"] in captions  # the preset's description
    assert "참고: 클래스 수에 맞춰 출력층 유닛을 8개로 정했습니다" in captions  # lab.model.spec's note on the summary
    diagram = json.loads(korean.get("plotly_chart")[0].proto.spec)
    assert diagram["data"][0]["name"] == "입력" and "파라미터" in diagram["data"][1]["text"]
    korean.selectbox(key="build.add_type").select("dense")
    korean.button(key="build.add").click().run()
    assert not korean.exception
    assert korean.session_state["draft"]["spec"]["layers"][-1]["type"] == "dense"
    activation = next(s for s in korean.selectbox if s.key and s.key.endswith(".activation"))
    assert activation.label == "활성화 함수" and activation.value in ("relu", "none")


def test_switching_language_keeps_the_widgets_and_the_draft(isolated_lab, monkeypatch):
    monkeypatch.delenv("LAB_LANGUAGE", raising=False)
    at = switch_page(AppTest.from_file(APP, default_timeout=60).run(), "app_pages/build.py")
    filters = next(n for n in at.number_input if n.key.endswith(".0.filters"))
    filters.set_value(16).run()
    at.session_state["lang"] = "ko"
    at.run()
    assert not at.exception
    filters = next(n for n in at.number_input if n.key.endswith(".0.filters"))
    assert filters.label == "필터 수" and filters.value == 16
    assert at.session_state["draft"]["spec"]["layers"][0]["filters"] == 16


def test_augment_page_in_korean(korean):
    switch_page(korean, "app_pages/augment.py")
    assert korean.toggle(key="aug.on.hflip").label == "좌우 뒤집기 (확률)"
    assert any(b.label == "다시 뽑기" for b in korean.button)
    korean.selectbox(key="aug.preset").select("cifar_standard").run()
    assert not korean.exception
    assert korean.session_state["draft"]["augment"] == {"preset": "cifar_standard"}


def test_server_language_makes_a_fresh_session_korean(isolated_lab, monkeypatch):
    monkeypatch.setenv("LAB_LANGUAGE", "ko")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert [s.value for s in at.subheader][-1] == "안내"


def app_in(lang: str, draft: dict | None = None) -> AppTest:
    """The app on its Home page in a session speaking ``lang``; runs and data as ``isolated_lab``
    (tests/conftest.py) sets them. A test that selects from a translated option list sets
    LAB_LANGUAGE as well (see ``korean``)."""
    at = AppTest.from_file(APP, default_timeout=WAIT_S)
    at.session_state["lang"] = lang
    if draft is not None:
        at.session_state["draft"] = draft
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def korean_lab(isolated_lab, monkeypatch) -> RunStore:
    """A Korean server (LAB_LANGUAGE) on its own runs folder and a fresh job manager; the store of that folder."""
    monkeypatch.setenv("LAB_LANGUAGE", "ko")
    return job_manager().store


def test_the_sidebar_in_korean(korean_lab, monkeypatch):
    monkeypatch.setenv("LAB_TEACHER_PASSWORD", "secret")
    at = app_in("ko")
    assert at.sidebar.selectbox(key="lang.picker").label == "Language · 언어"  # the same in every language
    assert at.sidebar.text_input(key="owner").label == "이름"
    assert any(m.value.startswith("**초안**  \n데이터셋: shapes") for m in at.sidebar.markdown)
    assert f"장치: **{describe_device(lang='ko')}**" in [c.value for c in at.sidebar.caption]
    assert "안내: 페이지별로 하는 일" in [link.proto.label for link in at.sidebar.get("page_link")]
    assert [e.label for e in at.sidebar.expander] == ["선생님"]
    password = next(i for i in at.sidebar.text_input if i.label == "선생님 비밀번호")
    password.input("wrong")
    next(b for b in at.sidebar.button if b.label == "로그인").click().run()
    assert at.error[0].value == "이 서버의 선생님 비밀번호가 아닙니다."
    password = next(i for i in at.sidebar.text_input if i.label == "선생님 비밀번호")
    password.input("secret")
    next(b for b in at.sidebar.button if b.label == "로그인").click().run()
    assert not at.exception and at.session_state["visitor"].teacher
    assert any("선생님으로 로그인했습니다" in c.value for c in at.sidebar.caption)


def test_train_page_in_korean_trains_a_run_that_stores_english(korean_lab):
    at = switch_page(app_in("ko", draft=tiny_draft()), "app_pages/train.py")
    assert at.title[0].value == "학습" and at.number_input(key="train.epochs").label == "에폭 수"
    at.session_state["train.view"] = "details"  # the separate charts; the film's words are checked below
    next(b for b in at.button if b.label == "학습 시작").click().run()
    assert not at.exception, at.exception
    run_id = at.query_params["run"]
    job_manager().wait(run_id, WAIT_S)
    at.run()  # as the fragment would, once the run has ended
    assert not at.exception, at.exception
    assert at.success[0].value.startswith("**완료**: 최고 검증 정확도 ")
    assert [s.value for s in at.subheader][:3] == ["실행 tiny-digits-1", "특징 공간", "신경망이 보는 곳"]
    assert at.selectbox(key="train.insight.cam_epoch").options[0] == "최신 (에폭 1)"
    titles = chart_titles(at)  # the engine's words (lab.plots.training, lab.plots.insight), in the page's language
    assert titles[:3] == ["배치별 학습 손실", "에폭별 정확도", "에폭별 손실"] and titles[-1] == "에폭별 k-NN 정확도"
    assert any(title.startswith("특징 공간 (PCA) · 에폭 1 · 검증 정확도 ") for title in titles)
    assert all(HANGUL.search(title) for title in titles)
    assert any(m.value == "완료" for m in at.markdown)  # the recent runs' status column
    assert job_manager().state(run_id).status == "finished"  # the run keeps the English word
    assert korean_lab.get(run_id).state == "finished"
    at.session_state["train.view"] = "film"
    (player,) = at.run().get("component_instance")
    words = json.loads(player.proto.json_args)["text"]
    assert (words["play"], words["epoch"]) == ("재생", "에포크 {epoch} / {last}")  # the player fills them in


def test_compare_page_in_korean_shows_statuses_in_korean_and_filters_on_the_stored_ones(korean_lab):
    a, b = fake_run(korean_lab, "a", [0.5, 0.7]), fake_run(korean_lab, "b", [0.6])
    at = switch_page(app_in("ko"), "app_pages/compare.py")
    assert at.title[0].value == "비교" and [tab.label for tab in at.tabs] == ["실행", "스윕"]
    assert list(at.dataframe[0].value["status"]) == ["완료", "완료"]
    status = at.multiselect(key="compare.status")
    assert status.label == "상태" and status.options == ["완료"]
    status.select("finished").run()  # the stored value; its label is found through LAB_LANGUAGE
    assert not at.exception, at.exception
    assert at.session_state["compare.status"] == ["finished"] and len(at.dataframe[0].value) == 2
    at.multiselect(key="compare.selected").set_value([a, b]).run()
    assert not at.exception, at.exception
    assert at.radio(key="compare.x").options == ["에폭", "학습 시간 (초)"]
    assert {d.label for d in at.get("download_button")} >= {"표 내려받기 (CSV)", "그래프 내려받기 (HTML)"}


def test_explain_page_in_korean(korean_lab, copy_gap_cam_run):
    copy_gap_cam_run(korean_lab.root)
    at = switch_page(app_in("ko"), "app_pages/explain.py")
    assert at.title[0].value == "모델 해석"
    assert at.selectbox(key="explain.checkpoint").options[:2] == ["최고 (에폭 3)", "마지막"]
    assert at.radio(key="explain.source").options == ["검증 이미지", "가장 확신한 오답 중 하나", "내 이미지"]
    assert {"신경망이 보는 곳", "신경망의 속", "검증 세트 전체"} <= {s.value for s in at.subheader}
    captions = [c for img in at.image for c in img.captions]
    assert captions[0].startswith("정답: ") and " · 예측: " in captions[0]
    assert any(c.startswith("첫 합성곱 층: 3×3 필터 32개") for c in captions)
    assert [b.label for b in at.download_button][:3] == ["PyTorch 코드 + 학습 루프", "설정 JSON", "보고서 (최고)"]
    at.radio(key="explain.source").set_value("mistake").run()
    assert not at.exception, at.exception
    mistake = at.selectbox(key="explain.mistake")
    assert mistake.label == "오답" and "확신도" in mistake.options[0]


def test_class_page_in_korean(korean_lab):
    for owner, accs in [("anna", [0.7]), ("ben", [0.9])]:
        korean_lab.set_status(fake_run(korean_lab, f"{owner}-run", accs), "finished", owner=owner)
    at = switch_page(app_in("ko"), "app_pages/gallery.py")
    assert at.title[0].value == "우리 반" and at.toggle(key="class.best_per_student").label == "학생마다 가장 좋은 실행만"
    assert at.metric[0].label == "지금까지 최고" and at.metric[0].value == "90.0%"
    table = at.dataframe[0].value
    assert list(table["owner"]) == ["ben", "anna"] and list(table["status"]) == ["완료", "완료"]


PAGE_TITLES = {"home": None, "data": "nav.data", "build": "nav.build", "augment": "nav.augment",
               "train": "nav.train", "compare": "nav.compare", "explain": "nav.explain", "gallery": "nav.class"}


def test_the_title_table_names_every_page():
    assert set(PAGE_TITLES) == {p.stem for p in (ROOT / "app_pages").glob("*.py")}


@pytest.mark.parametrize("lang", sorted(i18n.LANGUAGES))
@pytest.mark.parametrize("name", sorted(PAGE_TITLES))
def test_every_page_renders_in_every_language(isolated_lab, monkeypatch, lang, name):
    monkeypatch.setenv("LAB_LANGUAGE", lang)
    at = switch_page(app_in(lang), f"app_pages/{name}.py")  # asserts no exception
    key = PAGE_TITLES[name]
    assert at.title[0].value == ("CNN Lab" if key is None else i18n.strings(lang)[key])
    sidebar = [i.label for i in at.sidebar.text_input]
    assert sidebar == [i18n.strings(lang)["sidebar.name"]]
