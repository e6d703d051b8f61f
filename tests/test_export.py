"""The exported PyTorch file must rebuild exactly the lab's model: same parameter
count, output shape, state_dict keys and, with the lab's weights loaded, outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch

from lab.export import module_code, pytorch_code, spec_json
from lab.layers import ACTIVATIONS, LAYER_TYPES, SpecError, make_activation, normalize_layer
from lab.presets import PRESETS, get_preset
from lab.spec import build_model, summarize

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
}
CASES = {**{name: (get_preset(name), None, None) for name in PRESETS}, **ODD_SPECS}


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


@pytest.mark.parametrize("layer_type", sorted(LAYER_TYPES))
def test_every_layer_type_has_runnable_code(layer_type):
    shape = (4, 6, 6) if LAYER_TYPES[layer_type].needs_maps or layer_type == "flatten" else (12,)
    module = LAYER_TYPES[layer_type].build(shape, normalize_layer({"type": layer_type}))
    rebuilt = eval(module_code(module), {"nn": torch.nn, "OrderedDict": OrderedDict, "ResidualBlock": type(module)})
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
