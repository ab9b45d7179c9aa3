"""``results/NAME/leaderboard.csv``: one row per trial, best first.

Columns: ``rank, trial`` (the Optuna trial number, as optuna-dashboard shows it), ``trial_id`` (Ray's),
``state`` (finished | pruned | failed | unfinished | stopped: cut short by ``stop_at``), ``best_score`` (the best epoch's value of the space's metric),
``best_epoch``, ``epochs_run``, ``max_epochs``, ``reason`` (why it failed), ``node`` (the Ray node that ran its last
epoch), ``checkpoint_path`` (the folder Tune kept: ``state.pt`` to resume, ``snapshots/``), ``snapshots`` (every snapshot
file the trial kept, ``;``-separated: the ensemble reads these), then one column per sampled parameter.
Paths are local paths, or URIs (``s3://...``) when the search stores its results in the cloud.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from salttune.search.monitor import error_line
from salttune.search.space import SearchSpace

__all__ = ["COLUMNS", "leaderboard_rows", "write_leaderboard", "read_leaderboard"]

COLUMNS = ["rank", "trial", "trial_id", "state", "best_score", "best_epoch", "epochs_run", "max_epochs", "reason", "node",
           "checkpoint_path", "snapshots"]


def _uri(fs, path: str) -> str:
    name = getattr(fs, "type_name", "local")
    return path if name == "local" else f"{name}://{path}"


def _snapshots(checkpoint) -> list[str]:
    """The snapshot files inside a Tune checkpoint, wherever it is stored."""
    import pyarrow.fs

    fs, base = checkpoint.filesystem, f"{checkpoint.path}/snapshots"
    try:
        infos = fs.get_file_info(pyarrow.fs.FileSelector(base, allow_not_found=True))
    except OSError:
        return []
    return sorted(_uri(fs, i.path) for i in infos if i.type == pyarrow.fs.FileType.File and i.path.endswith(".pt"))


def leaderboard_rows(results, space: SearchSpace, reasons: dict[str, str] | None = None, stopped: set[str] = frozenset()) -> list[dict]:
    """One dict per trial of a Tune ``ResultGrid``, ranked by best score (failed and scoreless last).

    Args:
        stopped: ids of the trials ASHA stopped (``pruned``); other trials short of ``max_t`` epochs without
            an error are ``unfinished`` (an interrupted search).
    """
    rows = []
    for r in results:
        config = r.config or {}
        metrics = r.metrics or {}
        df = r.metrics_dataframe
        score = best_epoch = None
        epochs_run = 0
        if df is not None and len(df) and space.metric in df and "epoch" in df:
            hist = df[["epoch", space.metric]].dropna()
            if len(hist):
                i = hist[space.metric].idxmax() if space.mode == "max" else hist[space.metric].idxmin()
                score, best_epoch = float(hist.loc[i, space.metric]), int(hist.loc[i, "epoch"])
                epochs_run = int(hist["epoch"].max())
        trial_id = metrics.get("trial_id") or Path(r.path).name.removeprefix("trial_")
        if r.error is not None:
            state = "failed"
        elif epochs_run >= space.asha.max_t:
            state = "finished"
        else:
            state = "pruned" if trial_id in stopped else "unfinished"
        reason = (reasons or {}).get(trial_id) or (error_line(str(r.error)) if r.error is not None else "")
        ckpt = r.checkpoint
        rows.append({
            "trial": config.get("optuna_trial", ""), "trial_id": trial_id, "state": state,
            "best_score": score, "best_epoch": best_epoch, "epochs_run": epochs_run, "max_epochs": space.asha.max_t,
            "reason": reason, "node": metrics.get("node_id", ""),
            "checkpoint_path": _uri(ckpt.filesystem, ckpt.path) if ckpt is not None else "",
            "snapshots": ";".join(_snapshots(ckpt)) if ckpt is not None else "",
            **{k: v for k, v in config.items() if k != "optuna_trial"},
        })
    sign = -1 if space.mode == "max" else 1
    rows.sort(key=lambda row: (row["state"] == "failed", row["best_score"] is None or math.isnan(row["best_score"]),
                               sign * (row["best_score"] or 0.0), str(row["trial"])))
    for i, row in enumerate(rows, 1):
        row["rank"] = i
    return rows


def write_leaderboard(rows: list[dict], path: str | Path) -> Path:
    """Write the rows as CSV (atomically); parameter columns follow the fixed ones, sorted."""
    path = Path(path)
    params = sorted({k for row in rows for k in row} - set(COLUMNS))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS + params, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: ("+".join(map(str, v)) if isinstance(v, (list, tuple)) else "" if v is None else v) for k, v in row.items()})
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, path)
    return path


def read_leaderboard(path: str | Path) -> list[dict]:
    """The rows of a leaderboard as dicts of strings (for the ensemble and the tests)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
