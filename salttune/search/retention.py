"""Which checkpoints a search keeps: the latest of each trial (state.pt + its top snapshots), nothing else.

Why not Tune's ``CheckpointConfig(num_to_keep=1)``: Tune deletes the previous checkpoint the moment a new
one is registered, but writes the experiment state (which names each trial's checkpoint to resume from)
a little later, and uploads it later still. A driver killed in between leaves a state that points at a
deleted folder, and that trial can never be resumed ("Could not recover from checkpoint as it does not
exist on storage anymore"): we hit exactly this in the resume test. So Tune keeps every checkpoint
(``num_to_keep=None``) and :class:`CheckpointRetention` deletes a trial's older checkpoints only once a
newer one has existed for ``grace`` seconds, several experiment-state periods (``TUNE_GLOBAL_CHECKPOINT_S``),
by which time a state naming the newer one is in storage. When the search ends, :func:`prune_finished`
keeps exactly one checkpoint per trial and removes the folders of trials Tune no longer knows (a trial
started just before a kill and never saved in the experiment state).

Disk use while running: one checkpoint per trial plus those of the last ``grace`` seconds; at the end, one.
"""

from __future__ import annotations

import logging
import time

import pyarrow.fs
from ray.tune import Callback

from salttune.layout import TRIAL_PREFIX

__all__ = ["CheckpointRetention", "prune_finished"]

log = logging.getLogger(__name__)


def _delete(fs, path: str) -> None:
    try:
        fs.delete_dir(path)
    except (OSError, FileNotFoundError) as e:  # already gone, or storage hiccup: try again at the end
        log.debug("could not delete %s: %s", path, e)


class CheckpointRetention(Callback):
    """Deletes a trial's older checkpoints once a newer one is ``grace`` seconds old."""

    def __init__(self, grace: float = 10.0):
        self.grace = grace
        self._seen: dict[str, list] = {}  # trial id -> [(time registered, checkpoint)], oldest first

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info) -> None:
        self._seen.setdefault(trial.trial_id, []).append((time.monotonic(), checkpoint))

    def on_step_end(self, iteration, trials, **info) -> None:
        now = time.monotonic()
        for trial_id, items in self._seen.items():
            settled = [i for i, (t, _) in enumerate(items) if now - t >= self.grace]
            if settled and settled[-1] > 0:
                keep_from = settled[-1]
                for _, ckpt in items[:keep_from]:
                    _delete(ckpt.filesystem, ckpt.path)
                self._seen[trial_id] = items[keep_from:]


def prune_finished(results, experiment_path: str) -> None:
    """After the search: keep each trial's latest checkpoint; drop other checkpoints and unknown trial folders."""
    fs, base = pyarrow.fs.FileSystem.from_uri(experiment_path) if "://" in experiment_path else (pyarrow.fs.LocalFileSystem(), experiment_path)
    known = {}
    for r in results:
        known[r.path.rstrip("/").rsplit("/", 1)[-1]] = r.checkpoint.path.rstrip("/").rsplit("/", 1)[-1] if r.checkpoint else None
    for info in fs.get_file_info(pyarrow.fs.FileSelector(base, allow_not_found=True)):
        name = info.path.rstrip("/").rsplit("/", 1)[-1]
        if info.type != pyarrow.fs.FileType.Directory or not name.startswith(TRIAL_PREFIX):
            continue
        if name not in known:
            _delete(fs, info.path)  # a trial the experiment state never recorded
            continue
        for sub in fs.get_file_info(pyarrow.fs.FileSelector(info.path)):
            sub_name = sub.path.rstrip("/").rsplit("/", 1)[-1]
            if sub.type == pyarrow.fs.FileType.Directory and sub_name.startswith("checkpoint_") and sub_name != known[name]:
                _delete(fs, sub.path)
