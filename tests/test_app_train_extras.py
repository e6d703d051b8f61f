"""The Train page's accuracy per class by epoch and its learning-rate finder (issue 19), and their figure."""

from __future__ import annotations

import json

import pytest
from support.apptest import DETAILS, WAIT_S, charts, ok, page, tiny_draft

from lab.plots.training import MAX_CLASS_LINES, class_accuracy_figure
from lab.train.engine import TrainConfig
from lab.ui import train_extras_view
from lab.ui.state import job_manager

CLASS_TITLE = "Validation accuracy per class: which are learned first, which never"
FINDER_TITLE = "Loss as the learning rate rises"
FIND, USE = "train.lr_find.run", "train.lr_find.use"


def finished_run(epochs: int = 2) -> str:
    """A tiny model trained on 300 digits, without the insight files (not read here)."""
    d = tiny_draft(epochs=epochs, train_limit=300)
    config = TrainConfig.from_dict({**d["train"], "spec": d["spec"], "dataset": d["dataset"], "insight": False})
    run_id = job_manager().submit(config)
    assert job_manager().wait(run_id, WAIT_S).status == "finished"
    return run_id


# ---------------------------------------------------------------- the figure


def test_one_line_per_class_with_a_gap_where_a_class_had_no_image():
    metrics = [{"epoch": 1, "val_class_acc": [0.5, None, 0.0]}, {"epoch": 2, "val_class_acc": [0.9, 1.0, 0.25]}]
    figure = class_accuracy_figure(metrics, ["cat", "<b>dog</b>", "owl"]).to_dict()
    assert [trace["name"] for trace in figure["data"]] == ["cat", "&lt;b&gt;dog&lt;/b&gt;", "owl"]  # text, not tags
    assert [list(trace["y"]) for trace in figure["data"]] == [[0.5, 0.9], [None, 1.0], [0.0, 0.25]]
    assert all(list(trace["x"]) == [1, 2] for trace in figure["data"])


def test_many_classes_make_a_class_by_epoch_heatmap():
    count = MAX_CLASS_LINES + 1
    metrics = [{"epoch": e, "val_class_acc": [e / 10] * count} for e in (1, 2, 3)]
    figure = class_accuracy_figure(metrics, [f"c{i}" for i in range(count)]).to_dict()
    (heatmap,) = figure["data"]
    assert heatmap["type"] == "heatmap" and len(heatmap["y"]) == count and list(heatmap["x"]) == [1, 2, 3]
    assert [list(row) for row in heatmap["z"]][0] == [0.1, 0.2, 0.3]


# ---------------------------------------------------------------- per-class accuracy on the page


@pytest.mark.usefixtures("isolated_lab")
def test_a_finished_run_shows_accuracy_per_class_with_one_line_per_class():
    run_id = finished_run()
    at = ok(page("train", run=run_id, session=DETAILS))
    figure = charts(at)[CLASS_TITLE]
    assert [trace["name"] for trace in figure["data"]] == [str(digit) for digit in range(10)]
    assert all(list(trace["x"]) == [1, 2] for trace in figure["data"])


@pytest.mark.usefixtures("isolated_lab")
def test_a_run_from_before_per_class_accuracy_shows_no_figure_and_no_error():
    run_id = finished_run(epochs=1)
    assert CLASS_TITLE in charts(ok(page("train", run=run_id, session=DETAILS)))  # until its rows lose val_class_acc
    metrics = job_manager().store.layout(run_id).metrics
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    metrics.write_text("".join(json.dumps({k: v for k, v in row.items() if k != "val_class_acc"}) + "\n"
                               for row in rows))
    at = ok(page("train", run=run_id, session=DETAILS))
    assert not at.error and CLASS_TITLE not in charts(at)
    assert "Accuracy per epoch" in charts(at)  # the other curves are still drawn


# ---------------------------------------------------------------- the learning-rate finder


@pytest.mark.usefixtures("isolated_lab")
def test_the_finder_shows_its_curve_and_suggestion_and_use_sets_the_drafts_rate():
    at = page("train", draft=tiny_draft())
    at.button(key=FIND).click().run()
    ok(at)
    assert not at.error
    curve = charts(at)[FINDER_TITLE]
    assert len(curve["data"][0]["x"]) > 20  # a point per step, up to the cap
    sentence = next(m.value for m in at.markdown if m.value.startswith("Suggested learning rate"))
    assert "steepest descent" in sentence
    suggested = float(sentence.split("**")[1])
    assert suggested != tiny_draft()["train"]["lr"]
    at.button(key=USE).click().run()
    ok(at)
    assert at.session_state["draft"]["train"]["lr"] == suggested
    assert at.number_input(key="train.lr").value == suggested
    assert at.button(key=USE).disabled  # the draft has it now


@pytest.mark.usefixtures("isolated_lab")
def test_the_finder_on_an_invalid_draft_is_an_error_not_a_crash():
    bad = tiny_draft()
    bad["spec"] = {"name": "bad", "layers": [{"type": "conv2d", "filters": 0}]}
    at = page("train", draft=bad)
    at.button(key=FIND).click().run()
    ok(at)
    assert any(e.value.startswith("Cannot find a learning rate") and "filters must be at least 1" in e.value
               for e in at.error)
    assert FINDER_TITLE not in charts(at)


@pytest.mark.usefixtures("isolated_lab")
def test_the_finder_refuses_a_model_too_big_for_the_device_and_says_the_rule(monkeypatch):
    monkeypatch.setitem(train_extras_view.FINDER_BUDGET, "cpu", 1e3)
    at = page("train", draft=tiny_draft())
    at.button(key=FIND).click().run()
    ok(at)
    message = at.error[0].value
    assert "too big to test here" in message and "100 steps × batch size × 3" in message
    assert FINDER_TITLE not in charts(at)


@pytest.mark.usefixtures("isolated_lab")
def test_the_finder_and_per_class_accuracy_in_korean():
    run_id = finished_run(epochs=1)
    at = page("train", draft=tiny_draft(), run=run_id, session=DETAILS)
    at.session_state["lang"] = "ko"
    at.button(key=FIND).click().run()
    ok(at)
    titles = set(charts(at))
    assert "클래스별 검증 정확도: 어떤 클래스를 먼저 배우고, 어떤 클래스는 끝내 못 배우는지" in titles
    assert any(m.value.startswith("제안하는 학습률") for m in at.markdown)
    assert at.button(key=USE).label == "이 학습률 사용"
