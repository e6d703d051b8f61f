"""The Data page's Download button through Streamlit's AppTest, against the loopback mirror
(tests/support/mirror.py): a missing set is fetched and shown and the draft takes it; offline, one error
saying what to do, and the draft keeps its data set."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.apptest import button, ok, page
from support.mirror import checked, closed_port_url, idx_gz_files, loopback_mirror

from lab.data import download

pytestmark = pytest.mark.usefixtures("isolated_lab")  # tests/conftest.py: its own runs and data folders


@pytest.fixture
def mnist_mirror(monkeypatch) -> Iterator[None]:
    """MNIST's four files, 6 training and 3 validation images, served on loopback as LAB_DATA_MIRROR."""
    files, _ = idx_gz_files(n_train=6, n_val=3)
    monkeypatch.setitem(download.DOWNLOADS, "mnist", checked("mnist", files))
    with loopback_mirror(files) as mirror:
        monkeypatch.setenv("LAB_DATA_MIRROR", mirror.url)
        yield


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_download_button_fetches_a_missing_set_and_shows_it(mnist_mirror):
    at = page("data")
    ok(at.selectbox(key="data.pick").select("mnist").run())
    assert "not on this server" in at.warning[0].value and at.session_state["draft"]["dataset"] == "shapes"
    ok(button(at, "Download MNIST (0 MB)").click().run())
    assert not at.warning and not at.error
    assert metric(at, "Train images") == "6" and metric(at, "Validation images") == "3"
    assert at.session_state["draft"]["dataset"] == "mnist"
    assert not [b for b in at.button if b.key == "data.download"]


def test_offline_the_download_says_what_to_do_and_the_draft_stays(monkeypatch):
    monkeypatch.setenv("LAB_DATA_MIRROR", closed_port_url())
    at = page("data")
    ok(at.selectbox(key="data.pick").select("cifar10").run())
    ok(button(at, "Download CIFAR-10 (170 MB)").click().run())
    assert len(at.error) == 1
    error = at.error[0].value
    assert error.startswith("Download failed: This server cannot reach") and "lab datasets --download cifar10" in error
    assert at.session_state["draft"]["dataset"] == "shapes" and not at.metric
