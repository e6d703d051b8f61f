"""The Home page's write-up cards through Streamlit's AppTest: one per named experiment, its epochs following
the scale picked; Start queues the experiment's runs as one sweep and opens Compare on it; the galaxy write-up
takes the draft's upload; what cannot start is said on Home, and nothing is queued."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from support.apptest import WAIT_S, ok
from support.files import image_bytes

from lab.data import list_datasets
from lab.runs.experiment import EXPERIMENTS
from lab.ui.compare_view import SWEEP_KEY
from lab.ui.state import default_draft, job_manager

APP = str(Path(__file__).resolve().parents[1] / "app.py")

pytestmark = pytest.mark.usefixtures("isolated_lab")  # tests/conftest.py


@pytest.fixture
def held():
    """The job manager with its queue paused: what Start queues stays queued (nothing trains)."""
    job_manager().pause()
    return job_manager()


def home(draft: dict | None = None) -> AppTest:
    """The whole app on its Home page (Start switches pages, which needs the navigation)."""
    at = AppTest.from_file(APP, default_timeout=WAIT_S)
    if draft is not None:
        at.session_state["draft"] = draft
    return ok(at.run())


def card_captions(at: AppTest) -> list[str]:
    return [caption.value for caption in at.caption]


def test_a_card_per_experiment_whose_epochs_follow_the_scale():
    at = home()
    assert sorted(radio.key for radio in at.radio if radio.key.startswith("home.writeup.")) == [
        f"home.writeup.scale.{name}" for name in sorted(EXPERIMENTS)]
    assert "Epochs in all: 140" in card_captions(at)  # cifar10-writeup: 3 x 30 + 50
    at.radio(key="home.writeup.scale.cifar10-writeup").set_value(0.1).run()
    assert "Epochs in all: 14" in card_captions(ok(at))  # 3 x 3 + 5: the ratios kept
    assert "Runs: batch 32, batch 50, batch 128, batch 32, longer" in card_captions(at)


def test_start_queues_a_scaled_down_experiment_and_opens_compare_on_it(isolated_lab, held):
    available = {info.name for info in list_datasets() if info.available}
    at = home()
    at.radio(key="home.writeup.scale.fashion-writeup").set_value(0.1).run()
    at.button(key="home.writeup.start.fashion-writeup").click().run()
    (run,) = isolated_lab.list()
    assert len(held.queued_ids()) == 1 and run.name == "fashion-writeup: two conv layers"
    assert run.config["dataset"] == ("fashion-mnist" if "fashion-mnist" in available else "digits")
    assert (run.config["epochs"], run.config["batch_size"]) == (1, 32)
    assert ok(at).title[0].value == "Compare"
    assert at.success[0].value.startswith("Queued sweep fashion-writeup")
    assert at.session_state[SWEEP_KEY] == run.config["sweep"]["id"]  # the sweep tab shows this one


def test_the_galaxy_writeup_trains_on_the_drafts_upload(isolated_lab, held, tmp_path):
    folder = tmp_path / "galaxies"
    for label, colour in (("spiral", (200, 200, 250)), ("elliptical", (250, 200, 120))):
        (folder / label).mkdir(parents=True)
        for i in range(6):
            (folder / label / f"{i}.png").write_bytes(image_bytes((40, 40), colour=colour))
    at = home(default_draft() | {"dataset": f"folder:{folder}"})
    assert "Trains on galaxies (your upload)" in card_captions(at)
    at.radio(key="home.writeup.scale.galaxy-writeup").set_value(0.1).run()
    at.button(key="home.writeup.start.galaxy-writeup").click().run()
    runs = sorted(isolated_lab.list(), key=lambda run: run.config["sweep"]["index"])
    assert len(held.queued_ids()) == 4 and {run.config["dataset"] for run in runs} == {f"folder:{folder}"}
    assert [run.config["epochs"] for run in runs] == [2, 2, 2, 1]
    assert ok(at).title[0].value == "Compare"


def test_without_an_upload_the_galaxy_card_says_what_it_trains_on_instead():
    at = home()
    assert any(caption.startswith("Trains on `shapes` for now: upload a zip of your class folders")
               for caption in card_captions(at))


def test_what_cannot_start_is_said_on_home_and_nothing_is_queued(isolated_lab, held, tmp_path):
    gone = tmp_path / "gone"
    at = home(default_draft() | {"dataset": f"folder:{gone}"})
    at.button(key="home.writeup.start.galaxy-writeup").click().run()
    assert "Cannot start the experiment:" in ok(at).error[0].value and "gone not found" in at.error[0].value
    assert at.title[0].value == "CNN Lab" and held.queued_ids() == [] and isolated_lab.list() == []
