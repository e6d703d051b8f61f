"""scikit-learn's 8x8 handwritten digits: tiny, offline, and trains in seconds on a CPU."""

from __future__ import annotations

import numpy as np
import torch

from lab.data.dataset import Dataset, stratified_split

CLASSES = [str(d) for d in range(10)]


def load() -> Dataset:
    """The 1,797 digits as 1x8x8 uint8 (0..16 scaled to 0..255), 20% of each class held out."""
    from sklearn.datasets import load_digits  # imported here: sklearn takes a second to import

    bunch = load_digits()
    images = np.round(bunch.images * (255 / 16)).astype(np.uint8)[:, None]  # (N, 1, 8, 8)
    labels = bunch.target.astype(np.int64)
    train, val = stratified_split(labels, val_fraction=0.2, seed=0)
    return Dataset("digits", list(CLASSES),
                   torch.from_numpy(images[train]), torch.from_numpy(labels[train]),
                   torch.from_numpy(images[val]), torch.from_numpy(labels[val]))
