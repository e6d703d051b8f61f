"""The files a trained run can be downloaded as: code, weights, ONNX, config and report, in one table.

Each kind is an :class:`ExportKind` in :data:`EXPORTS`; the Export view and
``python -m lab export`` both go through :func:`export_run`.
"""

from __future__ import annotations

import inspect
import io
import json
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from lab.export.code import ExportError
from lab.export.run_script import run_code
from lab.model.spec import build_model
from lab.registry import Registry
from lab.runs.view import NoCheckpoint, RunInfo
from lab.train.engine import TrainConfig


def config_json(config: dict) -> str:
    """The run's settings (config.json without the facts it resolved) as pretty JSON.

    It goes through :class:`lab.train.engine.TrainConfig`, so what comes out is exactly what
    ``TrainConfig.from_dict(json.load(f))`` takes back to train the same run again.
    """
    settings = TrainConfig.from_dict({k: v for k, v in config.items() if k != "resolved"})
    return json.dumps(settings.to_dict(), indent=2) + "\n"


def _checkpoint_state(run: RunInfo, checkpoint: str) -> dict:
    """The model's state_dict at 'best', 'last' or an epoch; ExportError naming what exists."""
    try:
        return run.load_checkpoint(checkpoint)["model"]
    except NoCheckpoint as err:
        raise ExportError(str(err)) from None


def state_dict_bytes(run: RunInfo, checkpoint: str = "best") -> bytes:
    """The weights as a plain ``state_dict`` file: tensors only, so ``torch.load(f, weights_only=True)``
    reads it and ``Net().load_state_dict`` (from :func:`run_code`) takes it as is."""
    buffer = io.BytesIO()
    torch.save(_checkpoint_state(run, checkpoint), buffer)
    return buffer.getvalue()


ONNX_OPSET = 17  # onnxruntime, onnxruntime-web and OpenCV's dnn all run it


def onnx_bytes(run: RunInfo, checkpoint: str = "best") -> bytes:
    """The trained model as ONNX, input ``image`` (batch, C, H, W) normalised, output ``logits``.

    Exported with the TorchScript exporter (``dynamo=False``): the dynamo exporter,
    torch's default since 2.9, also needs ``onnxscript``, while this path needs only
    ``onnx`` (here, to write the metadata) and traces a SpecNet, plain layers run in
    order, exactly. The batch size is free; the classes, MEAN and STD ride along as
    metadata, so the file alone says how to feed it.
    """
    try:
        import onnx
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install onnx onnxruntime") from None
    resolved = run.config["resolved"]
    shape, classes = tuple(resolved["input"]), list(resolved["classes"])
    model = build_model(run.config["spec"], shape, len(classes))
    model.load_state_dict(_checkpoint_state(run, checkpoint))
    buffer = io.BytesIO()
    # torch before 2.5 has only the TorchScript exporter, and no ``dynamo`` argument to choose it.
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with warnings.catch_warnings():  # the TorchScript exporter announces its own deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model.eval(), (torch.zeros(1, *shape),), buffer, opset_version=ONNX_OPSET,
                          input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, **legacy)
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(proto, {
        "classes": json.dumps(classes), "mean": json.dumps(resolved["mean"]),
        "std": json.dumps([max(s, 1e-3) for s in resolved["std"]]),
        "input": "float32 (batch, C, H, W): (pixels / 255 - mean) / std, per channel",
        "run": run.id,
    })
    return proto.SerializeToString()


def _report_html(run: RunInfo, checkpoint: str, data_dir) -> str:
    from lab.export.report import run_report  # plotly and the insight tools: only when a report is asked for

    return run_report(run, checkpoint, data_dir)


@dataclass(frozen=True)
class ExportKind:
    """One kind of file a run can be downloaded as."""

    title: str  # what a button calls it
    description: str  # what the file is for, one sentence
    ending: str  # after the run's stem; {checkpoint} is filled in
    mime: str
    make: Callable[[RunInfo, str, Any], str | bytes]  # (run, checkpoint, data dir) -> the file's content


EXPORTS: Registry[ExportKind] = Registry("export", {
    "code": ExportKind("PyTorch code + training loop",
                       "Net, torchvision data loading and a training loop with the run's settings; importing it "
                       "trains nothing.", ".py", "text/x-python",
                       lambda run, checkpoint, data_dir: run_code(run.config, export_stem(run))),
    "weights": ExportKind("Weights", "The state_dict: plain tensors, torch.load(f, weights_only=True) reads it.",
                          "_{checkpoint}.pt", "application/octet-stream",
                          lambda run, checkpoint, data_dir: state_dict_bytes(run, checkpoint)),
    "onnx": ExportKind("ONNX", "The trained model for onnxruntime and other runtimes; classes and "
                       "normalisation in its metadata.", "_{checkpoint}.onnx", "application/octet-stream",
                       lambda run, checkpoint, data_dir: onnx_bytes(run, checkpoint)),
    "config": ExportKind("Config JSON", "The run's settings: TrainConfig.from_dict(json.load(f)) trains it again.",
                         "_config.json", "application/json",
                         lambda run, checkpoint, data_dir: config_json(run.config)),
    "report": ExportKind("Report", "One HTML page that works offline: settings, curves, feature space, CAM "
                         "samples, confusion matrix.", "_report_{checkpoint}.html", "text/html", _report_html),
}, ExportError)


def get_export(what: str) -> ExportKind:
    """The export called ``what`` (case, spaces, '-' and '_' ignored); ExportError listing the valid ones."""
    return EXPORTS.lookup(what)


def export_stem(run: RunInfo) -> str:
    """The run's name as a Python module name ("gap_cam on shapes" -> gap_cam_on_shapes), so the
    code file can be imported in a notebook and finds its weights files by name."""
    stem = re.sub(r"\W+", "_", run.name, flags=re.ASCII).strip("_").lower() or "model"
    return f"run_{stem}" if stem[0].isdigit() else stem


def export_file_name(run: RunInfo, what: str, checkpoint: str = "best") -> str:
    tag = checkpoint if checkpoint in ("best", "last") else f"epoch{checkpoint}"
    return export_stem(run) + get_export(what).ending.format(checkpoint=tag)


def export_run(run: RunInfo, what: str, checkpoint: str = "best", data_dir=None) -> bytes:
    """The file ``what`` (a key of ``EXPORTS``) of a run at a checkpoint, as bytes to write or serve."""
    content = get_export(what).make(run, checkpoint, data_dir)
    return content.encode("utf-8") if isinstance(content, str) else content
