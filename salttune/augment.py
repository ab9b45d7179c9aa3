"""Training augmentations through albumentations, one name -> builder dict, seeded per sample.

Each sample's random draw is seeded from (seed, epoch, index), so augmentation is identical whatever the
number of data-loader workers, their order, or a resume in the middle of training.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from salttune.errors import SalttuneError

if TYPE_CHECKING:
    import albumentations as A

# OpenCV's BORDER_REFLECT_101 (reflection without repeating the edge). albumentations and OpenCV are imported only
# when a pipeline is built: the device path (salttune.device_augment) needs neither, and a trial's worker starts
# ~0.8 s sooner without them.
REFLECT_101 = 4


def _albumentations():
    import albumentations

    return albumentations

__all__ = ["AUGMENTATIONS", "build_augment", "sample_seed"]


def _hflip(translate: float, p: float) -> A.BasicTransform:
    return _albumentations().HorizontalFlip(p=p)


def _translate(translate: float, p: float) -> A.BasicTransform:
    # Reflection padding continues the layers across the border, as the TGS winners did; zero padding would
    # draw a sharp artificial edge the network could learn from.
    shift = {"x": (-translate, translate), "y": (-translate, translate)}
    return _albumentations().Affine(translate_percent=shift, border_mode=REFLECT_101, p=p)


def _scale(translate: float, p: float) -> A.BasicTransform:
    return _albumentations().Affine(scale=(0.9, 1.15), border_mode=REFLECT_101, p=p)


def _rotate(translate: float, p: float) -> A.BasicTransform:
    return _albumentations().Affine(rotate=(-10, 10), border_mode=REFLECT_101, p=p)


def _brightness_contrast(translate: float, p: float) -> A.BasicTransform:
    return _albumentations().RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=p)


def _noise(translate: float, p: float) -> A.BasicTransform:
    return _albumentations().GaussNoise(std_range=(0.01, 0.04), p=p)


def _elastic(translate: float, p: float) -> A.BasicTransform:
    return _albumentations().ElasticTransform(alpha=10, sigma=5, border_mode=REFLECT_101, p=p)


# Name -> builder(translate share, probability). Vertical flips are left out on purpose: seismic images
# have a physical up and down (salt tops are strong reflectors above weak interiors).
AUGMENTATIONS: dict[str, Callable[[float, float], A.BasicTransform]] = {
    "hflip": _hflip,
    "translate": _translate,
    "scale": _scale,
    "rotate": _rotate,
    "brightness_contrast": _brightness_contrast,
    "noise": _noise,
    "elastic": _elastic,
}


def build_augment(names: tuple[str, ...] | list[str], translate: float = 0.1, p: float = 0.5) -> A.Compose | None:
    """An albumentations pipeline of the named augmentations, or None when ``names`` is empty."""
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise SalttuneError(f"unknown augmentation {unknown[0]!r}; allowed: {', '.join(sorted(AUGMENTATIONS))}")
    if not names:
        return None
    return _albumentations().Compose([AUGMENTATIONS[n](translate, p) for n in names])


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for one sample's augmentation in one epoch."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])
