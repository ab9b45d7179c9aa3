"""``salttune ensemble``: the top trials of a search -> cross-validated report and a Kaggle submission.

Reads ``results/NAME/leaderboard.csv`` (one row per trial, with its snapshots), predicts the held-out
validation images with every snapshot (with and without flip TTA), compares single snapshots and combiners
out of fold (see :mod:`salttune.ensemble`), then streams the test images through the chosen combiner.

Writes into ``--out`` (default ``results/NAME/ensemble``): ``report.md``, ``report.json``, ``weights.json``
and ``submission.csv``. Nothing already there is overwritten without ``--force``, and a refused run
writes nothing, not even its record: :func:`check_ensemble` runs every check first.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from salttune import leaderboard
from salttune.checkpoint import load_checkpoint
from salttune.data import TGSData, load_dataset
from salttune.ensemble import BASELINE, COMBINERS, Member, combiners_for, cross_validate, fit_single, iter_ensemble, member_outputs
from salttune.errors import SalttuneError
from salttune.fileio import atomic_write_text, write_json
from salttune.predict import write_submission_stream
from salttune.split import Arrays, Split, split_data

__all__ = ["OUTPUTS", "Checked", "top_members", "check_ensemble", "run_ensemble"]

OUTPUTS = ("submission.csv", "report.md", "report.json", "weights.json")


def _snapshots_of(row: dict[str, str], search_dir: Path) -> list[str]:
    """The row's snapshots; for a row that lists none, the ``.pt`` files in its checkpoint's ``snapshots/``."""
    paths = leaderboard.snapshots(row)
    if not paths and (row.get("checkpoint_path") or "").strip():
        ckpt = Path(row["checkpoint_path"])
        ckpt = ckpt if ckpt.is_absolute() else search_dir / ckpt
        paths = sorted(str(p) for p in (ckpt / "snapshots").glob("*.pt"))
    return [p if Path(p).is_absolute() else str(search_dir / p) for p in paths]


def top_members(search_dir: Path, top: int) -> list[Member]:
    """The snapshots of the ``top`` best trials of a search that did not fail and have a score."""
    board_path = search_dir / leaderboard.FILE
    if not board_path.is_file():
        raise SalttuneError(f"{board_path}: no leaderboard; run 'salttune search' first or give the right --search/--results")
    done = [r for r in leaderboard.read_leaderboard(board_path)
            if r["state"] != leaderboard.FAILED and leaderboard.best_score(r) is not None]
    done.sort(key=leaderboard.best_score, reverse=True)
    if len(done) < top:
        raise SalttuneError(
            f"{board_path}: {len(done)} finished trial(s), fewer than --top {top}; lower --top or let the search run more trials"
        )
    members, kept = [], 0
    for row in done:
        if kept == top:
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
        kept += 1
    if kept < top:
        raise SalttuneError(f"{board_path}: only {kept} finished trial(s) have readable snapshots, fewer than "
                            f"--top {top}; lower --top or rerun the search")
    return members


def _data_split(members: list[Member]) -> Split:
    """Every member must have been validated on the same images: the same split settings."""
    seen: dict[Split, Member] = {}
    for m in members:
        seen.setdefault(Split.of(load_checkpoint(m.path)["config"]), m)
    if len(seen) > 1:
        (a, ma), (b, mb) = list(seen.items())[:2]
        raise SalttuneError(f"snapshots {ma.path} and {mb.path} were validated on different splits ({a} vs {b}); ensemble one search at a time")
    return next(iter(seen))


def _table_md(rows: list[dict]) -> str:
    lines = ["| model | TTA | score | IoU |", "|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['tta']} | {r['score']:.4f} | {r['iou']:.4f} |" for r in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class Checked:
    """What :func:`check_ensemble` found usable: the members, their combiners, the dataset and its validation part."""

    members: list[Member]
    combiners: list[str]
    data: TGSData
    val: Arrays
    folds: int


def check_ensemble(members: list[Member], data_dir: Path, out_dir: Path, *, force: bool = False, combiner: str = "auto",
                   folds: int = 5) -> Checked:
    """Every check of an ensemble run, before it writes anything (its record included).

    Raises:
        SalttuneError: an earlier ensemble's output is in ``out_dir`` and ``force`` is off, an unknown combiner,
            members validated on different splits, a dataset without test images, or too few validation images
            for ``folds``.
    """
    names = combiners_for(combiner)
    existing = [n for n in OUTPUTS if (out_dir / n).exists()]
    if existing and not force:
        raise SalttuneError(f"{out_dir / existing[0]}: already exists; add --force to overwrite or choose another --out")
    if folds < 2:
        raise SalttuneError(f"--folds {folds}: cross-validation needs at least 2 folds")
    split = _data_split(members)
    data = load_dataset(data_dir)
    if not data.test_ids:
        raise SalttuneError(f"{data_dir}: no test images in test/images; the ensemble predicts the test set")
    _, val, holdout = split_data(data, split)
    if len(val.ids) < folds:
        raise SalttuneError(f"--folds {folds}: only {len(val.ids)} validation images; give fewer folds")
    return Checked(members, names, data, val, folds)


def run_ensemble(checked: Checked, search_dir: Path, data_dir: Path, tta: str, out_dir: Path, *, progress: bool = True) -> dict:
    """The whole ensembling stage on what :func:`check_ensemble` passed; returns the report dict (also
    written to ``report.json``). The submission and reports appear under their names only when complete."""
    members, names, data, val, folds = checked.members, checked.combiners, checked.data, checked.val, checked.folds
    top = len({m.trial for m in members})
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bar = _bar if progress else (lambda it, **kw: it)
    t0 = time.perf_counter()
    # Pixel probabilities (M, N, H, W) and salt-present probabilities (M, N) (NaN: no salt head) per TTA mode.
    outs = {"none": member_outputs(members, val.images, val.depths, device, "none", progress=bar)}
    if tta == "flip":
        outs["flip"] = member_outputs(members, val.images, val.depths, device, "flip", progress=bar)
    probs = {t: p for t, (p, _) in outs.items()}
    salts = {t: (None if np.isnan(s).all() else s) for t, (_, s) in outs.items()}
    ttas = list(probs)

    rows, fitted = [], {}

    def add(name, t, fitter, idx=slice(None)):
        salt = None if salts[t] is None else salts[t][idx]
        r = cross_validate(fitter, probs[t][idx], val.masks, k=folds, salt=salt)
        rows.append({"name": name, "tta": t, "score": r["score"], "iou": r["iou"]})
        return r

    baseline = COMBINERS[BASELINE]
    for t in ttas:
        add(baseline.label, t, baseline.fit)
    by_trial: dict[str, list[int]] = {}
    for k, m in enumerate(members):
        by_trial.setdefault(m.trial, []).append(k)
    for trial, idx in by_trial.items():
        for t in ttas:
            add(f"trial {trial}: best snapshot", t, fit_single, idx)
    best_t = ttas[-1]
    for name in names:
        label = COMBINERS[name].label + (" (chosen)" if name == BASELINE else "")  # the baseline's row is above
        fitted[name] = add(label, best_t, COMBINERS[name].fit)
    chosen = max(fitted, key=lambda n: fitted[n]["score"])
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
               "min_area": final.min_area, "salt_cutoff": final.salt_cutoff, "members": [
                   {"trial": m.trial, "snapshot": m.path, "val_score": m.score, "weight": float(w)}
                   for m, w in zip(members, final.weights)]}
    write_json(out_dir / "weights.json", weights, "ensemble weights")
    report = {"search": str(search_dir), "data": str(data_dir), "top": top, "snapshots": len(members),
              "score": fitted[chosen]["score"], "iou": fitted[chosen]["iou"], "salt_cutoff": final.salt_cutoff,
              "validation_images": len(val.ids), "folds": folds, "rows": rows, "chosen": chosen,
              "test_images": len(data.test_ids), "seconds_validation": val_seconds, "seconds_test": test_seconds}
    write_json(out_dir / "report.json", report, "ensemble report")
    atomic_write_text(out_dir / "report.md",
        f"# Ensemble of the top {top} trials of {search_dir.name}\n\n"
        f"{len(members)} snapshots; scores are out-of-fold over {len(val.ids)} validation images "
        f"({folds}-fold CV: every combiner, threshold, area and salt cut-off fitted on the other folds).\n\n"
        f"{_table_md(rows)}\n\nChosen: **{chosen}** (TTA {best_t}), threshold {final.threshold}, "
        f"min area {final.min_area}, salt cut-off {_cutoff_text(final.salt_cutoff)}. Weights: weights.json.\n",
        "ensemble report")
    return report


def _cutoff_text(cutoff: float | None) -> str:
    return "off" if cutoff is None else f"{cutoff} (images the salt heads give less are predicted empty)"


def _bar(it, **kw):
    from tqdm.auto import tqdm

    return tqdm(it, leave=False, **kw)
