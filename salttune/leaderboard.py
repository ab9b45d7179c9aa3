"""``results/NAME/leaderboard.csv``: one row per trial of a search, best first.

The file's format lives here, without Ray, so the readers (``salttune ensemble``, ``salttune report``, the
tests) and the writer (:mod:`salttune.search.leaderboard`, which turns Tune's results into rows) share it.

Columns: ``rank, trial`` (the Optuna trial number, as optuna-dashboard shows it), ``trial_id`` (Ray's),
``state`` (one of :data:`STATES`), ``best_score`` (the best epoch's value of the space's metric),
``best_epoch``, ``epochs_run``, ``max_epochs``, ``reason`` (why it failed, or was stopped), ``node`` (the Ray
node that ran its last epoch), ``seed`` (the trial's training seed, derived from the search's seed and the
trial number unless the space fixes it; empty for a trial that failed before its first epoch),
``checkpoint_path`` (the folder Tune kept: ``state.pt`` to resume, ``snapshots/``), ``snapshots`` (every
snapshot file the trial kept, ``;``-separated: the ensemble reads these), then one column per sampled
parameter, sorted. Paths are local paths, or URIs (``s3://...``) when the
search stores its results in the cloud. An empty cell is a missing value; a list parameter is ``+``-joined.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from salttune.errors import SalttuneError
from salttune.fileio import atomic_write_text

__all__ = ["COLUMNS", "FINISHED", "PRUNED", "FAILED", "INTERRUPTED", "UNFINISHED", "STOPPED", "STATES",
           "write_leaderboard", "read_leaderboard", "best_score", "snapshots", "parameters"]

COLUMNS = ("rank", "trial", "trial_id", "state", "best_score", "best_epoch", "epochs_run", "max_epochs", "reason", "node",
           "seed", "checkpoint_path", "snapshots")

FINISHED = "finished"  # ran all max_epochs
PRUNED = "pruned"  # ASHA stopped it early
FAILED = "failed"  # raised; ``reason`` holds the error line
INTERRUPTED = "interrupted"  # short of max_epochs without an error: the search was interrupted (--resume continues it)
UNFINISHED = INTERRUPTED  # the earlier name of the state, still read by salttune.report
STOPPED = "stopped"  # cut short because another trial reached the search's stop_at, or by the search's time budget
STATES = (FINISHED, PRUNED, FAILED, INTERRUPTED, STOPPED)

_NEEDED = ("trial_id", "state", "best_score")  # what every reader relies on


def _cell(v):
    if v is None:
        return ""
    return "+".join(map(str, v)) if isinstance(v, (list, tuple)) else v


def write_leaderboard(rows: list[dict], path: str | Path) -> Path:
    """Write the rows as CSV, atomically; parameter columns follow the fixed ones, sorted."""
    params = sorted({k for row in rows for k in row} - set(COLUMNS))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=[*COLUMNS, *params], extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: _cell(v) for k, v in row.items()})
    return atomic_write_text(path, buf.getvalue(), "leaderboard")


def read_leaderboard(path: str | Path) -> list[dict[str, str]]:
    """The rows of a leaderboard, in the file's order, as dicts of strings (``""`` for a missing value).

    Raises:
        SalttuneError: the file lacks a column every reader needs (``trial_id``, ``state``, ``best_score``).
    """
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _NEEDED if c not in (reader.fieldnames or [])]
        if missing:
            raise SalttuneError(f"{path}: columns {missing} are missing; was it written by salttune?")
        return list(reader)


def best_score(row: dict[str, str]) -> float | None:
    """The row's best score; ``None`` when it has none (or it is NaN)."""
    text = (row.get("best_score") or "").strip()
    score = float(text) if text else math.nan
    return None if math.isnan(score) else score


def snapshots(row: dict[str, str]) -> list[str]:
    """The snapshot files listed in the row's ``snapshots`` cell."""
    return [p for p in (row.get("snapshots") or "").split(";") if p.strip()]


def parameters(row: dict[str, str]) -> dict[str, str]:
    """The row's sampled parameters (the columns after the fixed ones) that have a value."""
    return {k: v for k, v in row.items() if k not in COLUMNS and v not in ("", None)}
