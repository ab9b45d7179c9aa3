"""The rows of ``results/NAME/leaderboard.csv`` from a Tune ``ResultGrid`` (the file's format: :mod:`salttune.leaderboard`)."""

from __future__ import annotations

import math
from pathlib import Path

from salttune.layout import SNAPSHOTS, TRIAL_PREFIX
from salttune.leaderboard import FAILED, FINISHED, INTERRUPTED, PRUNED
from salttune.search.monitor import error_line
from salttune.search.space import SearchSpace

__all__ = ["leaderboard_rows"]


def _uri(fs, path: str) -> str:
    name = getattr(fs, "type_name", "local")
    return path if name == "local" else f"{name}://{path}"


def _snapshots(checkpoint) -> list[str]:
    """The snapshot files inside a Tune checkpoint, wherever it is stored."""
    import pyarrow.fs

    fs, base = checkpoint.filesystem, f"{checkpoint.path}/{SNAPSHOTS}"
    try:
        infos = fs.get_file_info(pyarrow.fs.FileSelector(base, allow_not_found=True))
    except OSError:
        return []
    return sorted(_uri(fs, i.path) for i in infos if i.type == pyarrow.fs.FileType.File and i.path.endswith(".pt"))


def leaderboard_rows(results, space: SearchSpace, reasons: dict[str, str] | None = None, stopped: set[str] = frozenset()) -> list[dict]:
    """One dict per trial of a Tune ``ResultGrid``, ranked by best score (failed and scoreless last).

    Args:
        stopped: ids of the trials ASHA stopped (``pruned``); other trials short of ``max_t`` epochs without
            an error are ``interrupted`` (an interrupted search).
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
        trial_id = metrics.get("trial_id") or Path(r.path).name.removeprefix(TRIAL_PREFIX)
        if r.error is not None:
            state = FAILED
        elif epochs_run >= space.asha.max_t:
            state = FINISHED
        else:
            state = PRUNED if trial_id in stopped else INTERRUPTED
        reason = (reasons or {}).get(trial_id) or (error_line(str(r.error)) if r.error is not None else "")
        ckpt = r.checkpoint
        rows.append({
            "trial": config.get("optuna_trial", ""), "trial_id": trial_id, "state": state,
            "best_score": score, "best_epoch": best_epoch, "epochs_run": epochs_run, "max_epochs": space.asha.max_t,
            "reason": reason, "node": metrics.get("node_id", ""), "seed": metrics.get("seed", ""),
            "checkpoint_path": _uri(ckpt.filesystem, ckpt.path) if ckpt is not None else "",
            "snapshots": ";".join(_snapshots(ckpt)) if ckpt is not None else "",
            **{k: v for k, v in config.items() if k != "optuna_trial"},
        })
    sign = -1 if space.mode == "max" else 1
    rows.sort(key=lambda row: (row["state"] == FAILED, row["best_score"] is None or math.isnan(row["best_score"]),
                               sign * (row["best_score"] or 0.0), str(row["trial"])))
    for i, row in enumerate(rows, 1):
        row["rank"] = i
    return rows
