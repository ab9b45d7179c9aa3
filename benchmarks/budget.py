"""Equal wall-clock: the default trained alone against a budgeted search and its ensemble (issue 24).

For each holdout seed, on the same real images and the same held-out fifth (``holdout_fraction`` 0.2,
``holdout_seed`` = the seed; no arm trains, validates or chooses anything on it), each arm gets the same wall-clock
``T``, counted from its first command to its submission, on the whole machine, one arm at a time:

- ``default``: ``salttune train`` with the default config (its own validation fifth of the rest), stopped by
  ``time_budget_s`` so that its flip-TTA prediction of the held-out images still fits in ``T``, then
  ``salttune predict --tta flip`` with its best snapshot;
- ``search``: ``salttune search --space SPACE --time-budget T`` and then ``salttune ensemble`` (its final models,
  flip TTA);
- ``noprior``: the same without the space's ``prior:``.

An arm already run in the same folder at the same ``T`` (``runs.json``) is scored again rather than rerun, so the
seeds and arms can be run in several invocations and the last one compares them all. Each record keeps its per-image
scores, so a ``runs.json`` copied from an earlier session still pairs with new arms after its submissions are gone.

The held-out images are the benchmark data folder's test images (symbolic links), so every arm writes a Kaggle
submission of them, and each submission is scored per image against the true masks: the arms are compared
*paired*, image by image, and across seeds (mean paired difference and its standard error over seeds, and over
images within each seed).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ARMS = ("default", "search", "noprior")
PREDICT_RESERVE_S = 45.0  # the default arm's prediction of the held-out images (start-up included), kept from T


def _data_folder(src: Path, dst: Path, seed: int) -> list[str]:
    """``dst``: ``src``'s training images, and its held-out fifth for ``seed`` again as test images (links)."""
    from salttune.data import load_dataset
    from salttune.split import Split, split_data

    data = load_dataset(src, with_test=False)
    _, _, holdout = split_data(data, Split(holdout_fraction=0.2, holdout_seed=seed))
    (dst / "test" / "images").mkdir(parents=True, exist_ok=True)
    for name in ("train", "train.csv", "depths.csv"):
        link = dst / name
        if (src / name).exists() and not link.exists():
            link.symlink_to((src / name).resolve())
    for i in holdout.ids:
        link = dst / "test" / "images" / f"{i}.png"
        if not link.exists():
            link.symlink_to((src / "train" / "images" / f"{i}.png").resolve())
    return list(holdout.ids)


def _score(submission: Path, data: Path, ids: list[str]) -> np.ndarray:
    """Per-image competition scores of ``submission`` on the held-out ``ids`` (true masks from the training set)."""
    import pandas as pd

    from salttune.data import load_dataset
    from salttune.metric import score_per_image
    from salttune.rle import rle_decode

    truth_all = load_dataset(data, with_test=False)
    index = {i: k for k, i in enumerate(truth_all.train_ids)}
    sub = pd.read_csv(submission, keep_default_na=False, dtype=str).set_index("id")["rle_mask"]
    pred = np.stack([rle_decode(str(sub[i])) for i in ids]).astype(bool)
    truth = truth_all.train_masks[[index[i] for i in ids]].astype(bool)
    return score_per_image(pred, truth)


def _run(cmd: list[str], log: Path) -> None:
    with log.open("a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        code = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} exited {code}; see {log}")


def _arm(arm: str, seed: int, data: Path, work: Path, space: Path, minutes: float) -> dict:
    salttune = [shutil.which("salttune") or "salttune"]
    t_s = minutes * 60
    out = work / f"{arm}-s{seed}"
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.txt"
    t0 = time.time()
    if arm == "default":
        run = out / "run"
        _run([*salttune, "train", "--data", str(data), "--out", str(run), "--set", "holdout_fraction=0.2",
              "--set", f"holdout_seed={seed}", "--set", "epochs=10000", "--set", f"time_budget_s={t_s - PREDICT_RESERVE_S - 20}"], log)
        summary = json.loads((run / "summary.json").read_text())
        best = max(summary["snapshots"], key=lambda s: s["score"])
        sub = out / "submission.csv"
        _run([*salttune, "predict", "--checkpoint", str(run / "checkpoint" / "snapshots" / Path(best["path"]).name),
              "--data", str(data), "--out", str(sub), "--tta", "flip", "--quiet"], log)
        info = {"epochs": summary["epochs_run"], "train_seconds": summary["seconds"]}
    else:
        use = space
        if arm == "noprior":
            raw = yaml.safe_load(space.read_text())
            raw.pop("prior", None)
            use = out / "space.yaml"
            use.write_text(yaml.safe_dump(raw, sort_keys=False))
        results = out / "results"
        _run([*salttune, "search", "--space", str(use), "--data", str(data), "--name", "s", "--storage", str(results),
              "--time-budget", f"{int(t_s)}s", "--set", f"data.holdout_seed={seed}"], log)
        t_search = time.time() - t0
        _run([*salttune, "ensemble", "--search", "s", "--results", str(results), "--data", str(data), "--quiet"], log)
        sub = results / "s" / "ensemble" / "submission.csv"
        report = json.loads((results / "s" / "ensemble" / "report.json").read_text())
        budget = json.loads((results / "s" / "budget.json").read_text())
        info = {"search_seconds": t_search, "ensemble_holdout": report["holdout"], "final_models": budget.get("final_models"),
                "final_epochs": budget.get("final_epochs"), "explore_s": budget.get("explore_s"),
                "last_stage": _last_stage_reached(results / "s")}
    return {"arm": arm, "seed": seed, "seconds": time.time() - t0, "submission": str(sub), **info}


def _last_stage_reached(search: Path) -> dict:
    """Of the trials that ran all their epochs: how many trained in their last loss stage (leaderboard + metrics)."""
    from salttune.leaderboard import FINISHED, read_leaderboard

    rows = [r for r in read_leaderboard(search / "leaderboard.csv") if r["state"] == FINISHED]
    reached = 0
    for r in rows:
        stages = str(r.get("loss.stages") or "")
        n = len(stages.split(",")) if stages else 1
        progress = list(search.glob(f"trials/trial_{r['trial_id']}/progress.csv"))
        if n == 1:
            reached += 1
        elif progress:
            import pandas as pd

            df = pd.read_csv(progress[0])
            reached += int("loss_stage" in df and df["loss_stage"].max() == n - 1)
    return {"finished": len(rows), "in_last_stage": reached}


def bench_budget(data: str, work: Path, *, space: str, minutes: float, seeds: list[int], arms: list[str],
                 score_only: bool = False) -> dict:
    """Run every arm for every seed (one after another), score them per image, and compare them paired.

    Args:
        score_only: run nothing: score and compare the arms already run in ``work`` (the others are left out).
    """
    src, work = Path(data), Path(work)
    work.mkdir(parents=True, exist_ok=True)
    done = {(r["arm"], r["seed"]): r for r in (json.loads((work / "runs.json").read_text()) if (work / "runs.json").is_file() else [])
            if r.get("minutes") == minutes}
    runs, scores = [], {}
    for seed in seeds:
        folder = work / f"data-s{seed}"
        ids = _data_folder(src, folder, seed)
        for arm in arms:
            if (arm, seed) in done:  # an arm run before in this folder, at the same T: scored again, not rerun
                r = done[(arm, seed)]
            elif score_only:
                continue
            else:
                print(f"budget: seed {seed}, arm {arm}, {minutes:g} min...", flush=True)
                r = {**_arm(arm, seed, folder, work, Path(space), minutes), "minutes": minutes}
            if not Path(r["submission"]).is_file() and r.get("ids") == ids:  # a kept record: its submission is gone
                per = np.asarray(r["per_image"], dtype=float)
            else:
                per = _score(Path(r["submission"]), src, ids)
            scores[(arm, seed)] = per
            r.update(score=float(per.mean()), se=float(per.std(ddof=1) / math.sqrt(len(per))), images=len(per),
                     ids=ids, per_image=[round(float(x), 4) for x in per])
            runs.append(r)
            print(f"budget: seed {seed}, arm {arm}: {r['score']:.4f} +- {r['se']:.4f} in {r['seconds']:.0f} s", flush=True)
            kept = [x for k, x in done.items() if k not in {(y["arm"], y["seed"]) for y in runs}]
            (work / "runs.json").write_text(json.dumps(kept + runs, indent=1))
    pairs = {}
    for a, b in (("search", "default"), ("search", "noprior"), ("noprior", "default")):
        both = [s for s in seeds if (a, s) in scores and (b, s) in scores]
        if not both:
            continue
        diffs = [float((scores[(a, s)] - scores[(b, s)]).mean()) for s in both]
        within = [float((scores[(a, s)] - scores[(b, s)]).std(ddof=1) / math.sqrt(len(scores[(a, s)]))) for s in both]
        pairs[f"{a} - {b}"] = {"seeds": both, "per_seed": diffs, "per_seed_se": within, "mean": float(np.mean(diffs)),
                               "se_over_seeds": float(np.std(diffs, ddof=1) / math.sqrt(len(diffs))) if len(diffs) > 1 else None}
    return {"minutes": minutes, "space": space, "seeds": seeds, "runs": runs, "paired": pairs}
