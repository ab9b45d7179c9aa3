"""The TGS Salt competition metric, plain IoU, and salt-coverage classes.

Each mask holds at most one object, so per image the competition score is the mean over IoU thresholds
t = 0.50, 0.55, ..., 0.95 of [IoU > t]. An image where truth and prediction are both empty scores 1; where
exactly one is empty it scores 0. The dataset score is the mean over images.

A widely copied public port computes the per-image score from ``np.histogram2d`` of label images and scores
an empty prediction against non-empty truth above zero; that is wrong, and ``tests/test_metric.py`` pins the
correct value.

Reference: https://www.kaggle.com/c/tgs-salt-identification-challenge/overview/evaluation
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "THRESHOLDS",
    "iou_per_image",
    "score_per_image",
    "competition_score",
    "mean_iou",
    "coverage",
    "coverage_class",
    "score_by_coverage",
]

THRESHOLDS = np.arange(0.5, 1.0, 0.05)  # 0.50, 0.55, ..., 0.95


def _flat(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) or (H, W) masks -> (N, H*W) bool."""
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[None]
    return masks.reshape(len(masks), -1).astype(bool, copy=False)


def iou_per_image(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Intersection over union of each image's prediction and truth.

    Args:
        pred: (N, H, W) or (H, W) binary prediction.
        truth: same shape, binary truth.

    Returns:
        (N,) float64 IoU; 1.0 where both are empty.
    """
    p, t = _flat(pred), _flat(truth)
    if p.shape != t.shape:
        raise ValueError(f"prediction shape {p.shape} != truth shape {t.shape}")
    inter = np.count_nonzero(p & t, axis=1)
    union = np.count_nonzero(p | t, axis=1)
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1))


def score_per_image(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The competition score of each image: mean over thresholds of [IoU > t].

    Both empty scores 1 (IoU is defined as 1); exactly one empty scores 0 (IoU is 0).

    Shape:
        pred, truth: (N, H, W) or (H, W); returns (N,).
    """
    iou = iou_per_image(pred, truth)
    return (iou[:, None] > THRESHOLDS[None, :]).mean(axis=1)


def competition_score(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean competition score over images (the leaderboard number)."""
    return float(score_per_image(pred, truth).mean())


def mean_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean over images of the per-image IoU (both-empty images count as 1)."""
    return float(iou_per_image(pred, truth).mean())


def coverage(masks: np.ndarray) -> np.ndarray:
    """Share of salt pixels of each mask. Shape: (N, H, W) -> (N,)."""
    return _flat(masks).mean(axis=1)


def coverage_class(masks: np.ndarray) -> np.ndarray:
    """Coverage class of each mask: 0 for empty, else ceil(10 * coverage), so 1..10.

    This is the stratification commonly used on this task (classes of 10% coverage).

    Shape: (N, H, W) -> (N,) int64.
    """
    return np.ceil(coverage(masks) * 10).astype(np.int64)


def score_by_coverage(pred: np.ndarray, truth: np.ndarray) -> dict[int, dict[str, float]]:
    """The competition score and IoU broken down by the truth's coverage class.

    Returns:
        ``{class: {"n": count, "score": mean score, "iou": mean IoU}}`` for the classes present.
    """
    classes = coverage_class(truth)
    scores, ious = score_per_image(pred, truth), iou_per_image(pred, truth)
    out = {}
    for c in np.unique(classes):
        sel = classes == c
        out[int(c)] = {"n": int(sel.sum()), "score": float(scores[sel].mean()), "iou": float(ious[sel].mean())}
    return out
