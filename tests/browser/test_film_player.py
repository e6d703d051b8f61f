"""The training film's player (lab/plots/film) in a real browser, on its own: one scrubber, the arrow keys and
Play move every panel to the chosen epoch; new frames are followed; the Streamlit component page speaks the
component protocol and asks for frames it lost. (On the real Train page: test_browser_film.py.)"""

from __future__ import annotations

import pytest
from support.film import PANEL_STATE, PANELS

from lab.bench.film import film_page, synthetic_film
from lab.i18n import templates
from lab.plots.film import STATIC

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def film():
    return synthetic_film(epochs=30)


@pytest.fixture
def page(browser):
    """A tab of the suite's one chromium (tests/browser/conftest.py); the player must raise no error in it."""
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    errors: list[str] = []
    tab.on("pageerror", lambda err: errors.append(str(err)))
    yield tab
    context.close()
    assert not errors, errors


@pytest.fixture
def film_tab(page, film):
    page.set_content(film_page(*film))
    page.wait_for_function("() => document.querySelector('.lab-film')?.dataset.frames === '31'")
    return page


def shown(page) -> dict:
    return page.evaluate(PANEL_STATE)


def assert_every_panel_at(state: dict, epoch: int, last: int = 30) -> None:
    label = "Untrained (epoch 0)" if epoch == 0 else f"Epoch {epoch} of {last}"
    assert state["epoch"] == str(epoch)
    assert set(state["panels"]) == PANELS
    for name, panel in state["panels"].items():
        assert panel["epoch"] == str(epoch), name
        assert label in panel["title"], (name, panel["title"])
        assert not panel["nodata"], name


def wait_epoch(page, epoch: int) -> None:
    page.wait_for_function(f"() => document.querySelector('.lab-film').dataset.epoch === '{epoch}'")


def test_the_scrubber_and_the_arrows_move_every_panel_to_the_chosen_epoch(film_tab):
    page = film_tab
    newest = shown(page)
    assert_every_panel_at(newest, 30)  # a film opens at its newest frame
    page.get_by_label("Epoch 30 of 30").fill("7")
    at_7 = shown(page)
    assert_every_panel_at(at_7, 7)
    for name in PANELS:  # every canvas was redrawn, not only relabelled
        assert at_7["panels"][name]["pixels"] != newest["panels"][name]["pixels"], name
    page.locator(".lab-film").focus()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert_every_panel_at(shown(page), 5)
    page.keyboard.press("ArrowRight")
    assert_every_panel_at(shown(page), 6)
    page.keyboard.press("Home")
    untrained = shown(page)
    assert_every_panel_at(untrained, 0)
    assert untrained["panels"]["loss"]["pixels"] != at_7["panels"]["loss"]["pixels"]  # the cursor moved
    assert page.get_by_label("Untrained (epoch 0)").input_value() == "0"


def test_play_steps_through_the_epochs_and_pause_holds_one(film_tab):
    page = film_tab
    page.locator(".lab-film select").select_option("8")
    page.get_by_role("button", name="Play").click()  # at the end, Play starts again from the first epoch
    page.wait_for_function("() => +document.querySelector('.lab-film').dataset.epoch >= 3")
    page.get_by_role("button", name="Pause").click()
    held = shown(page)
    page.wait_for_timeout(400)  # three steps' time at 8 frames/s
    assert shown(page) == held
    assert 3 <= int(held["epoch"]) < 30
    assert_every_panel_at(held, int(held["epoch"]))
    page.locator(".lab-film").focus()
    page.keyboard.press(" ")  # space plays from where it stands
    wait_epoch(page, int(held["epoch"]) + 2)
    page.keyboard.press(" ")
    assert page.get_by_role("button", name="Play").is_visible()


APPEND = """([start, frames]) => document.querySelector('.lab-film').labFilm.update(null, start, frames)"""


def test_new_frames_are_followed_until_the_scrubber_moves(film_tab, film):
    page = film_tab
    frames = film[2]
    later = [{**frames[-1], "epoch": 31}, {**frames[-1], "epoch": 32}]
    assert page.evaluate(APPEND, [31, later[:1]])
    assert_every_panel_at(shown(page), 31, last=31)  # following: the newest frame shows as it comes
    page.locator(".lab-film").focus()
    page.keyboard.press("ArrowLeft")
    assert page.evaluate(APPEND, [32, later[1:]])
    state = shown(page)
    assert (state["epoch"], state["frames"], state["follow"]) == ("30", "33", "0")  # moved: it stays
    page.get_by_role("button", name="Follow newest").click()
    assert shown(page)["epoch"] == "32"
    assert page.evaluate(APPEND, [32, [{**frames[-1], "epoch": 32, "knn_acc": 0.5}]])  # the live frame, again
    assert "k-NN accuracy 50%" in shown(page)["panels"]["features"]["title"]
    assert not page.evaluate(APPEND, [40, later])  # frames it never had: the caller must resend from 33
    assert shown(page)["frames"] == "33"


def test_a_part_not_recorded_says_so(film_tab):
    page = film_tab
    bare = {"epoch": 31, "class_acc": None, "confusion": None, "points": None, "knn_acc": None, "cams": None}
    page.evaluate(APPEND, [31, [bare]])
    state = shown(page)
    assert state["epoch"] == "31"
    assert {name for name, panel in state["panels"].items() if panel["nodata"]} == {
        "class_acc", "confusion", "features", "cams"}
    said = page.locator(".lab-film-nodata:visible")
    assert said.count() == 4 and said.all_inner_texts() == ["Not recorded for this epoch"] * 4


# The component page posts to window.parent, which is the page itself when it is opened on its own.
CAPTURE = """window.sent = [];
window.addEventListener('message', (e) => { if (e.data && e.data.isStreamlitMessage) window.sent.push(e.data); });"""
RENDER = """(args) => window.postMessage({type: 'streamlit:render', args, theme: {textColor: 'rgb(49, 51, 63)'}}, '*')"""


def test_the_component_page_renders_frames_and_asks_for_the_ones_it_lost(page, film):
    head, metrics, frames = film
    text = templates("film.")
    page.add_init_script(CAPTURE)
    page.goto((STATIC / "index.html").as_uri())
    page.wait_for_function("() => window.sent.some((m) => m.type === 'streamlit:componentReady')")
    assert page.evaluate("() => window.sent.find((m) => m.type === 'streamlit:componentReady').apiVersion") == 1
    args = {"head": head, "text": text, "metrics": metrics, "start": 0, "frames": frames[:20], "height": 900}
    page.evaluate(RENDER, args)
    page.wait_for_function("() => document.querySelector('.lab-film')?.dataset.frames === '20'")
    page.wait_for_function("() => window.sent.some((m) => m.type === 'streamlit:setFrameHeight' && m.height > 600)")
    page.locator(".lab-film").focus()
    page.keyboard.press("ArrowLeft")  # the user looks at epoch 18
    page.evaluate(RENDER, {**args, "start": 20, "frames": frames[20:25]})  # five more frames, only those sent
    page.evaluate(RENDER, {**args, "start": 25, "frames": []})  # a rerun with nothing new
    page.wait_for_function("() => document.querySelector('.lab-film').dataset.frames === '25'")
    assert_every_panel_at(shown(page), 18, last=24)  # the user's place kept
    page.evaluate(RENDER, {**args, "start": 28, "frames": frames[28:]})  # frames it never got: ask again
    page.wait_for_function("() => window.sent.some((m) => m.type === 'streamlit:setComponentValue')")
    asked = page.evaluate("() => window.sent.filter((m) => m.type === 'streamlit:setComponentValue')")
    assert len(asked) == 1 and asked[0]["dataType"] == "json" and asked[0]["value"]["have"] == 25
    page.evaluate(RENDER, {**args, "start": 25, "frames": frames[25:]})  # the resend
    page.wait_for_function("() => document.querySelector('.lab-film').dataset.frames === '31'")
    assert_every_panel_at(shown(page), 18)
