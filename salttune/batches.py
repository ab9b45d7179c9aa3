"""Turning in-memory arrays into training batches, by one of two paths with the same batch order.

- ``loader``: a torch Dataset and a seeded DataLoader; albumentations augments sample by sample on the CPU
  (:mod:`salttune.augment`), and each batch is copied to the training device.
- ``device``: the whole training set sits on the training device (the TGS training set is about 80 MB as
  uint8 images and masks); batches are gathered by index there and augmented as tensors
  (:class:`salttune.augment.DeviceAugment`). Chosen by ``augment.path`` (auto: device when every augmentation in
  ``augment.names`` has a device version).

Both draw each epoch's order from the same seeded generator (:func:`epoch_order`), so a run sees the same
images in the same batches on either path, whatever the number of workers, and after a resume.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from salttune.augment import DeviceAugment, build_augment, device_names, sample_seed

__all__ = ["SaltDataset", "make_loader", "to_input", "input_batches", "DEPTH_SCALE", "LoaderBatches", "DeviceBatches", "make_batches",
           "resolve_path", "epoch_order"]

DEPTH_SCALE = 1000.0  # TGS depths are 50..959 m: z / 1000 puts them in (0, 1)


def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 images (N, H, W) -> float network input (N, 1, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1).float().div_(255.0)


def input_batches(images: np.ndarray, depths: np.ndarray | None, device: torch.device,
                  batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Images (and depths) in order, ``batch_size`` at a time, as a network predicts them on ``device``.

    Shape: images (N, H, W) uint8 -> x (B, 1, H, W) float32 in [0, 1], channels-last; depths (N,) in metres ->
    z (B,) float32 scaled by :data:`DEPTH_SCALE` (None: z is None).
    """
    for start in range(0, len(images), batch_size):
        x = to_input(images[start : start + batch_size]).to(device).contiguous(memory_format=torch.channels_last)
        z = None if depths is None else torch.as_tensor(depths[start : start + batch_size] / DEPTH_SCALE,
                                                        dtype=torch.float32, device=device)
        yield x, z


class SaltDataset(Dataset):
    """Images, masks and depths, augmented per sample with a seed drawn from (seed, epoch, index).

    Items: image (1, H, W) float32 in [0, 1], mask (1, H, W) float32 in {0, 1}, depth () float32.
    """

    def __init__(self, images: np.ndarray, masks: np.ndarray, depths: np.ndarray, augment=None, seed: int = 0):
        self.images, self.masks, self.depths = images, masks, depths
        self.augment, self.seed, self.epoch = augment, seed, 0

    def __len__(self) -> int:
        return len(self.images)

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draw; call before iterating each epoch (workers are re-created per epoch)."""
        self.epoch = epoch

    def __getitem__(self, i: int):
        img, mask = self.images[i], self.masks[i].view(np.uint8)
        if self.augment is not None:
            self.augment.set_random_seed(sample_seed(self.seed, self.epoch, i))
            out = self.augment(image=img, mask=mask)
            img, mask = out["image"], out["mask"]
        image = torch.from_numpy(np.ascontiguousarray(img)).unsqueeze(0).float().div_(255.0)
        target = torch.from_numpy(np.ascontiguousarray(mask)).unsqueeze(0).float()
        return image, target, torch.tensor(self.depths[i] / DEPTH_SCALE, dtype=torch.float32)


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int, epoch: int = 0, num_workers: int = 0) -> DataLoader:
    """A DataLoader whose shuffling depends only on (seed, epoch), so a resumed run sees the same order."""
    g = torch.Generator()
    g.manual_seed(sample_seed(seed, epoch, -1 & 0xFFFFFFFF))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=g,
        num_workers=num_workers,
        persistent_workers=False,
        drop_last=False,
    )


def epoch_order(n: int, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    """The sample indices of each batch of ``epoch``: exactly the order :func:`make_loader` gives (the same
    DataLoader machinery over the indices, so the generator is consumed the same way)."""
    return [b for b in make_loader(_Indices(n), batch_size, True, seed, epoch, 0)]


class _Indices(Dataset):
    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class LoaderBatches:
    """The CPU path: a seeded DataLoader over a :class:`SaltDataset` (albumentations per sample)."""

    path = "loader"

    def __init__(self, images, masks, depths, augment, *, batch_size: int, seed: int, num_workers: int = 0):
        self.dataset = SaltDataset(images, masks, depths, augment, seed=seed)
        self.batch_size, self.seed, self.num_workers = batch_size, seed, num_workers

    def __len__(self) -> int:
        return len(self.dataset)

    def epoch(self, epoch: int) -> DataLoader:
        """Batches (image, mask, depth) of ``epoch``, on the CPU."""
        self.dataset.set_epoch(epoch)
        return make_loader(self.dataset, self.batch_size, True, self.seed, epoch, self.num_workers)


class DeviceBatches:
    """The device path: images, masks and depths moved to ``device`` once, batches gathered and augmented there.

    Items as :class:`SaltDataset` gives them, batched: image (B, 1, H, W) float32 in [0, 1], mask (B, 1, H, W)
    float32 in {0, 1}, depth (B,) float32.
    """

    path = "device"

    def __init__(self, images, masks, depths, augment, *, batch_size: int, seed: int, device: torch.device):
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(device)  # (N, H, W) uint8
        self.masks = torch.from_numpy(np.ascontiguousarray(masks).view(np.uint8)).to(device)  # (N, H, W) uint8
        self.depths = torch.as_tensor(np.asarray(depths, np.float64) / DEPTH_SCALE, dtype=torch.float32, device=device)
        self.augment, self.batch_size, self.seed, self.device = augment, batch_size, seed, device

    def __len__(self) -> int:
        return len(self.images)

    def epoch(self, epoch: int) -> "_DeviceEpoch":
        """Batches (image, mask, depth) of ``epoch``, on the device."""
        return _DeviceEpoch(self, epoch)


class _DeviceEpoch:
    def __init__(self, data: DeviceBatches, epoch: int):
        self.data, self.epoch = data, epoch
        self.order = epoch_order(len(data), data.batch_size, data.seed, epoch)

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self):
        d = self.data
        draws = d.augment.epoch_draws(self.epoch, len(d)) if d.augment is not None else None
        for index in self.order:
            i = index.to(d.device)
            x = d.images[i].unsqueeze(1).float().div_(255.0)
            y = d.masks[i].unsqueeze(1).float()
            if draws is not None:
                x, y = d.augment(x, y, index, draws, sample_seed(d.seed, self.epoch, int(index[0])))
            yield x, y, d.depths[i]


def resolve_path(path: str, names) -> str:
    """``augment.path`` resolved: auto -> device when every augmentation named has a device version, else loader."""
    if path == "auto":
        return "device" if all(n in device_names() for n in names) else "loader"
    return path


def make_batches(cfg, train, device: torch.device) -> LoaderBatches | DeviceBatches:
    """The training batches of ``cfg`` (a TrainConfig) over ``train`` (Arrays), by the path ``augment.path`` picks."""
    a = cfg.augment
    if resolve_path(a.path, a.names) == "device":
        augment = DeviceAugment(tuple(a.names), a.translate, a.p, cfg.seed, train.images.shape[-1], device) if a.names else None
        return DeviceBatches(train.images, train.masks, train.depths, augment, batch_size=cfg.batch_size, seed=cfg.seed, device=device)
    return LoaderBatches(train.images, train.masks, train.depths, build_augment(a.names, a.translate, a.p),
                         batch_size=cfg.batch_size, seed=cfg.seed, num_workers=cfg.num_workers)
