"""Augmentations: image and mask move together, borders reflect, draws are seeded per (seed, epoch, sample)."""

import numpy as np
import pytest

from salttune.augment import AUGMENTATIONS, build_augment, sample_seed
from salttune.errors import SalttuneError


def pair(size: int = 21):
    rng = np.random.default_rng(0)
    image = rng.integers(100, 256, (size, size), dtype=np.uint8)  # no dark pixel: a zero border would show
    mask = np.zeros((size, size), np.uint8)
    mask[8:13, 4:9] = 1  # left of centre, so a flip moves it; a shift of up to 4 px keeps it inside
    return image, mask


def run(aug, image, mask, seed=0):
    aug.set_random_seed(seed)
    out = aug(image=image, mask=mask)
    return out["image"], out["mask"]


def test_hflip_flips_image_and_mask_together():
    image, mask = pair()
    got_image, got_mask = run(build_augment(["hflip"], p=1.0), image, mask)
    np.testing.assert_array_equal(got_image, image[:, ::-1])
    np.testing.assert_array_equal(got_mask, mask[:, ::-1])


def test_probability_zero_leaves_the_pair_alone():
    image, mask = pair()
    got_image, got_mask = run(build_augment(list(AUGMENTATIONS), p=0.0), image, mask)
    np.testing.assert_array_equal(got_image, image)
    np.testing.assert_array_equal(got_mask, mask)


def test_translate_reflects_and_moves_the_mask_with_the_image():
    image, mask = pair()
    aug = build_augment(["translate"], translate=0.2, p=1.0)
    moved = 0
    for seed in range(5):
        got_image, got_mask = run(aug, image, mask, seed)
        assert got_image.shape == image.shape and got_image.dtype == np.uint8
        assert got_image.min() >= 100  # reflection padding, no black border
        assert set(np.unique(got_mask)) <= {0, 1}  # masks stay binary
        # the mask block went where the image went: its centre moved by the image's shift (to a pixel)
        dy, dx = best_shift(image, got_image)
        moved += (dy, dx) != (0, 0)
        assert np.abs(centroid(got_mask) - centroid(mask) - (dy, dx)).max() <= 1.0
    assert moved >= 4


def centroid(mask: np.ndarray) -> np.ndarray:
    return np.argwhere(mask).mean(axis=0)  # (row, col)


def best_shift(src: np.ndarray, dst: np.ndarray) -> tuple[int, int]:
    """The integer shift (dy, dx) that best maps ``src`` onto ``dst`` in the centre of the image."""
    c = slice(8, 13)
    err = {(dy, dx): np.abs(reflect_shift(src, dy, dx)[c, c].astype(int) - dst[c, c].astype(int)).mean()
           for dy in range(-5, 6) for dx in range(-5, 6)}
    return min(err, key=err.get)


def reflect_shift(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``a`` moved down by dy and right by dx, with reflect-101 borders."""
    padded = np.pad(a, 6, mode="reflect")
    h, w = a.shape
    return padded[6 - dy : 6 - dy + h, 6 - dx : 6 - dx + w]


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_every_augmentation_keeps_shape_dtype_and_binary_mask(name):
    image, mask = pair()
    got_image, got_mask = run(build_augment([name], p=1.0), image, mask, seed=3)
    assert got_image.shape == image.shape and got_image.dtype == np.uint8
    assert got_mask.shape == mask.shape and set(np.unique(got_mask)) <= {0, 1}


def test_same_seed_same_draw():
    image, mask = pair()
    aug = build_augment(["hflip", "translate", "rotate", "noise"], p=0.5)
    a = run(aug, image, mask, sample_seed(1, 2, 3))
    b = run(aug, image, mask, sample_seed(1, 2, 3))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    others = [run(aug, image, mask, sample_seed(1, e, 3))[0] for e in range(3, 8)]
    assert any(not np.array_equal(a[0], o) for o in others)


def test_sample_seed_is_a_fixed_32_bit_function():
    assert sample_seed(0, 0, 0) == sample_seed(0, 0, 0)
    seeds = {sample_seed(s, e, i) for s in range(2) for e in range(3) for i in range(4)}
    assert len(seeds) == 24 and all(0 <= x < 2**32 for x in seeds)


def test_names_checked_and_empty_is_none():
    assert build_augment([]) is None
    with pytest.raises(SalttuneError, match="unknown augmentation 'vflip'; allowed: brightness_contrast, elastic, hflip"):
        build_augment(["hflip", "vflip"])
