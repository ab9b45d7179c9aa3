"""One trial of a search: a thin function around :func:`salttune.train.fit`.

On entry it asks Tune for the trial's latest checkpoint (``tune.get_checkpoint``), so a trial retried after a
failure, or resumed after the driver was killed, continues at the epoch after the last one it finished.
After every epoch ``fit`` writes ``checkpoint/state.pt`` and the snapshots; the ``report`` given to it hands
the metrics and that folder to ``tune.report``, which copies the folder to the search's storage. The local
working copy lives in a temporary folder deleted when the trial ends. Tune keeps every checkpoint it is given
(``num_to_keep=None``) and :class:`salttune.search.retention.CheckpointRetention` deletes a trial's older ones once
a newer one is safely stored, so a trial's disk use is about one checkpoint: ``state.pt`` plus the top snapshots.

In a search with a time budget, the trial trains with ``time_budget_s`` set to the time it has until the
search's deadline (plus the epochs a retried trial trained before), so ``fit`` ends it after the last epoch
that fits.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
import tempfile
import warnings
from pathlib import Path

import ray
from ray import tune

from salttune.checkpoint import load_checkpoint
from salttune.config import TrainConfig
from salttune.layout import CheckpointFiles, EpochMetrics, trial_name
from salttune.search.space import SearchSpace, trial_config
from salttune.split import Arrays
from salttune.train import fit

__all__ = ["train_trial", "trial_dirname", "time_left", "planned_epochs"]


def train_trial(config: dict, *, space: SearchSpace, train: Arrays, val: Arrays, deadline: float | None = None,
                epoch_s: float | None = None) -> None:
    """Train one sampled configuration, reporting and checkpointing after every epoch.

    Args:
        config: the sampled point (dotted training-config keys, see :func:`salttune.search.space.suggest`)
            plus ``optuna_trial``, the number of the Optuna trial it came from, which with ``space.seed``
            gives the trial its training seed (:func:`salttune.search.space.trial_config`; reported with the
            metrics, so the leaderboard shows it).
        space: the validated search space (fixed settings, epoch budget, data split).
        train, val: the data parts, shared by all trials through Ray's object store.
        deadline: the search's deadline (``time.time()`` seconds) under a time budget; None: no deadline.
        epoch_s: the measured seconds of a typical epoch under a time budget: a trial that starts too late to
            reach ``max_t`` before the deadline plans the epochs it has time for, so its loss stages and cycles
            given as shares of the run still all train (:func:`planned_epochs`).
    """
    cfg = trial_config(space, {k: v for k, v in config.items() if k != "optuna_trial"}, config["optuna_trial"])
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # one "Checkpoint created" line per epoch otherwise
    # The arrays come read-only from Ray's shared-memory object store (no copy per trial); torch warns that
    # it cannot write to them, which it never does here.
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    node_id = ray.get_runtime_context().get_node_id()  # which machine ran it (leaderboard, multi-node test)
    with tempfile.TemporaryDirectory(prefix="salttune-trial-") as tmp:
        resume_from = None
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:  # a retry or a resumed search: continue at the next epoch
            resume_from = checkpoint.to_directory(os.path.join(tmp, "restored"))
        if deadline is not None:
            cfg = dataclasses.replace(cfg, time_budget_s=time_left(cfg, deadline, resume_from))
            if epoch_s and resume_from is None:  # a resumed trial keeps the length it started with
                cfg = dataclasses.replace(cfg, epochs=planned_epochs(cfg.epochs, deadline - time.time(), epoch_s))

        def report(metrics: EpochMetrics, checkpoint_dir: Path) -> None:
            tune.report({**metrics, "node_id": node_id, "seed": cfg.seed}, checkpoint=tune.Checkpoint.from_directory(str(checkpoint_dir)))

        fit(cfg, train, val, Path(tmp) / "run", report, resume_from=resume_from)


def planned_epochs(max_t: int, left_s: float, epoch_s: float) -> int:
    """The epochs a trial starting with ``left_s`` seconds before the deadline plans: ``max_t``, or the whole
    epochs that fit (its start-up counted, :data:`salttune.search.budget.TRIAL_OVERHEAD_S`), at least one."""
    from salttune.search.budget import TRIAL_OVERHEAD_S

    return max(1, min(max_t, math.floor((left_s - TRIAL_OVERHEAD_S) / max(epoch_s, 1e-3))))


def time_left(cfg: TrainConfig, deadline: float, resume_from: str | Path | None) -> float:
    """The trial's ``time_budget_s`` under a deadline: the seconds left, plus the training seconds of the epochs a
    restored trial ran before (``fit`` counts those against its budget too); never above a budget the space fixed."""
    spent = 0.0
    if resume_from is not None:
        spent = sum(h["epoch_seconds"] for h in load_checkpoint(CheckpointFiles(resume_from).state)["history"])
    budget = max(1.0, spent + deadline - time.time())  # 1 s: the config's least; fit still trains one epoch
    return min(budget, cfg.time_budget_s) if cfg.time_budget_s else budget


def trial_dirname(trial) -> str:
    """Short trial folders (Tune's default name holds every parameter and a date)."""
    return trial_name(trial.trial_id)
