"""lab.data: built-in datasets, torchvision file parsing, folders and safe zip import.

Everything runs offline on files the tests write into tmp_path; no test downloads.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from support.files import classes_zip, image_bytes, zip_bytes

from lab import settings
from lab.data import (
    Dataset,
    DatasetError,
    ImportReport,
    class_counts,
    examples_per_class,
    images,
    import_zip,
    list_datasets,
    load_dataset,
    shapes,
    upload,
)
from lab.data import torchvision_files as tv
from lab.data.cache import LoadCache


@pytest.fixture(autouse=True)
def _default_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any call that forgets data_dir writes into tmp_path, never the repository."""
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path / "default-data"))


@pytest.fixture(scope="module")
def shapes_ds() -> Dataset:
    return load_dataset("shapes")


def _files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def _uploads_empty(data: Path) -> bool:
    """No import, finished or half-written (staging folders are hidden), under data/uploads."""
    uploads = data / "uploads"
    return not uploads.exists() or not any(uploads.iterdir())


# --- shapes ------------------------------------------------------------------------------


def test_shapes_is_deterministic_for_a_seed() -> None:
    a, b = shapes.load(seed=0, train_per_class=10, val_per_class=5), shapes.load(seed=0, train_per_class=10,
                                                                              val_per_class=5)
    other = shapes.load(seed=1, train_per_class=10, val_per_class=5)
    for field in ("train_x", "train_y", "val_x", "val_y", "train_boxes", "val_boxes"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert not torch.equal(a.train_x, other.train_x)
    assert not torch.equal(a.train_x, a.val_x[: len(a.train_x)])


def test_shapes_full_dataset_is_balanced_and_well_formed(shapes_ds: Dataset) -> None:
    ds = shapes_ds
    assert ds is load_dataset("SHAPES")  # cached per process, name normalised
    assert ds.shape == (3, 32, 32) and ds.num_classes == 8 and len(set(ds.classes)) == 8
    assert ds.train_x.dtype == torch.uint8 and ds.train_x.is_contiguous()
    assert class_counts(ds.train_y, 8) == [shapes.TRAIN_PER_CLASS] * 8
    assert class_counts(ds.val_y, 8) == [shapes.VAL_PER_CLASS] * 8
    assert ds.train_boxes.shape == (len(ds.train_y), 4) and ds.val_boxes.dtype == torch.float32
    x0, y0, x1, y1 = ds.train_boxes.unbind(1)
    assert bool(((0 <= x0) & (x0 < x1) & (x1 <= 32) & (0 <= y0) & (y0 < y1) & (y1 <= 32)).all())
    info = next(i for i in list_datasets() if i.name == "shapes")
    assert (info.train_size, info.val_size, info.shape) == (len(ds.train_y), len(ds.val_y), ds.shape)
    # random backgrounds: no class is given away by its mean colour
    means = [ds.train_x[ds.train_y == c].float().mean().item() for c in range(8)]
    assert max(means) - min(means) < 12


@pytest.mark.parametrize("label", range(len(shapes.CLASSES)))
def test_shapes_object_lies_inside_its_tight_box(label: int) -> None:
    pixels, boxes, alpha = shapes.render(label, 40, [7, label])
    assert pixels.shape == (40, 3, 32, 32) and pixels.dtype == np.uint8
    for a, (x0, y0, x1, y1) in zip(alpha, boxes.astype(int)):
        inside = np.zeros_like(a, dtype=bool)
        inside[y0:y1, x0:x1] = True
        assert a[~inside].max(initial=0) == 0  # nothing of the object outside the box
        assert a[y0].max() > 0 and a[y1 - 1].max() > 0  # and the box is tight
        assert a[:, x0].max() > 0 and a[:, x1 - 1].max() > 0
        assert (a > 0.5).sum() >= 20  # big enough to see


# --- digits, registry, helpers ------------------------------------------------------------


def test_digits_offline_8x8() -> None:
    ds = load_dataset("digits")
    assert ds.shape == (1, 8, 8) and ds.classes == [str(d) for d in range(10)]
    assert len(ds.train_y) + len(ds.val_y) == 1797
    assert ds.train_x.max() == 255 and ds.train_x.min() == 0
    counts = class_counts(ds.val_y, 10)
    assert min(counts) >= 35 and max(counts) <= 37  # stratified 20%
    info = next(i for i in list_datasets() if i.name == "digits")
    assert (info.train_size, info.val_size) == (len(ds.train_y), len(ds.val_y))


def test_channel_stats_match_a_direct_computation() -> None:
    ds = load_dataset("digits")
    x = ds.train_x.double() / 255
    mean, std = ds.channel_stats()
    assert mean == pytest.approx([x.mean().item()], abs=1e-9)
    assert std == pytest.approx([x.std(unbiased=False).item()], abs=1e-9)
    assert ds.channel_stats() is ds.channel_stats()


def test_examples_per_class_are_stable_and_of_that_class() -> None:
    ds = load_dataset("digits")
    picks = examples_per_class(ds, 4, split="val", seed=3)
    assert picks == examples_per_class(ds, 4, split="val", seed=3)
    assert sorted(picks) == list(range(10))
    for c, idx in picks.items():
        assert len(idx) == 4 and all(int(ds.val_y[i]) == c for i in idx)
    with pytest.raises(DatasetError, match="split"):
        examples_per_class(ds, 4, split="test")


def test_load_cache_builds_once_for_concurrent_callers() -> None:
    cache: LoadCache[object] = LoadCache(maxsize=2)
    calls = []

    def build() -> object:
        calls.append(1)
        time.sleep(0.05)  # widen the window in which the other threads ask
        return object()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: cache.get("k", build), range(8)))
    assert len(calls) == 1 and all(r is results[0] for r in results)
    cache.get("a", object)
    cache.get("b", object)
    assert cache.get("k", build) is not results[0] and len(calls) == 2  # evicted, least recently used


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(DatasetError) as err:
        load_dataset("imagenet")
    for name in ("shapes", "digits", "mnist", "fashion-mnist", "cifar10", "folder:"):
        assert name in str(err.value)


def test_list_datasets_on_an_empty_data_dir(tmp_path: Path) -> None:
    infos = {i.name: i for i in list_datasets(tmp_path)}
    order = [i.offline for i in list_datasets(tmp_path)]
    assert order == sorted(order, reverse=True)  # offline ones first
    for name in ("shapes", "digits"):
        assert infos[name].offline and infos[name].available and infos[name].how_to_get == ""
    mnist = infos["mnist"]
    assert not mnist.available and not mnist.offline
    assert "python -m lab datasets --download mnist" in mnist.how_to_get
    assert str(tmp_path / "MNIST" / "raw") in mnist.how_to_get
    fashion = infos["fashion-mnist"]  # Debian's package may provide it system-wide
    system_copy = tv.find_idx_files(tv.FASHION_MNIST, tmp_path) is not None
    assert fashion.available == system_copy
    assert (fashion.how_to_get == "") == system_copy
    if not system_copy:
        assert "apt-get install dataset-fashion-mnist" in fashion.how_to_get


# --- MNIST-format IDX files ---------------------------------------------------------------


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def _write_idx_set(folder: Path, n_train: int, n_val: int, gz: bool, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {"train_x": rng.integers(0, 256, (n_train, 28, 28)), "train_y": rng.integers(0, 10, n_train),
              "val_x": rng.integers(0, 256, (n_val, 28, 28)), "val_y": rng.integers(0, 10, n_val)}
    folder.mkdir(parents=True, exist_ok=True)
    for role, name in tv.IDX_FILES.items():
        data = _idx_bytes(arrays[role])
        (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(data) if gz else data)
    return arrays


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("Fashion_MNIST", "FashionMNIST")])
def test_idx_files_in_torchvision_layout(tmp_path: Path, name: str, folder: str, gz: bool) -> None:
    arrays = _write_idx_set(tmp_path / folder / "raw", n_train=12, n_val=5, gz=gz)
    ds = load_dataset(name, tmp_path)
    assert ds.shape == (1, 28, 28) and ds.num_classes == 10
    assert torch.equal(ds.train_x[:, 0], torch.from_numpy(arrays["train_x"].astype(np.uint8)))
    assert ds.val_y.tolist() == arrays["val_y"].tolist() and ds.val_y.dtype == torch.int64
    assert ds.classes[0] == ("0" if name == "mnist" else "T-shirt/top")
    assert next(i for i in list_datasets(tmp_path) if i.name == ds.name).available


def test_idx_truncated_or_foreign_file_is_refused(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    _write_idx_set(raw, n_train=4, n_val=2, gz=False)
    path = raw / tv.IDX_FILES["train_x"]
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DatasetError, match="truncated"):
        load_dataset("mnist", tmp_path)
    path.write_bytes(b"PK\x03\x04 not idx at all")
    with pytest.raises(DatasetError, match="not an IDX file"):
        tv.read_idx(path)


def test_missing_idx_files_name_the_paths_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DatasetError) as err:
        load_dataset("mnist", tmp_path)
    assert str(tmp_path / "MNIST" / "raw") in str(err.value)
    assert "--download mnist" in str(err.value)
    nowhere = tmp_path / "no-system-copy"
    monkeypatch.setattr(tv, "FASHION_MNIST", replace(tv.FASHION_MNIST, system_dirs=(nowhere,)))
    with pytest.raises(DatasetError) as err:
        load_dataset("fashion-mnist", tmp_path)
    for text in (str(tmp_path / "FashionMNIST" / "raw"), str(nowhere), "apt-get install dataset-fashion-mnist"):
        assert text in str(err.value)


# --- CIFAR-10 python batches and JPEG folders ---------------------------------------------


def _write_cifar(folder: Path, per_batch: int = 3, protocol: int = pickle.HIGHEST_PROTOCOL) -> np.ndarray:
    """The real format: dicts with b'data' uint8 (N, 3072) and b'labels', plus batches.meta."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (6 * per_batch, 3072), dtype=np.uint8)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        rows = data[i * per_batch:(i + 1) * per_batch]
        batch = {b"batch_label": name.encode(), b"labels": [int(r[0]) % 10 for r in rows], b"data": rows,
                 b"filenames": [b"x.png"] * per_batch}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    meta = {b"num_cases_per_batch": per_batch, b"label_names": names, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return data


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar_python_batches(tmp_path: Path, protocol: int) -> None:
    data = _write_cifar(tmp_path / tv.CIFAR_DIR, protocol=protocol)
    ds = load_dataset("cifar-10", tmp_path)
    assert ds.shape == (3, 32, 32) and ds.classes[0] == "airplane" and ds.classes[-1] == "truck"
    assert len(ds.train_y) == 15 and len(ds.val_y) == 3
    assert torch.equal(ds.train_x.reshape(15, -1), torch.from_numpy(data[:15]))
    assert ds.val_y.tolist() == [int(r[0]) % 10 for r in data[15:]]


def test_cifar_batch_written_by_old_numpy_still_loads(tmp_path: Path) -> None:
    """The official files name numpy.core.multiarray, which numpy 2 moved to numpy._core."""
    _write_cifar(tmp_path / tv.CIFAR_DIR, protocol=2)
    batch = tmp_path / tv.CIFAR_DIR / "data_batch_1"
    batch.write_bytes(batch.read_bytes().replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    x, y = tv.read_cifar_batch(batch)
    assert x.shape == (3, 3, 32, 32) and y.dtype == np.int64


class _Boom:
    def __reduce__(self):  # a pickle that would run a command if unpickled blindly
        return (os.system, ("echo pwned",))


def test_cifar_batch_cannot_run_code(tmp_path: Path) -> None:
    _write_cifar(tmp_path / tv.CIFAR_DIR)
    (tmp_path / tv.CIFAR_DIR / "data_batch_2").write_bytes(pickle.dumps({b"data": _Boom()}))
    with pytest.raises(DatasetError, match="not allowed"):
        load_dataset("cifar10", tmp_path)


def test_cifar_missing_names_both_layouts(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as err:
        load_dataset("cifar10", tmp_path)
    for text in (str(tmp_path / tv.CIFAR_DIR), str(tmp_path / "cifar10-jpg"), "--download cifar10"):
        assert text in str(err.value)


def test_cifar_jpeg_folders(tmp_path: Path) -> None:
    for split, n in (("train", 4), ("test", 2)):
        for c, colour in (("airplane", (200, 30, 30)), ("truck", (30, 30, 200))):
            _write_images(tmp_path / "cifar10-jpg" / split / c, n, size=(32, 32), colour=colour, suffix=".jpg")
    ds = load_dataset("cifar10", tmp_path)
    assert ds.name == "cifar10" and ds.classes == ["airplane", "truck"]
    assert ds.shape == (3, 32, 32) and len(ds.train_y) == 8 and len(ds.val_y) == 4
    red = ds.train_x[ds.train_y == 0].float().mean(dim=(0, 2, 3))
    assert red[0] > 150 and red[2] < 80


# --- folders of class folders -------------------------------------------------------------


def _write_images(folder: Path, n: int, size=(12, 10), mode="RGB", colour=(10, 200, 30), suffix=".png") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    fmt = "JPEG" if suffix == ".jpg" else "PNG"
    for i in range(n):
        (folder / f"{i}{suffix}").write_bytes(image_bytes(size, mode, colour, fmt))


def test_folder_with_mixed_modes_sizes_and_junk(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    _write_images(root / "cat", 4, size=(12, 10), mode="L")
    _write_images(root / "dog", 5, size=(20, 20), mode="RGBA", colour=(0, 0, 0, 0))  # fully transparent
    _write_images(root / "dog" / "more", 1, size=(12, 10), mode="P")
    _write_images(root / "emu", 3, size=(12, 10))
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (root / "cat" / "notes.txt").write_text("not a picture")
    (root / "cat" / ".DS_Store").write_bytes(b"\0")
    (root / "empty").mkdir()
    (root / "README.md").write_text("outside the class folders")
    ds = load_dataset(f"folder:{root}", tmp_path / "data")
    assert ds.classes == ["cat", "dog", "emu"]  # the empty class is dropped
    assert ds.shape == (3, 10, 12)  # colour present -> 3 channels; most common size (12 wide, 10 high)
    assert len(ds.train_y) + len(ds.val_y) == 13
    assert all(n >= 1 for n in class_counts(ds.val_y, 3))  # stratified hold-out
    dog = torch.cat([ds.train_x[ds.train_y == 1], ds.val_x[ds.val_y == 1]])
    assert int(dog.float().mean()) > 200  # transparent RGBA composited on white, not black
    from lab.data.folder import scan_folder
    scan = scan_folder(root)
    assert scan.dropped == ["empty"] and scan.kept == {"cat": 4, "dog": 6, "emu": 3}
    assert scan.skipped == {images.CORRUPT: 1, images.NOT_IMAGE: 1, images.HIDDEN: 1,
                            "file outside the class folders": 1}


def test_an_image_added_to_a_class_folder_is_seen_at_the_next_load(tmp_path: Path) -> None:
    """The loaded folder is cached in memory; adding a file changes its class folder, not the top one."""
    root = tmp_path / "pets"
    _write_images(root / "cat", 4)
    _write_images(root / "dog", 4)
    before = load_dataset(f"folder:{root}", tmp_path / "data")
    top = root.stat().st_mtime_ns
    (root / "dog" / "new.png").write_bytes(image_bytes((12, 10)))
    assert root.stat().st_mtime_ns == top
    after = load_dataset(f"folder:{root}", tmp_path / "data")
    assert len(after.train_y) + len(after.val_y) == len(before.train_y) + len(before.val_y) + 1


def test_folder_of_greyscale_images_has_one_channel_and_bounded_size(tmp_path: Path) -> None:
    _write_images(tmp_path / "a", 3, size=(200, 100), mode="L", colour=(50, 50, 50))
    _write_images(tmp_path / "b", 3, size=(200, 100), mode="L", colour=(220, 220, 220))
    ds = load_dataset(f"folder:{tmp_path}", tmp_path / "data")
    assert ds.shape == (1, 32, 64)  # longer side capped at 64, aspect kept


def test_folder_train_test_layout_uses_the_given_split(tmp_path: Path) -> None:
    for split, n in (("train", 6), ("test", 2)):
        _write_images(tmp_path / "set" / split / "circle", n)
        _write_images(tmp_path / "set" / split / "square", n, colour=(0, 0, 250))
    _write_images(tmp_path / "set" / "test" / "triangle", 2)  # not in train: skipped
    ds = load_dataset(f"folder:{tmp_path / 'set'}", tmp_path / "data")
    assert ds.classes == ["circle", "square"]
    assert class_counts(ds.train_y, 2) == [6, 6] and class_counts(ds.val_y, 2) == [2, 2]


def test_folder_with_one_class_is_refused(tmp_path: Path) -> None:
    _write_images(tmp_path / "only" / "cat", 3)
    (tmp_path / "only" / "dog").mkdir()
    with pytest.raises(DatasetError, match="at least two class folders"):
        load_dataset(f"folder:{tmp_path / 'only'}", tmp_path / "data")


def test_folder_missing_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(f"folder:{tmp_path / 'nope'}", tmp_path / "data")


# --- zip import -------------------------------------------------------------------------------


@pytest.fixture
def sandbox(tmp_path: Path):
    """(data dir, zip path); afterwards, nothing may exist outside the data dir but the zip."""
    data, archive = tmp_path / "data", tmp_path / "in.zip"
    before = _files_under(tmp_path)
    yield data, archive
    outside = {p for p in _files_under(tmp_path) - before if data not in p.parents and p != archive}
    assert outside == set()


def test_import_zip_normal(sandbox: tuple[Path, Path]) -> None:
    data, archive = sandbox
    entries = classes_zip("pets/") | {"pets/readme.txt": b"hi", "__MACOSX/pets/cat/._0.png": b"junk",
                                       "pets/bird/bad.jpg": b"not a jpeg"}
    archive.write_bytes(zip_bytes(entries))
    seen = []
    report = import_zip(archive, data, progress=lambda f, msg: seen.append(f))
    assert isinstance(report, ImportReport)
    assert report.name == "in" and report.path == (data / "uploads" / "in").resolve()
    assert report.classes == ["cat", "dog"] and report.kept == {"cat": 3, "dog": 3} and report.total_kept == 6
    assert report.skipped == {images.NOT_IMAGE: 1, images.HIDDEN: 1, images.CORRUPT: 1}
    assert report.dropped_classes == ["bird"]  # its only file was not an image
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    assert [p.name for p in (data / "uploads").iterdir()] == ["in"]  # no staging left over
    ds = load_dataset(report.dataset_name, data)
    assert ds.classes == ["cat", "dog"] and len(ds.train_y) + len(ds.val_y) == 6


def test_import_zip_from_an_uploaded_file_object_replaces_same_name(tmp_path: Path) -> None:
    first = io.BytesIO(zip_bytes(classes_zip()))
    first.name = "My Pets!.zip"
    report = import_zip(first, tmp_path, progress=None)
    assert report.name == "My-Pets"
    assert len(load_dataset(report.dataset_name, tmp_path).train_y) == 4
    second = io.BytesIO(zip_bytes(classes_zip(n=5)))
    again = import_zip(second, tmp_path, name="My Pets!")
    assert again.path == report.path and again.kept == {"cat": 5, "dog": 5}
    assert sorted(p.name for p in (tmp_path / "uploads").iterdir() if not p.name.startswith(".")) == ["My-Pets"]
    assert len(load_dataset(report.dataset_name, tmp_path).train_y) == 8  # not the cached old one


def test_two_sessions_uploading_the_same_name_keep_their_own_images(tmp_path: Path) -> None:
    anna = import_zip(io.BytesIO(zip_bytes(classes_zip())), tmp_path, name="flowers", owner="anna-key")
    ben = import_zip(io.BytesIO(zip_bytes(classes_zip(n=5))), tmp_path, name="flowers", owner="ben-key")
    assert anna.path != ben.path and anna.name == ben.name == "flowers"
    assert len(load_dataset(anna.dataset_name, tmp_path).train_y) == 4  # Ben's upload replaced nothing
    assert len(load_dataset(ben.dataset_name, tmp_path).train_y) == 8
    evil = import_zip(io.BytesIO(zip_bytes(classes_zip())), tmp_path, name="x", owner="../../etc")
    assert evil.path.is_relative_to(tmp_path.resolve() / "uploads")


def test_import_zip_skips_unsafe_entries(sandbox: tuple[Path, Path]) -> None:
    data, archive = sandbox
    absolute = f"/tmp/lab-escape-{uuid.uuid4().hex}.png"
    png = image_bytes()
    entries = classes_zip() | {"../escape.png": png, "cat/../../../escape2.png": png, absolute: png,
                                "C:/windows.png": png}
    archive.write_bytes(zip_bytes(entries, symlinks={"cat/link.png": "/etc/passwd"}))
    report = import_zip(archive, data)
    assert report.skipped == {upload.UNSAFE: 4, upload.SYMLINK: 1}
    assert report.kept == {"cat": 3, "dog": 3}
    assert not Path(absolute).exists()
    assert not any(p.is_symlink() for p in data.rglob("*"))


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 MB of zeros deflate to ~20 kB: a ratio near 1000."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.zip"
    path.write_bytes(zip_bytes(classes_zip() | {"cat/huge.bmp": bytes(20 * 2**20)}))
    return path


def test_import_zip_refuses_a_zip_bomb(bomb: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="zip-bomb"):
        import_zip(bomb, tmp_path)
    assert _uploads_empty(tmp_path)


def test_import_zip_counts_real_bytes_while_streaming(bomb: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Even when the up-front header check is bypassed, inflating stops at the ratio."""
    monkeypatch.setattr(upload, "_check_claims", lambda entries, limits: None)
    with pytest.raises(DatasetError, match="zip-bomb"):
        import_zip(bomb, tmp_path)
    monkeypatch.setenv("LAB_MAX_UPLOAD_BYTES", str(2 * 2**20))
    archive = tmp_path / "big.zip"
    archive.write_bytes(zip_bytes(classes_zip() | {"cat/big.bmp": np.random.default_rng(0).bytes(3 * 2**20)}))
    with pytest.raises(DatasetError, match="LAB_MAX_UPLOAD_BYTES"):
        import_zip(archive, tmp_path)
    assert _uploads_empty(tmp_path)


def test_import_zip_total_bytes_limit(sandbox: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    data, archive = sandbox
    archive.write_bytes(zip_bytes(classes_zip()))
    monkeypatch.setenv("LAB_MAX_UPLOAD_BYTES", "200")
    with pytest.raises(DatasetError, match="LAB_MAX_UPLOAD_BYTES"):
        import_zip(archive, data)
    assert _uploads_empty(data)


def test_import_zip_file_count_limit(sandbox: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    data, archive = sandbox
    archive.write_bytes(zip_bytes(classes_zip()))
    monkeypatch.setenv("LAB_MAX_UPLOAD_FILES", "5")
    with pytest.raises(DatasetError, match="LAB_MAX_UPLOAD_FILES"):
        import_zip(archive, data)


def test_import_zip_skips_images_over_the_side_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "limits", lambda: settings.Limits(max_image_side=16))
    entries = classes_zip() | {"dog/big.png": image_bytes(size=(20, 12))}
    report = import_zip(io.BytesIO(zip_bytes(entries)), tmp_path, name="sides")
    assert report.kept == {"cat": 3, "dog": 3}
    assert report.skipped == {"image larger than 16 px": 1}
    assert not (report.path / "dog" / "big.png").exists()


def test_import_refuses_non_zip_and_single_class(sandbox: tuple[Path, Path]) -> None:
    data, archive = sandbox
    archive.write_text("just text")
    with pytest.raises(DatasetError, match="not a zip file"):
        import_zip(archive, data)
    with pytest.raises(DatasetError, match="not a zip file"):
        import_zip(io.BytesIO(b"\x89PNG not a zip"), data)
    archive.write_bytes(zip_bytes({f"cat/{i}.png": image_bytes() for i in range(3)}))
    with pytest.raises(DatasetError, match="at least two class folders"):
        import_zip(archive, data)
    assert _uploads_empty(data)


def test_folder_name_may_be_a_zip(sandbox: tuple[Path, Path]) -> None:
    data, archive = sandbox
    archive.write_bytes(zip_bytes(classes_zip("set/train/") | classes_zip("set/test/", n=1)))
    ds = load_dataset(f"folder:{archive}", data)
    assert ds.classes == ["cat", "dog"] and len(ds.val_y) == 2
    assert (data / "uploads" / "in" / "set" / "train" / "cat" / "0.png").is_file()
    assert load_dataset(f"folder:{archive}", data) is ds  # neither imported nor decoded again
