"""Looking inside a network: its feature space epoch by epoch, and where it looks.

    probe.py   ProbeRecorder: a Trainer listener recording a fixed, stratified probe of
               val images (features, predictions, labels) and CAM samples every epoch
    embed.py   PCA / t-SNE / UMAP maps of the probe, aligned epoch to epoch, cached in the
               run folder, made by an EmbeddingWorker; k-NN accuracy beside them
    cam.py     CAM, Grad-CAM, Grad-CAM++, Score-CAM, Eigen-CAM behind one registry, and the
               overlay of a heatmap on an image
    load.py    load_run_model: a run's model rebuilt from its folder alone
    validation.py  one checkpoint on the whole val split: confusion matrix, surest mistakes
    activations.py every conv layer's feature maps for one image, the first layer's filters
    hooks.py   layer lookup by name and the hook context manager everything uses
    tools.py   what ``python -m lab explain`` and ``embed`` do, and one image by every method

Names are imported on first use (PEP 562), so the embedding worker's child process can
import :mod:`lab.insight.embed` without torch, and nothing here imports scikit-learn
or umap-learn before a map needs them: training machines need neither.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "CAM_METHODS": "cam", "CamResult": "cam", "explain": "cam", "get_cam_method": "cam", "overlay": "cam",
    "EmbeddingWorker": "embed", "ensure_maps": "embed", "load_map": "embed",
    "InsightError": "errors",
    "InputStats": "load", "load_run_model": "load",
    "ProbeRecorder": "probe", "insight_callbacks": "probe", "knn_accuracy": "probe", "load_cams": "probe",
    "load_probe": "probe", "probe_indices": "probe",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lab.insight' has no attribute {name!r}")
    return getattr(importlib.import_module(f"lab.insight.{_EXPORTS[name]}"), name)
