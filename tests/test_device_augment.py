"""The device path of the data: batched augmentation against albumentations for the same draws, its seeding,
and device batches against the DataLoader's (same order, same tensors)."""

import albumentations as A
import cv2
import numpy as np
import pytest
import torch

from salttune.batches import DeviceBatches, LoaderBatches, epoch_order, make_batches, resolve_path
from salttune.config import config_from_dict
from salttune.device_augment import (DEVICE_AUGMENTATIONS, DeviceAugment, _shift_gather, _shift_slices, brightness_contrast, flip,
                                     noise, translate)
from salttune.errors import SalttuneError
from salttune.split import Arrays

CPU = torch.device("cpu")


def pair(seed: int = 0, size: int = 101):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (size, size), dtype=np.uint8)
    mask = (rng.random((size, size)) < 0.3).astype(np.uint8)
    return img, mask


def as_batch(*arrays: np.ndarray) -> torch.Tensor:
    return torch.stack([torch.from_numpy(a) for a in arrays]).unsqueeze(1).float()


# -- the operations against albumentations ------------------------------------------------------------------

def test_flip_is_bit_identical_to_albumentations_and_leaves_the_others():
    (img, mask), (img2, mask2) = pair(0), pair(1)
    x, y = flip(as_batch(img, img2) / 255, as_batch(mask, mask2), torch.tensor([True, False]))
    ref = A.HorizontalFlip(p=1.0)(image=img, mask=mask)
    assert torch.equal(x[0, 0], torch.from_numpy(ref["image"]).float() / 255)
    assert torch.equal(y[0, 0], torch.from_numpy(ref["mask"]).float())
    assert torch.equal(x[1, 0], torch.from_numpy(img2).float() / 255) and torch.equal(y[1, 0], torch.from_numpy(mask2).float())


def test_whole_pixel_translation_is_bit_identical_to_albumentations_reflect_101():
    # several samples, each with its own shift, in one batch; the largest shifts of the default translate (0.1)
    shifts = [(3, -7), (-10, 10), (0, 5), (10, 0), (0, 0), (-1, -10)]
    pairs = [pair(s) for s in range(len(shifts))]
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
    img, _ = pair(2)
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
    aug = DeviceAugment(tuple(DEVICE_AUGMENTATIONS), 0.2, 1.0, seed=0, side=12, device=CPU)
    x = torch.rand(8, 1, 12, 12)
    y = (torch.rand(8, 1, 12, 12) > 0.5).float()
    ox, oy = aug(x, y, torch.arange(8), aug.epoch_draws(0, 8), noise_seed=1)
    assert ox.shape == x.shape and oy.shape == y.shape and ox.dtype == torch.float32
    assert 0.0 <= ox.min() and ox.max() <= 1.0 and set(oy.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(ox, x)


# -- device batches against the DataLoader's ----------------------------------------------------------------

def arrays(n: int = 21, size: int = 9):
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (n, size, size), dtype=np.uint8), rng.random((n, size, size)) > 0.5,
            np.linspace(50, 950, n))


@pytest.mark.parametrize("names", [(), ("hflip",)])
def test_device_batches_are_the_loaders_batches_without_random_augmentation(names):
    # no augmentation, or a flip at p=1 (no draw): both paths give the same images in the same batches
    images, masks, depths = arrays()
    from salttune.augment import build_augment

    loader = LoaderBatches(images, masks, depths, build_augment(names, 0.1, 1.0), batch_size=4, seed=5)
    aug = DeviceAugment(names, 0.1, 1.0, seed=5, side=9, device=CPU) if names else None
    device = DeviceBatches(images, masks, depths, aug, batch_size=4, seed=5, device=CPU)
    for epoch in (0, 1):
        a, b = list(loader.epoch(epoch)), list(device.epoch(epoch))
        assert len(a) == len(b) == len(device.epoch(epoch)) == 6
        for (xa, ya, za), (xb, yb, zb) in zip(a, b):
            assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(za, zb)


def test_the_epoch_order_is_the_loaders_and_changes_with_the_epoch():
    order = [b.tolist() for b in epoch_order(10, 3, seed=1, epoch=0)]
    assert sorted(i for b in order for i in b) == list(range(10)) and [len(b) for b in order] == [3, 3, 3, 1]
    assert order == [b.tolist() for b in epoch_order(10, 3, seed=1, epoch=0)]
    assert order != [b.tolist() for b in epoch_order(10, 3, seed=1, epoch=1)]


def test_the_path_is_chosen_from_the_augmentations_and_can_be_forced():
    assert resolve_path("auto", ("hflip", "translate")) == "device"
    assert resolve_path("auto", ("hflip", "elastic")) == "loader"
    assert resolve_path("loader", ("hflip",)) == "loader"
    images, masks, depths = arrays()
    train = Arrays([str(i) for i in range(len(images))], images, masks, depths)
    assert isinstance(make_batches(config_from_dict({}), train, CPU), DeviceBatches)  # the default set has device versions
    assert isinstance(make_batches(config_from_dict({"augment": {"path": "loader"}}), train, CPU), LoaderBatches)
    assert isinstance(make_batches(config_from_dict({"augment": {"names": ["rotate"]}}), train, CPU), LoaderBatches)
    with pytest.raises(SalttuneError, match=r"config key 'augment.path': device, but 'elastic' has no device version.*augment.path=auto or loader"):
        config_from_dict({"augment": {"path": "device", "names": ["hflip", "elastic"]}})
