"""Batches: input scaling, item shapes and dtypes, depth scaling, seeded augmentation and loader order."""

import numpy as np
import pytest
import torch

from salttune.augment import DeviceAugment, build_augment
from salttune.batches import (DEPTH_SCALE, DeviceBatches, LoaderBatches, SaltDataset, epoch_order, input_batches, make_batches,
                              make_loader, resolve_path, to_input)
from salttune.config import config_from_dict
from salttune.errors import SalttuneError
from salttune.split import Arrays

CPU = torch.device("cpu")


def arrays(n: int = 10, size: int = 9):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
    masks = rng.random((n, size, size)) > 0.5  # bool, as the loader gives them
    depths = np.linspace(50, 950, n)
    return images, masks, depths


def test_to_input_scales_to_unit_range():
    images = np.array([[[0, 255], [51, 102]]], np.uint8)
    x = to_input(images)
    assert x.shape == (1, 1, 2, 2) and x.dtype == torch.float32
    assert x.flatten().tolist() == pytest.approx([0.0, 1.0, 0.2, 0.4])


def test_items_have_shapes_dtypes_and_scaled_depth():
    images, masks, depths = arrays()
    ds = SaltDataset(images, masks, depths)
    assert len(ds) == 10
    image, mask, depth = ds[3]
    assert image.shape == (1, 9, 9) and image.dtype == torch.float32
    assert mask.shape == (1, 9, 9) and mask.dtype == torch.float32
    assert depth.shape == () and depth.dtype == torch.float32
    torch.testing.assert_close(image[0], torch.from_numpy(images[3]).float() / 255)
    assert torch.equal(mask[0], torch.from_numpy(masks[3]).float())  # {0, 1}
    assert depth.item() == np.float32(depths[3] / DEPTH_SCALE) and DEPTH_SCALE == 1000.0


def test_augmentation_is_seeded_by_seed_epoch_and_index():
    images, masks, depths = arrays()
    aug = build_augment(["hflip", "translate"], p=0.5)
    a, b = SaltDataset(images, masks, depths, aug, seed=7), SaltDataset(images, masks, depths, aug, seed=7)
    first = [a[i][0] for i in range(len(a))]
    # a second dataset, read in the reverse order (as another worker split would), draws the same
    assert all(torch.equal(first[i], b[i][0]) for i in reversed(range(len(a))))
    a.set_epoch(1)
    assert any(not torch.equal(first[i], a[i][0]) for i in range(len(a)))
    a.set_epoch(0)
    assert all(torch.equal(first[i], a[i][0]) for i in range(len(a)))


def test_image_and_mask_flip_together():
    images, masks, depths = arrays()
    ds = SaltDataset(images, masks, depths, build_augment(["hflip"], p=0.5), seed=0)
    flipped = []
    for i in range(len(ds)):
        image, mask, _ = ds[i]
        was_flipped = not torch.equal(image[0], torch.from_numpy(images[i]).float() / 255)
        src_image, src_mask = (images[i][:, ::-1], masks[i][:, ::-1]) if was_flipped else (images[i], masks[i])
        torch.testing.assert_close(image[0], torch.from_numpy(src_image.copy()).float() / 255)
        assert torch.equal(mask[0], torch.from_numpy(src_mask.copy()).float())
        flipped.append(was_flipped)
    assert 0 < sum(flipped) < len(ds)  # p=0.5 flips some samples, not all


def test_loader_batches_and_order_depend_only_on_seed_and_epoch():
    images, masks, depths = arrays(n=10)
    ds = SaltDataset(images, masks, depths)

    def order(seed, epoch):
        batches = list(make_loader(ds, 4, True, seed, epoch))
        return [b[2] for b in batches], batches

    (z1, batches), (z2, _) = order(3, 0), order(3, 0)
    assert [b[0].shape for b in batches] == [(4, 1, 9, 9), (4, 1, 9, 9), (2, 1, 9, 9)]  # the last batch is kept
    assert [b[1].dtype for b in batches] == [torch.float32] * 3
    assert torch.equal(torch.cat(z1), torch.cat(z2))
    assert sorted(torch.cat(z1).tolist()) == sorted((depths / DEPTH_SCALE).astype(np.float32).tolist())
    assert not torch.equal(torch.cat(z1), torch.cat(order(3, 1)[0]))
    assert not torch.equal(torch.cat(z1), torch.cat(order(4, 0)[0]))
    unshuffled = torch.cat([b[2] for b in make_loader(ds, 4, False, 3)])
    torch.testing.assert_close(unshuffled, torch.from_numpy(depths / DEPTH_SCALE).float())


# -- the device path against the DataLoader's ---------------------------------------------------------------

@pytest.mark.parametrize("names", [(), ("hflip",)])
def test_device_batches_are_the_loaders_batches_without_random_augmentation(names):
    # no augmentation, or a flip at p=1 (no draw): both paths give the same images in the same batches
    images, masks, depths = arrays(n=21)
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
    images, masks, depths = arrays(n=21)
    train = Arrays([str(i) for i in range(len(images))], images, masks, depths)
    assert isinstance(make_batches(config_from_dict({}), train, CPU), DeviceBatches)  # the default set has device versions
    assert isinstance(make_batches(config_from_dict({"augment": {"path": "loader"}}), train, CPU), LoaderBatches)
    assert isinstance(make_batches(config_from_dict({"augment": {"names": ["rotate"]}}), train, CPU), LoaderBatches)
    with pytest.raises(SalttuneError, match=r"config key 'augment.path': device, but 'elastic' has no device version.*augment.path=auto or loader"):
        config_from_dict({"augment": {"path": "device", "names": ["hflip", "elastic"]}})


def test_input_batches_scale_images_and_depths_in_order():
    images, _, depths = arrays(n=5)
    got = list(input_batches(images, depths, torch.device("cpu"), 2))
    assert [x.shape for x, _ in got] == [(2, 1, 9, 9), (2, 1, 9, 9), (1, 1, 9, 9)]
    assert all(x.is_contiguous(memory_format=torch.channels_last) for x, _ in got)
    torch.testing.assert_close(torch.cat([x for x, _ in got])[:, 0], torch.from_numpy(images).float() / 255)
    assert torch.equal(torch.cat([z for _, z in got]), torch.from_numpy(depths / DEPTH_SCALE).float())
    assert all(z is None for _, z in input_batches(images, None, torch.device("cpu"), 2))
