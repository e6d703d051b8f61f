"""AppTest for the Compare page: the run table, overlaid curves, edits, delete with
confirmation, sweeps queued from the draft, and runs that outlive their server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from streamlit.testing.v1 import AppTest
from support.runs import fake_run

from lab.runs.access import Visitor
from lab.runs.compare import run_labels
from lab.runs.store import RunStore
from lab.ui.state import VISITOR_KEY, default_draft, job_manager

PAGE = str(Path(__file__).resolve().parent.parent / "app_pages" / "compare.py")
TINY = {"name": "tiny", "layers": [{"type": "flatten"}, {"type": "dense", "units": 32}]}
WAIT_S = 90  # a guard against hanging, never a measure of speed


@pytest.fixture
def store(isolated_lab) -> RunStore:
    """The runs every page of these tests lists: the isolated lab's (tests/conftest.py)."""
    return isolated_lab


def page(draft: dict | None = None) -> AppTest:
    """The page in a teacher's session: these tests are about what its actions do; who may
    take them is tests/test_app_access.py's subject."""
    at = AppTest.from_file(PAGE, default_timeout=WAIT_S)
    at.session_state[VISITOR_KEY] = Visitor(teacher=True)
    if draft is not None:
        at.session_state["draft"] = draft
    return ok(at.run())


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def table(at: AppTest):
    return at.dataframe[0].value


def charts(at: AppTest) -> dict[str, dict]:
    """Plotly figures on the page by title."""
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return {f["layout"]["title"]["text"]: f for f in figures}


def feature_spaces(at: AppTest) -> list[dict]:
    """The feature-space figures on the page, in page order (runs may share a title)."""
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return [f for f in figures if f["layout"]["title"]["text"].startswith("Feature space")]


def tiny_draft() -> dict:
    d = default_draft()
    d.update(dataset="digits", spec=TINY, augment={"preset": "none"})
    d["train"].update({"epochs": 1, "batch_size": 128, "lr": 3e-3, "device": "cpu", "schedule": "none",
                       "train_limit": 256})
    return d


# ---------------------------------------------------------------- the table


def test_no_runs_says_where_to_start(store):
    at = page()
    assert "No runs yet" in at.info[0].value and not at.dataframe


def test_the_table_lists_every_run_with_its_results(store):
    ids = [fake_run(store, "bs32", [0.6, 0.8]), fake_run(store, "bs128", [0.5, 0.7, 0.75], batch_size=128)]
    store.annotate(ids[0], tags=["write-up"])
    rows = table(page()).set_index("name")
    assert set(rows.index) == {"bs32", "bs128"}
    assert rows.loc["bs32", "best_val_acc"] == 0.8 and rows.loc["bs32", "tags"] == "write-up"
    assert rows.loc["bs128", "batch_size"] == 128 and rows.loc["bs128", "best_epoch"] == 3


def test_the_filter_narrows_the_table(store):
    fake_run(store, "baseline", [0.6])
    fake_run(store, "wide", [0.7])
    at = page()
    at.text_input(key="compare.filter").input("wide").run()
    assert list(table(ok(at))["name"]) == ["wide"]


def test_selecting_two_runs_draws_overlaid_curves(store):
    a, b = fake_run(store, "a", [0.5, 0.7, 0.6]), fake_run(store, "b", [0.6, 0.8])
    at = page()
    assert not charts(at)
    at.multiselect(key="compare.selected").set_value([a, b]).run()
    figures = charts(ok(at))
    accuracy = next(f for title, f in figures.items() if title.startswith("Accuracy"))
    assert [(t["name"], t["line"]["dash"]) for t in accuracy["data"]] == \
        [("a", "solid"), ("a", "dash"), ("b", "solid"), ("b", "dash")]
    assert any(title.startswith("Loss") for title in figures) and "Best validation accuracy" in figures
    assert any(title.startswith("Generalisation gap") for title in figures)
    assert {d.label for d in at.get("download_button")} >= {"Download the table (CSV)", "Download the charts (HTML)"}
    assert any("None of these runs recorded its feature space" in c.value for c in at.caption)
    at.radio(key="compare.x").set_value("time").run()
    accuracy = next(f for title, f in charts(ok(at)).items() if title.startswith("Accuracy"))
    assert accuracy["data"][0]["x"] == [2.0, 4.0, 6.0]


def test_two_runs_show_their_feature_space_and_cams_at_the_same_epoch(store, copy_gap_cam_run):
    store.root.mkdir(parents=True)
    a = copy_gap_cam_run(store.root)
    b = copy_gap_cam_run(store.root, "20990101-000000-second")
    plain = fake_run(store, "no insight", [0.5])
    at = page()
    at.multiselect(key="compare.selected").set_value([a, b, plain]).run()
    spaces = feature_spaces(ok(at))
    assert len(spaces) == 2 and all("epoch 3" in f["layout"]["title"]["text"] and not f.get("frames") for f in spaces)
    assert len([img for img in at.image if len(img.captions) == 8]) == 2  # each run's CAM strip
    assert any(c.value == "No feature space recorded: no insight." for c in at.caption)
    at.select_slider(key="compare.insight.epoch").set_value(1).run()
    assert [f["layout"]["title"]["text"].split(" · ")[1] for f in feature_spaces(ok(at))] == ["epoch 1"] * 2
    assert sum("epoch 1:" in c.value for c in at.caption) == 2


# ---------------------------------------------------------------- edits and delete


def test_rename_tag_and_note_are_saved(store):
    run_id = fake_run(store, "old name", [0.5])
    at = page()
    form_inputs = [t for t in at.text_input if t.label in ("Name", "Tags")]
    form_inputs[0].input("batch 32, 30 epochs")
    form_inputs[1].input("baseline, write-up")
    at.text_area[0].input("as in the blog post")
    next(b for b in at.button if b.label == "Save").click().run()
    ok(at)
    run = store.get(run_id)
    assert (run.name, run.tags, run.note) == ("batch 32, 30 epochs", ["baseline", "write-up"], "as in the blog post")
    assert "Saved" in at.success[0].value and list(table(at)["name"]) == ["batch 32, 30 epochs"]


def test_an_empty_name_is_an_error_not_a_crash(store):
    run_id = fake_run(store, "keep", [0.5])
    at = page()
    next(t for t in at.text_input if t.label == "Name").input("  ")
    next(b for b in at.button if b.label == "Save").click().run()
    assert "name cannot be empty" in ok(at).error[0].value and store.get(run_id).name == "keep"


def test_delete_asks_first_and_removes_only_that_folder(store):
    keep, gone = fake_run(store, "keep", [0.5]), fake_run(store, "gone", [0.6])
    (store.root / "notes.txt").write_text("not a run")
    at = page()
    at.multiselect(key="compare.selected").set_value([keep, gone]).run()
    at.selectbox(key="compare.edit").set_value(gone).run()
    at.button(key="compare.ask_delete").click().run()
    assert "Delete **gone** for good?" in ok(at).warning[0].value
    assert store.path(gone).is_dir()  # asking deletes nothing
    at.button(key="compare.confirm_delete").click().run()
    ok(at)
    assert not store.path(gone).exists() and store.path(keep).is_dir() and (store.root / "notes.txt").exists()
    assert "Deleted gone" in at.success[0].value and list(table(at)["name"]) == ["keep"]
    assert at.multiselect(key="compare.selected").value == [keep]


def test_cancel_keeps_the_run(store):
    run_id = fake_run(store, "keep", [0.5])
    at = page()
    at.button(key="compare.ask_delete").click().run()
    at.button(key="compare.cancel_delete").click().run()
    assert not ok(at).warning and store.path(run_id).is_dir()


def test_a_running_run_cannot_be_deleted(store):
    run_id = fake_run(store, "busy", [0.5])
    store.set_status(run_id, "running")  # this process owns it: it reads running, not interrupted
    at = page()
    assert not [b for b in at.button if b.key == "compare.ask_delete"]
    assert any("cannot be deleted" in c.value for c in at.caption)


# ---------------------------------------------------------------- sweeps


def sweep_tab(draft: dict, batch_sizes: str, epochs: str) -> AppTest:
    at = page(draft)
    at.text_input(key="sweep.batch_size").input(batch_sizes)
    at.text_input(key="sweep.epochs").input(epochs)
    at.text_input(key="sweep.name").input("study")
    return ok(at.run())


def test_a_bad_list_is_a_message_and_no_queue_button(store):
    at = sweep_tab(tiny_draft(), "64, x", "1")
    assert "batch sizes: 'x' is not a whole number" in at.error[0].value
    assert not [b for b in at.button if b.key == "sweep.queue"]


def queue_and_wait(at: AppTest, store: RunStore) -> list:
    at.button(key="sweep.queue").click().run()
    ok(at)
    runs = store.list()
    for run in runs:
        job_manager().wait(run.id, WAIT_S)
    return runs


def test_the_sweep_tab_queues_every_combination_and_summarises_them(store):
    at = sweep_tab(tiny_draft(), "64, 128", "1, 2")
    assert any(c.value.startswith("4 runs: 2 batch sizes × 2 epochs") for c in at.caption)
    runs = queue_and_wait(at, store)
    assert "Queued sweep study: 4 runs" in at.success[0].value
    assert sorted(r.name for r in runs) == ["study-bs128-ep1", "study-bs128-ep2", "study-bs64-ep1", "study-bs64-ep2"]
    assert all(r.config["sweep"]["name"] == "study" and r.config["dataset"] == "digits" for r in runs)
    at.run()
    assert "Sweep done: all 4 runs finished" in ok(at).success[0].value
    summary = at.dataframe[1].value
    assert list(zip(summary["batch_size"], summary["epochs"])) == [(64, 1), (64, 2), (128, 1), (128, 2)]
    heatmap = charts(at)["Best validation accuracy per combination"]
    assert heatmap["data"][0]["type"] == "heatmap"
    at.button(key=f"sweep.select.{runs[0].config['sweep']['id']}").click().run()
    assert sorted(ok(at).multiselect(key="compare.selected").value) == sorted(r.id for r in runs)


def test_a_students_sweep_that_breaks_the_exercise_queues_nothing(store, tmp_path, monkeypatch):
    exercise = tmp_path / "exercise.toml"
    exercise.write_text('[exercise]\ntitle = "Digits"\ndataset = "digits"\n\n[exercise.train]\nepochs = 1\n')
    monkeypatch.setenv("LAB_EXERCISE", str(exercise))
    at = AppTest.from_file(PAGE, default_timeout=WAIT_S)
    at.session_state[VISITOR_KEY] = Visitor()  # a student's session
    at.session_state["draft"] = tiny_draft()
    ok(at.run())
    at.text_input(key="sweep.epochs").input("1, 2")
    ok(at.run()).button(key="sweep.queue").click().run()
    assert "Cannot queue the sweep: this exercise fixes epochs at 1" in ok(at).error[0].value
    assert store.list() == []  # not even the combinations the exercise allows


def test_run_labels_add_the_end_of_the_id_only_where_names_clash():
    runs = [SimpleNamespace(id=f"20260101-000000-{n}", name=name) for n, name in
            [("aaaaaa", "base"), ("bbbbbb", "base"), ("cccccc", "wide")]]
    assert run_labels(runs) == {"20260101-000000-aaaaaa": "base (aaaaaa)", "20260101-000000-bbbbbb": "base (bbbbbb)",
                                "20260101-000000-cccccc": "wide"}


# ---------------------------------------------------------------- persistence

# What a restarted server shows: the page in a new process over the same runs dir.
RESTARTED = textwrap.dedent("""
    import json, sys
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(sys.argv[1], default_timeout=90).run()
    at.multiselect(key="compare.selected").set_value(json.loads(sys.argv[2])).run()
    rows = at.dataframe[0].value
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    accuracy = next(f for f in charts if f["layout"]["title"]["text"].startswith("Accuracy"))
    print(json.dumps({"exception": [str(e.value) for e in at.exception],
                      "rows": rows[["id", "name", "status", "epochs_done"]].to_dict("records"),
                      "accuracy_points": [len(t["y"]) for t in accuracy["data"]]}))
""")


def test_a_restarted_server_shows_the_same_runs_and_interrupted_ones(store, tmp_path):
    at = sweep_tab(tiny_draft(), "64, 128", "2")
    runs = queue_and_wait(at, store)
    # a run whose server died after one of its two epochs: marked running by a process that is gone
    dead = fake_run(store, "killed", [0.5])
    code = f"from lab.runs.store import RunStore; RunStore({str(store.root)!r}).set_status({dead!r}, 'running')"
    subprocess.run([sys.executable, "-c", code], check=True)
    ids = [r.id for r in runs] + [dead]
    env = {**os.environ, "LAB_RUNS_DIR": str(store.root), "LAB_DATA_DIR": str(tmp_path / "data")}
    out = subprocess.run([sys.executable, "-c", RESTARTED, PAGE, json.dumps(ids)], capture_output=True, text=True,
                         env=env, timeout=300, cwd=Path(PAGE).parent.parent)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["exception"] == []
    rows = {row["id"]: row for row in seen["rows"]}
    assert set(rows) == set(ids)
    assert all(rows[r.id]["status"] == "finished" and rows[r.id]["epochs_done"] == 2 for r in runs)
    assert (rows[dead]["status"], rows[dead]["epochs_done"]) == ("interrupted", 1)
    assert seen["accuracy_points"] == [2, 2, 2, 2, 1, 1]  # val and train curves of each run, from disk


# ---------------------------------------------------------------- repeats


def repeated_sweep(store: RunStore) -> list[str]:
    """Batch 32, 64 and 128, each with seeds 0, 1, 2, on disk: best accuracies 0.8 ± 0.1, 0.8 ± 0.05 (within
    each other's spread) and 0.31 ± 0.01 (far from both)."""
    from support.runs import base_config

    from lab.runs.sweep import plan_sweep, with_repeats

    bests = {32: [0.7, 0.8, 0.9], 64: [0.75, 0.8, 0.85], 128: [0.3, 0.31, 0.32]}
    configs = with_repeats(plan_sweep(base_config(), {"batch_size": list(bests), "epochs": [2]}, "study"), [0, 1, 2])
    return [fake_run(store, c.name, [0.2, bests[c.batch_size][c.seed]], c.sweep, seed=c.seed, batch_size=c.batch_size)
            for c in configs]


def test_repeats_get_a_mean_std_table_and_the_pairs_within_their_spread(store):
    ids = repeated_sweep(store)
    at = page()
    assert len(table(at)) == 9 and sorted(set(table(at)["seed"])) == [0, 1, 2]
    grouped = at.dataframe[1].value.set_index("name")
    assert sorted(grouped.index) == ["study-bs128-ep2", "study-bs32-ep2", "study-bs64-ep2"]  # newest first, as runs
    assert grouped.loc["study-bs32-ep2", "best_val_acc"] == "80.0% ± 10.0%"
    assert grouped.loc["study-bs128-ep2", "best_val_acc"] == "31.0% ± 1.0%" and set(grouped["n"]) == {3}
    runs_note, sweep_note = [i.value for i in at.info if "Smaller than the spread" in i.value]  # each tab's
    assert "study-bs32-ep2 and study-bs64-ep2 (difference 0.0%, spread ± 10.0%)" in sweep_note
    assert "bs128" not in runs_note and "bs32" in runs_note and "bs64" in runs_note
    at.multiselect(key="compare.selected").set_value(ids).run()
    figures = charts(ok(at))
    accuracy = figures["Accuracy, mean ± std over repeats (solid: validation, dashed: train)"]
    assert len([t for t in accuracy["data"] if t.get("fill") == "toself"]) == 6  # val and train band each
    assert [t["name"] for t in accuracy["data"] if t.get("showlegend") is not False] == \
        ["study-bs32-ep2", "study-bs64-ep2", "study-bs128-ep2"]  # in the order they were picked
    bars = figures["Best validation accuracy, mean ± std over repeats"]["data"]
    assert [b["error_y"]["array"][0] for b in bars] == pytest.approx([0.1, 0.05, 0.01])
    assert bars[0]["text"] == ["80.0% ± 10.0% (n=3)"]


def test_the_sweep_tab_summarises_a_repeated_sweep_as_mean_and_std(store):
    repeated_sweep(store)
    at = page()
    summary = at.dataframe[2].value  # runs table, its mean ± std view, then the sweep's
    assert list(summary["best_val_acc"]) == ["80.0% ± 10.0%", "80.0% ± 5.0%", "31.0% ± 1.0%"]
    assert len(at.dataframe[3].value) == 9  # each run, in the expander
    bars = charts(at)["Best validation accuracy per combination"]["data"][0]
    assert bars["error_y"]["visible"] and bars["text"][0] == "80.0% ± 10.0%"


def test_repeat_each_configuration_queues_one_run_per_seed_grouped(store):
    at = sweep_tab(tiny_draft(), "64", "1")
    at.number_input(key="sweep.repeats").set_value(3).run()
    assert any(c.value.startswith("3 runs: 3 seeds") for c in ok(at).caption)
    runs = queue_and_wait(at, store)
    assert sorted((r.name, r.config["seed"]) for r in runs) == [(f"study-bs64-ep1-s{s}", s) for s in range(3)]
    assert len({(r.config["sweep"]["id"], r.config["sweep"]["index"]) for r in runs}) == 1
    at.run()
    assert "Sweep done: all 3 runs finished" in ok(at).success[0].value
    grouped = at.dataframe[-2].value  # the sweep's mean ± std view, above its runs
    assert list(grouped["n"]) == [3] and " ± " in grouped["best_val_acc"][0]
