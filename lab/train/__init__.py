"""Training: the Trainer (events, bf16, CUDA graphs, checkpoints, stop), batched augmentation on the
device, and device choice."""
