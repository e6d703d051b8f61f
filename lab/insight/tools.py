"""What ``python -m lab explain`` and ``python -m lab embed`` do, as plain functions.

Images given by the user are converted to the run's input exactly as the folder
loader converts training images (:func:`lab.data.images.decode`: alpha on white,
L or RGB, bilinear resize), and each heatmap comes back at the size of the image
given, not the model's input size.
"""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lab import settings
from lab.data import images as image_files
from lab.insight.cam import CAM_METHODS, get_cam_method, to_heatmaps
from lab.insight.embed import normalize_method
from lab.insight.errors import InsightError
from lab.insight.load import InputStats, load_run_model
from lab.insight.maps import ensure_maps
from lab.insight.overlay import overlay
from lab.insight.probe import load_probe
from lab.model.budget import model_batch
from lab.runs.store import open_run

DATASET_PREFIX = "dataset:"
EXPLAIN_BATCH = 64
MAX_NAME = 120  # characters of an uploaded file's name kept for display


@dataclass
class InputImage:
    """One image to explain: as given (for the overlay) and as the model sees it."""

    stem: str
    original: np.ndarray  # uint8 (H, W, 3) at the size given
    model_input: torch.Tensor  # uint8 (C, h, w) at the run's input size
    label: int | None = None  # known for dataset images


@dataclass
class Explained:
    """One image's answer: the prediction and the heatmap at the image's own size."""

    image: InputImage
    heatmap: np.ndarray  # float32 (H, W) in [0, 1]
    pred: int
    confidence: float
    target: int


def _read_image(path: Path, stem: str, stats: InputStats, max_side: int, display_side: int = 0) -> InputImage:
    """One image file as the run's input; SkipImage (with the reason) when it cannot be used.

    ``display_side`` > 0 keeps ``original`` at most that many pixels a side (a page shows
    it; the heatmaps are made at that size), else at the size given.
    """
    channels, (_, h, w) = stats.shape[0], stats.shape
    width, height = image_files.probe(path, max_side).size
    if display_side:
        shrink = min(1.0, display_side / max(width, height))
        width, height = max(1, round(width * shrink)), max(1, round(height * shrink))
    original = image_files.decode(path, 3, (width, height)).transpose(1, 2, 0)
    model_input = torch.from_numpy(image_files.decode(path, channels, (w, h)).copy())
    return InputImage(stem, np.ascontiguousarray(original), model_input)


def _folder_images(folder: Path, stats: InputStats) -> list[InputImage]:
    """Every readable image directly in ``folder`` (or the one file given), sorted by name."""
    files = [folder] if folder.is_file() else sorted(p for p in folder.iterdir() if p.is_file())
    max_side = settings.limits().max_image_side
    found, seen = [], set()
    for path in files:
        if image_files.is_hidden((path.name,)):
            continue
        stem = path.stem if path.stem not in seen else path.name.replace(".", "_")
        try:
            found.append(_read_image(path, stem, stats, max_side))
        except image_files.SkipImage:
            continue
        seen.add(stem)
    if not found:
        raise InsightError(f"no readable images in {folder} (looked for "
                           f"{', '.join(sorted(image_files.IMAGE_SUFFIXES))})")
    return found


def upload_image(name: str, data: bytes, stats: InputStats, display_side: int = 0) -> InputImage:
    """An uploaded file as the run's input, read exactly as a file on disk would be;
    InsightError saying what to upload instead when it is not a usable image."""
    given = Path(Path(name).name or "upload")
    safe = given.stem[:MAX_NAME] + given.suffix[:16]
    max_side = settings.limits().max_image_side
    with tempfile.TemporaryDirectory(prefix="lab-upload-") as tmp:
        path = Path(tmp) / f"upload{given.suffix[:16]}"  # the user's name is data, never a path
        path.write_bytes(data)
        try:
            return _read_image(path, given.stem[:MAX_NAME], stats, max_side, display_side)
        except image_files.SkipImage as reason:
            raise InsightError(f"{safe}: {reason}. Upload an image file "
                               f"({', '.join(sorted(s.lstrip('.') for s in image_files.IMAGE_SUFFIXES))}) "
                               f"of at most {max_side} pixels a side.") from None


def dataset_image(ds, index: int, stats: InputStats, scale: int = 1) -> InputImage:
    """Val image ``index`` of a dataset as the run's input (converted as files are when the
    dataset's size or channels differ); ``original`` enlarged ``scale`` times for display.
    The label is kept when the dataset has the run's classes."""
    from PIL import Image

    from lab.plots.images import to_hwc, upscale

    channels, (_, h, w) = stats.shape[0], stats.shape
    x = ds.val_x[index]
    rgb = np.ascontiguousarray(to_hwc(x))  # (H, W, 3)
    if tuple(x.shape) != stats.shape:
        x = torch.from_numpy(image_files.to_array(Image.fromarray(rgb), channels, (w, h)))
    label = int(ds.val_y[index])
    return InputImage(f"val{index:05d}_{ds.classes[label]}", upscale(rgb, scale), x,
                      label if ds.classes == stats.classes else None)


def _dataset_images(name: str, stats: InputStats, data_dir, per_class: int = 1) -> list[InputImage]:
    """A few validation images of a dataset (``per_class`` per class), converted to the run's input."""
    from lab.data import examples_per_class, load_dataset

    ds = load_dataset(name, data_dir)
    return [dataset_image(ds, i, stats) for indices in examples_per_class(ds, per_class, "val").values()
            for i in indices]


def load_images(source: str, stats: InputStats, data_dir=None) -> list[InputImage]:
    """Images from a folder (or one file), or ``dataset:NAME`` for one val image per class."""
    if source.strip().lower().startswith(DATASET_PREFIX):
        return _dataset_images(source.strip()[len(DATASET_PREFIX):], stats, data_dir)
    folder = Path(source).expanduser()
    if not folder.exists():
        raise InsightError(f"{source} not found; give a folder of images or dataset:NAME")
    return _folder_images(folder, stats)


def _target(target: str, stats: InputStats, items: list[InputImage]) -> str | int:
    key = str(target).strip().lower()
    if key in ("pred", "predicted"):
        return "pred"
    if key == "true":
        if any(item.label is None for item in items):
            raise InsightError("target 'true' needs labelled images: use dataset:NAME images of the run's "
                               "dataset, or 'pred' or a class")
        return "true"
    return stats.class_index(str(target))


def explain_images(model: torch.nn.Module, stats: InputStats, items: list[InputImage], method: str = "gradcam",
                   layer: str | None = None, target: str = "pred") -> list[Explained]:
    """Heatmaps for every image, each at its own size, with prediction and confidence."""
    explainer = get_cam_method(method)(model, layer)
    wanted = _target(target, stats, items)
    device = next(model.parameters()).device
    step = model_batch(model, EXPLAIN_BATCH, backward=explainer.uses_gradients)
    answers = []
    for start in range(0, len(items), step):
        chunk = items[start:start + step]
        x = stats.normalize(torch.stack([item.model_input for item in chunk]).to(device))
        labels = torch.tensor([item.label for item in chunk]) if wanted == "true" else None
        result = explainer(x, wanted, labels)
        for i, item in enumerate(chunk):
            # Straight from the layer's raw map to the given size: one interpolation, not two.
            heat = to_heatmaps(result.raw[i:i + 1], item.original.shape[:2])[0]
            answers.append(Explained(item, heat.numpy().astype(np.float32), int(result.preds[i]),
                                     float(result.confidence[i]), int(result.targets[i])))
    return answers


@dataclass
class MethodsAnswer:
    """One image explained by every CAM method, for a page to show side by side."""

    probs: np.ndarray  # float32 (classes,)
    target: int | None  # the class the heatmaps explain (None when every method failed)
    heatmaps: dict[str, np.ndarray] = field(default_factory=dict)  # method -> (H, W) at the original's size
    missing: dict[str, str] = field(default_factory=dict)  # method -> why it cannot explain this model


def explain_methods(model: torch.nn.Module, stats: InputStats, item: InputImage, target: str = "pred",
                    methods=tuple(CAM_METHODS)) -> MethodsAnswer:
    """Class probabilities and every method's heatmap of one image for one target.

    A method that does not apply to the model (CAM on a net without global average
    pooling) is listed in ``missing`` with the reason instead of failing the rest.
    """
    from lab.insight.validation import predict_probs

    answer = MethodsAnswer(predict_probs(model, stats, item.model_input[None])[0], None)
    for method in methods:
        try:
            (explained,) = explain_images(model, stats, [item], method, None, target)
        except InsightError as err:
            answer.missing[method] = str(err)
            continue
        answer.heatmaps[method], answer.target = explained.heatmap, explained.target
    return answer


def write_explained(out_dir: Path, answers: list[Explained], alpha: float = 0.5, cmap: str = "jet") -> None:
    """``<stem>.npy`` (float32 heatmap, the image's H x W) and ``<stem>.png`` (overlay) per image."""
    from PIL import Image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for answer in answers:
        stem = answer.image.stem
        np.save(out_dir / f"{stem}.npy", answer.heatmap)
        Image.fromarray(overlay(answer.image.original, answer.heatmap, alpha, cmap)).save(out_dir / f"{stem}.png")


def explain_run(run: str, source: str, out_dir: str | os.PathLike, method: str = "gradcam",
                layer: str | None = None, target: str = "pred", epoch: str = "best", runs_dir=None,
                data_dir=None, alpha: float = 0.5, cmap: str = "jet",
                device: str = "cpu") -> tuple[list[Explained], InputStats]:
    """The whole ``explain`` command: load the run's model, explain the images, write the files."""
    get_cam_method(method)  # an unknown method is refused before anything is loaded
    overlay(np.zeros((1, 1), np.uint8), np.zeros((1, 1)), alpha, cmap)  # likewise a bad alpha or colour map
    model, _, stats = load_run_model(run, epoch, runs_dir, device, data_dir)
    answers = explain_images(model, stats, load_images(source, stats, data_dir), method, layer, target)
    write_explained(Path(out_dir), answers, alpha, cmap)
    return answers, stats


def embedding_rows(run: str, method: str = "pca", epoch: int | None = None,
                   runs_dir=None) -> tuple[list[dict], int, float]:
    """(rows of index, x, y, label, prediction, names; epoch; k-NN accuracy) for one epoch's map."""
    method = normalize_method(method)
    store, run_id = open_run(run, runs_dir)
    info = store.get(run_id)
    epochs = info.probe_epochs
    if not epochs:
        raise InsightError(f"run {run_id} has no probe recorded (trained with insight off, or not started)")
    epoch = epochs[-1] if epoch is None else epoch
    probe = load_probe(info.layout, epoch)  # refuses an epoch that was not recorded
    points = ensure_maps(info.layout, method, upto=epoch)[epoch]
    classes = info.classes
    name = lambda c: classes[c] if 0 <= c < len(classes) else str(c)  # noqa: E731
    rows = [{"index": int(i), "x": float(x), "y": float(y), "label": int(t), "prediction": int(p),
             "label_name": name(int(t)), "prediction_name": name(int(p))}
            for i, (x, y), t, p in zip(probe.indices, points, probe.labels, probe.preds)]
    return rows, epoch, probe.knn_acc


def write_rows_csv(path: str | os.PathLike, rows: list[dict]) -> None:
    path = Path(path)
    if path.parent != Path("."):
        path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["x", "y", "label", "prediction"])
        writer.writeheader()
        writer.writerows(rows)
