"""The training engine: a Trainer that announces events to listeners.

The hot loop is built like airbench's: the whole dataset sits on the training
device as uint8, each epoch is a device-side permutation, augmentation and
normalisation are batched tensor ops, and the host reads numbers back only once
per logging interval (so CUDA is never stalled per batch). Where the device
multiplies bf16 natively (CUDA, recent x86 CPUs) it adds bf16 autocast and
channels_last; on CUDA the step is replayed as a CUDA graph (:mod:`lab.train.cuda_graph`).

Listeners (``Callback`` subclasses) get the events in ``EVENTS``; they steer
only through ``trainer.should_stop``. The RunStore recorder, the CLI printer
and the live UI are all listeners.

A run may start from another run's weights and freeze layers (:mod:`lab.train.finetune`);
what that did, and the data's memory on the device, are in its config.json and read
out by :func:`lab.train.finetune.run_notes`.

The module is longer than most because it keeps what a run *is* together: its
config, its events, the loop that emits them and the recorder that saves them are
read side by side; the CUDA graph, augmentation and devices live apart.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterable

import torch
import torch.nn.functional as F

from lab.data import Dataset, DatasetError, load_dataset
from lab.data.dataset import check_data_memory, classes_in_turn
from lab.model.backbone import tell_input_stats
from lab.model.budget import batch_that_fits, check_training_batch
from lab.model.init import INITS, init_model
from lab.model.layers import SpecError
from lab.model.spec import SpecNet, analyze, build_model, check_size, eval_mode, load_spec, summarize
from lab.train.augment import AugmentConfig, get_augment
from lab.train.augment_ops import augment_batch
from lab.train.cuda_graph import GRAPH_WARMUP, CudaGraphStep, cuda_run_ended, cuda_run_started
from lab.train.device import native_bf16, resolve_device
from lab.train.finetune import (
    FREEZE_POLICIES,
    SourceWeights,
    Transfer,
    freeze,
    frozen_layers,
    match_weights,
    mismatch_detail,
)
from lab.train.ranges import image_size_problem, setting_ranges

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad")
MOMENTUM_OPTIMIZERS = ("sgd", "rmsprop")  # the ones that read TrainConfig.momentum
SCHEDULES = ("none", "step", "cosine", "onecycle")
EVENTS = ("on_run_start", "on_batch_end", "on_epoch_end", "on_run_end")
# Characters in a run's name and in its owner's name: what a table cell and a gallery card show.
# Checked where a name is made (TrainConfig, RunStore.create, a sweep's plan), not only on rename.
MAX_NAME, MAX_OWNER = 80, 40
EVAL_BATCH = 1024  # images per evaluation pass, fewer when the model's maps need it (lab.model.budget)


class ConfigError(ValueError):
    """A training setting out of range; the message names the setting and the range."""


def text_problem(label: str, value: Any, limit: int) -> str:
    """'' when ``value`` is text of at most ``limit`` characters, else what to change (naming ``label``)."""
    if not isinstance(value, str):
        return f"{label} must be text, got {type(value).__name__}"
    if len(value) > limit:
        return f"{label} can have at most {limit} characters, this one has {len(value):,}"
    return ""


@dataclass
class TrainConfig:
    """Everything that defines a run; saved in config.json so the run can be redone."""

    spec: dict = field(default_factory=dict)  # model spec (lab.model.spec); a preset name is resolved on load
    dataset: str = "shapes"  # name in the dataset registry, or folder:PATH
    augment: Any = "none"  # preset name, JSON string or dict of AugmentConfig keys
    epochs: int = 5
    batch_size: int = 64
    optimizer: str = "adam"  # adam | adamw | sgd | rmsprop | adagrad
    lr: float = 1e-3
    momentum: float = 0.9  # sgd and rmsprop
    nesterov: bool = True  # sgd only; needs momentum > 0
    # How conv and dense weights start (lab.model.init.INITS); a layer's own ``init`` in the spec overrides it.
    init: str = "default"
    weight_decay: float = 0.0
    schedule: str = "none"  # none | step (x0.1 at 1/2 and 3/4) | cosine | onecycle (25% warm-up)
    label_smoothing: float = 0.0
    eval_flip: bool = False  # evaluate each image and its mirror, averaging the logits (test-time augmentation)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    compile: bool = False  # torch.compile the model (CUDA; compile time is reported apart)
    cuda_graph: bool = True  # replay the train step as one CUDA graph (CUDA only, not with compile)
    train_limit: int = 0  # use only N training images, classes in turn (0 = all), for quick demos
    # The longer side of the images, at most (lab.data.registry): 0 = the data set's default (a folder's
    # images fit 64 px; built-ins keep theirs), up to LARGEST_SIDE; never enlarged.
    image_size: int = 0
    init_from: str = ""  # a run (id, id prefix or name) whose best weights this run starts from; "" = none
    # Layers whose weights do not train (their batchnorms keep their statistics): spec layer names, or one
    # policy of lab.train.finetune.FREEZE_POLICIES ("all_but_output", "loaded"); [] = none.
    freeze: list[str] = field(default_factory=list)
    insight: bool = True  # record the feature-space probe and CAM samples at epoch 0 and every epoch (lab.insight)
    probe_size: int = 1000  # probe images, a stratified sample of the val split (range: lab.train.ranges)
    probe_layer: str = ""  # layer whose output the probe records; "" = the input of the output layer
    name: str = ""  # the run's name, at most MAX_NAME characters; "" = its id
    owner: str = ""  # who started it (the sidebar's name box), at most MAX_OWNER characters
    # The sweep this run belongs to (lab.runs.sweep: id, name, its combination); {} for a single run.
    # A record for grouping runs only: training never reads it, so each run is complete on its own.
    sweep: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        config = cls(**data)
        if not isinstance(config.spec, dict):
            config.spec = load_spec(config.spec)
        return config

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        """Raise :class:`ConfigError` for values a run cannot use, with what to change."""
        for name, allowed in setting_ranges().items():
            problem = allowed.problem(name, getattr(self, name))
            if problem:
                raise ConfigError(problem)
        for key in ("insight", "compile", "cuda_graph", "eval_flip", "nesterov"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{key} must be true or false, got {getattr(self, key)!r}")
        if image_size_problem(self.image_size):
            raise ConfigError(image_size_problem(self.image_size))
        for key, limit in (("name", MAX_NAME), ("owner", MAX_OWNER), ("init_from", MAX_NAME)):
            problem = text_problem(key, getattr(self, key), limit)
            if problem:
                raise ConfigError(problem)
        self._check_probe_layer()
        self._check_freeze()
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; use one of: {', '.join(OPTIMIZERS)}")
        if self.optimizer == "sgd" and self.nesterov and self.momentum == 0:
            raise ConfigError("nesterov needs momentum above 0 (it looks ahead along the momentum): "
                              "set momentum, e.g. 0.9, or turn nesterov off")
        if not isinstance(self.init, str) or self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}; use one of: {', '.join(INITS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; use one of: {', '.join(SCHEDULES)}")
        try:
            resolve_device(self.device)
            get_augment(self.augment)
        except ValueError as err:
            raise ConfigError(str(err)) from None

    def _check_probe_layer(self) -> None:
        """Refuse a probe layer the spec does not have; names do not depend on the dataset.

        A spec with problems is left to the Trainer, which reports them in full.
        """
        if not isinstance(self.probe_layer, str):
            raise ConfigError(f"probe_layer must be a layer name, got {self.probe_layer!r}")
        if not self.probe_layer:
            return
        summary = analyze(self.spec)
        names = [row.name for row in summary.rows]
        if summary.ok and self.probe_layer not in names:
            raise ConfigError(f"probe_layer {self.probe_layer!r} is not a layer of this model; "
                              f"use one of: {', '.join(names)}")

    def _check_freeze(self) -> None:
        """Refuse a freeze list that names no layer with weights, or mixes a policy with names."""
        if not isinstance(self.freeze, list) or not all(isinstance(name, str) for name in self.freeze):
            raise ConfigError(f"freeze must be a list of layer names, got {self.freeze!r}")
        policies = [name for name in self.freeze if name in FREEZE_POLICIES]
        if policies and len(self.freeze) > 1:
            raise ConfigError(f"freeze {policies[0]!r} is a policy: give it alone, or list layer names instead")
        if policies == ["loaded"] and not self.init_from:
            raise ConfigError("freeze 'loaded' freezes the layers init_from loads: set init_from, or name the layers")
        summary = analyze(self.spec)
        if policies or not summary.ok:  # a spec with problems is left to the Trainer, which reports them in full
            return
        weighted = [row.name for row in summary.rows if row.params]
        for name in self.freeze:
            if name not in weighted:
                what = "has no weights" if name in {r.name for r in summary.rows} else "is not a layer of this model"
                raise ConfigError(f"freeze: {name!r} {what}; layers with weights: {', '.join(weighted)} "
                                  f"(or a policy: {', '.join(FREEZE_POLICIES)})")


class Callback:
    """Base listener: every hook is a no-op; override the ones you need."""

    def on_run_start(self, trainer: "Trainer") -> None: ...

    def on_batch_end(self, trainer: "Trainer", info: dict) -> None:
        """Called once per logging interval (not every batch): step, epoch, progress, loss."""

    def on_epoch_end(self, trainer: "Trainer", metrics: dict) -> None: ...

    def on_run_end(self, trainer: "Trainer", status: str, message: str) -> None: ...


def best_row(metrics: Iterable[dict]) -> dict | None:
    """The epoch's metrics row with the highest validation accuracy, the first one on ties: "the best
    epoch" everywhere a run is shown, and the epoch whose weights are ``best.pt`` (RunRecorder)."""
    return max(metrics, key=lambda m: m.get("val_acc", -1), default=None)


@dataclass
class RunResult:
    status: str  # finished | stopped | failed | diverged
    message: str
    history: list[dict]

    @property
    def best(self) -> dict | None:
        return best_row(self.history)


class Diverged(RuntimeError):
    """The loss became NaN, infinite, or exploded far above chance level."""


def make_optimizer(config: TrainConfig, params: Iterable[torch.nn.Parameter],
                   fused: bool = False) -> torch.optim.Optimizer:
    """The configured optimizer; ``fused`` (CUDA) updates all parameters in one or two kernels.

    RMSprop has no fused kernel, and Adagrad's is for the CPU only: both keep PyTorch's per-parameter-group default.
    """
    wd = config.weight_decay
    fused_arg = {"fused": True} if fused else {}
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                               weight_decay=wd, **fused_arg)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.lr, momentum=config.momentum, weight_decay=wd)
    if config.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=config.lr, weight_decay=wd)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=wd, **fused_arg)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=wd, **fused_arg)


def lr_factor(schedule: str, step: int, total_steps: int) -> float:
    """Multiplier of the base lr at an optimizer step; one function for every schedule."""
    progress = step / max(total_steps, 1)
    if schedule == "step":
        return 0.1 ** ((progress >= 0.5) + (progress >= 0.75))
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "onecycle":  # linear warm-up over the first quarter, then linear decay to 0
        return progress / 0.25 if progress < 0.25 else max(0.0, (1 - progress) / 0.75)
    return 1.0


class Trainer:
    """Trains one spec on one dataset; ``run()`` blocks until the run ends.

    Any exception inside the run ends it ``failed`` (``diverged`` for NaN loss)
    and is reported through ``on_run_end``: a job never takes its host down.
    """

    log_interval_s = 0.5  # how often on_batch_end fires: the live page needs ~1-2 updates/s

    def __init__(self, config: TrainConfig, callbacks: Iterable[Callback] = (), data_dir=None,
                 dataset: Dataset | None = None, source: SourceWeights | None = None):
        """``dataset`` replaces the configured one (already at its image size); ``source`` is the weights of
        ``config.init_from`` (lab.runs.store.RunStore.source_weights), required when that is set."""
        config.validate()
        self.config = config
        self.callbacks = list(callbacks)
        self.dataset = dataset or load_dataset(config.dataset, data_dir, image_size=config.image_size)
        self.device = resolve_device(config.device)
        self.summary = summarize(config.spec, self.dataset.shape, self.dataset.num_classes)
        self._check_size()
        ds = self.dataset
        self.data_images = min(config.train_limit or len(ds.train_y), len(ds.train_y)) + len(ds.val_y)
        self.data_mb = self._check_data_memory()
        self.augment: AugmentConfig = get_augment(config.augment)
        self.should_stop = False
        self.history: list[dict] = []
        self.val_preds: torch.Tensor | None = None  # the last evaluate's prediction per image (int16, CPU)
        self.step = 0
        self.epoch = 0
        # The model is built here, on the CPU, so that what init_from and freeze cannot use is refused
        # before a run starts; _setup moves it to the device. Initialised under the run's seed, then
        # init_from's weights overwrite what they cover.
        torch.manual_seed(config.seed)
        self.model: SpecNet = build_model(config.spec, ds.shape, ds.num_classes)
        init_model(self.model, config.init)
        self.transfer = self._start_from(source)
        tell_input_stats(self.model, *ds.channel_stats())  # after init_from: a backbone sees this data set's pixels
        self.frozen, self.frozen_norms = self._freeze()
        self.compile_seconds = 0.0
        self.graph_status = "off"  # "captured" once the train step is a CUDA graph, or why capture failed
        # A mean loss 50x that of uniform guessing only happens to a run that has blown up.
        self.exploded_loss = 50 * math.log(self.dataset.num_classes)

    # -- events

    def emit(self, event: str, *args: Any) -> None:
        """The one dispatch loop: call ``event`` on every listener in order."""
        for callback in self.callbacks:
            getattr(callback, event)(self, *args)

    def stop(self) -> None:
        """Ask the run to end; honoured before the next batch."""
        self.should_stop = True

    # -- set-up

    def _start_from(self, source: SourceWeights | None) -> Transfer | None:
        """Copy ``source``'s matching weights into the new model (lab.train.finetune); refuse when none fit."""
        if not self.config.init_from:
            return None
        if source is None:
            raise ConfigError(f"init_from {self.config.init_from!r}: the Trainer needs that run's weights "
                              "(lab.runs.store.RunStore.source_weights)")
        weights, transfer = match_weights(self.model, source, self.dataset.classes)
        if not transfer.loaded and not transfer.partly:
            raise ConfigError(f"no layer of run {source.run_id} fits this model: "
                              f"{mismatch_detail(self.model, source)}; start from a run of the same spec, or "
                              "change only the layers that should start fresh")
        self.model.load_state_dict(weights, strict=False)
        return transfer

    def _freeze(self) -> tuple[list[str], list[torch.nn.Module]]:
        """The frozen layers and their batchnorms; refused when nothing would be left to train."""
        weighted = [row.name for row in self.summary.rows if row.params]
        names = frozen_layers(self.config.freeze, weighted, self.transfer.loaded if self.transfer else [])
        norms = freeze(self.model, names)
        if not any(p.requires_grad for p in self.model.parameters()):
            raise ConfigError(f"freeze leaves no weights to train (frozen: {', '.join(names)}); "
                              "leave at least the output layer out of it")
        return names, norms

    def _check_data_memory(self) -> float:
        """MB of the images this run puts on the device, refused over the server's limit before any is moved."""
        try:
            return check_data_memory(self.data_images, self.dataset.shape)
        except DatasetError as err:
            raise ConfigError(str(err)) from None

    def train_mode(self) -> None:
        """Training mode, but frozen layers' batchnorms stay in eval mode so their statistics do not drift."""
        self.model.train()
        for norm in self.frozen_norms:
            norm.eval()

    def _setup(self) -> None:
        torch.manual_seed(self.config.seed)
        cuda = self.device.type == "cuda"
        if cuda:
            cuda_run_started(self)
        # No cudnn.benchmark: on an H100 its autotuning cost 5 s in a process's first epoch and
        # gained nothing afterwards (0.76 s/epoch either way for a ResNet-9 at batch 512).
        ds = self.dataset
        limit = self.config.train_limit or len(ds.train_y)
        chosen = classes_in_turn(ds.train_y, limit) if limit < len(ds.train_y) else slice(None)
        self.train_x = ds.train_x[chosen].to(self.device)  # uint8 (N, C, H, W) resident on the device
        self.train_y = ds.train_y[chosen].to(self.device)
        self.val_x = ds.val_x.to(self.device)
        self.val_y = ds.val_y.to(self.device)
        mean, std = ds.channel_stats()
        self.mean = torch.tensor(mean, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=self.device).view(1, -1, 1, 1).clamp_min(1e-3)
        self.bf16 = native_bf16(self.device)
        self.memory_format = torch.channels_last if self.bf16 else torch.contiguous_format
        self.model = self.model.to(self.device, memory_format=self.memory_format)
        self.forward = self.model
        if self.config.compile:
            started = time.perf_counter()
            self.forward = torch.compile(self.model)
            self.compile_seconds = time.perf_counter() - started
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(self.config, trainable, fused=cuda)
        self.steps_per_epoch = max(1, len(self.train_y) // self.config.batch_size)
        total = self.steps_per_epoch * self.config.epochs
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(self.config.schedule, step, total))
        self.generator = torch.Generator(self.device).manual_seed(self.config.seed)
        # Device-side sums of the epoch (loss, correct) and of the logging interval (loss), updated in place
        # so that a captured CUDA graph keeps writing into the same tensors.
        self.loss_sum = torch.zeros((), device=self.device)
        self.correct = torch.zeros((), device=self.device, dtype=torch.long)
        self.logged_loss = torch.zeros((), device=self.device)
        graphed = cuda and self.config.cuda_graph and not self.config.compile and self.steps_per_epoch > GRAPH_WARMUP
        self.train_step = CudaGraphStep(self) if graphed else self.eager_step

    def prepare(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 images -> float in [0, 1] on the device, in the model's memory format."""
        return x_uint8.to(self.device).float().div_(255).contiguous(memory_format=self.memory_format)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def autocast(self):
        """bf16 autocast where the device multiplies bf16 natively (:func:`native_bf16`), else a no-op.

        No cast cache: each weight is cast once per forward anyway, and a cache would
        hold tensors across CUDA graph replays.
        """
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16, cache_enabled=False)

    def forward_backward(self, idx: torch.Tensor, generator: torch.Generator | None) -> None:
        """Gather, augment, forward, backward for the training images ``idx``; sums stay on the device.

        The one body of a training step, run eagerly or captured once as a CUDA graph,
        so it reads nothing back to the host and changes the sums only in place.
        """
        y = self.train_y[idx]
        x, targets = augment_batch(self.prepare(self.train_x[idx]), y, self.augment,
                                   self.dataset.num_classes, generator)
        with self.autocast():
            logits = self.forward(self.normalize(x))
            loss = F.cross_entropy(logits.float(), targets, label_smoothing=self.config.label_smoothing)
        loss.backward()
        detached = loss.detach()
        self.loss_sum += detached * len(idx)
        self.logged_loss += detached
        self.correct += (logits.argmax(1) == y).sum()

    def eager_step(self, idx: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.forward_backward(idx, self.generator)
        self.optimizer.step()
        self.scheduler.step()

    # -- the loop

    def run(self) -> RunResult:
        status, message = "finished", ""
        # Tiny values (a frozen random backbone's deep maps) flush to zero while the run trains: as subnormal
        # floats they made CPU convolutions up to 30 times slower, for no difference a model can learn from.
        # The flag is the thread's floating-point state, so it is put back for whatever runs here next.
        torch.set_flush_denormal(True)
        try:
            self._setup()
            self.emit("on_run_start")
            for epoch in range(1, self.config.epochs + 1):
                self.epoch = epoch
                self._train_epoch()
                if self.should_stop:
                    status, message = "stopped", f"stopped by request during epoch {epoch}"
                    break
        except Diverged as err:
            status, message = "diverged", str(err)
        except torch.cuda.OutOfMemoryError:
            status, message = "failed", self._oom_advice()
        except Exception as err:  # a job must end as a failed run, never take the server down
            status, message = "failed", f"{type(err).__name__}: {err}"
        finally:
            self._release_memory()
            torch.set_flush_denormal(False)
        self.emit("on_run_end", status, message)
        return RunResult(status, message, self.history)

    def _check_size(self) -> None:
        """Refuse, before any memory is taken, a model or batch too big for this server: its parameters,
        its training step, and one image of its evaluation (whose batch then shrinks to what fits)."""
        check_size(self.summary)
        try:
            check_training_batch(self.summary, self.config.batch_size)
            self.eval_batch = batch_that_fits(self.summary, EVAL_BATCH)
        except SpecError as err:
            raise ConfigError(str(err)) from None

    def _oom_advice(self) -> str:
        smaller = max(1, self.config.batch_size // 2)
        return (f"out of GPU memory with batch size {self.config.batch_size}; "
                f"try batch size {smaller} or a smaller model")

    def _release_memory(self) -> None:
        cuda_run_ended(self)
        for name in ("train_x", "train_y", "val_x", "val_y", "optimizer", "train_step"):
            self.__dict__.pop(name, None)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _train_epoch(self) -> None:
        cfg = self.config
        self.train_mode()
        started = last_log = time.perf_counter()
        n = len(self.train_y)
        perm = torch.randperm(n, device=self.device, generator=self.generator)
        for total in (self.loss_sum, self.correct, self.logged_loss):
            total.zero_()
        logged_steps, seen = 0, 0
        for batch in range(self.steps_per_epoch):
            if self.should_stop:
                return
            idx = perm[batch * cfg.batch_size:(batch + 1) * cfg.batch_size]
            self.train_step(idx)
            self.step += 1
            logged_steps += 1
            seen += len(idx)
            now = time.perf_counter()
            if now - last_log >= self.log_interval_s or batch == self.steps_per_epoch - 1:
                mean_loss = self.logged_loss.item() / logged_steps  # the only host sync of the interval
                if not math.isfinite(mean_loss) or mean_loss > self.exploded_loss:
                    raise Diverged(f"loss became {mean_loss:.4g} in epoch {self.epoch}, batch {batch + 1}; "
                                   f"lower the learning rate (now {cfg.lr:g}) by 10x or add batchnorm")
                self.emit("on_batch_end", {
                    "epoch": self.epoch, "batch": batch + 1, "batches": self.steps_per_epoch, "step": self.step,
                    "loss": mean_loss, "images_per_sec": seen / (now - started),
                })
                self.logged_loss.zero_()
                logged_steps, last_log = 0, now
        train_seconds = time.perf_counter() - started
        val_loss, val_acc, val_class_acc = self.evaluate(self.val_x, self.val_y)
        metrics = {
            "epoch": self.epoch,
            "train_loss": self.loss_sum.item() / seen,
            "train_acc": self.correct.item() / seen,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "val_class_acc": val_class_acc,
            "lr": self.optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - started,
            "train_seconds": train_seconds,
            "images_per_sec": seen / train_seconds,
        }
        self.history.append(metrics)
        self.emit("on_epoch_end", metrics)

    def evaluate(self, x_uint8: torch.Tensor, y: torch.Tensor) -> tuple[float, float, list[float | None]]:
        """Mean loss, accuracy, and accuracy per class (None for a class with no image in ``y``), in large
        batches under inference mode and eval mode (restored after). Each image's predicted class is left in
        ``val_preds`` (int16, on the CPU) for the listeners: the film's confusion matrix and the epochs in
        which an image was right or wrong (lab.insight.probe records them).

        Hits per class are summed on the device (``index_add_``: no boolean indexing, which would wait for
        the device to learn the result's size) and read back with the loss, once per call."""
        batch_size = self.eval_batch
        loss_sum = torch.zeros((), device=self.device)
        hits = torch.zeros(self.dataset.num_classes, device=self.device, dtype=torch.long)
        preds = torch.empty(len(y), device=self.device, dtype=torch.int16)
        with torch.inference_mode(), eval_mode(self.model), self.autocast():
            for i in range(0, len(y), batch_size):
                x = self.normalize(self.prepare(x_uint8[i:i + batch_size]))
                logits = self.forward(x).float()
                if self.config.eval_flip:
                    logits = (logits + self.forward(x.flip(-1)).float()) / 2
                yb = y[i:i + batch_size]
                loss_sum += F.cross_entropy(logits, yb, reduction="sum")
                predicted = logits.argmax(1)
                hits.index_add_(0, yb, (predicted == yb).long())
                preds[i:i + batch_size] = predicted
        self.val_preds = preds.cpu()
        per_class = hits.tolist()
        counts = torch.bincount(y, minlength=len(per_class)).tolist()
        class_acc = [h / n if n else None for h, n in zip(per_class, counts)]
        return loss_sum.item() / len(y), sum(per_class) / len(y), class_acc

    def checkpoint(self) -> dict:
        """What ``best.pt``/``last.pt`` hold: tensors and plain numbers only (weights_only-safe)."""
        return {"model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "epoch": self.epoch, "spec_name": self.summary.name}


class RunRecorder(Callback):
    """Listener that keeps a run's folder current: status, metrics, checkpoints."""

    def __init__(self, store, run_id: str):
        self.store, self.run_id = store, run_id

    def on_run_start(self, trainer: Trainer) -> None:
        self.store.set_status(self.run_id, "running", started=time.time(), device=str(trainer.device),
                              params=trainer.summary.total_params)

    def on_batch_end(self, trainer: Trainer, info: dict) -> None:
        pass  # per-interval progress lives in memory (jobs.py); the disk gets whole epochs

    def on_epoch_end(self, trainer: Trainer, metrics: dict) -> None:
        """The checkpoint before the metrics row: a server killed between the two leaves no epoch on
        disk without its weights (a best.pt one epoch ahead of metrics.jsonl is harmless)."""
        if best_row(trainer.history) is metrics:
            self.store.save_checkpoint(self.run_id, "best", trainer.checkpoint())
        self.store.append_metrics(self.run_id, metrics)
        self.store.set_status(self.run_id, "running", epoch=metrics["epoch"])

    def on_run_end(self, trainer: Trainer, status: str, message: str) -> None:
        if trainer.model is not None:
            self.store.save_checkpoint(self.run_id, "last", trainer.checkpoint())
        best = best_row(trainer.history)
        self.store.set_status(self.run_id, status, message, ended=time.time(),
                              best_val_acc=best and best["val_acc"], best_epoch=best and best["epoch"],
                              compile_seconds=trainer.compile_seconds, cuda_graph=trainer.graph_status)


def run_record(config: TrainConfig, trainer: Trainer) -> dict:
    """config.json content: the settings plus the facts resolved for this dataset. ``init_from`` is the
    source run's full id (a name or prefix given may later match another run), so the run redoes as it was."""
    transfer = trainer.transfer
    return {**config.to_dict(), "augment": trainer.augment.to_dict(),
            "init_from": transfer.run_id if transfer else "",
            "resolved": {"input": list(trainer.dataset.shape), "num_classes": trainer.dataset.num_classes,
                         "mean": trainer.dataset.channel_stats()[0], "std": trainer.dataset.channel_stats()[1],
                         "classes": trainer.dataset.classes, "params": trainer.summary.total_params,
                         "spec_name": trainer.summary.name, "images": trainer.data_images, "data_mb": trainer.data_mb,
                         "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
                         "transfer": transfer.to_dict() if transfer else None, "frozen": trainer.frozen}}
