"""The training film of a finished 30-epoch run on the real Train page: one scrubber, the arrow keys and Play
move every panel to the chosen epoch, in the browser, without a single Streamlit rerun."""

from __future__ import annotations

import pytest
from support.film import PANEL_STATE, PANELS
from test_browser import EXCEPTION, open_app, snap, wait_idle

from lab.bench.live_ui import COUNT_REFRESHES

pytestmark = pytest.mark.browser

PLAYER = 'iframe[title="lab.ui.film_view.lab_film"]'


@pytest.fixture(scope="module")
def thirty_epochs(server_dir) -> str:
    """gap_cam on a sliver of shapes for 30 epochs, trained into the served lab's runs dir (~20 s on 2 cores)."""
    from lab.cli import run_training
    from lab.model.presets import get_preset
    from lab.train.engine import TrainConfig

    config = TrainConfig.from_dict(dict(spec=get_preset("gap_cam"), dataset="shapes", epochs=30, batch_size=64,
                                        lr=3e-3, device="cpu", train_limit=128, probe_size=80, seed=0,
                                        name="film-30"))
    run_id, result = run_training(config, server_dir / "runs", server_dir / "data")
    assert result.status == "finished", result.message
    return run_id


def panels_at(player, epoch: int) -> dict:
    """Every panel once the player shows ``epoch``, checked to show that epoch and to have its data."""
    player.locator(f'.lab-film[data-epoch="{epoch}"]').wait_for()
    state = player.locator(".lab-film").evaluate(f"(root) => ({PANEL_STATE})()")
    label = "Untrained (epoch 0)" if epoch == 0 else f"Epoch {epoch} of 30"
    assert set(state["panels"]) == PANELS
    for name, panel in state["panels"].items():
        assert panel["epoch"] == str(epoch) and label in panel["title"], (name, panel)
        assert not panel["nodata"], name  # the run recorded every part at every epoch
    return state


def test_a_finished_30_epoch_run_plays_with_every_panel_at_the_chosen_epoch(page, app_url, thirty_epochs,
                                                                           artifacts):
    open_app(page, app_url)
    page.goto(f"{app_url}/train?run={thirty_epochs}")
    wait_idle(page)
    player = page.frame_locator(PLAYER)
    player.locator('.lab-film[data-frames="31"]').wait_for()  # epochs 0..30, all sent at once
    newest = panels_at(player, 30)
    page.evaluate(COUNT_REFRESHES)  # the page's script runs, full or fragment

    player.get_by_label("Epoch 30 of 30").fill("12")
    at_12 = panels_at(player, 12)
    assert all(at_12["panels"][name]["pixels"] != newest["panels"][name]["pixels"] for name in PANELS)
    player.locator(".lab-film").focus()
    for _ in range(3):
        player.locator(".lab-film").press("ArrowRight")
    panels_at(player, 15)
    player.locator(".lab-film").press("Home")
    panels_at(player, 0)
    player.get_by_role("button", name="Play").click()
    player.locator('.lab-film[data-epoch="3"]').wait_for()  # it plays on by itself
    player.get_by_role("button", name="Pause").click()
    paused = int(player.locator(".lab-film").get_attribute("data-epoch"))
    page.wait_for_timeout(1500)
    panels_at(player, paused)  # held, every panel with it

    assert page.evaluate("window.labRefreshes") == 0  # all of it in the browser: not one script run
    assert page.locator(EXCEPTION).count() == 0
    snap(page, artifacts / "train-film.png")
