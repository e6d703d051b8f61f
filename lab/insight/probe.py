"""The feature-space probe: a fixed set of validation images followed epoch by epoch.

``ProbeRecorder`` is a Trainer listener. At the start of a run (epoch 0, the
untrained net) and at the end of every epoch it runs the probe images through
the model, records the features at one layer (default: the input of the output
layer), the predictions and the labels, and writes them into the run folder
(where each file lives: :class:`lab.runs.layout.RunLayout`)::

    probe_meta      layer, probe indices into the val split, classes, CAM settings
    probe_index     recorded epochs with their k-NN accuracy (rewritten each epoch)
    probe(epoch)    features (N, D) float16, labels, preds, confidence, knn_acc
    val_preds(epoch) the predicted class of every val image (int16), and once per run val_labels
                    and cam_images: the training film's confusion matrices and CAM pictures
    cams(epoch)     heatmaps (K, H, W) float16 of one val image per class, preds
    weights(epoch)  the weights at that epoch, for small models (``explain --epoch N``), every epoch
                    while they fit in KEEP_WEIGHTS_TOTAL_BYTES, then thinned out (:func:`epochs_to_drop`)

Everything is written atomically, so a page or the embedding worker reading a
run in progress sees whole epochs only. The probe is chosen from the labels with
a fixed seed, so it is the same for every epoch and for every run on a dataset:
maps of two runs can be compared point by point.

Cost per epoch: one inference pass over the probe (1,000 images by default, under
``torch.inference_mode``), one CAM pass over a handful of images, a leave-one-out
k-NN on the device, three small files. Measured with gap_cam on shapes: 11 ms per
epoch on an H100 (1.6-2.4% of a 0.7 s epoch at batch 64), 0.40 s on 2 CPU cores
(7-8% of a 5 s epoch of 6,000 images; about 4% of a full 12,000-image epoch).
No scikit-learn: the 2-D maps are made by :mod:`lab.insight.embed`, off the
training thread.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lab.durable import atomic_write
from lab.insight.cam import BaseCAM, auto_method, get_cam_method
from lab.insight.errors import InsightError
from lab.insight.hooks import capture, default_probe_layer, get_layer
from lab.model.budget import model_batch
from lab.model.spec import eval_mode
from lab.runs.layout import RunLayout
from lab.runs.store import atomic_save_torch, atomic_write_json
from lab.train.engine import Callback, ConfigError, best_row

PROBE_SEED = 0  # fixed, not the run's seed: every run on a dataset follows the same images
KNN_K = 5  # neighbours voting in the k-NN accuracy
STORED_DIMS = 512  # wider features are stored through a fixed random projection (k-NN uses them all)
KEEP_WEIGHTS_BYTES = 16 * 2**20  # per-epoch weights are kept for models up to this size
# and up to this much per run (best.pt and last.pt apart): every epoch of a 100 KB model for the
# longest run, 8 epochs of a 16 MB one; 200 epochs of it would be 3.2 GB of one student's disk.
KEEP_WEIGHTS_TOTAL_BYTES = 128 * 2**20
# Probe images per forward pass. On a CPU small batches stay in cache: measured on 2 cores,
# gap_cam at 32x32 runs 1,024 images in 360 ms in batches of 32-128 and 650 ms in one batch.
BATCH = {"cpu": 128}
BATCH_DEFAULT = 1024
CAM_IMAGE_SIDE = 128  # the CAM samples' images are kept for the film at most this many pixels a side


# ---------------------------------------------------------------- choosing images

def probe_indices(labels: np.ndarray, size: int, seed: int = PROBE_SEED) -> np.ndarray:
    """Sorted indices of a stratified sample of ``size`` labels: every class gets its
    share (largest remainder), so the probe has the val split's class balance."""
    labels = np.asarray(labels)
    if size >= len(labels):
        return np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * size / len(labels)
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take), kind="stable")[: size - take.sum()]:
        take[i] += 1
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(labels == c), size=n, replace=False) for c, n in zip(classes, take)]
    return np.sort(np.concatenate(picked))


def cam_sample_indices(labels: np.ndarray, num_classes: int, seed: int = PROBE_SEED) -> np.ndarray:
    """One val image per class (classes without images are left out), in class order."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    return np.array([rng.choice(np.flatnonzero(labels == c)) for c in range(num_classes) if (labels == c).any()],
                    dtype=np.int64)


# ---------------------------------------------------------------- measuring

def layer_features(model: nn.Module, layer: str, batches, autocast=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (N, D) at ``layer`` and logits (N, classes) for normalised image batches.

    Maps (B, C, H, W) are averaged over space to (B, C): one number per channel, the
    same summary global average pooling makes. Runs under inference mode in eval
    mode; the hook and the train mode are restored whatever happens.
    """
    feats, logits = [], []
    with torch.inference_mode(), eval_mode(model), capture(get_layer(model, layer)) as seen:
        for x in batches:
            with autocast() if autocast else nullcontext():
                out = model(x)
            f = seen.output
            f = f.float().mean(dim=(2, 3)) if f.dim() == 4 else f.float().flatten(1)
            feats.append(f)
            logits.append(out.float())
    return torch.cat(feats), torch.cat(logits)


def knn_accuracy(features: torch.Tensor, labels: torch.Tensor, k: int = KNN_K, chunk: int = 1024) -> float:
    """Leave-one-out k-NN accuracy with cosine similarity: the share of points whose k
    nearest other points mostly carry their label (a tie goes to the nearest one's).

    A number to read beside the picture: it measures how well classes separate in the
    full feature space, not in the 2-D map.
    """
    n = len(labels)
    if n < 2:
        return float("nan")
    k = min(k, n - 1)
    f = F.normalize(features.float(), dim=1)
    labels = labels.to(f.device).long()
    classes = int(labels.max()) + 1
    correct = torch.zeros((), dtype=torch.long, device=f.device)
    for start in range(0, n, chunk):
        sim = f[start:start + chunk] @ f.T  # (c, N)
        rows = torch.arange(len(sim), device=f.device)
        sim[rows, rows + start] = -float("inf")  # never your own neighbour
        near = sim.topk(k, dim=1).indices  # (c, k), nearest first
        votes = F.one_hot(labels[near], classes).sum(1).float()  # (c, classes)
        votes.scatter_add_(1, labels[near[:, :1]], torch.full((len(sim), 1), 0.5, device=f.device))
        correct += (votes.argmax(1) == labels[start:start + chunk]).sum()
    return correct.item() / n


def random_projection(dims: int, out: int, device: torch.device) -> torch.Tensor:
    """Fixed (dims, out) Gaussian projection (seeded): distances kept up to a few percent
    (Johnson-Lindenstrauss), the same matrix every epoch so maps stay comparable."""
    g = torch.Generator().manual_seed(PROBE_SEED)
    return (torch.randn(dims, out, generator=g) / out ** 0.5).to(device)


# ---------------------------------------------------------------- files

def atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez`` through :func:`lab.durable.atomic_write`: readers never see half a file."""
    atomic_write(path, lambda f: np.savez(f, **arrays))


def _save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda f: np.save(f, array, allow_pickle=False))


def epochs_to_drop(kept: list[int], slots: int, pinned: set[int]) -> list[int]:
    """The epochs whose weights go so that at most ``slots`` stay; the first and the last epoch and
    the ``pinned`` ones always stay (so more stay when ``slots`` is smaller than those).

    What stays is the multiples of a stride (1, 2, 4, ...: the smallest with which they fit)
    besides those: spread evenly over the whole run, so a slider over them still tells the story
    from the untrained net to the end, and as the run goes on the stride only grows, so an epoch
    once dropped is never wanted back.
    """
    if not kept:
        return []
    first, last = min(kept), max(kept)
    always = {first, last} | (pinned & set(kept))
    stride = 1  # chosen over every epoch so far, not the files left, so that it never shrinks back
    while len(always | {e for e in range(first, last + 1) if e % stride == 0}) > slots and stride <= last:
        stride *= 2
    return sorted(e for e in kept if e % stride and e not in always)


def _open_recorded(path: Path, recorded: Callable[[], list[int]], missing: str, none: str = "none"):
    """``np.load`` of one epoch's file, without pickles. InsightError when it is absent (``missing``
    followed by the recorded epochs, or ``none``) or damaged (naming it)."""
    if not path.exists():
        raise InsightError(missing + (", ".join(map(str, recorded())) or none))
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InsightError(f"{path} is unreadable ({err})") from None


@dataclass
class ProbeEpoch:
    """One recorded epoch of the probe."""

    epoch: int
    layer: str
    features: np.ndarray  # float32 (N, D)
    labels: np.ndarray  # int64 (N,)
    preds: np.ndarray  # int64 (N,)
    confidence: np.ndarray  # float32 (N,) softmax probability of the prediction
    indices: np.ndarray  # int64 (N,) positions in the val split
    knn_acc: float


def load_probe(run: RunLayout, epoch: int) -> ProbeEpoch:
    """The probe as recorded at ``epoch``; InsightError naming the recorded epochs if absent."""
    missing = f"no probe recorded for epoch {epoch}; recorded epochs: "
    with _open_recorded(run.probe(epoch), run.probe_epochs, missing,
                        "none (was the run trained with insight on?)") as z:
        return ProbeEpoch(int(z["epoch"]), str(z["layer"]), z["features"].astype(np.float32),
                          z["labels"].astype(np.int64), z["preds"].astype(np.int64),
                          z["confidence"].astype(np.float32), z["indices"].astype(np.int64), float(z["knn_acc"]))


@dataclass
class CamSamples:
    """Heatmaps of the fixed sample images (one per class) at one epoch."""

    epoch: int
    method: str
    layer: str
    heatmaps: np.ndarray  # float32 (K, H, W) in [0, 1], target = the true class
    labels: np.ndarray  # int64 (K,)
    preds: np.ndarray  # int64 (K,)
    confidence: np.ndarray  # float32 (K,)
    indices: np.ndarray  # int64 (K,) positions in the val split


def load_cams(run: RunLayout, epoch: int) -> CamSamples:
    """The CAM samples as recorded at ``epoch``; InsightError naming the recorded epochs if absent."""
    with _open_recorded(run.cams(epoch), run.cam_epochs, f"no CAM samples recorded for epoch {epoch}; recorded: ") as z:
        return CamSamples(int(z["epoch"]), str(z["method"]), str(z["layer"]), z["heatmaps"].astype(np.float32),
                          z["labels"].astype(np.int64), z["preds"].astype(np.int64),
                          z["confidence"].astype(np.float32), z["indices"].astype(np.int64))


# ---------------------------------------------------------------- the listener

class ProbeRecorder(Callback):
    """Listener recording the probe and the CAM samples at epoch 0 and every epoch end.

    ``layer``: layer name whose output is recorded (default: the input of the output
    layer). ``cam_method``: 'auto' (CAM where exact, else Grad-CAM), a method name, or
    None for no CAM samples. ``worker``: an :class:`~lab.insight.worker.EmbeddingWorker`
    asked to make the PCA map of each new epoch, off this thread.
    """

    def __init__(self, store, run_id: str, size: int = 1000, layer: str | None = None,
                 cam_method: str | None = "auto", worker=None, keep_weights: bool = True):
        self.store, self.run_id = store, run_id
        self.size, self.layer, self.cam_method = size, layer or None, cam_method
        self.worker, self.keep_weights = worker, keep_weights
        self.cam: BaseCAM | None = None
        self._projection: torch.Tensor | None = None  # (D, STORED_DIMS), made once per run
        self._index: list[dict] = []  # the rows of the probe index, one per recorded epoch

    @property
    def layout(self) -> RunLayout:
        return self.store.layout(self.run_id)

    def on_run_start(self, trainer) -> None:
        ds, model = trainer.dataset, trainer.model
        self.layer = self.layer or default_probe_layer(model)
        try:
            get_layer(model, self.layer)
        except InsightError as err:
            raise ConfigError(f"probe_layer: {err}") from None
        labels = ds.val_y.numpy()
        self.indices = probe_indices(labels, self.size)
        self.probe_idx = torch.from_numpy(self.indices).to(trainer.device)
        self.probe_labels = trainer.val_y[self.probe_idx]
        self.cam_idx = torch.from_numpy(cam_sample_indices(labels, ds.num_classes)).to(trainer.device)
        cam_note = ""
        if self.cam_method:
            method = auto_method(model) if self.cam_method == "auto" else self.cam_method
            try:
                self.cam = get_cam_method(method)(model)
            except InsightError as err:  # e.g. an MLP: no feature maps to explain
                cam_note = str(err)
        weight_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        self.keep_weights = self.keep_weights and weight_bytes <= KEEP_WEIGHTS_BYTES
        self.weight_slots = KEEP_WEIGHTS_TOTAL_BYTES // max(weight_bytes, 1)
        atomic_write_json(self.layout.probe_meta, {
            "layer": self.layer, "size": len(self.indices), "indices": self.indices.tolist(),
            "classes": ds.classes, "knn_k": KNN_K, "stored_dims": STORED_DIMS,
            "cam_method": self.cam.name if self.cam else None, "cam_layer": self.cam.layer_name if self.cam else None,
            "cam_target": "true", "cam_indices": self.cam_idx.tolist(), "cam_note": cam_note,
            "weights_per_epoch": self.keep_weights,
        })
        self._save_film_inputs(trainer)
        self._record(trainer, 0)

    def _save_film_inputs(self, trainer) -> None:
        """What the training film draws besides the epochs' own files: the val labels (its confusion matrices)
        and the CAM samples' images, small, so a film needs no data set load and outlives a deleted upload.
        The untrained network's predictions are made here: epoch 0 has no validation pass of its own."""
        layout = self.layout
        _save_npy(layout.val_labels, trainer.val_y.cpu().numpy().astype(np.int16))
        images = trainer.val_x[self.cam_idx].cpu()
        if max(images.shape[-2:]) > CAM_IMAGE_SIDE:
            images = F.interpolate(images.float(), scale_factor=CAM_IMAGE_SIDE / max(images.shape[-2:]),
                                   mode="area").round().clamp(0, 255).to(torch.uint8)
        atomic_save_npz(layout.cam_images, images=images.numpy())
        trainer.evaluate(trainer.val_x, trainer.val_y)

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        self._record(trainer, metrics["epoch"])

    def _record(self, trainer, epoch: int) -> None:
        if trainer.val_preds is not None:
            _save_npy(self.layout.val_preds(epoch), trainer.val_preds.numpy())
        model = trainer.model
        x_all, step = trainer.val_x, model_batch(model, BATCH.get(trainer.device.type, BATCH_DEFAULT))
        batches = (trainer.normalize(trainer.prepare(x_all[self.probe_idx[i:i + step]]))
                   for i in range(0, len(self.probe_idx), step))
        feats, logits = layer_features(model, self.layer, batches, trainer.autocast)
        knn = knn_accuracy(feats, self.probe_labels)
        if feats.shape[1] > STORED_DIMS:
            if self._projection is None:
                self._projection = random_projection(feats.shape[1], STORED_DIMS, feats.device)
            feats = feats @ self._projection  # (N, STORED_DIMS)
        probs = logits.softmax(1)
        conf, preds = probs.max(1)
        atomic_save_npz(self.layout.probe(epoch),
                        features=feats.clamp(-6e4, 6e4).half().cpu().numpy(),
                        labels=self.probe_labels.cpu().numpy().astype(np.int16),
                        preds=preds.cpu().numpy().astype(np.int16), confidence=conf.half().cpu().numpy(),
                        indices=self.indices.astype(np.int32), epoch=np.int32(epoch), layer=np.str_(self.layer),
                        knn_acc=np.float32(knn))
        if self.cam is not None:
            self._record_cams(trainer, epoch)
        if self.keep_weights:
            self._keep_weights(trainer, epoch)
        self._index = [e for e in self._index if e["epoch"] != epoch]
        self._index.append({"epoch": epoch, "knn_acc": knn,
                            "probe_acc": (preds == self.probe_labels).float().mean().item()})
        atomic_write_json(self.layout.probe_index, {"layer": self.layer, "size": len(self.indices), "knn_k": KNN_K,
                                                   "epochs": sorted(self._index, key=lambda e: e["epoch"])})
        if self.worker is not None:
            self.worker.request(self.layout, "pca")

    def _keep_weights(self, trainer, epoch: int) -> None:
        """This epoch's weights; older ones thinned out to stay in budget, keeping the untrained net,
        the best epoch so far and this one."""
        atomic_save_torch(self.layout.weights(epoch), trainer.checkpoint())
        best = best_row(trainer.history)
        pinned = {best["epoch"]} if best else set()
        for old in epochs_to_drop(self.layout.weight_epochs(), self.weight_slots, pinned):
            self.layout.weights(old).unlink(missing_ok=True)

    def _record_cams(self, trainer, epoch: int) -> None:
        """Heatmaps for the true class of each sample: the same question every epoch."""
        x = trainer.normalize(trainer.prepare(trainer.val_x[self.cam_idx]))
        labels = trainer.val_y[self.cam_idx]
        result = self.cam(x, "true", labels)
        atomic_save_npz(self.layout.cams(epoch),
                        heatmaps=result.heatmaps.half().numpy(), labels=labels.cpu().numpy().astype(np.int16),
                        preds=result.preds.numpy().astype(np.int16),
                        confidence=result.confidence.half().numpy(), indices=self.cam_idx.cpu().numpy(),
                        epoch=np.int32(epoch), method=np.str_(result.method), layer=np.str_(result.layer))


def insight_callbacks(trainer, store, run_id: str, worker=None) -> list[Callback]:
    """The listeners a run gets for insight: a ProbeRecorder, or none when
    ``config.insight`` is off. One call where runs are created (CLI, jobs)."""
    config = trainer.config
    if not getattr(config, "insight", True):
        return []
    return [ProbeRecorder(store, run_id, size=config.probe_size, layer=getattr(config, "probe_layer", "") or None,
                          worker=worker)]
