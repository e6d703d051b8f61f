"""Starting a run from another run's weights and freezing layers (lab.train.finetune, ``--init-from``, ``--freeze``).

The galaxy write-up's next step, headless: a small CNN trained on one data set, then
fine-tuned on another with a new head, its body frozen.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from lab.cli import main
from lab.jobs import JobManager
from lab.runs.store import RunStore
from lab.train.engine import ConfigError, TrainConfig, Trainer, run_record
from lab.train.finetune import SourceWeights, match_weights, run_notes

# A net whose body does not depend on the image size (global pooling before the head), with batchnorm.
BODY = {"name": "small-gap", "layers": [
    {"type": "conv2d", "filters": 8, "kernel": 3, "activation": "relu"},
    {"type": "batchnorm"},
    {"type": "maxpool2d", "size": 2},
    {"type": "conv2d", "filters": 16, "kernel": 3, "activation": "relu"},
    {"type": "global_avg_pool"},
    {"type": "dense", "units": 10}]}
BODY_LAYERS = ["conv2d_1", "batchnorm_1", "conv2d_2"]


def _two_class_folder(root: Path, per_class: int = 20, side: int = 24) -> Path:
    """Another data set: bright and dark noisy RGB squares, two classes."""
    generator = torch.Generator().manual_seed(1)
    for label, (name, level) in enumerate((("bright", 190), ("dark", 60))):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = (level + 40 * torch.randn(side, side, 3, generator=generator)).clamp(0, 255).to(torch.uint8)
            Image.fromarray(pixels.numpy()).save(root / name / f"{i}.png")
    return root


def _train(capsys, runs: Path, *args: str) -> tuple[str, str]:
    """``python -m lab train ...`` in this process: (the run's id, what it printed)."""
    code = main(["train", "--runs-dir", str(runs), "--data-dir", str(runs / "data"), "--epochs", "1",
                 "--device", "cpu", "--no-insight", *args])
    out = capsys.readouterr().out
    assert code == 0, out
    return out.strip().splitlines()[-1].split()[1], out


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "small_gap.json"
    path.write_text(json.dumps(BODY))
    return path


def test_pretrain_on_one_data_set_then_fine_tune_a_new_head_on_another(tmp_path, capsys, spec_file):
    runs = tmp_path / "runs"
    source, _ = _train(capsys, runs, "--spec", str(spec_file), "--dataset", "shapes", "--train-limit", "256")
    folder = _two_class_folder(tmp_path / "photos")
    run_id, out = _train(capsys, runs, "--spec", str(spec_file), "--dataset", f"folder:{folder}",
                         "--init-from", source[:17], "--freeze", "all_but_output")  # an id prefix will do

    store = RunStore(runs)
    before, after = store.load_checkpoint(source)["model"], store.load_checkpoint(run_id, "last")["model"]
    frozen_keys = [k for k in before if k.split(".")[1] in BODY_LAYERS]
    assert frozen_keys and all(torch.equal(before[k], after[k]) for k in frozen_keys)  # batchnorm stats too
    assert after["layers.output.linear.weight"].shape == (2, 16)  # the new head
    config = store.get(run_id).config
    assert (config["init_from"], config["freeze"]) == (source, ["all_but_output"])  # the full id, to redo it
    transfer = config["resolved"]["transfer"]
    assert (transfer["loaded"], transfer["fresh"]) == (BODY_LAYERS, {"output": "classes"})
    assert config["resolved"]["frozen"] == BODY_LAYERS
    assert f"Started from run {source}" in out and "Frozen (weights and batchnorm statistics kept)" in out
    assert "Starting fresh: output (other classes)" in out


def test_a_frozen_layer_keeps_its_batchnorm_in_eval_mode_while_the_rest_trains():
    trainer = Trainer(TrainConfig(spec=BODY, dataset="digits", device="cpu", freeze=["batchnorm_1"]))
    trainer.model.eval()
    trainer.train_mode()
    batchnorm = trainer.model.get_submodule("layers.batchnorm_1")
    assert not batchnorm.training and trainer.model.get_submodule("layers.conv2d_1").training
    assert not any(p.requires_grad for p in batchnorm.parameters())
    record = run_record(trainer.config, trainer)["resolved"]
    assert record["trainable_params"] == record["params"] - 16  # the batchnorm's 8 scales and 8 shifts


def _source(model: torch.nn.Module, classes: list[str]) -> SourceWeights:
    return SourceWeights("r1", 3, {k: v.clone() for k, v in model.state_dict().items()}, classes)


def test_weights_match_by_name_and_shape_a_module_at_a_time():
    digits = Trainer(TrainConfig(spec=BODY, dataset="digits", device="cpu"))
    classes = digits.dataset.classes
    copied, same = match_weights(digits.model, _source(digits.model, classes), classes)
    assert same.loaded == [*BODY_LAYERS, "output"] and not same.fresh and len(copied) == len(digits.model.state_dict())
    _, renamed = match_weights(digits.model, _source(digits.model, classes[::-1]), classes)
    assert renamed.fresh == {"output": "classes"}  # same shape, but its rows stand for other classes
    wider = Trainer(TrainConfig(spec={**BODY, "layers": [{**BODY["layers"][0], "filters": 12}, *BODY["layers"][1:]]},
                                dataset="digits", device="cpu"))
    copied, changed = match_weights(wider.model, _source(digits.model, classes), classes)
    assert changed.fresh == {"conv2d_1": "shape", "batchnorm_1": "shape", "conv2d_2": "shape"}
    assert changed.loaded == ["output"] and not any(k.startswith("layers.conv2d_1") for k in copied)


def test_unknown_source_run_is_a_clear_config_error(tmp_path):
    with pytest.raises(ConfigError, match="there is no run 'nope' in this lab"):
        RunStore(tmp_path).source_weights("nope")
    assert RunStore(tmp_path).source_weights("") is None


def test_a_source_run_without_weights_yet_is_refused(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.create({"spec": BODY}, name="still-queued")
    with pytest.raises(ConfigError, match="run 'still-queued' has no saved weights yet"):
        store.source_weights(run_id)


def test_a_model_nothing_of_the_source_fits_is_refused_naming_what_differs():
    digits = Trainer(TrainConfig(spec=BODY, dataset="digits", device="cpu"))
    source = _source(digits.model, ["a", "b"])
    other = {"layers": [{"type": "conv2d", "filters": 4, "kernel": 5}, {"type": "flatten"}, {"type": "dense"}]}
    with pytest.raises(ConfigError, match=r"no layer of run r1 fits this model: conv2d_1.conv.weight is "
                                          r"\(8, 1, 3, 3\) there, \(4, 1, 5, 5\) here"):
        Trainer(TrainConfig(spec=other, dataset="digits", device="cpu", init_from="r1"), source=source)


@pytest.mark.parametrize("freeze, message", [
    (["conv9"], "freeze: 'conv9' is not a layer of this model; layers with weights: conv2d_1, batchnorm_1"),
    (["maxpool2d_1"], "freeze: 'maxpool2d_1' has no weights"),
    (["loaded"], "freeze 'loaded' freezes the layers init_from loads"),
    (["all_but_output", "conv2d_1"], "is a policy: give it alone"),
    ("conv2d_1", "freeze must be a list of layer names"),
])
def test_bad_freeze_settings_are_refused(freeze, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(spec=BODY, dataset="digits", freeze=freeze).validate()


def test_freezing_every_layer_leaves_nothing_to_train_and_is_refused():
    with pytest.raises(ConfigError, match="freeze leaves no weights to train"):
        Trainer(TrainConfig(spec=BODY, dataset="digits", device="cpu", freeze=[*BODY_LAYERS, "output"]))


def test_a_queued_run_starts_from_another_through_the_job_manager(tmp_path):
    manager = JobManager(tmp_path / "runs")
    base = {"spec": BODY, "dataset": "digits", "epochs": 1, "device": "cpu", "insight": False}
    source = manager.submit(TrainConfig(**base))
    assert manager.wait(source, 120).status == "finished"
    run_id = manager.submit(TrainConfig(**base, init_from=source, freeze=["conv2d_1", "batchnorm_1"]))
    assert manager.wait(run_id, 120).status == "finished"
    config = manager.store.get(run_id).config
    assert config["resolved"]["transfer"]["loaded"] == [*BODY_LAYERS, "output"]  # same data set: all of it
    assert config["resolved"]["frozen"] == ["conv2d_1", "batchnorm_1"]
    missing = manager.submit(TrainConfig(**base, init_from="gone"))
    ended = manager.wait(missing, 60)
    assert ended.status == "failed" and "there is no run 'gone'" in ended.message


def test_the_notes_read_the_same_facts_in_korean():
    trainer = Trainer(TrainConfig(spec=BODY, dataset="digits", device="cpu", freeze=["conv2d_1"]))
    notes = run_notes(run_record(trainer.config, trainer), "ko")
    assert notes[0].startswith("장치에 올린 이미지:") and "1x8x8" in notes[0]
    assert notes[1].startswith("고정된 층") and "conv2d_1" in notes[1]
