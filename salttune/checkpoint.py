"""Self-describing checkpoints: constructor args, config, weights, epoch and metrics in one file.

Written atomically (:mod:`salttune.fileio`), so a crash mid-write never leaves half a checkpoint. Read with
``torch.load(weights_only=True)``: a checkpoint file cannot run code, and only plain data and tensors load.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from salttune.errors import SalttuneError
from salttune.fileio import atomic_path

__all__ = ["FORMAT", "save_checkpoint", "load_checkpoint", "build_from_checkpoint"]

FORMAT = "salttune-checkpoint-v1"  # marks a file as ours; load refuses anything without it


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plain data and tensors) atomically to ``path``.

    Raises:
        SalttuneError: the disk is full or the folder is not writable; the previous file at ``path``, if any,
            is left as it was.
    """
    with atomic_path(path, "checkpoint", mkdir=True) as tmp, open(tmp, "wb") as f:
        torch.save({"format": FORMAT, **payload}, f)
    return Path(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a salttune checkpoint safely (weights only).

    Raises:
        SalttuneError: the file is missing, truncated or corrupt, or is not a salttune checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise SalttuneError(f"{path}: checkpoint does not exist; give the path of a .pt file written by salttune")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise SalttuneError(f"{path}: not a salttune checkpoint (it holds arbitrary Python objects, which are not loaded)") from None
        raise SalttuneError(f"{path}: checkpoint is truncated or corrupt ({first[:120]}); delete it or use another") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise SalttuneError(f"{path}: not a salttune checkpoint (no '{FORMAT}' marker)")
    return payload


def build_from_checkpoint(path: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the network from a checkpoint alone (its constructor arguments) and load its weights."""
    from salttune.model import UNet

    ckpt = load_checkpoint(path)
    model = UNet(**ckpt["model_args"])
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, ckpt
