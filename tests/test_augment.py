"""Augmentations: image and mask move together, borders reflect, draws are seeded per (seed, epoch, sample);
the device versions against albumentations for the same draws; every registry entry's ranges are what both
versions use."""

import dataclasses

import albumentations as A
import cv2
import numpy as np
import pytest
import torch

from salttune.augment import (AUGMENTATIONS, DeviceAugment, _shift_gather, _shift_slices, brightness_contrast, build_augment,
                              device_names, flip, noise, sample_seed, translate)
from salttune.errors import SalttuneError

CPU = torch.device("cpu")


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


def noisy_pair(seed: int = 0, size: int = 101):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (size, size), dtype=np.uint8)
    mask = (rng.random((size, size)) < 0.3).astype(np.uint8)
    return img, mask


def as_batch(*arrays: np.ndarray) -> torch.Tensor:
    return torch.stack([torch.from_numpy(a) for a in arrays]).unsqueeze(1).float()


# -- the operations against albumentations ------------------------------------------------------------------

def test_flip_is_bit_identical_to_albumentations_and_leaves_the_others():
    (img, mask), (img2, mask2) = noisy_pair(0), noisy_pair(1)
    x, y = flip(as_batch(img, img2) / 255, as_batch(mask, mask2), torch.tensor([True, False]))
    ref = A.HorizontalFlip(p=1.0)(image=img, mask=mask)
    assert torch.equal(x[0, 0], torch.from_numpy(ref["image"]).float() / 255)
    assert torch.equal(y[0, 0], torch.from_numpy(ref["mask"]).float())
    assert torch.equal(x[1, 0], torch.from_numpy(img2).float() / 255) and torch.equal(y[1, 0], torch.from_numpy(mask2).float())


def test_whole_pixel_translation_is_bit_identical_to_albumentations_reflect_101():
    # several samples, each with its own shift, in one batch; the largest shifts of the default translate (0.1)
    shifts = [(3, -7), (-10, 10), (0, 5), (10, 0), (0, 0), (-1, -10)]
    pairs = [noisy_pair(s) for s in range(len(shifts))]
    x, y = translate(as_batch(*(p[0] for p in pairs)) / 255, as_batch(*(p[1] for p in pairs)),
                     torch.tensor([s[0] for s in shifts]), torch.tensor([s[1] for s in shifts]))
    for b, ((dx, dy), (img, mask)) in enumerate(zip(shifts, pairs)):
        ref = A.Affine(translate_px={"x": (dx, dx), "y": (dy, dy)}, border_mode=cv2.BORDER_REFLECT_101, p=1.0)(image=img, mask=mask)
        assert torch.equal(x[b, 0], torch.from_numpy(ref["image"]).float() / 255), (dx, dy)
        assert torch.equal(y[b, 0], torch.from_numpy(ref["mask"]).float()), (dx, dy)
    # the GPU's implementation (gathers) gives the same as the CPU's (slices)
    batch = as_batch(*(p[0] for p in pairs)) / 255
    dxs, dys = torch.tensor([s[0] for s in shifts]), torch.tensor([s[1] for s in shifts])
    assert torch.equal(_shift_gather(batch, dxs, dys, 10), _shift_slices(batch, dxs, dys, 10))


def test_brightness_contrast_matches_albumentations_within_one_grey_level():
    img, _ = noisy_pair(2)
    for contrast, brightness in [(0.1, -0.1), (-0.07, 0.05), (0.0, 0.1)]:
        ref = A.RandomBrightnessContrast(brightness_limit=(brightness, brightness), contrast_limit=(contrast, contrast), p=1.0)(image=img)
        got = brightness_contrast(as_batch(img) / 255, torch.tensor([1 + contrast]), torch.tensor([brightness]))
        diff = (got[0, 0] - torch.from_numpy(ref["image"]).float() / 255).abs().max().item()
        assert diff <= 1 / 255 + 1e-6, (contrast, brightness, diff * 255)
        assert 0.0 <= got.min() and got.max() <= 1.0


def test_noise_has_the_drawn_standard_deviation_and_zero_leaves_a_sample_alone():
    g = torch.Generator().manual_seed(0)
    grey = torch.full((2, 1, 256, 256), 0.5)
    out = noise(grey, torch.tensor([0.03, 0.0]), g)
    assert out[0].std().item() == pytest.approx(0.03, rel=0.03)
    assert torch.equal(out[1], grey[1])
    # albumentations (uint8 in and out) adds a little less than its nominal deviation: 4-15% measured here
    t = A.GaussNoise(std_range=(0.03, 0.03), p=1.0)
    t.set_random_seed(0)
    ref = t(image=np.full((256, 256), 128, np.uint8))["image"].astype(np.float64) / 255
    assert 0.8 * 0.03 < ref.std() <= 0.03 * 1.02


# -- draws: seeded by (seed, epoch, index), applied whatever the batch -------------------------------------

def test_draws_depend_on_seed_and_epoch_and_a_batch_gets_its_samples_draws():
    aug = DeviceAugment(("hflip", "translate", "brightness_contrast"), 0.1, 0.5, seed=3, side=16, device=CPU)
    d0, again, d1 = aug.epoch_draws(0, 40), aug.epoch_draws(0, 40), aug.epoch_draws(1, 40)
    for a, b in zip(d0, again):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(d0[1]["dx"], d1[1]["dx"])
    assert d0[1]["dx"].abs().max() <= 2 and d0[1]["dx"].abs().max() > 0  # round(0.1 * 16) = 2 pixels at most
    on = d0[0]["on"].float().mean().item()
    assert 0.2 < on < 0.8  # p = 0.5
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((40, 1, 16, 16), dtype=np.float32))
    y = (x > 0.5).float()
    whole, _ = aug(x, y, torch.arange(40), d0, noise_seed=0)
    idx = torch.tensor([7, 3, 30])
    part, _ = aug(x[idx], y[idx], idx, d0, noise_seed=0)
    assert torch.equal(part, whole[idx])  # a sample's augmentation does not depend on its batch


def test_every_device_augmentation_keeps_shapes_range_and_binary_masks():
    aug = DeviceAugment(tuple(device_names()), 0.2, 1.0, seed=0, side=12, device=CPU)
    x = torch.rand(8, 1, 12, 12)
    y = (torch.rand(8, 1, 12, 12) > 0.5).float()
    ox, oy = aug(x, y, torch.arange(8), aug.epoch_draws(0, 8), noise_seed=1)
    assert ox.shape == x.shape and oy.shape == y.shape and ox.dtype == torch.float32
    assert 0.0 <= ox.min() and ox.max() <= 1.0 and set(oy.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(ox, x)


# -- the registry: each entry's ranges are what its CPU and device versions draw from -----------------------

def init_values(args: dict) -> list:
    """A transform's init arguments as a flat list, nested dicts opened, tuples as tuples of floats."""
    out = []
    for v in args.values():
        if isinstance(v, dict):
            out += init_values(v)
        else:
            out.append(tuple(map(float, v)) if isinstance(v, tuple) else v)
    return out


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_the_cpu_version_is_built_from_the_registry_params(name):
    a = AUGMENTATIONS[name]
    args = init_values(a.cpu(0.1, 0.5, a.params).get_transform_init_args())
    for key, v in a.params.items():
        assert (tuple(map(float, v)) if isinstance(v, tuple) else v) in args, (name, key, v)


# how each range shows in the device draws
DRAWN = {"brightness": lambda d: d["beta"], "contrast": lambda d: d["alpha"] - 1.0, "std": lambda d: d["std"]}


@pytest.mark.parametrize("name", [n for n in device_names() if AUGMENTATIONS[n].params])
def test_the_device_draws_reach_both_ends_of_the_registry_ranges_and_no_further(name):
    a = AUGMENTATIONS[name]
    d = a.device.draw(np.random.default_rng(0), 4000, 101, 0.1, 1.0, a.params)
    for key, (lo, hi) in a.params.items():
        v, tol = DRAWN[key](d), 0.01 * (hi - lo)
        assert lo - 1e-6 <= v.min() < lo + tol and hi - tol < v.max() <= hi + 1e-6, (key, v.min(), v.max())


def test_translation_draws_whole_pixels_up_to_the_configured_share_of_the_side():
    d = AUGMENTATIONS["translate"].device.draw(np.random.default_rng(0), 2000, 101, 0.1, 1.0, {})
    for key in ("dx", "dy"):
        assert d[key].dtype.kind == "i" and d[key].min() == -10 and d[key].max() == 10  # round(0.1 * 101)


@pytest.mark.parametrize("ends", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_both_brightness_contrast_versions_agree_at_the_ends_of_the_ranges(ends):
    # each range collapsed to one of its ends, brightness and contrast at different ends, so a mix-up shows
    a = AUGMENTATIONS["brightness_contrast"]
    params = {key: (v[end], v[end]) for (key, v), end in zip(a.params.items(), ends)}
    img, _ = noisy_pair(2)
    t = a.cpu(0.1, 1.0, params)
    t.set_random_seed(0)
    ref = torch.from_numpy(t(image=img)["image"]).float() / 255
    d = a.device.draw(np.random.default_rng(0), 1, 101, 0.1, 1.0, params)
    got, _ = a.device.apply(as_batch(img) / 255, as_batch(img), {k: torch.as_tensor(v) for k, v in d.items()}, None)
    assert (got[0, 0] - ref).abs().max().item() <= 1 / 255 + 1e-6
    assert not torch.equal(got[0, 0], as_batch(img)[0, 0] / 255)


@pytest.mark.parametrize("end", [0, 1])
def test_both_noise_versions_add_the_deviation_at_the_ends_of_the_range(end):
    a = AUGMENTATIONS["noise"]
    std = a.params["std"][end]
    params = {"std": (std, std)}
    t = a.cpu(0.1, 1.0, params)
    t.set_random_seed(0)
    ref = t(image=np.full((256, 256), 128, np.uint8))["image"].astype(np.float64) / 255
    assert 0.8 * std < ref.std() <= 1.02 * std  # albumentations rounds to uint8: a little less than nominal
    d = a.device.draw(np.random.default_rng(0), 1, 256, 0.1, 1.0, params)
    grey = torch.full((1, 1, 256, 256), 0.5)
    got, _ = a.device.apply(grey, grey, {k: torch.as_tensor(v) for k, v in d.items()}, torch.Generator().manual_seed(0))
    assert got.std().item() == pytest.approx(std, rel=0.03)
