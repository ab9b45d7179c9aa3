"""Inference: batched logits and probabilities, horizontal-flip test-time augmentation, the salt-present
head's cut-off (an image it calls empty is predicted empty), and submissions.

``amp_dtype`` is the autocast dtype of :mod:`salttune.precision`: a network predicts in the precision it was trained
in (``precision(device, cfg.amp)``, or ``checkpoint_precision`` of its checkpoint)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn

from salttune.batches import input_batches
from salttune.errors import SalttuneError
from salttune.heads import outputs
from salttune.submission import write_submission

__all__ = ["TTA_MODES", "predict_logits", "predict_proba", "predict_batch", "iter_predictions", "iter_proba",
           "apply_salt_cutoff", "write_submission_stream"]

TTA_MODES = ("none", "flip")


@torch.no_grad()
def _forward(model: nn.Module, x: torch.Tensor, z: torch.Tensor | None,
             amp_dtype: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Main logits (B, 1, H, W) and salt-present logits (B,) (None for a network without a salt head)."""
    with torch.autocast(x.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        out = outputs(model(x, z))
    salt = out.get("salt")
    return out["logits"].float(), None if salt is None else salt.float()


@torch.no_grad()
def predict_batch(model: nn.Module, x: torch.Tensor, z: torch.Tensor | None, *, amp_dtype: torch.dtype | None = None,
                  tta: str = "none") -> tuple[torch.Tensor, torch.Tensor | None]:
    """Salt probabilities (B, H, W) and salt-present probabilities (B,) (None without a salt head) of one batch
    already on the device, left there. With ``tta="flip"`` the batch and its mirror go through the network as one
    batch of 2B; the mirrored half is mirrored back and the two probabilities averaged.

    Shape: x (B, 1, H, W) float in [0, 1]; z (B,) scaled depths or None.
    """
    if tta not in TTA_MODES:
        raise SalttuneError(f"--tta {tta!r} is unknown; allowed: {', '.join(TTA_MODES)}")
    b = len(x)
    if tta == "flip":
        x, z = torch.cat([x, x.flip(-1)]), None if z is None else torch.cat([z, z])
    out, salt = _forward(model, x, z, amp_dtype)
    p, s = torch.sigmoid(out[:, 0]), None if salt is None else torch.sigmoid(salt)  # (B or 2B, H, W), (B or 2B,)
    if tta == "flip":
        p = 0.5 * (p[:b] + p[b:].flip(-1))
        s = None if s is None else 0.5 * (s[:b] + s[b:])
    return p, s


def iter_predictions(
    model: nn.Module,
    images: np.ndarray,
    depths: np.ndarray | None,
    device: torch.device,
    *,
    batch_size: int = 64,
    amp_dtype: torch.dtype | None = None,
    tta: str = "none",
    logits: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Yield, batch by batch, (B, H, W) float32 salt probabilities and the (B,) float32 probabilities of the
    salt-present head (None for a network without one); with ``logits`` (no TTA), both as logits.

    With ``tta="flip"`` each image is also predicted mirrored, in the same pass (:func:`predict_batch`); the
    mirrored prediction is mirrored back and the two probabilities are averaged (the salt head's two too).
    """
    if tta not in TTA_MODES:
        raise SalttuneError(f"--tta {tta!r} is unknown; allowed: {', '.join(TTA_MODES)}")
    if logits and tta != "none":
        raise ValueError("logits are returned without test-time augmentation")
    model.eval()
    # The model's memory format is left as it is: a model being trained keeps the layout its optimiser state
    # was made for (a fused optimiser fails, or silently misapplies updates, on weights converted under it).
    # Checkpoints come back channels-last (build_from_checkpoint); the input is channels-last either way.
    for x, z in input_batches(images, depths, device, batch_size):  # (B, 1, H, W), (B,) or None
        if logits:
            out, salt = _forward(model, x, z, amp_dtype)
            yield out[:, 0].cpu().numpy(), None if salt is None else salt.cpu().numpy()
            continue
        p, s = predict_batch(model, x, z, amp_dtype=amp_dtype, tta=tta)
        yield p.cpu().numpy(), None if s is None else s.cpu().numpy()


def apply_salt_cutoff(p: np.ndarray, salt: np.ndarray | None, cutoff: float | None) -> np.ndarray:
    """Probabilities with every image whose salt-present probability is below ``cutoff`` set to 0 (so its
    mask is empty at any threshold). ``cutoff`` None, or no salt head (``salt`` None), changes nothing.

    Shape:
        p: (B, H, W); salt: (B,); output: (B, H, W).
    """
    if cutoff is None or salt is None:
        return p
    return np.where((salt >= cutoff)[:, None, None], p, np.zeros_like(p))


def iter_proba(
    model: nn.Module,
    images: np.ndarray,
    depths: np.ndarray | None,
    device: torch.device,
    *,
    batch_size: int = 64,
    amp_dtype: torch.dtype | None = None,
    tta: str = "none",
    logits: bool = False,
    salt_cutoff: float | None = None,
) -> Iterator[np.ndarray]:
    """Yield (B, H, W) float32 salt probabilities (or logits, without TTA) batch by batch.

    With ``tta="flip"`` each image is also predicted mirrored; the mirrored prediction is mirrored back and
    the two probabilities are averaged. With ``salt_cutoff`` an image whose salt-present head gives a
    probability below it is predicted empty (all 0).

    Raises:
        SalttuneError: ``salt_cutoff`` is given but the network has no salt head.
    """
    if salt_cutoff is not None and logits:
        raise ValueError("logits are returned without the salt cut-off")
    for p, salt in iter_predictions(model, images, depths, device, batch_size=batch_size, amp_dtype=amp_dtype,
                                    tta=tta, logits=logits):
        if salt_cutoff is not None and salt is None:
            raise SalttuneError(f"--salt-cutoff {salt_cutoff}: this network has no salt head "
                                "(model.salt_head); drop --salt-cutoff")
        yield apply_salt_cutoff(p, salt, salt_cutoff)


def predict_logits(model, images, depths, device, *, batch_size=64, amp_dtype=None) -> np.ndarray:
    """(N, H, W) float32 logits of every image, no test-time augmentation."""
    parts = list(iter_proba(model, images, depths, device, batch_size=batch_size, amp_dtype=amp_dtype, logits=True))
    return np.concatenate(parts) if parts else np.zeros((0, *images.shape[1:]), np.float32)


def predict_proba(model, images, depths, device, *, batch_size=64, amp_dtype=None, tta="none", salt_cutoff=None) -> np.ndarray:
    """(N, H, W) float32 probabilities of every image, with optional flip TTA and salt cut-off."""
    parts = list(iter_proba(model, images, depths, device, batch_size=batch_size, amp_dtype=amp_dtype, tta=tta,
                            salt_cutoff=salt_cutoff))
    return np.concatenate(parts) if parts else np.zeros((0, *images.shape[1:]), np.float32)


def write_submission_stream(path: str | Path, ids: list[str], batches: Iterator[np.ndarray], threshold: float = 0.5, min_area: int = 0) -> Path:
    """Write ``id,rle_mask`` rows as probability batches arrive, never holding all predictions at once.

    Masks with fewer than ``min_area`` salt pixels are written empty. The file appears under its name only
    when complete (see :func:`salttune.submission.write_submission`).
    """
    masks = (m if m.sum() >= min_area else np.zeros_like(m) for probs in batches for m in probs > threshold)  # (H, W) each
    return write_submission(path, ids, masks)
