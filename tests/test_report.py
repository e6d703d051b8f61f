"""The run report is one HTML document that works offline and shows every section of a
real run: settings, curves, the feature-space map, CAM samples and the confusion matrix."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser

import pytest
from PIL import Image

from lab.export.report import SECTIONS, run_report
from lab.runs.store import RunStore, atomic_write_json

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Document(HTMLParser):
    """Checks that tags nest and close (void elements aside) and collects what the page would load."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.problems: list[str] = []
        self.seen: list[str] = []
        self.urls: list[str] = []  # src and href values
        self.images: list[str] = []
        self.scripts: list[int] = []  # length of each inline script
        self.doctype = ""

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag, attrs) -> None:
        self.seen.append(tag)
        values = dict(attrs)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]
        if tag == "img":
            self.images.append(values["src"])
        if tag == "script":
            self.scripts.append(0)
        if tag not in VOID:
            self.open.append(tag)

    def handle_data(self, data: str) -> None:
        if self.open and self.open[-1] == "script":
            self.scripts[-1] += len(data)

    def handle_endtag(self, tag) -> None:
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1] if self.open else 'nothing'}")
        else:
            self.open.pop()


def parsed(page: str) -> Document:
    doc = Document()
    doc.feed(page)
    doc.close()
    assert doc.doctype.lower() == "doctype html"
    assert not doc.problems and not doc.open, (doc.problems[:5], doc.open)
    assert [t for t in doc.seen if t in ("html", "head", "body", "title")] == ["html", "head", "title", "body"]
    return doc


def picture(url: str) -> Image.Image:
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


@pytest.fixture
def run_copy(tmp_path, copy_gap_cam_run):
    """A copy of the session's trained gap_cam run (the report caches PCA maps in the run folder)."""
    runs_dir = tmp_path / "runs"
    run_id = copy_gap_cam_run(runs_dir)
    return RunStore(runs_dir), run_id


def test_report_of_a_real_run_shows_every_section_offline(run_copy, tmp_path):
    store, run_id = run_copy
    run = store.get(run_id)
    page = run_report(run, "best", tmp_path / "data")
    doc = parsed(page)
    for key, title in SECTIONS.items():
        assert f'<section id="{key}">\n<h2>{title}' in page
    external = [u for u in doc.urls if re.match(r"(https?:)?//", u)]
    assert not external and "<link" not in page
    assert sum(length > 1_000_000 for length in doc.scripts) == 1  # plotly.js, inlined once
    figures = [json.loads(m) for m in re.findall(r'Plotly\.newPlot\(\s*"[^"]+",\s*(\[.*?\]),\s*\{', page)]
    assert len(figures) == page.count("Plotly.newPlot(") == 4  # accuracy, loss, feature space, confusion

    assert f"{run.best_val_acc:.2%} at epoch {run.best_epoch}" in page
    assert "Total params: " in page  # the layer table
    assert "Feature space (PCA) · epoch 3 · " in page  # the final epoch's map
    assert "2,400 validation images" in page  # the confusion matrix covers the whole val split
    assert "recorded during training at epoch 3: cam at layer batchnorm_3" in page
    assert len(doc.images) == 8  # one CAM sample per class
    assert {picture(url).size for url in doc.images} == {(3 * 32 * 2 + 4, 3 * 32)}  # image | gap | overlay
    film = json.loads(re.search(r"const data = (\{.*?\});\n", page).group(1))  # the player's data, inlined
    assert [frame["epoch"] for frame in film["frames"]] == [0, 1, 2, 3] and film["head"]["classes"] == run.classes
    assert film["text"]["epoch"] == "Epoch {epoch} of {last}"
    assert len(page) < 6_000_000


def test_report_without_insight_computes_cams_from_the_checkpoint(tmp_path):
    from lab.cli import run_training
    from lab.model.presets import get_preset
    from lab.train.engine import TrainConfig

    config = TrainConfig.from_dict(dict(spec=get_preset("gap_cam"), dataset="shapes", epochs=1, batch_size=64,
                                        device="cpu", train_limit=400, insight=False))
    run_id, result = run_training(config, tmp_path / "runs", tmp_path / "data")
    assert result.status == "finished", result.message
    page = run_report(RunStore(tmp_path / "runs").get(run_id), "last", tmp_path / "data")
    doc = parsed(page)
    assert "did not record the feature-space probe" in page
    assert "computed from the last checkpoint (epoch 1): cam at layer batchnorm_3" in page
    assert len(doc.images) == 8 and page.count("Plotly.newPlot(") == 3


def test_report_without_the_dataset_says_what_it_cannot_show(run_copy, tmp_path):
    store, run_id = run_copy
    config = dict(store.get(run_id).config, dataset=f"folder:{tmp_path / 'gone'}")
    atomic_write_json(store.path(run_id) / "config.json", config)
    page = run_report(store.get(run_id), "best", tmp_path / "data")
    doc = parsed(page)
    assert page.count("dataset is not available here") == 2  # CAM samples and confusion matrix
    assert not doc.images and page.count("Plotly.newPlot(") == 3


def test_a_missing_checkpoint_is_an_insight_error(run_copy):
    from lab.insight.errors import InsightError

    store, run_id = run_copy
    (store.path(run_id) / "last.pt").unlink()
    with pytest.raises(InsightError, match="no last.pt"):
        run_report(store.get(run_id), "last")
