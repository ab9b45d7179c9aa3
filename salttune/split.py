"""Train/validation/holdout splits stratified by salt coverage class, seeded, and the data parts they cut (`Arrays`).

The order of the cuts (:func:`split_data`): first ``max_train_images`` (a quick run's subset), then the
*holdout* (``holdout_fraction``, ``holdout_seed``): images no training, validation or selection sees, the only
honest score of a whole search and ensemble; then, of the rest, the validation part, either a stratified
``val_fraction`` or fold ``fold`` of ``folds`` coverage-stratified folds. With ``folds`` the validation parts of
the K folds partition the non-holdout images, so K runs together score every one of them out of fold.

Stratifying by coverage class (0 = empty, 1..10 = tenths of coverage) keeps the share of empty, small and
large masks the same in every part, as is usual on this task; otherwise a validation set can by chance
miss the rare near-full or tiny masks that decide the score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from salttune.errors import SalttuneError
from salttune.metric import coverage_class

if TYPE_CHECKING:
    from salttune.data import TGSData

__all__ = ["Arrays", "Split", "SPLIT_KEYS", "strata", "train_val_split", "kfold_splits", "split_data"]


def strata(masks: np.ndarray, min_count: int) -> np.ndarray:
    """Coverage classes of ``masks``, with classes of fewer than ``min_count`` images merged into a neighbour.

    scikit-learn cannot stratify a class smaller than the number of parts; merging the rare class into the
    adjacent coverage class keeps the stratification meaningful on small datasets.

    Shape: (N, H, W) -> (N,) int64.
    """
    classes = coverage_class(masks)
    while True:
        labels, counts = np.unique(classes, return_counts=True)
        if len(labels) <= 1 or counts.min() >= min_count:
            return classes
        small = labels[np.argmin(counts)]
        others = labels[labels != small]
        target = others[np.argmin(np.abs(others - small))]  # the nearest coverage class
        classes = np.where(classes == small, target, classes)


def train_val_split(masks: np.ndarray, val_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a coverage-stratified train/validation split.

    Args:
        masks: (N, H, W) training masks.
        val_fraction: share of images in validation, in (0, 1).
        seed: the same seed gives the same split.

    Returns:
        (train_idx, val_idx), sorted int arrays that partition range(N).
    """
    n = len(masks)
    if not 0.0 < val_fraction < 1.0:
        raise SalttuneError(f"val_fraction is {val_fraction}; it must be between 0 and 1 (e.g. 0.2)")
    n_val = int(round(n * val_fraction))
    if n_val < 1 or n - n_val < 1:
        raise SalttuneError(f"{n} images cannot be split with val_fraction={val_fraction}; use more images")
    y = strata(masks, min_count=2) if n_val >= 2 and n - n_val >= 2 else None
    if y is not None and len(np.unique(y)) > min(n_val, n - n_val):
        y = None  # fewer images in a part than classes: fall back to a plain shuffle
    from sklearn.model_selection import train_test_split  # here: scikit-learn costs a trial's worker ~0.9 s to import

    train_idx, val_idx = train_test_split(np.arange(n), test_size=n_val, random_state=seed, stratify=y)
    return np.sort(train_idx), np.sort(val_idx)


def kfold_splits(masks: np.ndarray, k: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """K coverage-stratified folds: a list of (train_idx, val_idx); the val parts partition range(N)."""
    if k < 2:
        raise SalttuneError(f"k is {k}; K-fold needs at least 2 folds")
    if len(masks) < k:
        raise SalttuneError(f"{len(masks)} images cannot make {k} folds; use fewer folds or more images")
    from sklearn.model_selection import StratifiedKFold

    y = strata(masks, min_count=k)
    folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(masks)), y)
    return [(np.sort(tr), np.sort(va)) for tr, va in folds]


@dataclass(frozen=True)
class Arrays:
    """One part of the data. Shape: images (N, H, W) uint8, masks (N, H, W) bool, depths (N,)."""

    ids: list[str]
    images: np.ndarray
    masks: np.ndarray
    depths: np.ndarray

    def subset(self, idx: np.ndarray) -> "Arrays":
        return Arrays([self.ids[i] for i in idx], self.images[idx], self.masks[idx], self.depths[idx])


@dataclass(frozen=True)
class Split:
    """Which images a run trains, validates and never sees (the training config's keys of the same names)."""

    val_fraction: float = 0.2
    split_seed: int = 0
    max_train_images: int | None = None
    holdout_fraction: float = 0.0
    holdout_seed: int = 0
    folds: int | None = None  # validate on fold `fold` of `folds` instead of a val_fraction split
    fold: int = 0

    @classmethod
    def of(cls, cfg) -> "Split":
        """The split settings of a :class:`salttune.config.TrainConfig` or of its dict (a checkpoint's
        ``config``); keys a dict lacks (an older checkpoint) take their defaults."""
        get = cfg.get if isinstance(cfg, dict) else lambda k, d: getattr(cfg, k, d)
        return cls(**{k: get(k, getattr(cls, k)) for k in SPLIT_KEYS})

    def with_fold(self, fold: int) -> "Split":
        from dataclasses import replace

        return replace(self, fold=fold)

    def same_images(self, other: "Split") -> bool:
        """Whether two runs saw the same non-holdout images and the same holdout (their folds may differ)."""
        keep = ("max_train_images", "holdout_fraction", "holdout_seed")
        return all(getattr(self, k) == getattr(other, k) for k in keep)


SPLIT_KEYS = ("val_fraction", "split_seed", "max_train_images", "holdout_fraction", "holdout_seed", "folds", "fold")


def split_data(data: TGSData, split: Split) -> tuple[Arrays, Arrays, Arrays]:
    """The coverage-stratified train, validation and holdout parts of a dataset's training images.

    ``split_seed`` is separate from the training seed so that every trial of a search, whatever its seed,
    is scored on the same validation images (and the ensemble can use them as a held-out set); the holdout
    has a seed of its own so that changing the validation split (or the folds) never moves it.

    Returns:
        (train, val, holdout); the holdout is empty when ``holdout_fraction`` is 0.
    """
    full = Arrays(data.train_ids, data.train_images, data.train_masks, data.train_depths)
    if not len(full.ids):
        raise SalttuneError(f"{data.folder}: no training images in train/images; training needs some")
    if split.max_train_images is not None and split.max_train_images < len(full.ids):
        _, keep = train_val_split(full.masks, split.max_train_images / len(full.ids), seed=split.split_seed)
        full = full.subset(keep)
    rest, holdout = full, full.subset(np.arange(0))
    if split.holdout_fraction > 0:
        rest_idx, hold_idx = train_val_split(full.masks, split.holdout_fraction, seed=split.holdout_seed)
        rest, holdout = full.subset(rest_idx), full.subset(hold_idx)
    if split.folds is not None:
        if not 0 <= split.fold < split.folds:
            raise SalttuneError(f"fold {split.fold} of {split.folds}: give a fold from 0 to {split.folds - 1}")
        tr, va = kfold_splits(rest.masks, k=split.folds, seed=split.split_seed)[split.fold]
    else:
        tr, va = train_val_split(rest.masks, split.val_fraction, seed=split.split_seed)
    return rest.subset(tr), rest.subset(va), holdout
