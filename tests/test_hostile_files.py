"""Image files from a hostile classmate: formats by content, decoding cost, decoding once (issue 16)."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.files import zip_bytes

from lab.data import DatasetError, images, import_zip, load_dataset
from lab.data import folder as folder_loader
from lab.insight.errors import InsightError
from lab.insight.load import InputStats
from lab.insight.tools import upload_image


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path / "data"))


def _png(size: tuple[int, int], mode: str = "RGB", colour=0) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def _jpeg(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


# PostScript: Pillow identifies it by content ("%!PS") whatever the name, and hands it to Ghostscript.
POSTSCRIPT = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\nnewpath 0 0 moveto 16 16 lineto stroke\nshowpage\n"


def test_a_format_outside_the_allow_list_is_not_an_image_whatever_its_name(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(POSTSCRIPT)
    with pytest.raises(images.SkipImage, match="corrupt or unreadable"):
        images.probe(path, max_side=4096)
    with pytest.raises(images.SkipImage):
        images.decode(path, 3, (8, 8))
    stats = InputStats((3, 8, 8), [0.5] * 3, [0.25] * 3, ["a", "b"])
    with pytest.raises(InsightError, match="Upload an image file"):
        upload_image("x.png", POSTSCRIPT, stats)


def test_allowed_formats_cover_every_accepted_suffix(tmp_path: Path) -> None:
    saved = {".png": "PNG", ".jpg": "JPEG", ".bmp": "BMP", ".gif": "GIF", ".webp": "WEBP", ".tif": "TIFF",
             ".ppm": "PPM"}
    for suffix, kind in saved.items():
        path = tmp_path / f"ok{suffix}"
        Image.new("RGB", (9, 7), (10, 20, 30)).save(path, kind)
        assert images.probe(path, max_side=64).format == kind


def test_a_jpeg_photo_costs_its_reduced_decode_a_png_its_full_size() -> None:
    photo = images.Found(Path("p.jpg"), (4032, 3024), "RGB", format="JPEG")
    assert images.decode_pixels(photo, (64, 48)) == 504 * 378  # libjpeg's 1/8 scale
    png = images.Found(Path("p.png"), (4096, 4096), "1", format="PNG")
    assert images.decode_pixels(png, (64, 64)) == 4096 * 4096


def test_a_zip_of_tiny_files_holding_huge_images_is_refused_in_seconds(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """200 4096x4096 1-bit PNGs: 2 KB each on disk, 3,355 megapixels to decode; refused from the headers."""
    monkeypatch.setenv("LAB_MAX_DECODE_MEGAPIXELS", "1000")
    huge = _png((4096, 4096), mode="1")
    assert len(huge) < 4096
    archive = tmp_path / "huge.zip"
    archive.write_bytes(zip_bytes({f"{c}/{i}.png": huge for c in ("a", "b") for i in range(100)}))
    started = time.process_time()
    with pytest.raises(DatasetError, match=r"3,355 megapixels.*limit of 1,000.*LAB_MAX_DECODE_MEGAPIXELS"):
        import_zip(archive, tmp_path / "data")
    assert time.process_time() - started < 20  # generous; decoding them all took minutes


def test_ordinary_phone_photos_still_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_MAX_DECODE_MEGAPIXELS", "1")  # 4 photos of 12 MP: 0.8 MP decoded reduced
    photo = _jpeg((4032, 3024))
    archive = tmp_path / "photos.zip"
    archive.write_bytes(zip_bytes({f"{c}/{i}.jpg": photo for c in ("cat", "dog") for i in range(2)}))
    report = import_zip(archive, tmp_path / "data")
    assert report.total_kept == 4
    assert load_dataset(report.dataset_name).train_x.shape[1:] == (3, 48, 64)


def test_a_folder_is_decoded_once_per_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second load (another process, or after the in-memory cache let it go) reads the kept arrays;
    changing a file decodes again."""
    root = tmp_path / "pets"
    for c, colour in (("cat", 40), ("dog", 200)):
        (root / c).mkdir(parents=True)
        for i in range(5):
            (root / c / f"{i}.png").write_bytes(_png((100, 80), colour=(colour, i, 0)))
    first = load_dataset(f"folder:{root}")
    decoded = []
    real_decode = images.decode
    monkeypatch.setattr(images, "decode", lambda *a: decoded.append(a) or real_decode(*a))
    monkeypatch.setattr(folder_loader, "_CACHE", folder_loader.LoadCache(maxsize=8))
    again = load_dataset(f"folder:{root}")
    assert decoded == []
    assert again.classes == first.classes
    for key in ("train_x", "train_y", "val_x", "val_y"):
        assert np.array_equal(getattr(again, key).numpy(), getattr(first, key).numpy())
    (root / "cat" / "0.png").write_bytes(_png((100, 80), colour=(0, 0, 255)))
    monkeypatch.setattr(folder_loader, "_CACHE", folder_loader.LoadCache(maxsize=8))
    load_dataset(f"folder:{root}")
    assert len(decoded) == 10
    assert len(list(folder_loader.decoded_dir(root).glob("*.npz"))) == 1


def test_an_explain_upload_with_a_name_over_255_bytes_is_read() -> None:
    stats = InputStats((3, 8, 8), [0.5] * 3, [0.25] * 3, ["a", "b"])
    item = upload_image("é" * 300 + ".png", _png((10, 10)), stats)
    assert item.model_input.shape == (3, 8, 8) and len(item.stem) == 120


# ---------------------------------------------------------------- zips: counts, ratios, padding, disk


def _classes(n: int = 3, size=(12, 10)) -> dict[str, bytes]:
    return {f"{c}/{i}.png": _png(size, colour=(i * 9, 0, 0)) for c in ("a", "b") for i in range(n)}


def test_too_many_entries_are_refused_before_the_directory_is_parsed(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_MAX_UPLOAD_FILES", "10")
    archive = tmp_path / "many.zip"
    archive.write_bytes(zip_bytes({f"a/{i}.png": b"x" for i in range(50)}))
    monkeypatch.setattr(zipfile, "ZipFile", lambda *a, **k: pytest.fail("the directory was parsed"))
    with pytest.raises(DatasetError, match="holds 50 files, more than the limit of 10"):
        import_zip(archive, tmp_path / "data")


def test_the_zip64_entry_count_is_read_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.data.upload import _entry_count

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for i in range(70_000):  # over 65,535: zipfile writes a zip64 end record
            archive.writestr(f"{i}", b"")
    assert _entry_count(buffer) == 70_000 and buffer.tell() == 0


def test_many_small_bombs_are_one_bomb(tmp_path: Path) -> None:
    """Each entry under the per-entry threshold (1 MB), together 60 MB from a few kB: refused as a whole."""
    archive = tmp_path / "small-bombs.zip"
    archive.write_bytes(zip_bytes({f"a/{i}.png": bytes(900_000) for i in range(60)}))
    assert archive.stat().st_size < 100_000
    with pytest.raises(DatasetError, match="inflate more than 200 times"):
        import_zip(archive, tmp_path / "data")
    assert not (tmp_path / "data" / "uploads" / "small-bombs").exists()


def test_an_image_padded_after_its_end_is_skipped(tmp_path: Path) -> None:
    entries = _classes()
    entries["a/padded.png"] = _png((12, 10)) + bytes(500_000)  # after IEND: invisible to any viewer
    archive = tmp_path / "padded.zip"
    archive.write_bytes(zip_bytes(entries))
    report = import_zip(archive, tmp_path / "data")
    assert report.skipped == {"file far larger than its image (hidden data)": 1}
    assert sum(p.stat().st_size for p in report.path.rglob("*") if p.is_file()) < 50_000


def test_a_member_name_over_255_bytes_is_skipped_not_an_oserror(tmp_path: Path) -> None:
    entries = _classes()
    entries["a/" + "n" * 300 + ".png"] = _png((12, 10))
    archive = tmp_path / "long.zip"
    archive.write_bytes(zip_bytes(entries))
    assert import_zip(archive, tmp_path / "data").skipped == {"file or folder name over 255 bytes": 1}


def test_disk_per_person_is_bounded_and_a_replaced_upload_does_not_count(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_MAX_UPLOAD_DISK_MB", "1")
    big = {f"{c}/{i}.png": _png((300, 300), colour=(i, 7, 3)) for c in ("a", "b") for i in range(3)}
    photos = tmp_path / "photos.zip"
    photos.write_bytes(zip_bytes({**big, "a/noise.bmp": _bmp_noise(450)}))  # ~0.6 MB unpacked
    import_zip(photos, tmp_path / "data", owner="s1")
    import_zip(photos, tmp_path / "data", owner="s1")  # the same name again: replaces, fits
    with pytest.raises(DatasetError, match=r"your uploads over 1 MB \(LAB_MAX_UPLOAD_DISK_MB\)"):
        import_zip(photos, tmp_path / "data", owner="s1", name="second")
    import_zip(photos, tmp_path / "data", owner="s2", name="second")  # another person has their own


def _bmp_noise(side: int) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(1).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "BMP")
    return buffer.getvalue()


def test_old_uploads_no_run_uses_are_pruned(tmp_path: Path) -> None:
    from lab.data.upload import prune_uploads

    archive = tmp_path / "pets.zip"
    archive.write_bytes(zip_bytes(_classes()))
    used = import_zip(archive, tmp_path / "data", owner="s1", name="used")
    unused = import_zip(archive, tmp_path / "data", owner="s2", name="unused")
    fresh = prune_uploads(tmp_path / "data", {used.dataset_name}, older_than_s=3600)
    assert fresh == [] and unused.path.exists()
    assert prune_uploads(tmp_path / "data", {used.dataset_name}, older_than_s=0) == [unused.path]
    assert used.path.exists() and not unused.path.parent.exists()


def test_messages_name_the_upload_not_the_servers_paths(tmp_path: Path) -> None:
    archive = tmp_path / "one-class.zip"
    archive.write_bytes(zip_bytes({f"cat/{i}.png": _png((12, 10)) for i in range(3)}))
    with pytest.raises(DatasetError) as refused:
        import_zip(archive, tmp_path / "data", owner="0123456789abcdef")
    message = str(refused.value)
    assert message.startswith("one-class.zip needs at least two class folders")
    assert str(tmp_path) not in message and "0123456789abcdef" not in message and "uploads" not in message
