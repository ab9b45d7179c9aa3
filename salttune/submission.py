"""Kaggle submission files (``id,rle_mask``): write, read with validation, and score against a truth file."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np

from salttune.errors import SalttuneError
from salttune.fileio import atomic_path
from salttune.metric import competition_score, mean_iou, score_by_coverage
from salttune.rle import RLEError, rle_decode, rle_encode

__all__ = ["write_submission", "read_masks_csv", "score_files"]


def write_submission(path: str | Path, ids: list[str], masks: Iterable[np.ndarray]) -> Path:
    """Write one ``id,rle_mask`` row per (H, W) bool mask, as the masks arrive.

    ``masks`` may be an (N, H, W) array or a generator, so predictions stream to the file without all being
    held at once. The file appears under its name only when complete (see :func:`salttune.fileio.atomic_path`).

    Raises:
        ValueError: the number of masks is not the number of ids (no file is written).
        SalttuneError: the disk is full or the folder is not writable.
    """
    k = 0
    with atomic_path(path, "submission") as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "rle_mask"])
        for m in masks:
            if k < len(ids):
                w.writerow([ids[k], rle_encode(m)])
            k += 1
        if k != len(ids):
            raise ValueError(f"{len(ids)} ids but {k} masks")
    return Path(path)


def read_masks_csv(path: str | Path, shape: tuple[int, int] = (101, 101)) -> tuple[list[str], np.ndarray]:
    """Read an ``id,rle_mask`` file into ids and (N, H, W) bool masks.

    Raises:
        SalttuneError: naming the file and the first bad row (line number as an editor shows it) for a missing
            header, a wrong number of fields, a duplicate id or a malformed run-length string.
    """
    path = Path(path)
    if path.is_dir():
        raise SalttuneError(f"{path}: is a folder, not a file; give the path of an id,rle_mask CSV file")
    if not path.is_file():
        raise SalttuneError(f"{path}: file does not exist; give the path of an id,rle_mask CSV file")
    if path.stat().st_size == 0:
        raise SalttuneError(f"{path}: file is empty (0 bytes); expected a header 'id,rle_mask' and one row per image")
    ids, masks, seen = [], [], {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a byte-order mark (Excel writes one) is not part of 'id'
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or [h.strip() for h in header[:2]] != ["id", "rle_mask"]:
                raise SalttuneError(f"{path}: line 1: header is {header!r}; expected 'id,rle_mask'")
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != 2:
                    raise SalttuneError(f"{path}: line {line}: {len(row)} fields; expected 'id,rle_mask'")
                i, rle = row[0].strip(), row[1]
                if i in seen:
                    raise SalttuneError(f"{path}: line {line}: duplicate id {i} (first on line {seen[i]}); keep one row")
                seen[i] = line
                try:
                    masks.append(rle_decode(rle, shape))
                except RLEError as e:
                    raise SalttuneError(f"{path}: line {line} (id {i}): {e}") from None
                ids.append(i)
    except UnicodeDecodeError:
        raise SalttuneError(f"{path}: not a text CSV file; give an id,rle_mask CSV file") from None
    return ids, np.array(masks, dtype=bool).reshape(len(ids), *shape)


def score_files(submission: str | Path, truth: str | Path, shape: tuple[int, int] = (101, 101)) -> dict:
    """Score a submission file against a truth file of the same form.

    Returns:
        ``{"score", "iou", "n", "by_coverage": {class: {"n", "score", "iou"}}}``.

    Raises:
        SalttuneError: either file is malformed, or the submission misses an id of the truth or has an extra
            one (the first such row is named).
    """
    if Path(submission).resolve() == Path(truth).resolve():
        warnings.warn(f"{submission} is scored against the same file as --truth; the score is 1 whatever the masks")
    sub_ids, sub_masks = read_masks_csv(submission, shape)
    true_ids, true_masks = read_masks_csv(truth, shape)
    if not true_ids:
        raise SalttuneError(f"{truth}: no rows after the header; the truth needs one 'id,rle_mask' row per image")
    sub_pos = {i: k for k, i in enumerate(sub_ids)}
    true_set = set(true_ids)
    for k, i in enumerate(sub_ids):
        if i not in true_set:
            raise SalttuneError(f"{submission}: line {k + 2}: id {i} is not in {truth}; remove the extra row")
    for k, i in enumerate(true_ids):
        if i not in sub_pos:
            raise SalttuneError(f"{submission}: id {i} (line {k + 2} of {truth}) is missing; add a row for it")
    pred = sub_masks[[sub_pos[i] for i in true_ids]]
    return {
        "score": competition_score(pred, true_masks),
        "iou": mean_iou(pred, true_masks),
        "n": len(true_ids),
        "by_coverage": {str(c): v for c, v in score_by_coverage(pred, true_masks).items()},
    }
