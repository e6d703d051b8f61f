"""Weight initialisation, Adagrad, SGD momentum and Nesterov as settings, and "repeat N times" on Train.

Each initialisation draws the statistics it is named for, one seed gives one set of weights, a layer's own
``init`` wins over the run's, a pretrained backbone and weights loaded with init_from are never re-drawn;
zeros leave a ReLU net at chance while Kaiming's learns (the lesson the setting is there for). The settings
reach config.json, the CLI and the exported code (which draws the lab's weights for the same seed and builds
the lab's optimizer), and the Train page shows each one where it applies."""

from __future__ import annotations

import ast
import json
import math
import runpy
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest
from support.apptest import WAIT_S, ok, switch_page, tiny_draft

from lab.cli import main, run_training
from lab.export.code import ExportError, pytorch_code
from lab.export.run_script import run_code
from lab.model.init import INITS, init_model, layer_inits
from lab.model.spec import SpecError, build_model
from lab.runs.compare import group_key
from lab.runs.store import RunStore
from lab.train.engine import OPTIMIZERS, ConfigError, TrainConfig, Trainer, make_optimizer
from lab.train.ranges import TYPICAL_LR, setting_ranges
from lab.ui.state import job_manager

APP = str(Path(__file__).resolve().parents[1] / "app.py")
# ReLU all the way, no batchnorm: with zero weights every unit is the same and gets no gradient.
RELU_NET = {"name": "relu_net", "layers": [
    {"type": "conv2d", "filters": 16}, {"type": "maxpool2d"}, {"type": "conv2d", "filters": 32},
    {"type": "global_avg_pool"}, {"type": "dense", "units": 32}, {"type": "dense", "units": 10},
]}
WIDE = {"name": "wide", "layers": [{"type": "conv2d", "filters": 64, "kernel": 5}, {"type": "residual", "filters": 64},
                                   {"type": "flatten"}, {"type": "dense", "units": 256}]}


def config(**overrides) -> TrainConfig:
    values = dict(spec=RELU_NET, dataset="digits", epochs=2, batch_size=64, lr=3e-3, device="cpu", insight=False)
    return TrainConfig.from_dict({**values, **overrides})


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every conv and linear weight of a model, by module name."""
    return {name: m.weight.detach().clone() for name, m in model.named_modules()
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))}


def biases(model: torch.nn.Module) -> list[torch.Tensor]:
    return [m.bias for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.bias is not None]


def fans(weight: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a conv or linear weight."""
    field = weight[0, 0].numel() if weight.dim() > 2 else 1
    return weight.shape[1] * field, weight.shape[0] * field


# ---------------------------------------------------------------- the initialisations


@pytest.mark.parametrize("init", sorted(INITS))
def test_each_initialisation_draws_its_statistics_in_every_conv_and_dense_layer(init):
    trainer = Trainer(config(spec=WIDE, dataset="digits", init=init))  # the run's model, built and initialised
    drawn = weights(trainer.model)
    assert any(".residual_1." in name for name in drawn)  # convolutions inside a block count too
    for name, w in drawn.items():
        fan_in, fan_out = fans(w)
        expected_std = {"kaiming": math.sqrt(2 / fan_in), "xavier": math.sqrt(2 / (fan_in + fan_out)), "normal": 0.01,
                        "zeros": 0.0, "default": 1 / math.sqrt(3 * fan_in)}[init]  # default: uniform ±1/√fan_in
        assert w.std().item() == pytest.approx(expected_std, rel=0.15, abs=1e-7), name
        assert abs(w.mean().item()) < 0.1 * expected_std + 1e-7, name
    if init == "xavier":
        assert all(w.abs().max() <= math.sqrt(6 / sum(fans(w))) for w in drawn.values())  # Glorot uniform bounds
    if init != "default":  # PyTorch's own draws small biases; the others start them at zero
        assert all(not b.any() for b in biases(trainer.model))
    else:
        assert any(b.any() for b in biases(trainer.model))


def test_the_same_seed_draws_the_same_weights_and_another_seed_others():
    first, again = (weights(Trainer(config(init="kaiming", seed=3)).model) for _ in range(2))
    other = weights(Trainer(config(init="kaiming", seed=4)).model)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not any(torch.equal(first[k], other[k]) for k in first)


def test_a_layers_own_init_wins_over_the_runs():
    layers = [dict(RELU_NET["layers"][0], init="zeros"), *RELU_NET["layers"][1:4],
              dict(RELU_NET["layers"][4], init="default"), RELU_NET["layers"][5]]
    spec = {"name": "mixed", "layers": layers}
    torch.manual_seed(0)
    plain = weights(build_model(spec, (1, 8, 8), 10))
    torch.manual_seed(0)
    model = build_model(spec, (1, 8, 8), 10)
    assert init_model(model, "xavier") == {"conv2d_1": "zeros", "conv2d_2": "xavier", "output": "xavier"}
    drawn = weights(model)
    assert not drawn["layers.conv2d_1.conv"].any()  # its own: zeros
    assert torch.equal(drawn["layers.dense_1.linear"], plain["layers.dense_1.linear"])  # its own: PyTorch's
    assert drawn["layers.conv2d_2.conv"].abs().max() <= math.sqrt(6 / sum(fans(drawn["layers.conv2d_2.conv"])))
    assert not torch.equal(drawn["layers.conv2d_2.conv"], plain["layers.conv2d_2.conv"])  # the run's: Xavier


def test_a_layers_init_is_checked_with_the_names_to_use():
    with pytest.raises(SpecError, match="init must be one of '', default, kaiming, xavier, normal, zeros"):
        build_model({"layers": [{"type": "conv2d", "init": "he"}]}, (1, 8, 8), 2)


def test_a_pretrained_backbone_keeps_its_weights():
    spec = {"layers": [{"type": "backbone", "model": "mobilenet_v3_small", "weights": "none", "size": 32},
                       {"type": "global_avg_pool"}, {"type": "dense", "units": 5}]}
    torch.manual_seed(0)
    model = build_model(spec, (3, 32, 32), 5)
    before = weights(model)
    assert layer_inits(model, "zeros") == {"output": "zeros"}
    init_model(model, "zeros")
    after = weights(model)
    assert all(torch.equal(before[k], after[k]) for k in before if ".backbone_1." in k)
    assert not after["layers.output.linear"].any()


def test_weights_loaded_with_init_from_win_over_the_runs_init(tmp_path):
    source_id, result = run_training(config(epochs=1, train_limit=256), tmp_path / "runs", None)
    assert result.status == "finished", result.message
    source = RunStore(tmp_path / "runs").source_weights(source_id)
    trainer = Trainer(config(init="zeros", init_from=source_id), source=source)
    state = trainer.model.state_dict()
    assert trainer.transfer.loaded == ["conv2d_1", "conv2d_2", "dense_1", "output"]
    assert all(torch.equal(state[key], value) for key, value in source.state.items())


def test_zeros_leave_a_relu_net_at_chance_while_kaiming_learns():
    """Why weights start random: zero weights make every unit of a layer the same, with no gradient to tell
    them apart, so only the output's biases move and the net guesses one class (digits: 10 classes)."""
    zeros = Trainer(config(init="zeros")).run()
    kaiming = Trainer(config(init="kaiming")).run()
    assert zeros.status == kaiming.status == "finished"
    assert max(m["val_acc"] for m in zeros.history) < 0.15
    assert [round(m["train_loss"], 2) for m in zeros.history] == [2.30, 2.30]  # ln 10: no better than a guess
    assert kaiming.best["val_acc"] > 0.45 and kaiming.history[-1]["train_loss"] < 2.0


# ---------------------------------------------------------------- optimizers


def test_adagrad_trains():
    result = Trainer(config(optimizer="adagrad", lr=TYPICAL_LR["adagrad"] * 3)).run()
    assert result.status == "finished", result.message
    assert result.history[1]["train_loss"] < result.history[0]["train_loss"] < math.log(10)
    assert result.best["val_acc"] > 0.25  # chance is 0.1
    optimizer = make_optimizer(config(optimizer="adagrad", lr=0.02), [torch.nn.Parameter(torch.zeros(2))])
    assert type(optimizer) is torch.optim.Adagrad and optimizer.defaults["lr"] == 0.02


def test_every_optimizer_has_a_typical_lr_inside_the_lr_range():
    assert set(TYPICAL_LR) == set(OPTIMIZERS)
    assert all(not setting_ranges()["lr"].problem("lr", lr) for lr in TYPICAL_LR.values())


def test_sgd_takes_its_momentum_and_nesterov():
    params = [torch.nn.Parameter(torch.zeros(2))]
    plain = make_optimizer(config(optimizer="sgd", momentum=0.5, nesterov=False), params)
    assert (plain.defaults["momentum"], plain.defaults["nesterov"]) == (0.5, False)
    assert make_optimizer(config(optimizer="sgd", momentum=0.0, nesterov=False), params).defaults["momentum"] == 0


@pytest.mark.parametrize("settings, message", [
    (dict(optimizer="sgd", momentum=0.0, nesterov=True), "nesterov needs momentum above 0.*set momentum, e.g. 0.9, "
                                                         "or turn nesterov off"),
    (dict(init="he"), "unknown init 'he'; use one of: default, kaiming, xavier, normal, zeros"),
    (dict(init=["zeros"]), "unknown init"),
    (dict(nesterov="yes"), "nesterov must be true or false"),
    (dict(optimizer="adagrad", momentum=1.5), "momentum must be a number in"),
])
def test_settings_a_run_cannot_use_are_refused_with_what_to_change(settings, message):
    with pytest.raises(ConfigError, match=message):
        config(**settings).validate()


def test_nesterov_is_only_asked_of_sgd():
    config(optimizer="adam", momentum=0.0, nesterov=True).validate()  # adam reads neither


# ---------------------------------------------------------------- CLI and config.json


def test_the_cli_records_init_momentum_and_nesterov_in_config_json(tmp_path, capsys):
    spec = tmp_path / "relu_net.json"
    spec.write_text(json.dumps(RELU_NET))
    code = main(["--runs-dir", str(tmp_path / "runs"), "train", "--spec", str(spec), "--dataset", "digits",
                 "--epochs", "1", "--train-limit", "256", "--device", "cpu", "--no-insight", "--optimizer", "sgd",
                 "--lr", "0.05", "--momentum", "0.5", "--no-nesterov", "--init", "kaiming"])
    assert code == 0, capsys.readouterr().err
    (run,) = RunStore(tmp_path / "runs").list()
    assert {k: run.config[k] for k in ("optimizer", "momentum", "nesterov", "init")} == \
           {"optimizer": "sgd", "momentum": 0.5, "nesterov": False, "init": "kaiming"}


@pytest.mark.parametrize("flags, message", [
    (["--optimizer", "sgd", "--momentum", "0"], "nesterov needs momentum above 0"),
    (["--init", "glorious"], "unknown init 'glorious'"),
])
def test_the_cli_refuses_what_a_run_cannot_use_in_one_line(flags, message, tmp_path, capsys):
    code = main(["--runs-dir", str(tmp_path / "runs"), "train", "--dataset", "digits", *flags])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


# ---------------------------------------------------------------- exported code


def exec_code(code: str, path: Path) -> dict:
    ast.parse(code)
    path.write_text(code)
    return runpy.run_path(str(path), run_name="exported")


def test_exported_code_initialises_as_the_lab_and_runs_the_labs_weights(tmp_path):
    spec = {"name": "inits", "layers": [dict(WIDE["layers"][0], init="kaiming"), *WIDE["layers"][1:3],
                                        dict(WIDE["layers"][3], init="zeros")]}
    ns = exec_code(pytorch_code(spec, (1, 8, 8), 3), tmp_path / "net.py")
    assert ns["INIT"] == {"conv2d_1": "kaiming", "output": "zeros"}  # the others keep PyTorch's
    torch.manual_seed(5)
    net = ns["Net"]()
    torch.manual_seed(5)
    lab_model = build_model(spec, (1, 8, 8), 3)
    init_model(lab_model, "default")
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), lab_model.state_dict().values()))
    trained = {k: v + torch.rand_like(v) if v.is_floating_point() else v for k, v in lab_model.state_dict().items()}
    lab_model.load_state_dict(trained)
    net.load_state_dict(trained)
    x = torch.randn(4, 1, 8, 8)
    with torch.inference_mode():
        torch.testing.assert_close(net.eval()(x), lab_model.eval()(x), rtol=0, atol=0)


def run_config(trainer: Trainer) -> dict:
    from lab.train.engine import run_record

    return run_record(trainer.config, trainer)


@pytest.mark.parametrize("settings", [dict(init="xavier", optimizer="sgd", momentum=0.7, nesterov=False),
                                      dict(init="kaiming", optimizer="sgd", momentum=0.9, nesterov=True),
                                      dict(init="normal", optimizer="adagrad", lr=0.02)])
def test_a_runs_exported_script_starts_from_the_runs_weights_with_its_optimizer(settings, tmp_path):
    trainer = Trainer(config(seed=7, **settings))
    ns = exec_code(run_code(run_config(trainer)), tmp_path / "run.py")
    torch.manual_seed(7)  # the run's seed: the file's Net() draws what the run started from
    net = ns["Net"]()
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), trainer.model.state_dict().values()))
    exported = ns["make_optimizer"](net)
    lab_optimizer = make_optimizer(trainer.config, trainer.model.parameters())
    assert type(exported) is type(lab_optimizer)
    keys = ("lr", "weight_decay", "momentum", "nesterov")
    assert {k: exported.defaults.get(k) for k in keys} == {k: lab_optimizer.defaults.get(k) for k in keys}


def test_a_default_run_exports_without_an_init_table(tmp_path):
    code = run_code(run_config(Trainer(config())))
    assert "INIT" not in code and "init_layer" not in code


@pytest.mark.parametrize("value", ['kaiming"}\nimport os#', None, ["zeros"]])
def test_an_init_edited_by_hand_into_config_json_is_refused_not_written(value):
    record = run_config(Trainer(config()))
    record["init"] = value
    with pytest.raises(ExportError, match="unknown init"):
        run_code(record)


# ---------------------------------------------------------------- the Train page


@pytest.fixture
def held(isolated_lab):
    """The job manager with its queue paused: what Start queues stays queued (nothing trains)."""
    job_manager().pause()
    return job_manager()


def train_page(draft: dict) -> AppTest:
    """The whole app on the Train page (Start with repeats opens Compare, which needs the navigation)."""
    at = AppTest.from_file(APP, default_timeout=WAIT_S)
    at.session_state["draft"] = draft
    return switch_page(ok(at.run()), "app_pages/train.py")


def captions(at: AppTest) -> list[str]:
    return [caption.value for caption in at.caption]


@pytest.mark.usefixtures("isolated_lab")
def test_momentum_and_nesterov_show_for_the_optimizers_that_use_them():
    at = train_page(tiny_draft())
    keys = {w.key for w in [*at.number_input, *at.toggle]}
    assert "train.momentum" not in keys and "train.nesterov" not in keys  # adam reads neither
    assert any(c.startswith("Adam: a step per weight") and "Typical lr 0.001" in c for c in captions(at))
    at.selectbox(key="train.optimizer").select("sgd").run()
    ok(at)
    assert at.number_input(key="train.momentum").value == 0.9 and at.toggle(key="train.nesterov").value
    at.selectbox(key="train.optimizer").select("rmsprop").run()
    assert "train.nesterov" not in {w.key for w in at.toggle} and "train.momentum" in {w.key for w in at.number_input}
    at.selectbox(key="train.optimizer").select("adagrad").run()
    assert any("Typical lr 0.01." in c for c in captions(ok(at)))


@pytest.mark.usefixtures("isolated_lab")
def test_nesterov_without_momentum_keeps_start_disabled_with_the_reason():
    at = train_page(tiny_draft(optimizer="sgd"))
    at.number_input(key="train.momentum").set_value(0.0).run()
    ok(at)
    assert at.session_state["draft"]["train"]["momentum"] == 0.0
    assert "nesterov needs momentum above 0" in at.error[0].value
    assert next(b for b in at.button if b.label == "Start training").disabled
    at.toggle(key="train.nesterov").set_value(False).run()
    assert not ok(at).error


@pytest.mark.usefixtures("isolated_lab")
def test_the_init_select_goes_into_the_draft_with_its_explanation():
    at = train_page(tiny_draft())
    assert at.selectbox(key="train.init").options == list(INITS)
    at.selectbox(key="train.init").select("zeros").run()
    ok(at)
    assert at.session_state["draft"]["train"]["init"] == "zeros"
    assert any(c.startswith("Every weight zero") for c in captions(at))


def test_repeat_n_times_queues_n_seeds_as_one_configuration_and_opens_compare(isolated_lab, held):
    at = train_page(tiny_draft(seed=4))
    at.number_input(key="train.repeats").set_value(3).run()
    next(b for b in at.button if b.label == "Start training").click().run()
    ok(at)
    runs = sorted(isolated_lab.list(), key=lambda run: run.config["seed"])
    assert len(held.queued_ids()) == 3 and [run.config["seed"] for run in runs] == [4, 5, 6]
    assert [run.name for run in runs] == ["tiny-digits-1-s4", "tiny-digits-1-s5", "tiny-digits-1-s6"]
    assert len({group_key(run.config["sweep"]) for run in runs}) == 1 and runs[0].config["sweep"]["repeats"] == 3
    assert at.title[0].value == "Compare"


@pytest.mark.usefixtures("isolated_lab")
def test_the_build_page_offers_a_layers_own_init():
    draft = tiny_draft()
    at = AppTest.from_file(APP, default_timeout=WAIT_S)
    at.session_state["draft"] = draft
    at = switch_page(ok(at.run()), "app_pages/build.py")
    (box,) = [w for w in at.selectbox if w.key and w.key.endswith(".0.init")]  # the first layer: conv2d
    assert box.value == "" and box.options[:2] == ["the run's (Train page)", "default"]
    box.select("kaiming").run()
    assert ok(at).session_state["draft"]["spec"]["layers"][0]["init"] == "kaiming"
