"""AppTest for the training film on the Train page: what the page sends the player, and when.

The player itself (JavaScript) is tested in a real browser by tests/test_film_frontend.py and
tests/browser; here the page's side: the first run sends every frame, later runs only what the
player lacks, a live run's newest frame again, and a player that lost its frames gets them back."""

from __future__ import annotations

import json

import pytest
from support.apptest import ok, page

from lab.runs.store import RunStore

pytestmark = pytest.mark.usefixtures("isolated_lab")  # tests/conftest.py
PLAYER = "train.film.player"


def sent(at) -> dict:
    """The arguments of the page's film player (the one custom component on the Train page)."""
    (player,) = at.get("component_instance")
    return json.loads(player.proto.json_args)


def epochs(args: dict) -> list[int]:
    return [frame["epoch"] for frame in args["frames"]]


def test_a_finished_run_is_sent_whole_once_then_nothing_more(tmp_path, copy_gap_cam_run):
    run_id = copy_gap_cam_run(tmp_path / "runs")
    at = ok(page("train", run=run_id))
    first = sent(at)
    assert first["start"] == 0 and epochs(first) == [0, 1, 2, 3]
    assert first["head"]["classes"] == RunStore(tmp_path / "runs").get(run_id).classes
    assert [row["epoch"] for row in first["metrics"]] == [1, 2, 3]
    assert first["text"]["epoch"] == "Epoch {epoch} of {last}"  # filled in by the player
    again = sent(ok(at.run()))
    assert again["start"] == 4 and again["frames"] == []  # the player holds them all


def test_a_player_that_lost_its_frames_gets_them_again(tmp_path, copy_gap_cam_run):
    run_id = copy_gap_cam_run(tmp_path / "runs")
    at = ok(page("train", run=run_id))
    at.session_state[PLAYER] = {"have": 1, "ask": 1}  # what the player sets when its iframe was made again
    resent = sent(ok(at.run()))
    assert resent["start"] == 1 and epochs(resent) == [1, 2, 3]
    assert sent(ok(at.run()))["frames"] == []  # one request, answered once


def test_a_live_run_s_new_epoch_reaches_the_player_at_the_next_rerun(tmp_path, copy_gap_cam_run):
    """Epoch 3 lands while the page is open: the rerun the fragment triggers sends it, with epoch 2 again."""
    runs = tmp_path / "runs"
    run_id = copy_gap_cam_run(runs)
    store = RunStore(runs)
    layout = store.get(run_id).layout
    epoch3 = [layout.probe(3), layout.cams(3), layout.val_preds(3)]
    kept = [(path, path.read_bytes()) for path in epoch3]
    for path in epoch3:
        path.unlink()
    rows = layout.metrics.read_text().splitlines(keepends=True)
    layout.metrics.write_text("".join(rows[:2]))
    store.set_status(run_id, "running", epoch=2)

    at = ok(page("train", run=run_id))
    assert epochs(sent(at)) == [0, 1, 2]
    for path, content in kept:  # the epoch ends
        path.write_bytes(content)
    layout.metrics.write_text("".join(rows))
    newest = sent(ok(at.run()))
    assert newest["start"] == 2 and epochs(newest) == [2, 3]  # the newest again: it may have gained parts
    assert [row["epoch"] for row in newest["metrics"]] == [1, 2, 3]
    assert newest["frames"][1]["cams"] is not None and newest["frames"][1]["confusion"] is not None


def test_details_keep_the_separate_charts(tmp_path, copy_gap_cam_run):
    run_id = copy_gap_cam_run(tmp_path / "runs")
    at = ok(page("train", run=run_id, session={"train.view": "details"}))
    assert not at.get("component_instance")
    assert "Feature space" in [s.value for s in at.subheader]
