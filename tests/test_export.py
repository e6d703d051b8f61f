"""The exported PyTorch file must rebuild exactly the lab's model: same parameter
count, output shape, state_dict keys and, with the lab's weights loaded, outputs.
A trained run's exports must stand on their own: its code file feeds the model what
the lab fed it and trains without the lab, its weights and config load back as
they were, and its ONNX model answers as the torch model does."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from lab.export.code import module_code, pytorch_code, spec_json
from lab.model.layers import ACTIVATIONS, LAYER_TYPES, SpecError, make_activation, normalize_layer
from lab.model.presets import PRESETS, get_preset
from lab.model.spec import build_model, summarize

ODD_SPECS = {
    # 'same' with an even kernel and stride 2 on an odd size: asymmetric ZeroPad2d
    "even_kernel_same_stride2": ({"layers": [
        {"type": "conv2d", "filters": 6, "kernel": 4, "stride": 2, "padding": "same"},
        {"type": "conv2d", "filters": 5, "kernel": 2, "stride": 1, "padding": 1, "activation": "none"},
    ]}, (3, 15, 15), 4),
    "residual_projection": ({"layers": [
        {"type": "conv2d", "filters": 8},
        {"type": "residual", "filters": 16, "stride": 2},
        {"type": "residual", "filters": 16, "stride": 1},
    ]}, (1, 12, 12), 3),
    "dense_after_gap": ({"layers": [
        {"type": "conv2d", "filters": 8, "padding": "valid", "activation": "elu"},
        {"type": "batchnorm"}, {"type": "global_avg_pool"},
        {"type": "dense", "units": 20, "activation": "gelu"}, {"type": "batchnorm"},
        {"type": "dropout", "rate": 0.3}, {"type": "dense", "units": 5},
    ]}, (3, 9, 9), 5),
    "every_activation": ({"layers": [
        {"type": "conv2d", "filters": 4}, *({"type": "activation", "function": a} for a in ACTIVATIONS),
        {"type": "avgpool2d", "size": 3, "stride": 2},
    ]}, (2, 10, 10), 2),
    "zoo_blocks": ({"layers": [  # every block and option the lecture's nets add, on an odd size
        {"type": "conv2d", "filters": 8, "kernel": 3, "activation": None, "bias": False}, {"type": "batchnorm"},
        {"type": "maxpool2d", "size": 3, "stride": 2, "padding": 1, "ceil": True},
        {"type": "inception", "ch1x1": 4, "ch3x3_reduce": 3, "ch3x3": 5, "wide_reduce": 2, "wide": 3,
         "pool_proj": 2, "wide_kernel": "3x3"},
        {"type": "inception", "ch1x1": 2, "ch3x3_reduce": 2, "ch3x3": 3, "wide_reduce": 2, "wide": 2, "pool_proj": 1},
        {"type": "dense_block", "layers": 3, "growth_rate": 4, "bn_size": 2},
        {"type": "transition", "compression": 0.5},
        {"type": "avgpool2d", "size": 2, "stride": 1, "padding": 1, "ceil": True},
        {"type": "adaptive_avg_pool", "size": 3},
    ]}, (3, 15, 15), 4),
}
SMALL = (3, 32, 32)  # torchvision's nets at CIFAR size, where resnet18, googlenet and densenet121 are under the limit
CASES = {**{name: (get_preset(name), None, None) for name in PRESETS if not PRESETS[name].reference},
         **{name: (get_preset(name), SMALL, 10) for name in ("resnet18", "googlenet", "densenet121")}, **ODD_SPECS}


def exec_net(code: str) -> torch.nn.Module:
    """Run the exported file in a fresh namespace (not as __main__) and build its Net."""
    namespace: dict = {"__name__": "exported"}
    exec(compile(code, "exported.py", "exec"), namespace)
    return namespace["Net"]()


@pytest.mark.parametrize("name", sorted(CASES))
def test_export_rebuilds_the_lab_model(name):
    spec, shape, classes = CASES[name]
    summary = summarize(spec, shape, classes)
    net = exec_net(pytorch_code(spec, shape, classes))
    assert sum(p.numel() for p in net.parameters()) == summary.total_params

    torch.manual_seed(0)
    lab_model = build_model(spec, shape, classes).eval()
    net.load_state_dict(lab_model.state_dict())  # strict: same keys and shapes
    net.eval()
    x = torch.randn(2, *summary.input_shape)
    with torch.inference_mode():
        out, expected = net(x), lab_model(x)
    assert out.shape == (2, summary.num_classes)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_exported_file_runs_as_a_script(tmp_path):
    spec = get_preset("mini_resnet")  # residual blocks: the file must carry their class
    path = tmp_path / "net.py"
    path.write_text(pytorch_code(spec, (3, 16, 16), 4))
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=60, check=True)
    total = summarize(spec, (3, 16, 16), 4).total_params
    assert f"parameters: {total:,}" in done.stdout
    assert "output shape: (2, 4)" in done.stdout


def test_exported_code_imports_only_torch():
    code = pytorch_code(get_preset("mini_resnet"))
    imports = {line.split()[1] for line in code.splitlines() if line.startswith(("import ", "from "))}
    assert imports == {"collections", "torch"}
    assert "lab" not in code.replace("CNN Lab", "").replace("lab's", "")


@pytest.mark.parametrize("layer_type", sorted(set(LAYER_TYPES) - {"backbone"}))  # refused: tests/test_backbone.py
def test_every_layer_type_has_runnable_code(layer_type):
    shape = (4, 6, 6) if LAYER_TYPES[layer_type].needs_maps or layer_type == "flatten" else (12,)
    module = LAYER_TYPES[layer_type].build(shape, normalize_layer({"type": layer_type}))
    names = {"nn": torch.nn, "OrderedDict": OrderedDict, type(module).__name__: type(module)}  # a block's own class
    rebuilt = eval(module_code(module), names)
    assert type(rebuilt) is type(module)
    assert rebuilt.state_dict().keys() == module.state_dict().keys()


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_has_runnable_code(activation):
    module = make_activation(activation)
    assert repr(eval(module_code(module), {"nn": torch.nn})) == repr(module)


def test_invalid_spec_is_refused_with_the_layer():
    with pytest.raises(SpecError, match="layer 1 \\(dense\\)"):
        pytorch_code({"layers": [{"type": "dense"}]}, (1, 8, 8), 3)


def test_spec_json_round_trips_with_the_dataset_geometry():
    spec = get_preset("lenet5")
    data = json.loads(spec_json(spec, (3, 32, 32), 6))
    assert data["input"] == [3, 32, 32] and data["num_classes"] == 6
    assert data["layers"] == spec["layers"]
    assert summarize(data).input_shape == (3, 32, 32)


# ---------------------------------------------------------------- a trained run


SMALL_SPEC = {"name": "small", "layers": [{"type": "conv2d", "filters": 4}, {"type": "global_avg_pool"},
                                          {"type": "dense"}]}


def run_config(shape=(1, 8, 8), classes=("a", "b", "c"), mean=(0.3,), std=(0.4,), **settings) -> dict:
    """A run's config.json as the engine writes it (settings + resolved facts), made up without training."""
    from lab.train.engine import TrainConfig

    resolved = {"input": list(shape), "classes": list(classes), "mean": list(mean), "std": list(std)}
    return {**TrainConfig.from_dict({"spec": SMALL_SPEC, **settings}).to_dict(), "resolved": resolved}


def exec_file(code: str, path) -> dict:
    """The exported file imported as a module (not __main__) from ``path``: its namespace."""
    import runpy

    path.write_text(code)
    return runpy.run_path(str(path), run_name="exported_run")


def test_run_code_rebuilds_the_trained_model_with_its_weights(gap_cam_run, tmp_path, capsys):
    from lab.export.files import export_file_name, export_run, export_stem
    from lab.insight.load import load_run_model
    from lab.runs.store import RunStore

    run = RunStore(gap_cam_run.runs_dir).get(gap_cam_run.run_id)
    (tmp_path / export_file_name(run, "weights", "best")).write_bytes(export_run(run, "weights", "best"))
    ns = exec_file(export_run(run, "code").decode(), tmp_path / export_file_name(run, "code"))
    assert capsys.readouterr().out == ""  # importing it trains nothing
    assert ns["find_weights"]().name == f"{export_stem(run)}_best.pt"
    net = ns["load_net"]().eval()
    lab_model, _, stats = load_run_model(gap_cam_run.run_dir, "best")
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in lab_model.parameters())
    x = torch.randn(4, *stats.shape)
    with torch.inference_mode():
        torch.testing.assert_close(net(x), lab_model(x), rtol=0, atol=0)

    # Its data pipeline feeds the model what the lab fed it: same images, same normalisation.
    from lab.data import load_dataset

    train_set, val_set = ns["load_data"]()
    ds = load_dataset("shapes")
    assert (len(train_set), len(val_set)) == (len(ds.train_y), len(ds.val_y))
    image, label = val_set[7]
    assert label == int(ds.val_y[7])
    torch.testing.assert_close(image, stats.normalize(ds.val_x[7:8])[0], rtol=0, atol=1e-5)


def png_folder(root, classes=("blue", "red"), per_class=10, size=12):
    """Class folders of small noisy PNGs, one colour per class: a dataset to train on in a second."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            pixels[..., 2 * c] += 180
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_run_code_continues_training_on_an_image_folder_without_the_lab(tmp_path):
    from lab.cli import run_training
    from lab.export.files import export_file_name, export_run
    from lab.runs.store import RunStore
    from lab.train.engine import TrainConfig

    folder = png_folder(tmp_path / "pics")
    config = TrainConfig.from_dict(dict(spec=SMALL_SPEC, dataset=f"folder:{folder}", epochs=1, batch_size=8,
                                        device="cpu", insight=False, optimizer="sgd", lr=0.05))
    run_id, result = run_training(config, tmp_path / "runs", tmp_path / "data")
    assert result.status == "finished", result.message
    run = RunStore(tmp_path / "runs").get(run_id)
    out = tmp_path / "out"
    out.mkdir()
    script = out / export_file_name(run, "code")
    script.write_bytes(export_run(run, "code"))
    (out / export_file_name(run, "weights", "best")).write_bytes(export_run(run, "weights", "best"))

    # Run where the lab cannot be imported: the model, the folder loader and the loop are all in the file.
    done = subprocess.run([sys.executable, str(script), "--data", str(folder), "--epochs", "2", "--save", "more.pt"],
                          cwd=out, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"starting from {out / export_file_name(run, 'weights', 'best')}" in done.stdout
    assert "epoch 1/2" in done.stdout and "epoch 2/2" in done.stdout
    ns = exec_file(script.read_text(), script)
    train_set, val_set = ns["load_data"](str(folder))
    assert (len(train_set), len(val_set)) == (16, 4)  # 20% held out
    assert val_set[0][0].shape == (3, 12, 12)
    continued = torch.load(out / "more.pt", weights_only=True)
    ns["Net"]().load_state_dict(continued)  # strict: the saved file is the model's own state_dict


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "rmsprop"])
def test_exported_optimizer_is_the_labs(optimizer, tmp_path):
    from lab.export.run_script import run_code
    from lab.train.engine import OPTIMIZERS, TrainConfig, make_optimizer

    assert optimizer in OPTIMIZERS
    settings = dict(optimizer=optimizer, lr=0.03, weight_decay=0.01, momentum=0.8)
    ns = exec_file(run_code(run_config(**settings)), tmp_path / "m.py")
    exported = ns["make_optimizer"](ns["Net"]())
    lab_opt = make_optimizer(TrainConfig.from_dict({"spec": SMALL_SPEC, **settings}), ns["Net"]().parameters())
    assert type(exported) is type(lab_opt)
    keys = ("lr", "weight_decay", "momentum", "nesterov")
    assert {k: exported.defaults.get(k) for k in keys} == {k: lab_opt.defaults.get(k) for k in keys}


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10"])
def test_torchvision_datasets_load_through_torchvision(name, tmp_path, monkeypatch):
    """No download: the torchvision class is replaced by one that records how it is called."""
    import torchvision
    from PIL import Image

    from lab.export.run_script import TORCHVISION_DATASETS, run_code

    shape = (3, 32, 32) if name == "cifar10" else (1, 28, 28)
    mean, std = [0.5] * shape[0], [0.25] * shape[0]
    pixels = np.random.default_rng(0).integers(0, 256, (shape[1], shape[2], shape[0]), dtype=np.uint8)
    calls = []

    class Recorded:
        def __init__(self, root, train, download, transform):
            calls.append((root, train, download))
            self.transform = transform

        def __getitem__(self, i):
            return self.transform(Image.fromarray(pixels.squeeze(-1) if shape[0] == 1 else pixels)), 3

    monkeypatch.setattr(torchvision.datasets, TORCHVISION_DATASETS[name], Recorded)
    config = run_config(shape, [str(i) for i in range(10)], mean, std, dataset=name, augment={"hflip": 1.0})
    ns = exec_file(run_code(config), tmp_path / "m.py")
    train_set, val_set = ns["load_data"]("somewhere")
    assert calls == [("somewhere", True, True), ("somewhere", False, True)]
    expected = (torch.from_numpy(pixels).permute(2, 0, 1).float() / 255 - 0.5) / 0.25
    torch.testing.assert_close(val_set[0][0], expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(train_set[0][0], expected.flip(-1), rtol=0, atol=1e-5)  # hflip with p=1


def test_augmentations_without_a_torchvision_twin_are_named(tmp_path):
    from lab.export.run_script import run_code

    config = run_config(dataset="digits", augment={"crop_padding": 2, "rotation": 10, "cutout": 3, "mixup": 0.2})
    code = run_code(config)
    assert "Left out: the run's cutout, mixup" in code
    ns = exec_file(code, tmp_path / "m.py")
    image = torch.randint(0, 256, (1, 8, 8), dtype=torch.uint8)
    assert ns["transforms"](train=True)(image).shape == (1, 8, 8)


def test_weights_are_a_plain_state_dict(gap_cam_run):
    import io

    from lab.export.files import export_run
    from lab.runs.store import RunStore

    run = RunStore(gap_cam_run.runs_dir).get(gap_cam_run.run_id)
    for which in ("best", "last"):
        state = torch.load(io.BytesIO(export_run(run, "weights", which)), weights_only=True)
        saved = torch.load(gap_cam_run.run_dir / f"{which}.pt", weights_only=True)["model"]
        assert state.keys() == saved.keys()
        assert all(torch.equal(state[k], saved[k]) for k in saved)


def test_onnx_gives_the_torch_models_outputs(gap_cam_run):
    import onnx
    import onnxruntime as ort

    from lab.data import load_dataset
    from lab.export.files import export_run
    from lab.insight.load import load_run_model
    from lab.runs.store import RunStore

    run = RunStore(gap_cam_run.runs_dir).get(gap_cam_run.run_id)
    data = export_run(run, "onnx", "best")
    meta = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
    model, _, stats = load_run_model(gap_cam_run.run_dir, "best")
    assert json.loads(meta["classes"]) == stats.classes and json.loads(meta["mean"]) == stats.mean
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    ds = load_dataset("shapes")
    for x in (torch.randn(1, *stats.shape), stats.normalize(ds.val_x[:16])):  # the batch size is free
        (logits,) = session.run(["logits"], {"image": x.numpy()})
        with torch.inference_mode():
            expected = model(x).numpy()
        assert logits.shape == expected.shape
        np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4)
        assert (logits.argmax(1) == expected.argmax(1)).all()


def test_config_json_recreates_the_run_config(gap_cam_run):
    from lab.export.files import export_run
    from lab.runs.store import RunStore
    from lab.train.engine import TrainConfig

    run = RunStore(gap_cam_run.runs_dir).get(gap_cam_run.run_id)
    config = TrainConfig.from_dict(json.loads(export_run(run, "config")))
    config.validate()
    assert config.to_dict() == {k: v for k, v in run.config.items() if k != "resolved"}


@pytest.mark.parametrize("name, stem", [("gap_cam on shapes", "gap_cam_on_shapes"),
                                        ("20250101-120000-abc", "run_20250101_120000_abc"),
                                        ("Été: CNN!", "t_cnn"), ("???", "model")])
def test_export_stem_is_a_module_name(name, stem, tmp_path):
    from lab.export.files import export_file_name, export_stem
    from lab.runs.view import RunInfo

    run = RunInfo("20250101-120000-abc", tmp_path, {}, {}, meta={"name": name})
    assert export_stem(run) == stem and stem.isidentifier()
    assert export_file_name(run, "weights", "last") == f"{stem}_last.pt"
    assert export_file_name(run, "onnx", "3") == f"{stem}_epoch3.onnx"


def test_an_unknown_export_is_refused_with_the_list():
    from lab.export.files import ExportError, get_export

    with pytest.raises(ExportError, match="use one of: code, weights, onnx, config, report"):
        get_export("zip")


# ---------------------------------------------------------------- hostile names stay data

HOSTILE_NAMES = [
    'm""";__import__("os").system("touch PWNED");"""',
    "m''';__import__('os').system('touch PWNED');'''",
    "ends in a backslash \\",
    "a \\N{BULLET} and a bare \\N and \\x and \\u12",
    'line\nbreak """\r\x00 nul \u2028 separator',
    "\"'\"'\"'\"",
    "한국어 이름 😀",
]


def _top_level(code: str) -> list[str]:
    """The file's top-level statements, each as its kind and name: an injected call shows up as an extra one."""
    import ast

    return [f"{type(node).__name__}:{getattr(node, 'name', '')}" for node in ast.parse(code).body]


def _docstrings(code: str) -> list[str]:
    import ast

    tree = ast.parse(code)
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef)))]
    return [doc for doc in (ast.get_docstring(n, clean=False) for n in nodes) if doc]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_spec_name_stays_a_string_in_the_model_code(name):
    """The Build page's "show code": the spec name goes into two docstrings, read back exactly."""
    benign = pytorch_code({**SMALL_SPEC, "name": "small"}, (1, 8, 8), 3)
    code = pytorch_code({**SMALL_SPEC, "name": name}, (1, 8, 8), 3)
    assert _top_level(code) == _top_level(benign)
    docs = _docstrings(code)
    assert docs[0].startswith(f"{name}: a CNN exported from CNN Lab.")
    assert any(doc.startswith(f"{name}: ") and "layers, run in order" in doc for doc in docs[1:])


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_run_class_and_folder_names_stay_data_in_the_run_code(name, tmp_path):
    """``export --what code``: spec, class and folder names of a run become literals; the file imports, and
    CLASSES and DATA_ROOT hold exactly the names, so nothing ran and nothing was lost."""
    from lab.export.run_script import run_code

    def config_for(text: str) -> dict:
        config = run_config(classes=(text, "b", "c"), dataset=f"folder:/srv/uploads/{text}")
        config["spec"] = {**SMALL_SPEC, "name": text}
        return config

    code = run_code(config_for(name), stem="hostile")
    assert _top_level(code) == _top_level(run_code(config_for("plain"), stem="hostile"))
    ns = exec_file(code, tmp_path / "hostile.py")
    assert ns["CLASSES"] == [name, "b", "c"]
    assert ns["DATA_ROOT"] == name.rsplit("/", 1)[-1]
    assert _docstrings(code)[0].startswith(f"{name} trained on the image folder")
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()


def test_an_unknown_dataset_name_is_refused_not_written():
    from lab.data.dataset import DatasetError
    from lab.export.run_script import run_code

    with pytest.raises(DatasetError, match="unknown dataset"):
        run_code(run_config(dataset='digits");__import__("os").system("x")#'), stem="m")


@pytest.mark.parametrize("setting, value", [("epochs", "1\nimport os"), ("lr", "0.1; import os"),
                                            ("optimizer", "adam)\nimport os#"), ("momentum", "0.9)#")])
def test_a_config_edited_by_hand_cannot_put_code_in_the_settings(setting, value):
    from lab.export.code import ExportError
    from lab.export.run_script import run_code

    config = run_config()
    config[setting] = value
    with pytest.raises(ExportError, match=setting):
        run_code(config)
