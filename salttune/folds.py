"""K-fold training: one configuration trained once per coverage-stratified fold, so every image trains models.

A K-fold run is a folder of ordinary runs, one per fold (each exactly what ``salttune train`` writes, with
``folds=K, fold=i`` in its config), and ``folds.json``, the per-fold best scores, their mean and spread
(:class:`salttune.layout.KFoldFiles`).

Fold ``i`` validates on the ``i``-th of K folds of the images outside the holdout (:mod:`salttune.split`), so the
K validation parts partition those images: a K-fold run scores each of them with a model that never trained
on it (out of fold), and the holdout with every fold's model. ``salttune train --folds K`` runs the folds one
after another here; ``salttune ensemble --refit-folds K`` runs them as Ray tasks (:mod:`salttune.search.refit`).

A fold's run is *finished* when its ``summary.json`` says it ran its epochs (or its time budget ran out);
:func:`train_fold` skips it, continues a fold that has a checkpoint, and starts the others, so an interrupted
K-fold run loses at most the epoch in progress.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Callable

import numpy as np

from salttune.config import TrainConfig
from salttune.errors import SalttuneError
from salttune.fileio import write_json
from salttune.layout import KFoldFiles, RunFiles, RunSummary, read_summary
from salttune.split import Arrays, Split, split_data

__all__ = ["fold_config", "finished", "train_fold", "summarize", "with_extra"]


def fold_config(cfg: TrainConfig, folds: int, fold: int) -> TrainConfig:
    """``cfg`` validating on fold ``fold`` of ``folds`` (its other settings unchanged)."""
    if not 0 <= fold < folds:
        raise SalttuneError(f"fold {fold} of {folds}: give a fold from 0 to {folds - 1}")
    return dataclasses.replace(cfg, folds=folds, fold=fold)


def finished(run_dir: Path) -> RunSummary | None:
    """The summary of a finished run in ``run_dir`` (all its epochs, or stopped by its time budget), else None."""
    path = RunFiles(run_dir).summary
    if not path.is_file():
        return None
    s = read_summary(path)
    return s if s["epochs_run"] == s["epochs"] or s.get("stopped_by_time_budget") else None


def with_extra(train: Arrays, extra: Arrays | None) -> Arrays:
    """The training part with ``extra`` images (pseudo-labelled test images) added; never the validation part."""
    if extra is None or not len(extra.ids):
        return train
    return Arrays(train.ids + list(extra.ids), np.concatenate([train.images, extra.images]),
                  np.concatenate([train.masks, extra.masks]), np.concatenate([train.depths, extra.depths]))


def train_fold(cfg: TrainConfig, data, out: str | Path, *, extra: Arrays | None = None,
               report: Callable[[dict, Path], None] = lambda m, c: None, progress: bool = False, fresh: bool = False,
               everything: bool = False) -> RunSummary:
    """Train (or finish) one fold's run in ``out``: skip it when finished, resume it from its checkpoint when
    it has one, else start it. ``cfg`` names the fold (``cfg.folds``, ``cfg.fold``).

    Args:
        cfg: the fold's resolved config (:func:`fold_config`).
        data: a :class:`salttune.data.TGSData` or its folder (a Ray task loads the folder itself).
        out: the fold's run folder (``KFoldFiles(root).fold(i).root``).
        extra: images added to the training part only (pseudo-labels).
        report: called after every epoch, as by :func:`salttune.train.fit`.
        fresh: train from scratch whatever ``out`` holds (``--force``).
        everything: train on every non-holdout image, the validation part included (a final model); its
            validation scores are then on images it trained on: a monitor, not an estimate.

    Returns:
        The run's summary (``summary.json``).
    """
    from salttune.data import load_dataset
    from salttune.train import fit

    out = Path(out)
    done = None if fresh else finished(out)
    if done is not None:
        return done
    if isinstance(data, (str, Path)):
        data = load_dataset(data, with_test=False)
    train, val, _ = split_data(data, Split.of(cfg))
    ckpt = RunFiles(out).checkpoint
    resume = ckpt.root if ckpt.state.is_file() and not fresh else None
    if everything:
        train = with_extra(train, val)
    return fit(cfg, with_extra(train, extra), val, out, report, resume_from=resume, progress=progress)


def summarize(out: str | Path, folds: int) -> dict:
    """Per-fold best scores, their mean and standard deviation, written to ``out/folds.json``."""
    files = KFoldFiles(out)
    rows = []
    for f in range(folds):
        s = read_summary(files.fold(f).summary)
        rows.append({"fold": f, "best_score": s["best_score"], "best_epoch": s["best_epoch"],
                     "epochs_run": s["epochs_run"], "seconds": s["seconds"], "snapshots": len(s["snapshots"])})
    scores = np.array([r["best_score"] for r in rows], float)
    summary = {"folds": folds, "rows": rows, "mean_score": float(scores.mean()),
               "sd_score": float(scores.std(ddof=1)) if folds > 1 else math.nan,
               "note": "each fold's best validation score is over its own fold (out of fold); the holdout is in none"}
    write_json(files.summary, summary, "K-fold summary")
    return summary
