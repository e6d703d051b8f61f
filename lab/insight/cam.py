"""Class activation maps: which pixels made the network say "circle".

    result = get_cam_method("gradcam")(model, layer=None)(x_norm, target="pred")
    result.heatmaps        # float32 (B, H, W) in [0, 1] at input resolution
    explain(model, x_norm, "cam")                 # the same, heatmaps only

Built like pytorch-grad-cam (``base_cam.py`` / ``grad_cam.py``): :class:`BaseCAM`
does the plumbing (eval mode restored afterwards, one forward pass with the layer
captured by a hook that is always released, gradients of the target logits with
respect to that layer, targets resolved), and each method overrides one method,
``weights`` (per-channel weights) or, for methods that are not a weighted sum of
channels, ``raw_maps``. Raw maps (signed, layer resolution) stay apart from
display: ReLU, upsampling and scaling to [0, 1] are :func:`to_heatmaps`; colour is
:func:`lab.insight.overlay.overlay`.

Methods (``CAM_METHODS``):

- ``cam`` (Zhou et al., 2016): exact for nets ending in global average pooling +
  the dense output layer; the map is the class's output weights applied to the
  last feature maps, and its spatial mean plus the bias is the logit itself.
- ``gradcam`` (Selvaraju et al., 2017): any map layer; channel weight = mean
  gradient of the target logit over the map. At the GAP input it equals CAM.
- ``gradcam++`` (Chattopadhyay et al., 2018): positive gradients weighted per
  pixel, better when a class appears several times.
- ``scorecam`` (Wang et al., 2020): no gradients; each channel, upsampled and
  used as a mask on the input, is weighted by the target score it keeps. One
  forward pass per channel per image.
- ``eigencam`` (Muhammad & Yeasin, 2020): first principal component of the
  layer's activations; not class specific (the target is ignored).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lab.insight.answers import ClassAnswers
from lab.insight.errors import InsightError
from lab.insight.hooks import capture, children, default_cam_layer, get_layer, layer_type, map_layers
from lab.model.budget import model_batch
from lab.model.spec import eval_mode
from lab.registry import Registry

Target = Any  # None | 'pred' | 'true' | class index | sequence/tensor of class indices (one per image)


@dataclass
class LayerState:
    """What a method's ``weights`` gets: one batch seen at the explained layer."""

    x: torch.Tensor  # (B, C, H, W) normalised input, on the model's device
    activations: torch.Tensor  # (B, K, h, w) the layer's output, detached
    gradients: torch.Tensor | None  # (B, K, h, w) d(target logit)/d(activations); None without gradients
    logits: torch.Tensor  # (B, classes)
    targets: torch.Tensor  # (B,) the class explained for each image


@dataclass
class CamResult(ClassAnswers):
    """Heatmaps for display plus what produced them (``preds`` and ``confidence`` from ``probs``)."""

    method: str
    layer: str
    heatmaps: torch.Tensor  # float32 (B, H, W) in [0, 1], input resolution, CPU
    raw: torch.Tensor  # float32 (B, h, w) signed map at the layer's resolution, before ReLU, CPU
    logits: torch.Tensor  # float32 (B, classes), CPU
    targets: torch.Tensor  # int64 (B,) class explained, CPU

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.softmax(1)


def resolve_targets(target: Target, logits: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Class index per image: predicted (None/'pred'), true ('true', needs labels), or given."""
    batch, classes = logits.shape
    if target is None or (isinstance(target, str) and target.strip().lower() in ("pred", "predicted")):
        return logits.detach().argmax(1)
    if isinstance(target, str) and target.strip().lower() == "true":
        if labels is None:
            raise InsightError("target 'true' needs the images' labels; use 'pred' or a class index")
        chosen = torch.as_tensor(labels, dtype=torch.long, device=logits.device).reshape(-1)
    elif isinstance(target, str) and target.strip().isdigit():
        chosen = torch.full((batch,), int(target), dtype=torch.long, device=logits.device)
    elif isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        chosen = torch.full((batch,), int(target), dtype=torch.long, device=logits.device)
    elif isinstance(target, (torch.Tensor, np.ndarray, Sequence)) and not isinstance(target, str):
        chosen = torch.as_tensor(np.asarray(target) if not isinstance(target, torch.Tensor) else target,
                                 dtype=torch.long, device=logits.device).reshape(-1)
    else:
        raise InsightError(f"unknown target {target!r}; use 'pred', 'true' or a class index 0..{classes - 1}")
    if chosen.shape != (batch,):
        raise InsightError(f"got {chosen.numel()} targets for {batch} images")
    if batch and (int(chosen.min()) < 0 or int(chosen.max()) >= classes):
        raise InsightError(f"target class out of range; the model has classes 0..{classes - 1}")
    return chosen


def to_heatmaps(raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Display step: ReLU (only evidence *for* the class), bilinear upsampling to
    ``size`` (H, W), then each map scaled to [0, 1]. An all-zero map stays zero."""
    maps = torch.nan_to_num(raw.float(), nan=0.0, posinf=0.0, neginf=0.0).clamp_min(0)  # (B, h, w)
    maps = F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]  # (B, H, W)
    low = maps.amin(dim=(1, 2), keepdim=True)
    span = maps.amax(dim=(1, 2), keepdim=True) - low
    return torch.where(span > 0, (maps - low) / span.clamp_min(1e-12), torch.zeros_like(maps))


class BaseCAM:
    """Plumbing shared by every method; subclasses override ``weights`` (or ``raw_maps``)."""

    name = ""
    title = ""
    uses_gradients = True  # gradients of the target logit w.r.t. the layer are taken
    class_specific = True  # False: the map ignores the target class

    def __init__(self, model: nn.Module, layer: str | None = None):
        self.model = model
        self.layer_name = layer or self.default_layer(model)
        self.layer = get_layer(model, self.layer_name)
        self.check_layer()

    @classmethod
    def default_layer(cls, model: nn.Module) -> str:
        return default_cam_layer(model)

    def check_layer(self) -> None:
        """Refuse, before any computing, a layer this method cannot explain."""
        if self.layer_name in children(self.model) and self.layer_name not in map_layers(self.model):
            raise InsightError(f"layer {self.layer_name!r} gives a flat vector, not feature maps; "
                               f"{self.name} needs one of: {', '.join(map_layers(self.model))}")

    # -- the one place subclasses change

    def weights(self, state: LayerState) -> torch.Tensor:
        """(B, K) weight of each channel of the layer for each image's target class."""
        raise NotImplementedError

    def raw_maps(self, state: LayerState) -> torch.Tensor:
        """(B, h, w) signed map: the channels summed with ``weights``."""
        w = self.weights(state)  # (B, K)
        return torch.einsum("bk,bkhw->bhw", w, state.activations)

    # -- plumbing

    def __call__(self, x: torch.Tensor, target: Target = None, labels: torch.Tensor | None = None) -> CamResult:
        """Explain a batch of normalised images (B, C, H, W) for the target class, in as many passes as the
        model's feature maps need to stay within the server's memory limit (lab.model.budget)."""
        if x.dim() != 4:
            raise InsightError(f"expected a batch of images (B, C, H, W), got shape {tuple(x.shape)}")
        step = model_batch(self.model, len(x), backward=self.uses_gradients)
        if step >= len(x):
            return self._explain(x, target, labels)
        per_image = isinstance(target, (torch.Tensor, np.ndarray, Sequence)) and not isinstance(target, str)
        parts = [self._explain(x[i:i + step], target[i:i + step] if per_image else target,
                               None if labels is None else labels[i:i + step]) for i in range(0, len(x), step)]
        return CamResult(parts[0].method, parts[0].layer,
                         *(torch.cat([getattr(part, key) for part in parts]) for key in ("heatmaps", "raw", "logits",
                                                                                       "targets")))

    def _explain(self, x: torch.Tensor, target: Target, labels: torch.Tensor | None) -> CamResult:
        device = next(self.model.parameters()).device
        # inference_mode(False): callable from inside an evaluation block; the clone turns a
        # possible inference tensor into one autograd may record.
        with torch.inference_mode(False), eval_mode(self.model):
            x = x.to(device, torch.float32).clone().requires_grad_(self.uses_gradients)  # in the graph even
            # when the explained layer has no parameters before it
            with torch.set_grad_enabled(self.uses_gradients), capture(self.layer) as seen:
                logits = self.model(x)  # (B, classes)
                acts = seen.output
                if acts is None or acts.dim() != 4:
                    shape = None if acts is None else tuple(acts.shape)
                    raise InsightError(f"layer {self.layer_name!r} gives {shape}, not feature maps (B, K, h, w)")
                targets = resolve_targets(target, logits, labels)
                grads = None
                if self.uses_gradients:
                    score = logits.gather(1, targets[:, None]).sum()  # images are independent in eval mode
                    (grads,) = torch.autograd.grad(score, acts)
            # Hooks are gone here; methods that run the model again (Score-CAM) see a clean model.
            state = LayerState(x.detach(), acts.detach().float(), None if grads is None else grads.float(),
                               logits.detach().float(), targets)
            with torch.no_grad():
                raw = self.raw_maps(state)  # (B, h, w)
        return CamResult(self.name, self.layer_name, to_heatmaps(raw, tuple(x.shape[-2:])).cpu(),
                         raw.float().cpu(), state.logits.cpu(), targets.cpu())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(layer={self.layer_name!r})"


class CAM(BaseCAM):
    """Exact CAM: output-layer weights of the target class on the maps feeding global average pooling."""

    name, title = "cam", "CAM"
    uses_gradients = False

    @classmethod
    def default_layer(cls, model: nn.Module) -> str:
        names = children(model)
        gap = next((i for i, n in enumerate(names) if layer_type(n) == "global_avg_pool"), None)
        if gap is None or gap == 0:
            raise InsightError("CAM needs a net ending in global_avg_pool + the dense output layer; "
                               "this one has no global_avg_pool: use gradcam")
        return names[gap - 1]

    def check_layer(self) -> None:
        expected = self.default_layer(self.model)
        if self.layer_name != expected:
            raise InsightError(f"CAM is defined at the layer feeding global_avg_pool ({expected!r}), "
                               f"not {self.layer_name!r}; use gradcam for other layers")
        names = children(self.model)
        head = names[names.index(expected) + 2:]  # after the global_avg_pool
        if [layer_type(n) for n in head if layer_type(n) != "dropout"] != ["output"]:
            raise InsightError("CAM needs global_avg_pool followed directly by the dense output layer "
                               f"(this net has {', '.join(head)} after it); use gradcam")
        self.linear = next(m for m in get_layer(self.model, "output").modules() if isinstance(m, nn.Linear))

    def weights(self, state: LayerState) -> torch.Tensor:
        return self.linear.weight.detach().float()[state.targets]  # (B, K): row of the target class


class GradCAM(BaseCAM):
    """Grad-CAM: channel weight = gradient of the target logit averaged over the map."""

    name, title = "gradcam", "Grad-CAM"

    def weights(self, state: LayerState) -> torch.Tensor:
        return state.gradients.mean(dim=(2, 3))  # (B, K)


class GradCAMPlusPlus(BaseCAM):
    """Grad-CAM++: per-pixel coefficients on positive gradients (eq. 19 of the paper,
    with the exponential-score approximation pytorch-grad-cam uses)."""

    name, title = "gradcam++", "Grad-CAM++"

    def weights(self, state: LayerState) -> torch.Tensor:
        g, a = state.gradients, state.activations  # (B, K, h, w)
        g2, g3 = g.pow(2), g.pow(3)
        sum_a = a.sum(dim=(2, 3), keepdim=True)  # (B, K, 1, 1)
        alpha = g2 / (2 * g2 + sum_a * g3 + 1e-6)
        alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
        return (alpha * g.clamp_min(0)).sum(dim=(2, 3))  # (B, K)


class ScoreCAM(BaseCAM):
    """Score-CAM: channel weight = softmax over channels of the target logit when the
    input is masked by that channel's upsampled, [0, 1]-scaled map."""

    name, title = "scorecam", "Score-CAM"
    uses_gradients = False
    batch_size = 256  # masked images per forward pass

    def weights(self, state: LayerState) -> torch.Tensor:
        x, acts = state.x, state.activations
        up = F.interpolate(acts, size=x.shape[-2:], mode="bilinear", align_corners=False)  # (B, K, H, W)
        low = up.amin(dim=(2, 3), keepdim=True)
        masks = (up - low) / (up.amax(dim=(2, 3), keepdim=True) - low).clamp_min(1e-8)
        scores = torch.empty(acts.shape[:2], device=x.device)  # (B, K)
        step = model_batch(self.model, self.batch_size)
        for b in range(len(x)):
            for k in range(0, acts.shape[1], step):
                masked = x[b:b + 1] * masks[b, k:k + step, None]  # (k, C, H, W)
                scores[b, k:k + len(masked)] = self.model(masked)[:, state.targets[b]].float()
        return scores.softmax(dim=1)


class EigenCAM(BaseCAM):
    """Eigen-CAM: the activations projected on their first principal component.

    Class agnostic; the sign is chosen so the larger extreme is positive (the sign
    of a singular vector is arbitrary).
    """

    name, title = "eigencam", "Eigen-CAM"
    uses_gradients = False
    class_specific = False

    def raw_maps(self, state: LayerState) -> torch.Tensor:
        a = state.activations  # (B, K, h, w)
        b, k, h, w = a.shape
        flat = a.reshape(b, k, h * w).transpose(1, 2).double()  # (B, hw, K)
        flat = flat - flat.mean(dim=1, keepdim=True)
        # The first principal component from the smaller of the two Gram matrices: an
        # eigh of (hw x hw) or (K x K) is much cheaper than an SVD of (hw x K).
        if h * w <= k:
            vals, vecs = torch.linalg.eigh(flat @ flat.transpose(1, 2))  # (B, hw), (B, hw, hw) ascending
            proj = vecs[:, :, -1] * vals[:, -1:].clamp_min(0).sqrt()  # (B, hw) = U_1 * sigma_1
        else:
            _, vecs = torch.linalg.eigh(flat.transpose(1, 2) @ flat)  # (B, K, K)
            proj = torch.einsum("bpk,bk->bp", flat, vecs[:, :, -1])  # (B, hw)
        proj = proj.float()
        flip = proj.amin(dim=1).abs() > proj.amax(dim=1).abs()
        proj = torch.where(flip[:, None], -proj, proj)
        return proj.reshape(b, h, w)


CAM_METHODS: Registry[type[BaseCAM]] = Registry(
    "CAM method", {m.name: m for m in (CAM, GradCAM, GradCAMPlusPlus, ScoreCAM, EigenCAM)}, InsightError,
    aliases={"gradcampp": "gradcam++", "gradcam_plusplus": "gradcam++"})


def get_cam_method(name: str) -> type[BaseCAM]:
    """The method class for a name ('Grad-CAM', 'grad_cam' and 'gradcam' all work)."""
    return CAM_METHODS.lookup(name)


def explain(model: nn.Module, x_norm: torch.Tensor, method: str = "gradcam", layer: str | None = None,
            target: Target = None, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Heatmaps (B, H, W) in [0, 1] at the input's resolution, for normalised images."""
    return get_cam_method(method)(model, layer)(x_norm, target, labels).heatmaps


def auto_method(model: nn.Module) -> str:
    """'cam' where it is exact (GAP + dense output), else 'gradcam'."""
    try:
        CAM(model)
    except InsightError:
        return "gradcam"
    return "cam"


def pointing_hits(heatmaps: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """The pointing game (Zhang et al., 2016), strict form: is each heatmap's maximum
    inside its object's box? heatmaps (B, H, W); boxes (B, 4) x0, y0, x1, y1 in pixel-edge
    coordinates (as ``Dataset.val_boxes``). A uniformly random point hits with
    probability about the box's share of the image: that is the baseline to beat."""
    _, _, w = heatmaps.shape
    idx = heatmaps.flatten(1).argmax(1)
    y, x = (idx // w).float() + 0.5, (idx % w).float() + 0.5  # pixel centres
    boxes = boxes.to(heatmaps.device).float()
    return (x >= boxes[:, 0]) & (x <= boxes[:, 2]) & (y >= boxes[:, 1]) & (y <= boxes[:, 3])

