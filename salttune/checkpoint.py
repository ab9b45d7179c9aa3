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
# torch.save writes a zip archive (PK..); files of torch before 1.6 are a pickle (protocol 2: 0x80 0x02).
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80")
_OTHER_FILES = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"{": "a JSON file", b"id,": "a CSV file"}


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
    if path.is_dir():
        raise SalttuneError(f"{path}: is a folder, not a checkpoint file; give the path of a .pt file written by salttune")
    if not path.is_file():
        raise SalttuneError(f"{path}: checkpoint does not exist; give the path of a .pt file written by salttune")
    with open(path, "rb") as f:
        head = f.read(8)
    if not head:
        raise SalttuneError(f"{path}: checkpoint file is empty (0 bytes); delete it or use another")
    if not head.startswith(_TORCH_MAGIC):
        what = next((name for magic, name in _OTHER_FILES.items() if head.startswith(magic)), "not a PyTorch file")
        raise SalttuneError(f"{path}: not a salttune checkpoint ({what}); give the path of a .pt file written by salttune")
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
    """Rebuild the network from a checkpoint alone (its constructor arguments) and load its weights.

    The network comes back in channels-last format, ready for inference (faster on the CPU and on GPUs).
    """
    from salttune.model import build_model

    ckpt = load_checkpoint(path)
    model = build_model(**ckpt["model_args"])
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model.to(memory_format=torch.channels_last), ckpt
