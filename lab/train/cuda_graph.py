"""The training step replayed as one CUDA graph, and the count of runs training on CUDA that
decides whether a capture is safe; :class:`lab.train.engine.Trainer` uses it on CUDA."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from lab.train.engine import Trainer

GRAPH_WARMUP = 3  # eager steps before the capture

# Trainers training on CUDA in this process. A CUDA graph is captured only by a run training
# alone: work another thread launches during a capture can break it, or the other run.
_cuda_trainers: set[int] = set()
_cuda_lock = threading.Lock()


def cuda_run_started(trainer: Trainer) -> None:
    """Count ``trainer`` among the runs training on CUDA in this process, until :func:`cuda_run_ended`."""
    with _cuda_lock:
        _cuda_trainers.add(id(trainer))


def cuda_run_ended(trainer: Trainer) -> None:
    """``trainer`` trains on CUDA no more (a no-op for one that never did)."""
    with _cuda_lock:
        _cuda_trainers.discard(id(trainer))


class CudaGraphStep:
    """The training step replayed as one CUDA graph: one launch instead of hundreds.

    At the batch sizes students use, small nets are bound by kernel launches, not by
    the GPU (bench: ~1 ms of Python launches per batch for ~0.2 ms of GPU work). So
    after ``GRAPH_WARMUP`` eager steps (cuDNN picks its algorithms, the optimizer
    makes its state) gather + augment + forward + backward are captured once, with
    the batch's indices in a fixed tensor, and every later batch is an index copy, a
    replay and the fused optimizer step. Random numbers come from the default CUDA
    generator, whose state graphs advance on every replay.

    Gradients live in the graph's memory: they are put back on the parameters before
    each optimizer step, so a listener that clears them cannot stop the training.
    If capture fails (an op that cannot be captured), or another run trains on the
    GPU in this process (two threads capturing at once corrupted each other's work
    on an H100), the run goes on eagerly and the trainer's ``graph_status`` says why.
    """

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.error = ""
        self.static_idx = torch.zeros(trainer.config.batch_size, dtype=torch.long, device=trainer.device)
        self.grads: list[tuple[torch.nn.Parameter, torch.Tensor]] = []

    def __call__(self, idx: torch.Tensor) -> None:
        t = self.trainer
        if self.error or len(idx) != len(self.static_idx):
            return t.eager_step(idx)
        self.calls += 1
        if self.graph is None and self.calls <= GRAPH_WARMUP:
            return self._side_stream_step(idx)
        if self.graph is None and not self._capture():
            return t.eager_step(idx)
        self.static_idx.copy_(idx)
        self.graph.replay()
        for param, grad in self.grads:
            param.grad = grad
        t.optimizer.step()
        t.scheduler.step()

    def _side_stream_step(self, idx: torch.Tensor) -> None:
        """An eager step on a side stream, as PyTorch asks of the steps before a capture."""
        stream = torch.cuda.Stream(self.trainer.device)
        stream.wait_stream(torch.cuda.current_stream(self.trainer.device))
        with torch.cuda.stream(stream):
            self.trainer.eager_step(idx)
        torch.cuda.current_stream(self.trainer.device).wait_stream(stream)

    def _capture(self) -> bool:
        t = self.trainer
        with _cuda_lock:  # held through the capture: no other run starts meanwhile
            if len(_cuda_trainers) > 1:
                self.error = t.graph_status = "not captured: another run is training on this GPU"
                return False
            t.optimizer.zero_grad(set_to_none=True)
            graph = torch.cuda.CUDAGraph()
            try:
                # thread_local: other threads' calls (a page's inference) are not refused meanwhile
                with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                    t.forward_backward(self.static_idx, None)
            except torch.cuda.OutOfMemoryError:
                raise
            except RuntimeError as err:
                self.error = t.graph_status = f"CUDA graph capture failed, training without it: {err}"
                t.optimizer.zero_grad(set_to_none=True)
                return False
        self.graph, t.graph_status = graph, "captured"
        self.grads = [(p, p.grad) for p in t.model.parameters() if p.grad is not None]
        return True

