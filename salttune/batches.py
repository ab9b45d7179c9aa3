"""Turning in-memory arrays into training batches: a torch Dataset and seeded DataLoaders."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from salttune.augment import sample_seed

__all__ = ["SaltDataset", "make_loader", "to_input", "DEPTH_SCALE"]

DEPTH_SCALE = 1000.0  # TGS depths are 50..959 m: z / 1000 puts them in (0, 1)


def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 images (N, H, W) -> float network input (N, 1, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1).float().div_(255.0)


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
