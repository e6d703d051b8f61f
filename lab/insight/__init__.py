"""Looking inside a network: its feature space epoch by epoch, and where it looks.

    probe.py   ProbeRecorder: a Trainer listener recording a fixed, stratified probe of
               val images (features, predictions, labels) and CAM samples every epoch
    embed.py   PCA / t-SNE / UMAP maps of the probe, aligned epoch to epoch, cached in the
               run folder, made by an EmbeddingWorker thread; k-NN accuracy beside them
    cam.py     CAM, Grad-CAM, Grad-CAM++, Score-CAM, Eigen-CAM behind one registry, and the
               overlay of a heatmap on an image
    load.py    load_run_model: a run's model rebuilt from its folder alone
    hooks.py   layer lookup by name and the hook context manager everything uses

Nothing here imports scikit-learn or umap-learn at module level: training machines
need neither.
"""

from lab.insight.cam import CAM_METHODS, CamResult, explain, get_cam_method, overlay
from lab.insight.embed import EmbeddingWorker, ensure_maps, load_map
from lab.insight.errors import InsightError
from lab.insight.load import InputStats, load_run_model
from lab.insight.probe import (ProbeRecorder, insight_callbacks, knn_accuracy, load_cams, load_probe,
                               probe_indices, probe_summary, recorded_epochs)

__all__ = [
    "CAM_METHODS", "CamResult", "EmbeddingWorker", "InputStats", "InsightError", "ProbeRecorder",
    "ensure_maps", "explain", "get_cam_method", "insight_callbacks", "knn_accuracy", "load_cams", "load_map",
    "load_probe", "load_run_model", "overlay", "probe_indices", "probe_summary", "recorded_epochs",
]
