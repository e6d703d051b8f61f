"""Tests for lab.train.augment, driven by its registries (presets and keys).

Numbers are checked by hand where the answer is known exactly (pixel moves, flips,
pasted areas, Beta moments), everything else by invariants on every preset and key.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from lab.train.augment import AUGMENT_PRESETS, AUGMENT_RANGES, AugmentConfig, AugmentError, augment_label, get_augment
from lab.train.augment_ops import affine_warp, augment_batch, preview, random_crop

# One typical "on" setting per key; mix_prob needs a mix to act on.
KEY_EXAMPLES: dict[str, dict] = {
    "hflip": {"hflip": 0.5},
    "vflip": {"vflip": 0.5},
    "rotation": {"rotation": 30.0},
    "shift": {"shift": 0.2},
    "zoom": {"zoom": 0.2},
    "crop_padding": {"crop_padding": 2},
    "cutout": {"cutout": 4},
    "brightness": {"brightness": 0.3},
    "contrast": {"contrast": 0.5},
    "cutmix": {"cutmix": 1.0},
    "mixup": {"mixup": 0.4},
    "mix_prob": {"mixup": 0.4, "mix_prob": 0.5},
}
CASES: dict[str, AugmentConfig] = {
    **{f"preset:{name}": cfg for name, cfg in AUGMENT_PRESETS.items()},
    **{f"key:{key}": AugmentConfig(**kw) for key, kw in KEY_EXAMPLES.items()},
    "everything": AugmentConfig(
        hflip=0.5, vflip=0.5, rotation=20, shift=0.1, zoom=0.1, crop_padding=2, cutout=3,
        brightness=0.2, contrast=0.2, cutmix=1.0, mixup=0.2, mix_prob=0.7,
    ),
}
# Keys whose randomness shows on a batch of identical images (mixing copies of one image does not).
PER_SAMPLE_KEYS = [k for k in KEY_EXAMPLES if k not in ("cutmix", "mixup", "mix_prob")]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SHAPES = [(6, 1, 12, 12), (6, 3, 8, 12)]  # 1- and 3-channel, square and not


def _zeros(n: int) -> torch.Tensor:
    """Labels for tests where they do not matter."""
    return torch.zeros(n, dtype=torch.long)


def _gen(device: str, seed: int = 0) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _batch(shape, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g).to(device)
    y = torch.randint(0, 5, (shape[0],), generator=g).to(device)
    return x, y


def test_key_examples_cover_every_key():
    assert set(KEY_EXAMPLES) == set(AUGMENT_RANGES) == set(AugmentConfig().to_dict())


# ---------------------------------------------------------------- invariants on every case


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("case", CASES)
def test_shape_dtype_device_range_targets(case, shape, dtype, device):
    cfg = CASES[case]
    x, y = _batch(shape, device)
    x = x.to(dtype)
    out, targets = augment_batch(x, y, cfg, num_classes=5, generator=_gen(device))
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert out.min() >= 0 and out.max() <= 1
    assert targets.shape == (shape[0], 5) and targets.dtype == torch.float32
    assert targets.device == x.device
    torch.testing.assert_close(targets.sum(1), torch.ones(shape[0], device=device))
    if not cfg.mixes_labels:
        assert torch.equal(targets, torch.nn.functional.one_hot(y, 5).float())


@pytest.mark.parametrize("case", CASES)
def test_same_seed_same_batch(case):
    x, y = _batch((8, 3, 8, 12))
    a = augment_batch(x, y, CASES[case], 5, _gen("cpu", 7))
    b = augment_batch(x, y, CASES[case], 5, _gen("cpu", 7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("key", PER_SAMPLE_KEYS)
def test_parameters_differ_per_sample(key):
    """Copies of one image in one batch come out differently: parameters are per sample."""
    x = torch.rand(1, 3, 10, 14).expand(32, -1, -1, -1).contiguous()
    out, _ = augment_batch(x, _zeros(32), AugmentConfig(**KEY_EXAMPLES[key]), 2)
    assert len({tuple(o.flatten().tolist()) for o in out}) > 1


def test_rotation_gives_every_sample_its_own_angle():
    x = torch.rand(1, 1, 12, 12).expand(16, -1, -1, -1)
    out, _ = augment_batch(x, _zeros(16), AugmentConfig(rotation=30), 2)
    diffs = (out[:, None] - out[None]).abs().flatten(2).amax(2)  # (16,16) pairwise
    assert (diffs + torch.eye(16) > 1e-4).all()


def test_identity_returns_input_and_one_hot():
    x, y = _batch((4, 3, 8, 8))
    for cfg in (AugmentConfig(), AugmentConfig(mixup=1.0, mix_prob=0.0)):
        assert cfg.is_identity
        out, targets = augment_batch(x, y, cfg, 5)
        assert out is x
        assert torch.equal(targets, torch.nn.functional.one_hot(y, 5).float())


# ---------------------------------------------------------------- geometry, by hand


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_flip_with_p1_is_torch_flip(shape):
    x, y = _batch(shape)
    assert torch.equal(augment_batch(x, y, AugmentConfig(hflip=1.0), 5)[0], x.flip(-1))
    assert torch.equal(augment_batch(x, y, AugmentConfig(vflip=1.0), 5)[0], x.flip(-2))


def _warp_one(x, angle=0.0, scale=1.0, shift=(0.0, 0.0), flip=(False, False)):
    return affine_warp(
        x, torch.tensor([angle]), torch.tensor([scale]), torch.tensor([shift]), torch.tensor([flip])
    )


def _dot(h=8, w=12, row=4, col=7):
    x = torch.zeros(1, 1, h, w)
    x[0, 0, row, col] = 1.0
    return x


@pytest.mark.parametrize(
    "kw, where",
    [
        (dict(shift=(2 / 12, 0.0)), (4, 9)),  # 2 px right
        (dict(shift=(0.0, -3 / 8)), (1, 7)),  # 3 px up
        (dict(flip=(True, False)), (4, 4)),  # col 7 -> 11 - 7
        (dict(flip=(False, True)), (3, 7)),  # row 4 -> 7 - 4
        # Centre of 8x12 is (3.5, 5.5): offset (dy, dx) = (0.5, 1.5) turns rigidly by 90
        # degrees to (1.5, -0.5) even though the image is not square.
        (dict(angle=90.0), (5, 5)),
        (dict(angle=-90.0), (2, 6)),
    ],
)
def test_affine_warp_moves_a_dot_by_hand(kw, where):
    out = _warp_one(_dot(), **kw)
    torch.testing.assert_close(out, _dot(row=where[0], col=where[1]), atol=1e-5, rtol=0)


def test_affine_warp_rotation_180_is_double_flip_and_zoom_spreads_around_centre():
    x = torch.rand(1, 2, 8, 12)
    torch.testing.assert_close(_warp_one(x, angle=180.0), x.flip(-1, -2), atol=1e-5, rtol=0)
    # Zoom 2 maps the dot's centre offset (0.5, 1.5) to (1, 3), i.e. pixel corner (4.5, 8.5).
    out = _warp_one(_dot(), scale=2.0)[0, 0]
    rows, cols = torch.meshgrid(torch.arange(8.0), torch.arange(12.0), indexing="ij")
    assert math.isclose(float((out * rows).sum() / out.sum()), 4.5, abs_tol=1e-5)
    assert math.isclose(float((out * cols).sum() / out.sum()), 8.5, abs_tol=1e-5)


def test_random_shift_moves_a_dot_within_range_and_keeps_its_mass():
    x = _dot(16, 20, 8, 10).expand(64, -1, -1, -1)
    out, _ = augment_batch(x, _zeros(64), AugmentConfig(shift=0.2), 2)
    rows, cols = torch.meshgrid(torch.arange(16.0), torch.arange(20.0), indexing="ij")
    mass = out.sum((1, 2, 3))
    torch.testing.assert_close(mass, torch.ones(64))  # bilinear translation conserves a dot
    dy = (out[:, 0] * rows).sum((1, 2)) / mass - 8
    dx = (out[:, 0] * cols).sum((1, 2)) / mass - 10
    assert dy.abs().max() <= 0.2 * 16 + 1e-4 and dx.abs().max() <= 0.2 * 20 + 1e-4
    assert dy.std() > 0.5 and dx.std() > 0.5


def test_crop_is_a_zero_filled_translation_of_each_image():
    pad = 2
    x = torch.rand(32, 3, 8, 12) + 0.01  # no zeros inside, so padding is recognisable
    out = random_crop(x, pad, _gen("cpu"))
    padded = torch.nn.functional.pad(x, (pad,) * 4)
    seen = set()
    for i in range(32):
        offsets = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if torch.equal(out[i], padded[i, :, dy : dy + 8, dx : dx + 12])
        ]
        assert len(offsets) == 1, f"sample {i} is no translated copy"
        seen.add(offsets[0])
    assert len(seen) > 5  # offsets vary per sample


def test_crop_via_augment_batch_keeps_content():
    x = torch.rand(16, 1, 10, 10) + 0.01
    out, _ = augment_batch(x, _zeros(16), AugmentConfig(crop_padding=3), 2)
    # Each output holds a (10 - |dy|) x (10 - |dx|) block of its input, the rest is zero.
    assert ((out == 0) | torch.isin(out, x)).all()
    for i in range(16):
        assert torch.isin(out[i][out[i] > 0], x[i]).all()


# ---------------------------------------------------------------- cutout and photometric


@pytest.mark.parametrize("size", [3, 4])
def test_cutout_zeroes_a_clipped_square(size):
    x = torch.ones(200, 1, 16, 16)
    out, _ = augment_batch(x, _zeros(200), AugmentConfig(cutout=size), 2)
    zeroed = (out == 0).sum((1, 2, 3))
    # Centre anywhere: a full square inside, at least a quarter-ish square at a corner.
    assert zeroed.max() == size**2 and zeroed.min() >= (size - size // 2) ** 2
    assert zeroed.float().median() == size**2
    hole = (out[:, 0] == 0).float()
    rows, cols = hole.amax(2).sum(1), hole.amax(1).sum(1)
    assert torch.equal(rows * cols, zeroed.float())  # the hole is one rectangle


def test_brightness_and_contrast_are_per_image_and_bounded():
    x = torch.full((64, 3, 4, 4), 0.5)
    x[:, :, :2] = 0.4  # mean 0.45, half the pixels 0.1 below the other half
    y = _zeros(64)
    out, _ = augment_batch(x, y, AugmentConfig(brightness=0.2), 2)
    delta = out - x
    assert (delta.flatten(1).std(1) < 1e-6).all() and delta.abs().max() <= 0.2 + 1e-6
    out, _ = augment_batch(x, y, AugmentConfig(contrast=0.5), 2)
    torch.testing.assert_close(out.mean((1, 2, 3)), x.mean((1, 2, 3)))  # mean kept
    spread = out[:, 0, 2, 0] - out[:, 0, 0, 0]
    assert spread.min() >= 0.05 - 1e-6 and spread.max() <= 0.15 + 1e-6 and spread.std() > 0.01


# ---------------------------------------------------------------- mixing


def _constant_images(b, h=8, w=12):
    """Image i is filled with (i + 1) / (b + 1) and has label i, so both sides are traceable."""
    values = (torch.arange(b, dtype=torch.float32) + 1) / (b + 1)
    return values.view(b, 1, 1, 1).expand(b, 3, h, w).contiguous(), torch.arange(b), values


def _partner(targets, i):
    """The other class in row i, or i itself when sample i was paired with itself."""
    support = targets[i].nonzero().flatten().tolist()
    assert i in support and len(support) <= 2
    return next((j for j in support if j != i), i)


def test_mixup_targets_match_pixel_weights():
    b = 16
    x, y, values = _constant_images(b)
    out, targets = augment_batch(x, y, AugmentConfig(mixup=0.4), b, _gen("cpu", 3))
    torch.testing.assert_close(targets.sum(1), torch.ones(b))
    for i in range(b):
        j, lam = _partner(targets, i), targets[i, i]
        expected = lam * values[i] + (1 - lam) * values[j]
        torch.testing.assert_close(out[i], expected.expand(3, 8, 12), atol=1e-6, rtol=0)


def test_cutmix_targets_are_the_pasted_area():
    b = 16
    x, y, values = _constant_images(b)
    out, targets = augment_batch(x, y, AugmentConfig(cutmix=1.0), b, _gen("cpu", 3))
    torch.testing.assert_close(targets.sum(1), torch.ones(b))
    for i in range(b):
        j = _partner(targets, i)
        own = (out[i, 0] == values[i]).float().mean()
        torch.testing.assert_close(targets[i, i], own)
        if j != i:
            assert ((out[i] == values[i]) | (out[i] == values[j])).all()
            torch.testing.assert_close(targets[i, j], 1 - own)


@pytest.mark.parametrize("alpha", [0.2, 1.0, 4.0])
def test_mixup_lambda_has_beta_moments(alpha):
    """Beta(a, a) has mean 1/2 and variance 1 / (4 (2a + 1))."""
    b = 20000
    x, y = torch.rand(b, 1, 1, 1), torch.arange(b) % 2
    _, targets = augment_batch(x, y, AugmentConfig(mixup=alpha), 2, _gen("cpu", 1))
    lam = targets[torch.arange(b), y]
    lam = lam[targets.count_nonzero(1) == 2]  # only pairs of different classes show lambda
    assert abs(lam.mean().item() - 0.5) < 0.01
    assert abs(lam.var().item() - 1 / (4 * (2 * alpha + 1))) < 0.01


def test_mix_prob_and_choice_are_per_batch():
    b, kinds = 16, []
    x, y, _ = _constant_images(b)
    cfg = AugmentConfig(cutmix=1.0, mixup=1.0, mix_prob=0.5)
    g = _gen("cpu", 5)
    for _ in range(60):
        out, targets = augment_batch(x, y, cfg, b, g)
        if torch.equal(out, x):
            kinds.append("none")
            assert torch.equal(targets, torch.eye(b))
        else:
            per_image_constant = (out.flatten(1).std(1) < 1e-6).all()
            kinds.append("mixup" if per_image_constant else "cutmix")
    assert 10 < kinds.count("none") < 50
    assert kinds.count("mixup") > 3 and kinds.count("cutmix") > 3


# ---------------------------------------------------------------- config and registry


def test_presets_round_trip_and_label():
    for name, cfg in AUGMENT_PRESETS.items():
        assert get_augment(name) == cfg and augment_label(cfg) == name
        assert get_augment(cfg.to_dict()) == cfg
        assert get_augment(json.dumps(cfg.to_dict())) == cfg
    assert augment_label(AugmentConfig(hflip=0.3)) == "custom"
    assert get_augment(None) == AugmentConfig() and augment_label(get_augment(None)) == "none"


def test_preset_flags():
    assert AUGMENT_PRESETS["none"].is_identity
    assert not any(c.is_identity for n, c in AUGMENT_PRESETS.items() if n != "none")
    assert [n for n, c in AUGMENT_PRESETS.items() if c.mixes_labels] == ["strong"]
    assert AUGMENT_PRESETS["mnist_basic"].hflip == 0 and AUGMENT_PRESETS["mnist_basic"].vflip == 0


@pytest.mark.parametrize("name", ["Keras-Basic", " CIFAR_STANDARD ", "cifar-standard", "STRONG"])
def test_preset_names_are_normalised(name):
    assert augment_label(get_augment(name)) == name.strip().lower().replace("-", "_")


def test_json_preset_with_override():
    cfg = get_augment('{"preset": "cifar-standard", "cutout": 8, "hflip": 0}')
    assert cfg == AugmentConfig(crop_padding=4, cutout=8)
    assert augment_label(cfg) == "custom"
    stripped = get_augment({"preset": "strong", "cutmix": 0, "cutout": 0})
    assert stripped == AUGMENT_PRESETS["cifar_standard"]
    assert get_augment({"crop_padding": 4.0}).crop_padding == 4  # JSON numbers may be floats
    assert isinstance(get_augment({"rotation": 15}).rotation, float)


def test_unknown_preset_lists_presets():
    with pytest.raises(AugmentError, match="unknown augmentation preset 'kerass'") as err:
        get_augment("kerass")
    assert all(name in str(err.value) for name in AUGMENT_PRESETS)
    with pytest.raises(AugmentError, match="unknown augmentation preset 'nope'; use one of: none, keras_basic"):
        get_augment({"preset": "nope"})


def test_unknown_key_lists_keys_and_suggests():
    with pytest.raises(AugmentError, match="unknown augmentation key 'rotate'") as err:
        get_augment({"rotate": 10})
    message = str(err.value)
    assert "did you mean 'rotation'" in message
    assert all(key in message for key in AUGMENT_RANGES)


def _out_of_range(key):
    allowed = AUGMENT_RANGES[key]
    values = [allowed.low - 1, float("nan"), "high", True]
    if allowed.high != math.inf:
        values.append(allowed.high if allowed.high_open else allowed.high + 0.5)
    if isinstance(AugmentConfig().to_dict()[key], int):
        values.append(2.5)
    return [(key, v) for v in values]


OUT_OF_RANGE = [kv for key in AUGMENT_RANGES for kv in _out_of_range(key)]


@pytest.mark.parametrize("key, value", OUT_OF_RANGE, ids=repr)
def test_out_of_range_names_key_and_range(key, value):
    with pytest.raises(AugmentError) as err:
        get_augment({key: value})
    assert key in str(err.value) and str(AUGMENT_RANGES[key]) in str(err.value)
    with pytest.raises(AugmentError):
        AugmentConfig(**{key: value})  # constructing directly is checked too


def test_specific_range_messages():
    with pytest.raises(AugmentError, match=r"rotation must be in \[0, 180\] \(degrees\), got 200"):
        get_augment({"rotation": 200})
    with pytest.raises(AugmentError, match=r"shift must be in \[0, 1\)"):
        get_augment('{"shift": 1}')
    with pytest.raises(AugmentError, match=r"hflip must be in \[0, 1\] \(probability\)"):
        get_augment({"hflip": 1.5})
    with pytest.raises(AugmentError, match=r"cutout must be >= 0 \(pixels\), got -1"):
        get_augment({"cutout": -1})


@pytest.mark.parametrize("spec", ["{not json", "[1, 2]", 3, {"preset": 5}])
def test_malformed_specs(spec):
    with pytest.raises(AugmentError):
        get_augment(spec)


def test_repr_shows_changed_keys_only():
    assert repr(AugmentConfig()) == "AugmentConfig()"
    assert repr(AUGMENT_PRESETS["cifar_standard"]) == "AugmentConfig(hflip=0.5, crop_padding=4)"


def test_bad_batch_shapes_are_refused():
    flip = AugmentConfig(hflip=1.0)
    with pytest.raises(ValueError, match="float"):
        augment_batch(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), _zeros(2), flip, 2)
    with pytest.raises(ValueError, match="labels"):
        augment_batch(torch.zeros(2, 3, 4, 4), _zeros(3), flip, 2)


# ---------------------------------------------------------------- preview


@pytest.mark.parametrize("name", AUGMENT_PRESETS)
@pytest.mark.parametrize("channels", [1, 3])
def test_preview_shape_and_determinism(name, channels):
    images = torch.randint(0, 256, (5, channels, 8, 12), dtype=torch.uint8)
    labels = torch.arange(5)
    cfg = AUGMENT_PRESETS[name]
    pixels, targets = preview(images, labels, cfg, num_classes=5, draws=3, seed=1)
    assert pixels.shape == (3, 5, channels, 8, 12) and pixels.dtype == torch.uint8
    assert targets.shape == (3, 5, 5)
    again = preview(images, labels, cfg, num_classes=5, draws=3, seed=1)
    assert torch.equal(pixels, again[0]) and torch.equal(targets, again[1])
    if cfg.is_identity:
        assert torch.equal(pixels, images.expand(3, -1, -1, -1, -1))
    else:
        assert not torch.equal(pixels[0], pixels[1])  # draws are independent
        assert not torch.equal(pixels, preview(images, labels, cfg, 5, draws=3, seed=2)[0])


def test_preview_of_flip_is_exact_on_uint8():
    images = torch.randint(0, 256, (2, 3, 4, 6), dtype=torch.uint8)
    pixels, _ = preview(images, _zeros(2), AugmentConfig(hflip=1.0), 2, draws=2)
    assert torch.equal(pixels, images.flip(-1).expand(2, -1, -1, -1, -1))


# ---------------------------------------------------------------- CUDA only


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("case", CASES)
def test_no_host_sync_on_cuda(case):
    x, y = _batch((16, 3, 8, 12), "cuda")
    g = _gen("cuda")
    augment_batch(x, y, CASES[case], 5, g)  # warm-up: lazy init may sync once
    torch.cuda.set_sync_debug_mode("error")
    try:
        augment_batch(x, y, CASES[case], 5, g)
    finally:
        torch.cuda.set_sync_debug_mode("default")
