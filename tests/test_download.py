"""lab.data.download: MNIST, Fashion-MNIST and CIFAR-10 fetched from a loopback server (tests/support/mirror.py)
in their real formats, then loaded; wrong, oversized, unreachable or unsafe downloads refused with one message
and nothing left behind; one download for two callers at once; ``python -m lab datasets --download``."""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from support.cli import lab
from support.mirror import (
    Mirror,
    checked,
    cifar_archive,
    cifar_batches,
    closed_port_url,
    idx_gz_files,
    loopback_mirror,
    tar_gz,
)

from lab.cli import EXIT_BAD_INPUT, EXIT_OK, main
from lab.data import DatasetError, download, load_dataset
from lab.data import torchvision_files as tv

Serve = Callable[..., Mirror]


@pytest.fixture
def serve(monkeypatch) -> Iterator[Serve]:
    """``serve(name, files, hold=None)``: a loopback mirror of ``files`` for data set ``name``, set as
    LAB_DATA_MIRROR, with the download table holding those files' checksums."""
    with ExitStack() as stack:
        def start(name: str, files: dict[str, bytes], hold: threading.Event | None = None) -> Mirror:
            monkeypatch.setitem(download.DOWNLOADS, name, checked(name, files))
            mirror = stack.enter_context(loopback_mirror(files, hold))
            monkeypatch.setenv("LAB_DATA_MIRROR", mirror.url)
            return mirror

        yield start


@pytest.fixture(autouse=True)
def _no_system_fashion_mnist(monkeypatch, tmp_path):
    """Debian's copy of Fashion-MNIST, where installed, would make every download here unneeded."""
    monkeypatch.setattr(tv, "FASHION_MNIST", replace(tv.FASHION_MNIST, system_dirs=(tmp_path / "no-system-copy",)))
    entry = download.DOWNLOADS["fashion-mnist"]
    monkeypatch.setitem(download.DOWNLOADS, "fashion-mnist",
                        replace(entry, ready=lambda root: tv.find_idx_files(tv.FASHION_MNIST, root) is not None))


def files_under(root: Path) -> list[str]:
    """Every file left in the data dir but the download locks (which stay, empty, for the next download)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and not p.name.endswith(".download.lock"))


# ---------------------------------------------------------------- each format, then loaded


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_idx_sets_download_then_load(serve, tmp_path, name, folder):
    files, arrays = idx_gz_files(n_train=6, n_val=3)
    mirror = serve(name, files)
    steps = []
    download.download_dataset(name, tmp_path, progress=lambda fraction, message: steps.append((fraction, message)))
    assert files_under(tmp_path) == sorted(f"{folder}/raw/{n}" for n in files)
    assert steps[-1][0] == 1.0 and [f for f, _ in steps] == sorted(f for f, _ in steps)
    assert "Downloading t10k-labels-idx1-ubyte.gz" in steps[-1][1]
    ds = load_dataset(name, tmp_path)
    assert torch.equal(ds.train_x[:, 0], torch.from_numpy(arrays["train_x"]))
    assert ds.val_y.tolist() == arrays["val_y"].tolist()
    download.download_dataset(name, tmp_path)  # already here: nothing fetched again
    assert set(mirror.requests.values()) == {1}


def test_cifar10_archive_is_unpacked_where_the_loader_reads_it(serve, tmp_path):
    serve("cifar10", cifar_archive(per_batch=2))
    ds = load_dataset("cifar10", tmp_path, download=True)  # the registry's way in: the same download
    assert files_under(tmp_path) == sorted(f"{tv.CIFAR_DIR}/{n}" for n in tv.CIFAR_FILES)  # archive deleted
    assert len(ds.train_y) == 10 and len(ds.val_y) == 2 and ds.classes[-1] == "truck"
    batches = {name: pickle.loads(data, encoding="bytes") for name, data in cifar_batches(per_batch=2).items()}
    train = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    assert torch.equal(ds.train_x.reshape(10, -1), torch.from_numpy(train))
    assert ds.val_y.tolist() == batches["test_batch"][b"labels"]


def test_a_set_half_downloaded_before_fetches_only_what_is_missing(serve, tmp_path):
    files, _ = idx_gz_files()
    missing = "t10k-labels-idx1-ubyte.gz"
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, data in files.items():
        if name != missing:
            (raw / name).write_bytes(data)
    mirror = serve("mnist", files)
    download.download_dataset("mnist", tmp_path)
    assert dict(mirror.requests) == {missing: 1}
    assert len(load_dataset("mnist", tmp_path).val_y) == 3


# ---------------------------------------------------------------- refused, with nothing left behind


def test_a_file_with_another_checksum_is_deleted_and_named(serve, tmp_path, monkeypatch):
    files, _ = idx_gz_files()
    serve("mnist", files)
    table = download.DOWNLOADS["mnist"]
    wrong = replace(table.files[0], md5="0" * 32)
    monkeypatch.setitem(download.DOWNLOADS, "mnist", replace(table, files=(wrong, *table.files[1:])))
    with pytest.raises(DatasetError) as err:
        download.download_dataset("mnist", tmp_path)
    message = str(err.value)
    assert "train-images-idx3-ubyte.gz" in message and "expected " + "0" * 32 in message and "deleted" in message
    assert files_under(tmp_path) == []


def test_a_host_sending_more_than_the_file_has_is_stopped(serve, tmp_path, monkeypatch):
    files, _ = idx_gz_files()
    serve("mnist", files)
    table = download.DOWNLOADS["mnist"]
    small = replace(table.files[0], size=table.files[0].size - 1)
    monkeypatch.setitem(download.DOWNLOADS, "mnist", replace(table, files=(small, *table.files[1:])))
    with pytest.raises(DatasetError, match="sent more than the"):
        download.download_dataset("mnist", tmp_path)
    assert files_under(tmp_path) == []


def test_offline_the_message_says_what_to_run_elsewhere_and_what_to_copy_where(tmp_path, monkeypatch):
    url = closed_port_url()
    monkeypatch.setenv("LAB_DATA_MIRROR", url)
    with pytest.raises(DatasetError) as err:
        download.download_dataset("fashion-mnist", tmp_path)
    message = str(err.value)
    assert f"cannot reach {url}train-images-idx3-ubyte.gz" in message and "Connection refused" in message
    assert "run `python -m lab datasets --download fashion-mnist`" in message
    assert "FashionMNIST/raw/train-images-idx3-ubyte.gz" in message and str(tmp_path) in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "\n" not in message and files_under(tmp_path) == []
    with pytest.raises(DatasetError) as err:
        download.download_dataset("cifar10", tmp_path)
    assert "cifar-10-batches-py/data_batch_1" in str(err.value) and "apt-get" not in str(err.value)


@pytest.mark.parametrize("crafted", [{"extra": {"../escaped.txt": b"outside"}},
                                     {"extra": {"/tmp/absolute.txt": b"outside"}},
                                     {"links": {f"{tv.CIFAR_DIR}/link": "/etc/passwd"}}],
                         ids=["dotdot", "absolute", "symlink"])
def test_an_archive_with_a_member_outside_its_folder_is_refused_whole(serve, tmp_path, crafted):
    data = tmp_path / "data"
    serve("cifar10", cifar_archive(**crafted))
    with pytest.raises(DatasetError, match="nothing was unpacked and the archive was deleted"):
        download.download_dataset("cifar10", data)
    assert files_under(data) == [] and not (tmp_path / "escaped.txt").exists()
    assert not any(p.is_dir() for p in data.iterdir())  # no staging folder left


def test_an_archive_without_every_batch_says_what_should_be_there(serve, tmp_path):
    archive = cifar_archive()
    serve("cifar10", {name: tar_gz({f"{tv.CIFAR_DIR}/test_batch": cifar_batches()["test_batch"]})
                      for name in archive})
    with pytest.raises(DatasetError, match="still does not load: cifar-10-batches-py/data_batch_1"):
        download.download_dataset("cifar10", tmp_path)
    assert files_under(tmp_path) == [f"{tv.CIFAR_DIR}/test_batch"]  # kept: a later copy completes the folder


def test_a_mirror_that_is_not_http_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_DATA_MIRROR", f"file://{tmp_path}/")
    with pytest.raises(DatasetError, match="must be an http:// or https:// address"):
        download.download_dataset("mnist", tmp_path)


def test_a_set_the_lab_does_not_download_is_named_with_those_it_does(tmp_path):
    with pytest.raises(DatasetError, match="does not download shapes; it downloads mnist, fashion-mnist, cifar10"):
        download.download_dataset("shapes", tmp_path)


# ---------------------------------------------------------------- two at once


def test_two_callers_at_once_share_one_download(serve, tmp_path):
    files, _ = idx_gz_files()
    hold = threading.Event()  # the first download stays under way until the second has said it waits
    mirror = serve("mnist", files, hold=hold)
    messages, errors = [], []

    def second_progress(fraction: float, message: str) -> None:
        messages.append(message)
        hold.set()

    def run(progress=None) -> None:
        try:
            download.download_dataset("mnist", tmp_path, progress=progress)
        except DatasetError as err:
            errors.append(err)

    first = threading.Thread(target=run)
    first.start()
    deadline = time.monotonic() + 30
    while not mirror.requests and time.monotonic() < deadline:  # the first holds the lock, held at the server
        time.sleep(0.01)
    second = threading.Thread(target=run, args=(second_progress,))
    second.start()
    first.join(30)
    second.join(30)
    assert errors == [] and messages == ["Another session is downloading MNIST; waiting for it to finish ..."]
    assert set(mirror.requests.values()) == {1} and len(mirror.requests) == 4
    assert len(load_dataset("mnist", tmp_path).train_y) == 6


# ---------------------------------------------------------------- python -m lab datasets --download


def test_cli_downloads_with_progress_on_stderr_and_one_result_line(serve, tmp_path, capsys):
    serve("mnist", idx_gz_files()[0])
    assert main(["--data-dir", str(tmp_path), "datasets", "--download", "MNIST"]) == EXIT_OK
    out, err = capsys.readouterr()
    assert out.splitlines() == ["mnist: 6 train / 3 val images ready"]
    assert "100%  Downloading t10k-labels-idx1-ubyte.gz" in err and "Traceback" not in err


def test_cli_offline_is_exit_code_2_and_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_DATA_MIRROR", closed_port_url())
    out = lab("datasets", "--download", "cifar10", runs_dir=tmp_path)
    assert out.returncode == EXIT_BAD_INPUT and out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: This server cannot reach")
