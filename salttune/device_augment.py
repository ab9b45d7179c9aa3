"""Augmentation of whole batches as tensor operations on the training device (the GPU path of the data).

The albumentations pipeline of :mod:`salttune.augment` works sample by sample on the CPU: on a GPU every trial
would wait for its CPU. Here the default augmentations (horizontal flip, translation with reflection) and the
cheap photometric ones (brightness/contrast, noise) are batched tensor operations, one name -> (draw, apply)
pair each, in the order the config names them, as albumentations' ``Compose`` applies them.

Draws. Every random number is drawn on the CPU by NumPy for the whole epoch at once, from a generator seeded by
(seed, epoch, augmentation index): a sample's draw depends on (seed, epoch, its index) only, never on the
batch it lands in, the device or a resume. The noise fields are the exception: they are drawn on the device,
per batch, from a generator seeded by (seed, epoch, the batch's first sample), so they depend on the batch
order too, which itself depends on (seed, epoch) only: a run is still reproducible.

What the device path produces, for the same draws, against albumentations (tests/test_device_augment.py):
flips and whole-pixel translations bit-identical; brightness/contrast within 1/255 (albumentations rounds to
uint8, the device stays in float); noise with the same standard deviation (its fields are other draws).
One difference in the draws themselves: translations here are whole pixels (uniform in
``-round(translate * side) .. round(translate * side)``), where ``A.Affine`` draws fractional shifts and
interpolates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["DEVICE_AUGMENTATIONS", "DeviceAugment", "flip", "translate", "brightness_contrast", "noise"]

# albumentations' settings in salttune.augment, so both paths draw from the same ranges
BRIGHTNESS, CONTRAST = 0.1, 0.1
NOISE_STD = (0.01, 0.04)


# -- the operations, with explicit parameters (the tests compare each with albumentations) ----------------

def flip(x: torch.Tensor, y: torch.Tensor, on: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror left-right the samples where ``on``. x, y: (B, C, H, W); on: (B,) bool."""
    m = on.to(x.device).view(-1, 1, 1, 1)
    return torch.where(m, x.flip(-1), x), torch.where(m, y.flip(-1), y)


def translate(x: torch.Tensor, y: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Shift each sample by whole pixels (content moves right by ``dx``, down by ``dy``), the border filled by
    reflection without repeating the edge (OpenCV's BORDER_REFLECT_101, torch's "reflect").

    Shape: x, y (B, C, H, W) float; dx, dy (B,) int64, |shift| < the side (on the CPU, so that finding the
    largest shift does not wait for the device).
    """
    b, _, h, w = x.shape
    m = int(max(dx.abs().max().item(), dy.abs().max().item())) if b else 0
    if m == 0:
        return x, y
    shift = _shift_slices if x.device.type == "cpu" else _shift_gather
    return shift(x, dx, dy, m), shift(y, dx, dy, m)


def _shift_gather(t: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, m: int) -> torch.Tensor:
    """Whole-pixel shifts as two gathers over the padded batch: a few kernels, whatever the batch (the GPU's way)."""
    b, c, h, w = t.shape
    dx, dy = dx.to(t.device), dy.to(t.device)
    rows = torch.arange(h, device=t.device)[None, :] + m - dy[:, None]  # (B, H): the source row of each output row
    cols = torch.arange(w, device=t.device)[None, :] + m - dx[:, None]  # (B, W)
    p = F.pad(t, (m, m, m, m), mode="reflect")  # (B, C, H + 2m, W + 2m)
    p = p.gather(2, rows[:, None, :, None].expand(b, c, h, w + 2 * m))
    return p.gather(3, cols[:, None, None, :].expand(b, c, h, w))


def _shift_slices(t: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, m: int) -> torch.Tensor:
    """The same as one slice of the padded batch per sample: on the CPU 4x faster than the gathers (measured,
    one thread, 16 images of 101x101: 0.54 against 2.4 ms)."""
    _, _, h, w = t.shape
    p = F.pad(t, (m, m, m, m), mode="reflect")
    return torch.stack([p[i, :, m - int(sy): m - int(sy) + h, m - int(sx): m - int(sx) + w] for i, (sx, sy) in enumerate(zip(dx, dy))])


def brightness_contrast(x: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """``x * alpha + beta`` per sample, clipped to [0, 1] (albumentations' brightness by the maximum value).

    Shape: x (B, C, H, W) in [0, 1]; alpha, beta (B,)."""
    alpha, beta = alpha.to(x.device).view(-1, 1, 1, 1), beta.to(x.device).view(-1, 1, 1, 1)
    return (x * alpha + beta).clamp_(0.0, 1.0)


def noise(x: torch.Tensor, std: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Add zero-mean Gaussian noise of standard deviation ``std`` (per sample, a share of the range), clipped
    to [0, 1]. A sample with std 0 is unchanged. Shape: x (B, C, H, W); std (B,)."""
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + z * std.to(x.device).view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


# -- draws for an epoch (NumPy, CPU) and their application to a batch ---------------------------------------

Draw = Callable[[np.random.Generator, int, int, float, float], dict[str, np.ndarray]]


def _draw_flip(rng, n, side, share, p):
    return {"on": rng.random(n) < p}


def _draw_translate(rng, n, side, share, p):
    k = int(round(share * side))
    on = rng.random(n) < p
    dx, dy = rng.integers(-k, k + 1, size=n), rng.integers(-k, k + 1, size=n)
    return {"dx": np.where(on, dx, 0), "dy": np.where(on, dy, 0)}


def _draw_brightness_contrast(rng, n, side, share, p):
    on = rng.random(n) < p
    alpha = 1.0 + rng.uniform(-CONTRAST, CONTRAST, size=n)
    beta = rng.uniform(-BRIGHTNESS, BRIGHTNESS, size=n)
    return {"alpha": np.where(on, alpha, 1.0).astype(np.float32), "beta": np.where(on, beta, 0.0).astype(np.float32)}


def _draw_noise(rng, n, side, share, p):
    on = rng.random(n) < p
    return {"std": np.where(on, rng.uniform(*NOISE_STD, size=n), 0.0).astype(np.float32)}


def _apply_flip(x, y, d, g):
    return flip(x, y, d["on"])


def _apply_translate(x, y, d, g):
    return translate(x, y, d["dx"], d["dy"])


def _apply_brightness_contrast(x, y, d, g):
    return brightness_contrast(x, d["alpha"], d["beta"]), y


def _apply_noise(x, y, d, g):
    return noise(x, d["std"], g), y


# Name -> (draw for n samples, apply to a batch): the augmentations of salttune.augment that have a device version.
DEVICE_AUGMENTATIONS: dict[str, tuple[Draw, Callable]] = {
    "hflip": (_draw_flip, _apply_flip),
    "translate": (_draw_translate, _apply_translate),
    "brightness_contrast": (_draw_brightness_contrast, _apply_brightness_contrast),
    "noise": (_draw_noise, _apply_noise),
}


@dataclass
class DeviceAugment:
    """The named augmentations of one run, applied to batches on ``device``.

    ``epoch_draws(epoch, n)`` draws every sample's parameters of an epoch at once (kept on the CPU: a batch's
    share, a few numbers per sample, travels with it); ``__call__`` applies the draws of a batch's sample indices
    to its images and masks.
    """

    names: tuple[str, ...]
    translate: float
    p: float
    seed: int
    side: int
    device: torch.device

    def __post_init__(self):
        missing = [n for n in self.names if n not in DEVICE_AUGMENTATIONS]
        if missing:
            raise ValueError(f"no device version of augmentation {missing[0]!r}")
        self._generator = torch.Generator(device=self.device)

    def epoch_draws(self, epoch: int, n: int) -> list[dict[str, torch.Tensor]]:
        """Per augmentation, its parameters for samples 0..n-1 of ``epoch``, as CPU tensors."""
        out = []
        for k, name in enumerate(self.names):
            rng = np.random.default_rng([self.seed, epoch, k])
            d = DEVICE_AUGMENTATIONS[name][0](rng, n, self.side, self.translate, self.p)
            out.append({key: torch.as_tensor(v) for key, v in d.items()})
        return out

    def __call__(self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor, draws: list[dict[str, torch.Tensor]],
                 noise_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment a batch: x, y (B, 1, H, W) float on the device; ``index`` (B,) the samples' indices into the
        epoch's draws (a CPU tensor)."""
        self._generator.manual_seed(noise_seed)
        for name, d in zip(self.names, draws):
            x, y = DEVICE_AUGMENTATIONS[name][1](x, y, {key: v[index] for key, v in d.items()}, self._generator)
        return x, y
