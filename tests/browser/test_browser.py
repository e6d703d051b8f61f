"""The main flows in a real browser: every page renders, augment labels show, a run trains live and re-attaches,
a trained run is explained."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser

RUN_S = 240_000  # ms; a guard for a busy 2-core machine, not a speed target
IDLE = """() => document.querySelector('[data-testid="stApp"]')?.dataset.testScriptState === 'notRunning'
              && !document.querySelector('[data-testid="stSkeleton"]')"""
EXCEPTION = '[data-testid="stException"]'
CHART = '[data-testid="stPlotlyChart"]'


def wait_idle(page, timeout: float = 60_000) -> None:
    """Until the script run is over and every element is drawn (widgets load lazily, as skeletons first)."""
    page.wait_for_selector("h1", timeout=timeout)
    page.wait_for_function(IDLE, timeout=timeout)


def snap(page, path) -> None:
    """Screenshot of the whole page: the app scrolls inside its main block, so grow the viewport to fit it."""
    size = page.viewport_size
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMainBlockContainer\"]').scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], height + 120)})
    page.screenshot(path=str(path))
    page.set_viewport_size(size)


def open_app(page, url: str) -> None:
    """Open the lab at its home page, as a visitor does (the entry point builds the navigation)."""
    page.goto(url)
    wait_idle(page)


def nav_links(page) -> dict[str, str]:
    """Title -> URL of every page in the sidebar navigation."""
    links = page.locator('[data-testid="stSidebarNavLink"]')
    return {link.inner_text().split("\n")[-1].strip(): link.get_attribute("href") for link in links.all()}


def go_to(page, title: str) -> None:
    """Load a page by its navigation link (a fresh page load, so 'idle' means this page's run is over)."""
    page.goto(nav_links(page)[title])
    wait_idle(page)


def test_every_page_in_the_navigation_renders_without_an_exception(page, app_url, artifacts):
    open_app(page, app_url)
    titles = list(nav_links(page))
    assert {"Home", "Data", "Build", "Augment", "Train", "Compare", "Explain"} <= set(titles)
    for title in titles:
        go_to(page, title)
        assert page.locator(EXCEPTION).count() == 0, f"{title}: {page.locator(EXCEPTION).first.inner_text()}"
        snap(page, artifacts / f"page-{title.lower()}.png")


def test_mixup_preview_shows_mixed_labels(page, app_url, artifacts):
    open_app(page, app_url)
    go_to(page, "Augment")
    page.get_by_role("switch", name="MixUp (Beta alpha)").check(force=True)
    mixed = page.locator('[data-testid="stImageCaption"]').filter(has_text=re.compile(r"\w+ 0\.\d\d / \w+ 0\.\d\d"))
    mixed.first.wait_for()  # e.g. "circle 0.62 / star 0.38" under a mixed image
    wait_idle(page)
    assert page.locator(EXCEPTION).count() == 0
    snap(page, artifacts / "augment-mixup.png")


def test_training_runs_live_reattaches_after_a_reload_and_finishes(page, app_url, artifacts):
    open_app(page, app_url)
    go_to(page, "Train")
    for label, value in (("Epochs", "2"), ("Training images (0 = all)", "3000")):  # ~10 s on 2 idle cores
        box = page.get_by_role("spinbutton", name=label)
        box.fill(value)
        box.press("Enter")
    page.get_by_role("button", name="Start training").click()

    progress = page.locator('[data-testid="stProgress"]')
    progress.wait_for(timeout=RUN_S)
    assert re.search(r"[?&]run=", page.url), page.url  # the run is in the URL
    name = page.locator("h3").filter(has_text="Run gap_cam-shapes-").inner_text().strip()
    snap(page, artifacts / "train-live.png")

    page.reload()  # a new session: only the URL remembers the run
    page.locator("h3").filter(has_text=name).wait_for(timeout=RUN_S)
    page.get_by_text(re.compile(r"batch \d+/\d+|Finished")).first.wait_for(timeout=RUN_S)  # training, or done
    wait_idle(page)
    snap(page, artifacts / "train-reattached.png")

    page.locator('[data-testid="stAlertContentSuccess"]').filter(has_text="Finished").wait_for(timeout=RUN_S)
    wait_idle(page)
    assert page.locator(CHART).count() >= 1  # the batch loss, interactive once the run has ended
    film = page.frame_locator('iframe[title="lab.ui.film_view.lab_film"]').locator('.lab-film[data-frames="3"]')
    film.wait_for()  # the untrained net and epochs 1 and 2, appended while the run trained
    assert (film.get_attribute("data-epoch"), film.get_attribute("data-follow")) == ("2", "1")  # following the newest
    assert page.locator(EXCEPTION).count() == 0
    snap(page, artifacts / "train-finished.png")


def test_a_trained_run_is_explained_and_a_mistake_one_click_away(page, app_url, server_dir, copy_gap_cam_run,
                                                                 artifacts):
    run_id = copy_gap_cam_run(server_dir / "runs", "00000000-explain-me")  # listed after any other run
    open_app(page, app_url)
    page.goto(f"{nav_links(page)['Explain']}?run={run_id}")  # the deep link preselects it
    wait_idle(page)
    page.get_by_text("Where it looks").wait_for()
    for title in ("CAM", "Grad-CAM", "Grad-CAM++", "Score-CAM", "Eigen-CAM"):
        page.locator('[data-testid="stImageCaption"]').get_by_text(title, exact=True).wait_for()
    assert page.locator(CHART).count() == 2  # class probabilities and the confusion matrix
    assert page.locator(EXCEPTION).count() == 0
    snap(page, artifacts / "explain-run.png")

    page.get_by_role("button", name="Explain", exact=True).first.click()  # the surest mistake
    page.get_by_text("Mistake", exact=True).wait_for()  # its picker replaces the validation image number
    wait_idle(page)
    caption = page.locator('[data-testid="stImageCaption"]').first.inner_text()
    true, predicted = re.match(r"true: (\w+) · predicted: (\w+)", caption).groups()
    assert true != predicted
    assert page.locator(EXCEPTION).count() == 0
    snap(page, artifacts / "explain-mistake.png")


def test_a_korean_browser_gets_every_page_in_korean(browser, app_url, artifacts):
    context = browser.new_context(locale="ko-KR", viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        open_app(page, app_url)
        titles = list(nav_links(page))
        assert {"홈", "데이터", "모델 구성", "데이터 증강", "학습", "비교", "모델 해석", "우리 반"} <= set(titles)
        for number, title in enumerate(titles):
            go_to(page, title)
            assert page.locator(EXCEPTION).count() == 0, f"{title}: {page.locator(EXCEPTION).first.inner_text()}"
            assert re.search("[가-힣]", page.locator('[data-testid="stMainBlockContainer"]').inner_text()), title
            snap(page, artifacts / f"page-ko-{number}.png")
    finally:
        context.close()


def test_a_share_link_opens_its_setup_as_the_draft(page, app_url):
    from lab.classroom.share import encode_setup
    from lab.model.presets import get_preset
    from lab.ui.state import default_draft

    shared = default_draft() | {"dataset": "digits", "preset": "fashion_cnn", "spec": get_preset("fashion_cnn")}
    open_app(page, app_url)
    page.goto(f"{nav_links(page)['Build']}?setup={encode_setup(shared)}")
    wait_idle(page)
    assert page.locator(EXCEPTION).count() == 0
    assert page.get_by_label("Model name").input_value() == "fashion_cnn"
    assert "digits" in page.locator('[data-testid="stSidebar"]').inner_text()
    assert "setup=" not in page.url  # opened once: a reload keeps the user's later edits


def test_a_pretrained_backbone_added_on_the_build_page_updates_shapes_and_parameters(page, app_url, artifacts):
    open_app(page, app_url)
    go_to(page, "Build")
    params = page.locator('[data-testid="stMetric"]').filter(has_text="Parameters")
    before = params.inner_text()
    page.locator('[data-testid="stSelectbox"]').filter(has_text="New layer").click()
    page.keyboard.type("backbone")  # the list is long: filter it, as a user would
    page.get_by_role("option", name="Pretrained backbone (backbone)").click()
    page.get_by_role("button", name="Add layer").click()
    page.get_by_text(re.compile(r"^1\. Pretrained backbone · 1280x7x7 · 3,371,008 param")).wait_for()
    page.get_by_text("images are resized to 224").first.wait_for()  # what it does to the images, at the layer
    wait_idle(page)
    assert params.inner_text() != before
    assert page.locator(EXCEPTION).count() == 0
    snap(page, artifacts / "build-backbone.png")


def test_a_scaled_down_writeup_started_on_home_trains_and_ends_on_compare(page, app_url, artifacts):
    open_app(page, app_url)
    card = page.locator(".st-key-writeup-fashion-writeup")  # digits where the server has no Fashion-MNIST
    card.get_by_text("×0.1").click()
    card.get_by_text("Epochs in all: 1", exact=True).wait_for()
    wait_idle(page)
    card.get_by_role("button", name="Start").click()
    page.wait_for_url(re.compile(r"/compare"), timeout=RUN_S)
    page.locator('[data-testid="stAlertContentSuccess"]').filter(has_text="Queued sweep fashion-writeup").wait_for()
    wait_idle(page)
    page.get_by_role("tab", name="Sweep").click()
    page.get_by_text("Sweep done: all 1 runs finished.").wait_for(timeout=RUN_S)  # the sweep picked is this one
    page.locator(CHART).filter(has_text="fashion-writeup: two conv layers").wait_for()  # its best accuracy
    wait_idle(page)
    assert page.locator(EXCEPTION).count() == 0
    snap(page, artifacts / "writeup-on-compare.png")
