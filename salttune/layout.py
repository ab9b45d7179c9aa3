"""The folders salttune writes, named in one place, and the records a training run keeps in them.

A training run (``salttune train``, one fold, one search trial's working copy)::

    config.yaml          the resolved config
    metrics.jsonl        one EpochMetrics line per epoch
    summary.json         the RunSummary: best score and epoch, snapshots
    record.json          the experiment record (salttune.record)
    checkpoint/state.pt  everything needed to resume (weights, optimizer, schedule, RNG, history)
    checkpoint/snapshots/snapshot_XX.pt   one self-describing checkpoint per cycle (best kept)

A K-fold run (``salttune train --folds K``): ``config.yaml``, ``record.json``, ``folds.json`` and one training
run per fold in ``fold_<i>/``. A search (``results/NAME``): see :class:`SearchFiles`; its ensemble (``ensemble/``):
see :class:`EnsembleFiles`. This module names the files; the modules that write them own their formats.

No ``from __future__ import annotations`` here: Python 3.11's ``TypedDict`` misreads ``NotRequired`` in a
string annotation as required.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

try:
    from typing import NotRequired
except ImportError:  # Python 3.10; typing_extensions comes with torch
    from typing_extensions import NotRequired

from salttune.errors import SalttuneError

__all__ = ["CONFIG", "RECORD", "REPORT", "GIT_DIFF", "EXPERIMENT", "SNAPSHOTS", "TRIAL_PREFIX", "EpochMetrics", "Snapshot",
           "RunSummary", "read_summary", "CheckpointFiles", "RunFiles", "KFoldFiles", "TrialFiles", "EnsembleFiles",
           "SearchFiles", "trial_name"]

CONFIG = "config.yaml"  # a run's resolved config (a K-fold run's too)
RECORD = "record.json"  # the experiment record of a run, K-fold run, search or ensemble (salttune.record)
REPORT = "report.html"  # ``salttune report``'s page, in the run's or search's folder
GIT_DIFF = "git.diff"  # beside a record, when the code's work tree was dirty
EXPERIMENT = "trials"  # Tune's experiment inside a search's folder, also where it is a URI (a search's storage)
SNAPSHOTS = "snapshots"  # inside a checkpoint folder, also where it is a URI (a search's storage)
TRIAL_PREFIX = "trial_"  # a search trial's folder is trial_<Ray's trial id>


class EpochMetrics(TypedDict):
    """One epoch of a training run: a line of ``metrics.jsonl``, what ``fit`` reports, a ``state.pt`` history
    entry. A watcher's values (``salttune.train.WATCHERS``) join it under their own keys; the search's report
    adds ``node_id`` and ``seed``."""

    epoch: int  # 1-based
    train_loss: float
    grad_norm: float
    train_images_per_s: float
    val_score: float
    val_iou: float
    val_loss: float
    lr: float  # the rate of the epoch's last step
    cycle: int  # the schedule's cycle the epoch ended in
    eval_seconds: float
    epoch_seconds: float  # training and evaluation
    loss_stage: NotRequired[int]  # only with loss.stages


class Snapshot(TypedDict):
    """One kept snapshot of a run (its cycle's best epoch)."""

    path: str
    epoch: int
    score: float
    cycle: int


class RunSummary(TypedDict):
    """``summary.json`` of a training run, rewritten after every epoch; also what ``fit`` returns. ``fit`` writes
    every key; the optional ones are missing from the summaries of runs by older versions of salttune."""

    best_score: float | None  # None before the first epoch
    best_iou: float | None
    best_epoch: int | None
    epochs_run: int
    epochs: int
    stopped_by_time_budget: NotRequired[bool]
    snapshots: list[Snapshot]
    seconds: float
    train_images: int  # pseudo-labelled images included (salttune.folds.with_extra)
    val_images: NotRequired[int]
    data_path: NotRequired[str]  # where batches were made: device or loader (salttune.batches.resolve_path)


def read_summary(path: str | Path) -> RunSummary:
    """A run's ``summary.json``.

    Raises:
        SalttuneError: the file cannot be read as JSON (one line naming it).
    """
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SalttuneError(f"{path}: not readable JSON ({e}); delete it or restore it") from None


@dataclass(frozen=True)
class _Folder:
    root: Path  # given as a str or Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))


@dataclass(frozen=True)
class CheckpointFiles(_Folder):
    """A checkpoint folder: ``fit`` rewrites it after every epoch and a search's trial reports it to Tune."""

    @property
    def state(self) -> Path:
        return self.root / "state.pt"

    @property
    def snapshots(self) -> Path:
        return self.root / SNAPSHOTS

    def snapshot(self, cycle: int) -> Path:
        """The snapshot file of schedule cycle ``cycle``."""
        return self.snapshots / f"snapshot_{cycle:02d}.pt"


@dataclass(frozen=True)
class RunFiles(_Folder):
    """The folder of one training run (``--out``, a fold of a K-fold run)."""

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def record(self) -> Path:
        return self.root / RECORD

    @property
    def checkpoint(self) -> CheckpointFiles:
        return CheckpointFiles(self.root / "checkpoint")


@dataclass(frozen=True)
class KFoldFiles(_Folder):
    """A K-fold run: its config and record, ``folds.json``, and one :class:`RunFiles` per fold."""

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def summary(self) -> Path:
        return self.root / "folds.json"

    @property
    def record(self) -> Path:
        return self.root / RECORD

    def fold(self, i: int) -> RunFiles:
        return RunFiles(self.root / f"fold_{i}")


def trial_name(trial_id: str) -> str:
    """The folder name of a search's trial (Tune's default holds every parameter and a date)."""
    return f"{TRIAL_PREFIX}{trial_id}"


@dataclass(frozen=True)
class TrialFiles(_Folder):
    """A trial's folder inside a search's Tune experiment (Tune writes it)."""

    @property
    def result(self) -> Path:
        return self.root / "result.json"  # Tune's per-epoch results, one JSON line each


@dataclass(frozen=True)
class EnsembleFiles(_Folder):
    """What ``salttune ensemble`` writes (``results/NAME/ensemble`` or ``--out``)."""

    @property
    def submission(self) -> Path:
        return self.root / "submission.csv"

    @property
    def submission_round0(self) -> Path:
        return self.root / "submission_round0.csv"  # the first round's, kept after pseudo-labelling

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def report_json(self) -> Path:
        return self.root / "report.json"

    @property
    def weights(self) -> Path:
        return self.root / "weights.json"

    @property
    def record(self) -> Path:
        return self.root / RECORD

    @property
    def outputs(self) -> tuple[Path, ...]:
        """The results an ensemble writes (refused over without ``--force``)."""
        return self.submission, self.submission_round0, self.report_md, self.report_json, self.weights

    def pseudo(self, fingerprint: str) -> Path:
        """The refit runs of the pseudo-labelled round, one folder per set of pseudo-labels."""
        return self.root / f"pseudo-{fingerprint}"


@dataclass(frozen=True)
class SearchFiles(_Folder):
    """A search's folder, ``results/NAME`` (``--storage DIR`` moves the whole folder; with ``--storage s3://...``
    the trials go to the bucket and the files marked * stay in ``results/NAME/`` on the driver)::

        space.yaml         * the resolved search space (read back by --resume)
        search.json        * data fingerprint, storage, versions
        optuna.db          * the Optuna study (optuna-dashboard sqlite:///results/NAME/optuna.db)
        asha_state.json    * ASHA's rungs and stop decisions (restored by --resume; algorithms with ASHA only)
        budget.json        * the trials' deadline under a time budget (re-written by --resume --time-budget)
        leaderboard.csv    * one row per trial, best first
        search.lock        * the running driver's pid and host (one driver per search; gone when it ends)
        record.json        * the experiment record (salttune.record)
        trials/            Tune's experiment: tuner.pkl, experiment_state-*.json, searcher-state-*.pkl (for --resume)
          trial_<id>/      one trial: result.json, progress.csv, checkpoint_NNNNNN/ (state.pt, snapshots/)
        ensemble/          salttune ensemble's results (EnsembleFiles)
        refit/kK/          the ensemble's K-fold refits of the top trials: trial_<id>/fold_<i>/
        final/             a budgeted search's final models, trained long on every non-holdout image:
          trial_<id>[_seedS]/  one run each (RunFiles); salttune ensemble uses them as its members
    """

    @property
    def space(self) -> Path:
        return self.root / "space.yaml"

    @property
    def info(self) -> Path:
        return self.root / "search.json"

    @property
    def study(self) -> Path:
        return self.root / "optuna.db"

    @property
    def asha_state(self) -> Path:
        return self.root / "asha_state.json"

    @property
    def budget(self) -> Path:
        return self.root / "budget.json"

    @property
    def leaderboard(self) -> Path:
        return self.root / "leaderboard.csv"

    @property
    def lock(self) -> Path:
        return self.root / "search.lock"

    @property
    def record(self) -> Path:
        return self.root / RECORD

    @property
    def trials(self) -> Path:
        return self.root / EXPERIMENT  # tuner.pkl, experiment_state-*.json, trial_<id>/

    def trial(self, trial_id: str) -> TrialFiles:
        return TrialFiles(self.trials / trial_name(trial_id))

    @property
    def ensemble(self) -> EnsembleFiles:
        return EnsembleFiles(self.root / "ensemble")

    @property
    def final(self) -> Path:
        """The final models of a budgeted search (:mod:`salttune.search.final`), one run folder each."""
        return self.root / "final"

    def refit(self, k: int) -> Path:
        """The K-fold refits of the top trials, shared by every ensemble of the search."""
        return self.root / "refit" / f"k{k}"
