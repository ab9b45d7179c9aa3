"""Run-length encoding in the Kaggle TGS convention.

Pixels are numbered top to bottom, then left to right (column-major, Fortran order), starting at 1.
A mask is written as space-separated ``start length`` pairs; an empty mask is the empty string.

Reference: https://www.kaggle.com/c/tgs-salt-identification-challenge/overview/evaluation
"""

from __future__ import annotations

import numpy as np

from salttune.errors import SalttuneError

__all__ = ["RLEError", "rle_encode", "rle_decode"]


class RLEError(SalttuneError):
    """A run-length string that is malformed, out of range, unsorted or overlapping."""


def rle_encode(mask: np.ndarray) -> str:
    """Encode a binary mask as a Kaggle run-length string.

    Args:
        mask: (H, W) array; non-zero pixels are salt.

    Returns:
        ``"start length start length ..."`` with 1-indexed column-major starts; ``""`` when empty.
    """
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    # Pad with zeros so every run has a rising and a falling edge; edges are where neighbours differ.
    padded = np.concatenate([[False], flat, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1]) + 1  # 1-indexed positions of rises and falls
    starts, ends = edges[0::2], edges[1::2]
    runs = np.empty(2 * len(starts), dtype=np.int64)
    runs[0::2], runs[1::2] = starts, ends - starts
    return " ".join(map(str, runs))


def rle_decode(rle: str, shape: tuple[int, int] = (101, 101)) -> np.ndarray:
    """Decode a Kaggle run-length string, validating it.

    Args:
        rle: ``"start length ..."``; empty, whitespace or NaN (as pandas reads an empty cell) for no salt.
        shape: (H, W) of the mask.

    Returns:
        (H, W) bool mask.

    Raises:
        RLEError: the string is malformed (not integer pairs), out of range (start < 1, length < 1,
            a run past the last pixel), or its runs are unsorted or overlap.
    """
    h, w = shape
    mask = np.zeros(h * w, dtype=bool)
    if not isinstance(rle, str):  # pandas gives NaN for an empty cell
        if rle is None or (isinstance(rle, float) and np.isnan(rle)):
            return mask.reshape((h, w), order="F")
        raise RLEError(f"run-length value {rle!r} is not a string of 'start length' pairs")
    tokens = rle.split()
    if not tokens:
        return mask.reshape((h, w), order="F")
    try:
        numbers = np.array([int(t) for t in tokens], dtype=np.int64)
    except ValueError:
        bad = next(t for t in tokens if not t.lstrip("+-").isdigit())
        raise RLEError(f"malformed run-length string: {bad!r} is not an integer") from None
    if len(numbers) % 2:
        raise RLEError(f"malformed run-length string: {len(numbers)} numbers, expected 'start length' pairs")
    starts, lengths = numbers[0::2], numbers[1::2]
    if (starts < 1).any():
        raise RLEError(f"run-length start {starts[starts < 1][0]} is out of range: starts are 1-indexed")
    if (lengths < 1).any():
        raise RLEError(f"run-length length {lengths[lengths < 1][0]} is out of range: lengths must be >= 1")
    ends = starts + lengths - 1  # inclusive, 1-indexed
    if (ends > h * w).any():
        i = int(np.argmax(ends > h * w))
        raise RLEError(
            f"run '{starts[i]} {lengths[i]}' ends at pixel {ends[i]}, past the last pixel {h * w} of a {h}x{w} mask"
        )
    if (np.diff(starts) <= 0).any():
        i = int(np.argmax(np.diff(starts) <= 0))
        raise RLEError(f"run-length starts are not sorted: {starts[i + 1]} follows {starts[i]}")
    if (starts[1:] <= ends[:-1]).any():
        i = int(np.argmax(starts[1:] <= ends[:-1]))
        raise RLEError(f"run-length runs overlap: run at {starts[i + 1]} starts inside the run {starts[i]}..{ends[i]}")
    # Mark run starts +1 and run ends -1, then a cumulative sum fills the runs.
    delta = np.zeros(h * w + 1, dtype=np.int8)
    delta[starts - 1] += 1
    delta[ends] -= 1
    mask = np.cumsum(delta[:-1]) > 0
    return mask.reshape((h, w), order="F")
