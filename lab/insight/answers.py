"""What a classifier answered for a batch of images, read off its class probabilities.

A CAM result holds them as torch tensors, a checkpoint's evaluation as numpy arrays;
both read "predicted" and "how sure" through :class:`ClassAnswers`, so the two mean
one thing on every page.
"""

from __future__ import annotations


class ClassAnswers:
    """``preds`` and ``confidence`` of the subclass's ``probs`` (N, classes), numpy or torch alike."""

    @property
    def preds(self):
        """The most probable class, per image."""
        return self.probs.argmax(1)

    @property
    def confidence(self):
        """The probability of the predicted class, per image."""
        return self.probs[range(len(self.probs)), self.preds]
