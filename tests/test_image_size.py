"""A run's image size (``image_size``, ``--image-size``), the data memory bound, and big photos decoded reduced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lab.cli import main
from lab.data import DatasetError, images, load_dataset
from lab.data import folder as folder_module
from lab.data.folder import decoded_dir, load_folder
from lab.train.engine import ConfigError, TrainConfig, Trainer

TINY = {"layers": [{"type": "conv2d", "filters": 4}, {"type": "global_avg_pool"}, {"type": "dense", "units": 2}]}


def _photo(side: tuple[int, int], level: int) -> Image.Image:
    """A smooth RGB picture: a diagonal gradient (so resampling errors show) around ``level``."""
    w, h = side
    ramp = np.add.outer(np.linspace(0, 60, h), np.linspace(0, 60, w))
    pixels = np.stack([ramp + level, ramp[::-1] + level // 2, np.full((h, w), level / 3)], axis=-1)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def _folder(root: Path, size: tuple[int, int], per_class: int = 3, fmt: str = "png") -> Path:
    for name, level in (("bright", 170), ("dark", 40)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            _photo(size, level + 5 * i).save(root / name / f"{i}.{fmt}", quality=60)
    return root


def test_a_folder_trains_at_the_image_size_asked_and_keeps_one_decoded_file_per_size(tmp_path, monkeypatch):
    root = _folder(tmp_path / "pets", (200, 150))
    assert load_dataset(f"folder:{root}").shape == (3, 48, 64)  # the default, as before
    assert load_dataset(f"folder:{root}", image_size=128).shape == (3, 96, 128)
    assert load_dataset(f"folder:{root}", image_size=224).shape == (3, 150, 200)  # never enlarged
    assert len(list(decoded_dir(root).glob("*.npz"))) == 3
    folder_module._CACHE._items.clear()
    monkeypatch.setattr(folder_module, "_decode_folder", lambda *a: pytest.fail("decoded again"))
    assert load_folder(root, side=128).shape == (3, 96, 128)  # from the file kept for that size
    monkeypatch.undo()
    load_folder(root, side=96)  # a fourth size: the least recently used one (64 px, as 128 was just read) goes
    kept = sorted(p.name.rsplit("-", 1)[1] for p in decoded_dir(root).glob("*.npz"))
    assert kept == ["128px.npz", "224px.npz", "96px.npz"]


def test_built_in_data_sets_are_shrunk_to_a_smaller_size_and_never_enlarged():
    native = load_dataset("shapes")
    small = load_dataset("shapes", image_size=16)
    assert small.shape == (3, 16, 16) and torch.allclose(small.train_boxes, native.train_boxes / 2)
    assert torch.equal(small.train_y, native.train_y)
    assert load_dataset("shapes", image_size=224) is native


def test_a_run_over_the_data_memory_limit_is_refused_naming_a_size_that_fits(tmp_path, monkeypatch):
    root = _folder(tmp_path / "pets", (200, 150), per_class=10)
    monkeypatch.setenv("LAB_MAX_DATA_MB", "1")
    config = TrainConfig(spec=TINY, dataset=f"folder:{root}", image_size=224, device="cpu")
    with pytest.raises(DatasetError, match=r"20 images of 3x150x200 take 1.7 MB on the device, over this server's "
                                           r"limit of 1 MB \(LAB_MAX_DATA_MB\): choose an image size of 152 px"):
        Trainer(config)  # refused before the folder is decoded at that size
    assert Trainer(TrainConfig(spec=TINY, dataset=f"folder:{root}", image_size=152, device="cpu")).data_mb <= 1
    shapes = TrainConfig(spec=TINY, dataset="shapes", device="cpu")
    with pytest.raises(ConfigError, match="14,400 images of 3x32x32 take 42.2 MB"):
        Trainer(shapes)
    with pytest.raises(ConfigError, match="2,440 images"):  # the val split and the train limit's images
        Trainer(TrainConfig(spec=TINY, dataset="shapes", device="cpu", train_limit=40))


@pytest.mark.parametrize("size", [1, 7])
def test_an_image_size_below_the_smallest_side_is_refused(size):
    with pytest.raises(ConfigError, match="image_size must be 0 .* or from 8 to 224"):
        TrainConfig(spec=TINY, image_size=size).validate()


def test_the_cli_trains_at_an_image_size_and_says_the_data_memory(tmp_path, capsys):
    root = _folder(tmp_path / "pets", (200, 150))
    code = main(["train", "--runs-dir", str(tmp_path / "runs"), "--spec", "lenet5", "--dataset", f"folder:{root}",
                 "--image-size", "96", "--epochs", "1", "--device", "cpu", "--no-insight"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Images on the device: 0.1 MB (6 images of 3x72x96, uint8)" in out


def test_big_jpegs_are_decoded_reduced_once_and_come_out_right(tmp_path, monkeypatch):
    root = _folder(tmp_path / "phone", (4000, 3000), per_class=2, fmt="jpg")
    decoded = []
    to_array = images.to_array
    monkeypatch.setattr(images, "to_array", lambda img, *a: decoded.append(img.size) or to_array(img, *a))
    ds = load_dataset(f"folder:{root}", image_size=128)
    assert ds.shape == (3, 96, 128)
    assert decoded == [(500, 375)] * 4  # libjpeg's 1/8 scale: never 4000x3000, each file once
    references = []
    for path in sorted(root.rglob("*.jpg")):
        with Image.open(path) as full:  # the slow way: every pixel, then resized
            rgb = full.convert("RGB").resize((128, 96), Image.Resampling.BILINEAR, reducing_gap=3.0)
            references.append(np.asarray(rgb, dtype=int).transpose(2, 0, 1))
    for image in torch.cat([ds.train_x, ds.val_x]).numpy().astype(int):
        assert min(np.abs(image - reference).mean() for reference in references) < 2
    folder_module._CACHE._items.clear()
    decoded.clear()
    load_dataset(f"folder:{root}", image_size=128)
    assert decoded == []  # the next load reads the decoded file
