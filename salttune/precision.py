"""The one precision policy: which autocast dtype a network trains and predicts in, and whether its loss needs
scaling. Training, validation, prediction, the ensemble and the benchmarks all ask here, so a network is
predicted the way it was trained and a benchmark times the step a trial runs."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

__all__ = ["Precision", "precision", "checkpoint_precision", "precision_name"]


class Precision(NamedTuple):
    """``dtype``: the autocast dtype (None: float32, no autocast); ``needs_scaler``: float16 gradients underflow
    without loss scaling, so training needs a ``GradScaler`` (prediction does not)."""

    dtype: torch.dtype | None
    needs_scaler: bool


def precision(device: torch.device, amp: bool) -> Precision:
    """The precision of a network on ``device`` with mixed precision asked for or not (``TrainConfig.amp``).

    On a GPU with ``amp``: bfloat16 where the card has it, else float16 with loss scaling (V100, T4). Otherwise
    float32 without autocast, so the CPU computes exactly what it computes without this policy.
    """
    if device.type != "cuda" or not amp:
        return Precision(None, False)
    if torch.cuda.is_bf16_supported():
        return Precision(torch.bfloat16, False)
    return Precision(torch.float16, True)


def checkpoint_precision(ckpt: dict[str, Any], device: torch.device) -> torch.dtype | None:
    """The autocast dtype to predict with a checkpoint's network on ``device``: that of the config it was trained
    with (its ``amp``, true when the checkpoint's config lacks it)."""
    return precision(device, bool(ckpt.get("config", {}).get("amp", True))).dtype


def precision_name(dtype: torch.dtype | None) -> str:
    """``bfloat16``, ``float16`` or ``float32`` (no autocast)."""
    return "float32" if dtype is None else str(dtype).removeprefix("torch.")
