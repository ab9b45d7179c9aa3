"""One trial of a search: a thin function around :func:`salttune.train.fit`.

On entry it asks Tune for the trial's latest checkpoint (``tune.get_checkpoint``), so a trial retried after a
failure, or resumed after the driver was killed, continues at the epoch after the last one it finished.
After every epoch ``fit`` writes ``checkpoint/state.pt`` and the snapshots; the ``report`` given to it hands
the metrics and that folder to ``tune.report``, which copies the folder to the search's storage. The local
working copy lives in a temporary folder deleted when the trial ends, so a trial's disk use is the one
checkpoint Tune keeps (``CheckpointConfig(num_to_keep=1)``): ``state.pt`` plus the top snapshots.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import ray
from ray import tune

from salttune.search.space import SearchSpace, trial_config
from salttune.split import Arrays
from salttune.train import fit

__all__ = ["train_trial", "trial_dirname"]


def train_trial(config: dict, *, space: SearchSpace, train: Arrays, val: Arrays) -> None:
    """Train one sampled configuration, reporting and checkpointing after every epoch.

    Args:
        config: the sampled point (dotted training-config keys, see :func:`salttune.search.space.suggest`)
            plus ``optuna_trial``, the number of the Optuna trial it came from, which with ``space.seed``
            gives the trial its training seed (:func:`salttune.search.space.trial_config`; reported with the
            metrics, so the leaderboard shows it).
        space: the validated search space (fixed settings, epoch budget, data split).
        train, val: the data parts, shared by all trials through Ray's object store.
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

        def report(metrics: dict, checkpoint_dir: Path) -> None:
            tune.report({**metrics, "node_id": node_id, "seed": cfg.seed}, checkpoint=tune.Checkpoint.from_directory(str(checkpoint_dir)))

        fit(cfg, train, val, Path(tmp) / "run", report, resume_from=resume_from)


def trial_dirname(trial) -> str:
    """Short trial folders (Tune's default name holds every parameter and a date)."""
    return f"trial_{trial.trial_id}"
