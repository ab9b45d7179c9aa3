"""Pseudo-labelling: test images the ensemble is confident about, added to the training folds of a refit.

An image is *confident* when at least ``share`` of its pixels have an ensemble probability of at least
``confidence`` or at most ``1 - confidence``; its pseudo-label is the ensemble's mask (the submission's). The
top TGS teams trained again with such images (1st place: three rounds, confidence >= 0.9; 4th place: +0.003 on
the private leaderboard). They join the training part of every fold only (:func:`salttune.folds.with_extra`),
never a validation fold or the holdout, so every score stays on labelled images no model trained on.
"""

from __future__ import annotations

import hashlib

import numpy as np

from salttune.split import Arrays

__all__ = ["confident", "Collector"]


def confident(p: np.ndarray, confidence: float, share: float) -> np.ndarray:
    """Which images are confident. Shape: p (B, H, W) probabilities -> (B,) bool."""
    sure = (p >= confidence) | (p <= 1.0 - confidence)  # (B, H, W)
    return sure.reshape(len(p), -1).mean(1) >= share


class Collector:
    """Keeps the confident images of a stream of ensemble probability batches (in the order of ``ids``)."""

    def __init__(self, ids: list[str], images: np.ndarray, depths: np.ndarray, confidence: float, share: float):
        self.ids, self.images, self.depths = ids, images, depths
        self.confidence, self.share = confidence, share
        self.kept: list[int] = []
        self.masks: list[np.ndarray] = []
        self.seen = 0

    def add(self, p: np.ndarray, masks: np.ndarray) -> None:
        """One batch: (B, H, W) probabilities and the (B, H, W) bool masks submitted for them."""
        keep = np.flatnonzero(confident(p, self.confidence, self.share))
        self.kept += (self.seen + keep).tolist()
        self.masks += list(masks[keep])
        self.seen += len(p)

    def arrays(self) -> Arrays:
        idx = np.array(self.kept, dtype=np.int64)
        masks = np.stack(self.masks) if self.masks else np.zeros((0, *self.images.shape[1:]), bool)
        return Arrays([self.ids[i] for i in idx], self.images[idx], masks, self.depths[idx])

    def summary(self) -> dict:
        masks = self.arrays().masks
        return {"confidence": self.confidence, "share": self.share, "test_images": self.seen, "kept": len(self.kept),
                "kept_empty": int((~masks.reshape(len(masks), -1).any(1)).sum()) if len(masks) else 0}

    def fingerprint(self) -> str:
        """Names the pseudo-labels (ids and masks): refit runs trained on other labels are never reused."""
        h = hashlib.sha1()
        for i, m in zip(self.kept, self.masks):
            h.update(self.ids[i].encode())
            h.update(np.packbits(m).tobytes())
        return h.hexdigest()[:10]
