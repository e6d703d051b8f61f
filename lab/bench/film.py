"""``python -m lab bench --film``: what playing the training film costs the browser, per frame.

The film (lab.plots.film's player, inlined as in the HTML report) is opened in headless chromium
(Playwright + Debian's chromium, as the browser tests and ``--live-ui`` do) and played through at full
speed: one frame per animation frame of the page, loop after loop. The browser's CPU (all its processes,
from /proc) over those frames, divided by their number, is the figure to hold against BENCHMARKS.md's
live-UI table, where one Streamlit refresh of the Train page costs the browser about 0.26 s. The same
number of animation frames with no step is measured too: what the page costs when nothing changes.

The film is a synthetic one of the realistic size (10 classes, 1,000 points a frame, 10 CAM samples,
epochs 0..30) or, with ``--run``, a run's own, made by lab.insight.film. Tests use the synthetic one too.
"""

from __future__ import annotations

import base64
import math

import numpy as np

from lab.bench.live_ui import browser_pids, cpu_seconds
from lab.data.images import png_data_url
from lab.i18n import templates
from lab.plots.film import film_html
from lab.serve import launch_chromium

SHAPE_NAMES = ("circle", "square", "triangle", "star", "cross", "ring", "heart", "arrow", "moon", "hexagon")
CAM_PICTURE_SIDE = 96
STREAMLIT_REFRESH_BROWSER_S = 0.26  # BENCHMARKS.md, live-UI table: the browser's CPU per Train page refresh
# One animation frame per step (or none, for the idle baseline); page CPU inside the steps on the side.
PLAY = """async ([steps, step]) => {
  const film = document.querySelector('.lab-film').labFilm;
  const held = film.held();
  let script = 0;
  const started = performance.now();
  for (let i = 0; i < steps; i++) {
    await new Promise(requestAnimationFrame);
    if (!step) continue;
    const t = performance.now();
    film.show(i % held);
    script += performance.now() - t;
  }
  await new Promise(requestAnimationFrame);
  return {wall_ms: performance.now() - started, script_ms: script};
}"""


def synthetic_film(epochs: int = 30, classes: int = 10, points: int = 1000, samples: int = 10,
                   map_side: int = 16, seed: int = 0) -> tuple[dict, list[dict], list[dict]]:
    """(head, metrics, frames) of a made-up run that learns as runs do: each class at its own pace, the
    feature space's clusters drawing apart, the CAMs moving onto the object. Frames for epochs 0..epochs."""
    rng = np.random.default_rng(seed)
    names = [SHAPE_NAMES[c % len(SHAPE_NAMES)] + (f" {c // len(SHAPE_NAMES) + 1}" if c >= len(SHAPE_NAMES) else "")
             for c in range(classes)]
    pace, ceiling = rng.uniform(0.08, 0.4, classes), rng.uniform(0.7, 0.99, classes)

    def accuracy(epoch: int) -> np.ndarray:
        return 1 / classes + (ceiling - 1 / classes) * (1 - np.exp(-pace * epoch))

    pictures, picture_labels, centres = _cam_pictures(rng, samples, classes)
    head = {"run": "synthetic film", "classes": names,
            "cam": {"images": [png_data_url(p) for p in pictures], "labels": picture_labels.tolist(),
                    "method": "Grad-CAM", "layer": "conv2"}}
    metrics = [_metrics_row(epoch, epochs, float(accuracy(epoch).mean()), rng) for epoch in range(1, epochs + 1)]
    cluster_at = rng.normal(size=(classes, 2)) * 3
    labels, scatter = rng.integers(0, classes, points), rng.normal(size=(points, 2))
    starts = rng.uniform(0.1, 0.9, (samples, 2))
    frames = [_frame(epoch, epochs, accuracy(epoch), labels, scatter, cluster_at, picture_labels, starts, centres,
                     map_side, rng) for epoch in range(epochs + 1)]
    return head, metrics, frames


def _metrics_row(epoch: int, epochs: int, val_acc: float, rng: np.random.Generator) -> dict:
    train_acc = min(1.0, val_acc + 0.04 * epoch / epochs + rng.normal(0, 0.005))
    return {"epoch": epoch, "train_loss": round(-math.log(max(train_acc, 1e-3)) + rng.normal(0, 0.01), 4),
            "val_loss": round(-math.log(max(val_acc, 1e-3)) * 1.1 + rng.normal(0, 0.02), 4),
            "train_acc": round(train_acc, 4), "val_acc": round(val_acc, 4),
            "lr": round(0.05 * (1 + math.cos(math.pi * epoch / epochs)) / 2, 6)}


def _cam_pictures(rng: np.random.Generator, samples: int, classes: int):
    """One noisy picture per CAM sample with a bright disk somewhere: (pictures, labels, disk centres in [0, 1])."""
    side = CAM_PICTURE_SIDE
    yy, xx = np.mgrid[0:side, 0:side] / side
    labels = np.arange(samples) % classes
    centres = rng.uniform(0.3, 0.7, (samples, 2))
    pictures = []
    for (cy, cx), label in zip(centres, labels):
        picture = rng.integers(40, 90, (side, side, 3)).astype(np.uint8)
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 < 0.04
        picture[disk] = (np.array([60 + 19 * label, 200 - 13 * label, 120]) % 256).astype(np.uint8)
        pictures.append(picture)
    return pictures, labels, centres


def _frame(epoch, epochs, acc, labels, scatter, cluster_at, cam_labels, starts, centres, side, rng) -> dict:
    spread = 1 - math.exp(-epoch / 8)
    angle = 0.3 * epoch / epochs  # the aligned map still turns a little, as real ones do
    turn = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    xy = (scatter * (2.0 - 1.6 * spread) + cluster_at[labels] * spread) @ turn
    return {"epoch": epoch, **_confusion_part(acc, rng),
            "points": {"x": np.round(xy[:, 0], 3).tolist(), "y": np.round(xy[:, 1], 3).tolist(),
                       "label": labels.tolist(), "pred": _predict(labels, acc, rng).tolist()},
            "knn_acc": round(float(acc.mean()) * 0.97, 4),
            "cams": _cams_part(epoch, epochs, acc, cam_labels, starts, centres, side, rng)}


def _predict(labels: np.ndarray, acc: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each label kept with its class's accuracy, else another class at random."""
    classes = len(acc)
    other = (labels + rng.integers(1, max(classes, 2), len(labels))) % classes
    return np.where(rng.random(len(labels)) < acc[labels], labels, other)


def _confusion_part(acc: np.ndarray, rng: np.random.Generator, per_class: int = 100) -> dict:
    classes = len(acc)
    confusion = np.zeros((classes, classes), np.int64)
    for c in range(classes):
        confusion[c] = np.bincount(_predict(np.full(per_class, c), acc, rng), minlength=classes)
    return {"confusion": confusion.tolist(),
            "class_acc": [round(float(confusion[c, c] / per_class), 4) for c in range(classes)]}


def _cams_part(epoch, epochs, acc, cam_labels, starts, centres, side, rng) -> dict:
    """A blob per sample sliding from a random place onto the object as the epochs pass."""
    grid = (np.mgrid[0:side, 0:side] + 0.5) / side
    progress = min(1.0, epoch / (0.6 * epochs))
    maps = []
    for start, centre in zip(starts, centres):
        cy, cx = start + (centre - start) * progress
        blob = np.exp(-((grid[0] - cy) ** 2 + (grid[1] - cx) ** 2) / 0.03)
        maps.append(np.round(255 * blob / blob.max()).astype(np.uint8).tobytes())
    preds = _predict(cam_labels, acc, rng)
    return {"h": side, "w": side, "maps": [base64.b64encode(m).decode("ascii") for m in maps],
            "preds": preds.tolist(),
            "confidence": np.round(np.clip(acc[cam_labels] + rng.normal(0, 0.05, len(preds)), 0.05, 1), 3).tolist()}


def run_film(ref: str, runs_dir=None, data_dir=None) -> tuple[dict, list[dict], list[dict]]:
    """A run's own film (head, metrics, frames), as the Train page and the report get it."""
    from lab.insight.film import film_frames, film_head, film_metrics
    from lab.runs.store import open_run

    store, run_id = open_run(ref, runs_dir)
    run = store.get(run_id)
    return film_head(run, data_dir), film_metrics(run), film_frames(run)


def film_page(head: dict, metrics: list[dict], frames: list[dict], lang: str = "en") -> str:
    """A whole HTML page holding only the film, as the report inlines it."""
    return ('<!doctype html><html><head><meta charset="utf-8"><title>film</title></head><body>'
            + film_html(head, metrics, frames, templates("film.", lang)) + "</body></html>")


def run_film_bench(ref: str | None = None, runs_dir=None, data_dir=None, loops: int = 10) -> dict:
    """Play the film ``loops`` times through at one frame per animation frame, after one loop to warm up;
    the browser's CPU per frame and the frames per second, and the same for animation frames alone."""
    from playwright.sync_api import sync_playwright

    head, metrics, frames = run_film(ref, runs_dir, data_dir) if ref else synthetic_film()
    if not frames:
        raise ValueError(f"run {ref} has no epoch to play yet: train it for one epoch at least")
    page_html = film_page(head, metrics, frames)
    steps = loops * len(frames)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_content(page_html)
            page.wait_for_function(f"() => document.querySelector('.lab-film')?.dataset.frames === '{len(frames)}'")
            page.evaluate(PLAY, [len(frames), True])  # warm-up: the JIT, the fonts, the pictures decoded
            played = _measured(page, steps, True)
            idle = _measured(page, steps, False)
        finally:
            browser.close()
    return {"source": ref or "synthetic", "frames": len(frames), "classes": len(head.get("classes") or []),
            "points": len((frames[-1].get("points") or {}).get("x") or []),
            "cam_samples": len((head.get("cam") or {}).get("images") or []),
            "page_kb": len(page_html.encode("utf-8")) / 1024, "steps": steps, "played": played, "idle": idle}


def _measured(page, steps: int, step: bool) -> dict:
    before = cpu_seconds(browser_pids())
    timing = page.evaluate(PLAY, [steps, step])
    cpu_s = cpu_seconds(browser_pids()) - before
    return {"browser_cpu_ms_per_frame": 1000 * cpu_s / steps, "script_ms_per_frame": timing["script_ms"] / steps,
            "frames_per_s": 1000 * steps / timing["wall_ms"]}


def format_film(report: dict) -> str:
    played, idle = report["played"], report["idle"]
    budget_ms = 1000 * STREAMLIT_REFRESH_BROWSER_S
    lines = [
        (f"film of {report['source']}: {report['frames']} frames, {report['classes']} classes, "
         f"{report['points']} points a frame, {report['cam_samples']} CAM samples; page {report['page_kb']:,.0f} KB"),
        f"played {report['steps']} frames at full speed (one per animation frame), headless chromium:",
        (f"  browser CPU {played['browser_cpu_ms_per_frame']:.1f} ms/frame (player's script "
         f"{played['script_ms_per_frame']:.1f} ms), {played['frames_per_s']:.0f} frames/s"),
        f"  the same animation frames without a step: {idle['browser_cpu_ms_per_frame']:.1f} ms/frame",
        (f"  a Streamlit refresh of the Train page costs the browser ~{budget_ms:.0f} ms (BENCHMARKS.md): "
         f"a frame is {played['browser_cpu_ms_per_frame'] / budget_ms:.1%} of it"),
    ]
    return "\n".join(lines)
