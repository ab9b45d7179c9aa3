"""``salttune ensemble``: the top trials of a search -> cross-validated report and a Kaggle submission.

Reads ``results/NAME/leaderboard.csv`` (one row per trial, with its snapshots), predicts the held-out
validation images with every snapshot (with and without flip TTA), compares single snapshots and combiners
out of fold (see :mod:`salttune.ensemble`), then streams the test images through the chosen combiner.

Writes into ``--out`` (default ``results/NAME/ensemble``): ``report.md``, ``report.json``, ``weights.json``
and ``submission.csv``. Nothing already there is overwritten without ``--force``.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from salttune.checkpoint import load_checkpoint
from salttune.data import load_dataset
from salttune.ensemble import COMBINERS, Member, cross_validate, fit_single, iter_ensemble, member_probs
from salttune.errors import SalttuneError
from salttune.predict import write_submission_stream
from salttune.split import split_data

__all__ = ["OUTPUTS", "top_members", "run_ensemble"]

OUTPUTS = ("submission.csv", "report.md", "report.json", "weights.json")
_FAILED = {"ERROR", "FAILED"}


def _snapshots_of(row: pd.Series, search_dir: Path) -> list[str]:
    paths: list[str] = []
    if isinstance(row.get("snapshots"), str) and row["snapshots"].strip():
        paths = [p for p in row["snapshots"].split(";") if p.strip()]
    elif isinstance(row.get("checkpoint_path"), str) and row["checkpoint_path"].strip():
        ckpt = Path(row["checkpoint_path"])
        ckpt = ckpt if ckpt.is_absolute() else search_dir / ckpt
        paths = sorted(str(p) for p in (ckpt / "snapshots").glob("*.pt"))
    return [p if Path(p).is_absolute() else str(search_dir / p) for p in paths]


def top_members(search_dir: Path, top: int) -> tuple[list[Member], pd.DataFrame]:
    """The snapshots of the ``top`` best finished trials of a search."""
    board_path = search_dir / "leaderboard.csv"
    if not board_path.is_file():
        raise SalttuneError(f"{board_path}: no leaderboard; run 'salttune search' first or give the right --search/--results")
    board = pd.read_csv(board_path)
    need = {"trial_id", "best_score", "state"}
    if not need <= set(board.columns):
        raise SalttuneError(f"{board_path}: columns {sorted(need - set(board.columns))} are missing; was it written by salttune?")
    done = board[~board["state"].astype(str).str.upper().isin(_FAILED) & board["best_score"].notna()]
    done = done.sort_values("best_score", ascending=False)
    if len(done) < top:
        raise SalttuneError(
            f"{board_path}: {len(done)} finished trial(s), fewer than --top {top}; lower --top or let the search run more trials"
        )
    members, used = [], []
    for _, row in done.iterrows():
        if len(used) == top:
            break
        snaps = _snapshots_of(row, search_dir)
        readable = []
        for p in snaps:
            try:
                meta = load_checkpoint(p)  # a truncated or foreign file fails here with a clear line
            except SalttuneError as e:
                warnings.warn(f"skipping a snapshot of trial {row['trial_id']}: {e}", stacklevel=2)
                continue
            readable.append(Member(str(row["trial_id"]), p, float(meta.get("metrics", {}).get("val_score", np.nan))))
        if not readable:
            warnings.warn(f"skipping trial {row['trial_id']}: none of its {len(snaps)} snapshot(s) can be read; "
                          "the next best trial takes its place", stacklevel=2)
            continue
        members += readable
        used.append(row)
    if len(used) < top:
        raise SalttuneError(f"{board_path}: only {len(used)} finished trial(s) have readable snapshots, fewer than "
                            f"--top {top}; lower --top or rerun the search")
    return members, pd.DataFrame(used)


def _data_settings(members: list[Member]) -> dict:
    """Every member must have been validated on the same images: same split settings."""
    keys = ("val_fraction", "split_seed", "max_train_images")
    seen = {}
    for m in members:
        cfg = load_checkpoint(m.path)["config"]
        s = tuple(cfg.get(k) for k in keys)
        seen.setdefault(s, m)
    if len(seen) > 1:
        (a, ma), (b, mb) = list(seen.items())[:2]
        raise SalttuneError(f"snapshots {ma.path} and {mb.path} were validated on different splits ({a} vs {b}); ensemble one search at a time")
    return dict(zip(keys, next(iter(seen))))


def _table_md(rows: list[dict]) -> str:
    lines = ["| model | TTA | score | IoU |", "|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['tta']} | {r['score']:.4f} | {r['iou']:.4f} |" for r in rows]
    return "\n".join(lines)


def run_ensemble(search_dir: Path, data_dir: Path, top: int, tta: str, out_dir: Path, *, force: bool = False,
                 combiner: str = "auto", folds: int = 5, progress: bool = True) -> dict:
    """The whole ensembling stage; returns the report dict (also written to ``report.json``)."""
    if combiner != "auto" and combiner not in COMBINERS:
        raise SalttuneError(f"--combiner {combiner!r} is unknown; allowed: auto, {', '.join(COMBINERS)}")
    members, trials = top_members(search_dir, top)
    existing = [n for n in OUTPUTS if (out_dir / n).exists()]
    if existing and not force:
        raise SalttuneError(f"{out_dir / existing[0]}: already exists; add --force to overwrite or choose another --out")
    settings = _data_settings(members)
    data = load_dataset(data_dir)
    if not data.test_ids:
        raise SalttuneError(f"{data_dir}: no test images in test/images; the ensemble predicts the test set")
    _, val = split_data(data, settings["val_fraction"], settings["split_seed"], settings["max_train_images"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bar = _bar if progress else (lambda it, **kw: it)
    t0 = time.perf_counter()
    probs = {"none": member_probs(members, val.images, val.depths, device, "none", progress=bar)}
    if tta == "flip":
        probs["flip"] = member_probs(members, val.images, val.depths, device, "flip", progress=bar)
    ttas = list(probs)

    rows, fitted = [], {}

    def add(name, t, fitter, p, truth=val.masks):
        r = cross_validate(fitter, p, truth, k=folds)
        rows.append({"name": name, "tta": t, "score": r["score"], "iou": r["iou"]})
        return r

    for t in ttas:
        add("best single snapshot", t, fit_single, probs[t])
    by_trial: dict[str, list[int]] = {}
    for k, m in enumerate(members):
        by_trial.setdefault(m.trial, []).append(k)
    for trial, idx in by_trial.items():
        for t in ttas:
            add(f"trial {trial}: best snapshot", t, fit_single, probs[t][idx])
    best_t = ttas[-1]
    names = list(COMBINERS)[1:] if combiner == "auto" else [combiner]
    for name in ("mean", "greedy", "ridge"):
        if name in names:
            fitted[name] = add({"mean": "mean of snapshots", "greedy": "greedy selection", "ridge": "ridge stacker"}[name], best_t, COMBINERS[name], probs[best_t])
    if combiner == "single":
        fitted["single"] = add("best single snapshot (chosen)", best_t, fit_single, probs[best_t])
    chosen = combiner if combiner != "auto" else max(fitted, key=lambda n: fitted[n]["score"])
    final = fitted[chosen]["final"]
    val_seconds = time.perf_counter() - t0

    out_dir.mkdir(parents=True, exist_ok=True)
    t1 = time.perf_counter()
    batches = iter_ensemble(members, final, data.test_images, data.test_depths, device, best_t)
    if progress:
        batches = _bar(batches, total=-(-len(data.test_ids) // 256), desc="predict test", unit="batch")
    write_submission_stream(out_dir / "submission.csv", data.test_ids, batches, final.threshold, final.min_area)
    test_seconds = time.perf_counter() - t1

    weights = {"combiner": chosen, "tta": best_t, "bias": final.bias, "threshold": final.threshold,
               "min_area": final.min_area, "members": [
                   {"trial": m.trial, "snapshot": m.path, "val_score": m.score, "weight": float(w)}
                   for m, w in zip(members, final.weights)]}
    (out_dir / "weights.json").write_text(json.dumps(weights, indent=2))
    report = {"search": str(search_dir), "data": str(data_dir), "top": top, "snapshots": len(members),
              "score": fitted[chosen]["score"], "iou": fitted[chosen]["iou"],
              "validation_images": len(val.ids), "folds": folds, "rows": rows, "chosen": chosen,
              "test_images": len(data.test_ids), "seconds_validation": val_seconds, "seconds_test": test_seconds}
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    (out_dir / "report.md").write_text(
        f"# Ensemble of the top {top} trials of {search_dir.name}\n\n"
        f"{len(members)} snapshots; scores are out-of-fold over {len(val.ids)} validation images "
        f"({folds}-fold CV: every combiner, threshold and area fitted on the other folds).\n\n"
        f"{_table_md(rows)}\n\nChosen: **{chosen}** (TTA {best_t}), threshold {final.threshold}, "
        f"min area {final.min_area}. Weights: weights.json.\n")
    return report


def _bar(it, **kw):
    from tqdm.auto import tqdm

    return tqdm(it, leave=False, **kw)
