"""``python -m benchmarks protocol``: how honest and how good each way of using the labels is, on a holdout.

For each seed, one real ``salttune search`` (its own search seed, split seed and holdout seed) and then, on the
images it held out:

- (a) the best single trial: the top-ranked trial's best snapshot (flip TTA, its threshold and area chosen
  by CV like every row);
- (b) the top-N ensemble of the search's snapshots, selected on the search's validation images (one split);
- (c) the top-N configurations refit on K folds, selected on out-of-fold predictions of every non-holdout image;
- (d) (c) plus one round of pseudo-labelling.

Each with its cross-validated figure and the gap to the holdout (how optimistic a score on images that chose
something is), the paired differences between them over the same holdout images (mean and standard error),
and, where the dataset has ``test_truth.csv`` (synthetic data, or a labelled folder split by
:func:`split_labelled`), the submission's score on the test images: a true private leaderboard.

Everything runs as the user runs it (``salttune search``, ``ensemble``, ``predict``, ``score`` subprocesses);
a search or ensemble already complete in ``--out`` is reused, so an interrupted benchmark continues.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from salttune.errors import SalttuneError
from salttune.layout import EnsembleFiles, SearchFiles

__all__ = ["split_labelled", "bench_protocol"]

WAYS = {"a": "best single trial", "b": "top-N ensemble, one split", "c": "top-N refit on K folds", "d": "(c) + pseudo-labels"}


def split_labelled(src: Path, dst: Path, test_fraction: float = 0.2, seed: int = 0) -> Path:
    """A Kaggle-layout copy of a labelled folder whose coverage-stratified ``test_fraction`` becomes unlabelled
    test images with their truth in ``test_truth.csv`` (the files are copied byte for byte)."""
    import csv

    from salttune.data import load_dataset
    from salttune.split import train_val_split

    if (dst / "test_truth.csv").is_file():
        return dst
    data = load_dataset(src, with_test=False)
    train_idx, test_idx = train_val_split(data.train_masks, test_fraction, seed=seed)
    rle = {r["id"]: r["rle_mask"] for r in csv.DictReader(open(src / "train.csv"))}
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for d in ("train/images", "train/masks", "test/images"):
        (tmp / d).mkdir(parents=True)
    for i in train_idx:
        name = f"{data.train_ids[i]}.png"
        shutil.copy(src / "train" / "images" / name, tmp / "train" / "images" / name)
        shutil.copy(src / "train" / "masks" / name, tmp / "train" / "masks" / name)
    for i in test_idx:
        name = f"{data.train_ids[i]}.png"
        shutil.copy(src / "train" / "images" / name, tmp / "test" / "images" / name)
    for name, idx in (("train.csv", train_idx), ("test_truth.csv", test_idx)):
        lines = ["id,rle_mask"] + [f"{data.train_ids[i]},{rle[data.train_ids[i]]}" for i in idx]
        (tmp / name).write_text("\n".join(lines) + "\n")
    if (src / "depths.csv").is_file():
        shutil.copy(src / "depths.csv", tmp / "depths.csv")
    tmp.rename(dst)
    return dst


def _cli(*args: str, log: Path) -> str:
    """Run ``salttune ARGS``; its output goes to ``log``; a failure stops the benchmark with its last lines."""
    proc = subprocess.run([sys.executable, "-m", "salttune.cli", *args], capture_output=True, text=True)
    with open(log, "a") as f:
        f.write(f"$ salttune {' '.join(args)}\n{proc.stdout}\n{proc.stderr}\n")
    if proc.returncode != 0:
        raise SalttuneError(f"salttune {args[0]} failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}; see {log}")
    return proc.stdout


def _paired(x: list[float], y: list[float]) -> dict:
    d = np.asarray(y) - np.asarray(x)
    return {"mean": float(d.mean()), "se": float(d.std(ddof=1) / math.sqrt(len(d))), "images": len(d),
            "better": int((d > 0).sum()), "worse": int((d < 0).sum())}


def _test_score(submission: Path, truth: Path, log: Path) -> float | None:
    if not truth.is_file():
        return None
    return json.loads(_cli("score", str(submission), "--truth", str(truth), "--json", log=log))["score"]


def bench_protocol(data: str | Path, out: Path, *, space: str = "search_spaces/quick.yaml", sets: list[str] = (),
                   seeds: int = 1, top: int = 3, refit_folds: int = 5, pseudo_confidence: float = 0.9,
                   pseudo_share: float = 0.99, test_fraction: float = 0.2) -> dict:
    """Run the protocol for ``seeds`` seeds on ``data`` (a folder without test truth is split first); see the
    module docstring. Returns the figures per seed and their means."""
    from salttune.leaderboard import read_leaderboard

    data, out = Path(data).resolve(), Path(out).resolve()
    if not Path(space).is_file():
        raise SalttuneError(f"--space {space}: no such file; give a search space such as search_spaces/quick.yaml")
    space = str(Path(space).resolve())
    out.mkdir(parents=True, exist_ok=True)
    log = out / "protocol.log"
    if not (data / "test_truth.csv").is_file():
        data = split_labelled(data, out / f"{data.name}-labelled-test", test_fraction)
    truth = data / "test_truth.csv"
    runs = []
    for seed in range(seeds):
        name = f"protocol-{data.name}-s{seed}"
        search_dir = out / "results" / name
        if not SearchFiles(search_dir).leaderboard.is_file():
            shutil.rmtree(search_dir, ignore_errors=True)  # an unfinished search starts again
            _cli("search", "--space", space, "--name", name, "--data", str(data), "--storage", str(out / "results"),
                 "--set", f"seed={seed}", "--set", f"data.split_seed={seed}", "--set", f"data.holdout_seed={seed}",
                 *[a for s in sets for a in ("--set", s)], log=log)
        common = ("--search", name, "--results", str(out / "results"), "--top", str(top), "--quiet")
        one, refit = search_dir / "ensemble-one-split", search_dir / "ensemble-refit"
        if not EnsembleFiles(one).report_json.is_file():
            _cli("ensemble", *common, "--out", str(one), "--force", log=log)
        if not EnsembleFiles(refit).report_json.is_file():
            _cli("ensemble", *common, "--refit-folds", str(refit_folds), "--pseudo-confidence", str(pseudo_confidence),
                 "--pseudo-share", str(pseudo_share), "--out", str(refit), "--force", log=log)
        r1 = json.loads(EnsembleFiles(one).report_json.read_text())
        r2 = json.loads(EnsembleFiles(refit).report_json.read_text())
        board = read_leaderboard(SearchFiles(search_dir).leaderboard)
        best = board[0]
        row_a = next(r for r in r1["rows"] if r["name"] == f"trial {best['trial_id']}: best snapshot" and r["tta"] == "flip")
        c, d = r2["rounds"][0], r2["rounds"][-1]  # one round when no test image was confident: (d) is (c)
        ways = {
            "a": {"holdout": row_a["holdout"], "holdout_se": row_a["holdout_se"], "cv": row_a["score"], "scores": row_a["holdout_scores"]},
            "b": {"holdout": r1["holdout"], "holdout_se": r1["holdout_se"], "cv": r1["cv_score"], "scores": r1["rows"][-1]["holdout_scores"]},
            "c": {"holdout": c["holdout"], "holdout_se": c["holdout_se"], "cv": c["score"], "scores": c["rows"][-1]["holdout_scores"]},
            "d": {"holdout": d["holdout"], "holdout_se": d["holdout_se"], "cv": d["score"], "scores": d["rows"][-1]["holdout_scores"]},
        }
        snap = max((s for s in best["snapshots"].split(";") if s), key=lambda p: _snapshot_score(p))
        sub_a = search_dir / "best-trial-submission.csv"
        if truth.is_file() and not sub_a.is_file():
            _cli("predict", "--checkpoint", snap, "--data", str(data), "--out", str(sub_a), "--quiet", log=log)
        subs = {"a": sub_a, "b": EnsembleFiles(one).submission, "d": EnsembleFiles(refit).submission,
                "c": EnsembleFiles(refit).submission_round0 if len(r2["rounds"]) > 1 else EnsembleFiles(refit).submission}
        for k, w in ways.items():
            w["gap"] = w["cv"] - w["holdout"]
            w["test"] = _test_score(subs[k], truth, log)
        pairs = {f"{y}-{x}": _paired(ways[x]["scores"], ways[y]["scores"]) for x, y in (("a", "b"), ("b", "c"), ("c", "d"), ("a", "d"))}
        runs.append({"seed": seed, "search": name, "holdout_images": r1["holdout_images"], "ways": ways, "paired": pairs,
                     "pseudo": c["pseudo"], "trials": len(board), "refit_seconds": r2["seconds_validation"]})
    summary = {k: {"label": WAYS[k], **{f: float(np.mean([r["ways"][k][f] for r in runs if r["ways"][k][f] is not None]))
                                        if any(r["ways"][k][f] is not None for r in runs) else None
                                        for f in ("holdout", "cv", "gap", "test")}} for k in WAYS}
    for r in runs:
        for w in r["ways"].values():
            w.pop("scores")
    return {"data": str(data), "space": space, "sets": list(sets), "seeds": seeds, "top": top, "refit_folds": refit_folds,
            "pseudo_confidence": pseudo_confidence, "pseudo_share": pseudo_share, "summary": summary, "runs": runs}


def _snapshot_score(path: str) -> float:
    from salttune.checkpoint import load_checkpoint

    return float(load_checkpoint(path).get("metrics", {}).get("val_score", -1.0))
