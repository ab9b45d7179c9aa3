"""``python -m benchmarks quality``: recipes compared out of fold, at the same wall-clock budget, over folds and seeds.

The protocol, for each seed ``s`` (a fold assignment and a training seed) and each of ``k`` coverage-stratified
folds:

1. the fold's images are put aside (out of fold, OOF); nothing about them is seen until the end;
2. the other images are split again (coverage-stratified, ``inner_val`` of them) into training and an *inner*
   validation part, which alone picks the learning-rate cuts, the snapshots and the best epoch;
3. each recipe trains for ``budget_s`` seconds of wall-clock time (``time_budget_s``: the run stops before an
   epoch that would not fit), then its best snapshot (by inner validation) predicts the OOF images with flip TTA
   and the competition score of every OOF image is kept.

Recipes run interleaved (every recipe of a fold before the next fold), so a machine that slows down for a while
slows every recipe alike. A seed's OOF score is the mean over all images; the figures are the mean and standard
deviation over the ``k x seeds`` fold scores, and, against the ``baseline`` recipe, the mean paired difference per
(seed, fold) with its standard error. Finished runs are appended to ``runs.jsonl`` in the output folder, so an
interrupted benchmark started again with the same settings goes on where it stopped.

A recipe is a nested mapping of training-config overrides (``--set`` keys) on top of today's defaults.

Choosing a recipe on the images it is then scored on flatters it. ``images`` cuts the dataset once, by a fixed
coverage-stratified split, into a ``choose`` part (40%), where recipes are tried and the default is picked, and a
``score`` part (60%), where the chosen recipe is compared with the others; ``all`` uses every image.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from salttune.errors import SalttuneError

__all__ = ["RECIPES", "BASELINE", "IMAGE_PARTS", "bench_quality", "image_part", "summarise", "load_recipes"]

IMAGE_PARTS = ("all", "choose", "score")
_PART_SEED, _CHOOSE_SHARE = 12345, 0.4

# The first default config (default_v0), pinned key by key so that the row stays what it was when the defaults move.
# Two later fixes apply to it all the same: the logit conv starts near 0, and focal's alpha is not used.
DEFAULT_V0 = {
    "batch_size": 32,
    "model": {"network": "unet", "base_width": 16, "depth": 4, "block": "residual", "init": "he_normal", "dropout": 0.0},
    "loss": {"name": "bce+lovasz_symmetric", "weights": [1.0, 0.5], "lovasz_per_image": True},
    "optim": {"name": "adam", "lr": 3e-3, "weight_decay": 0.0},
    "schedule": {"name": "plateau", "factor": 0.7, "patience": 3, "min_delta": 0.0, "max_snapshots": 5},
    "augment": {"names": ["hflip", "translate"], "translate": 0.1, "p": 0.5},
}
BASELINE = "default_v0"


def _on(base: dict, extra: dict) -> dict:
    from salttune.settings import apply_overrides

    return apply_overrides(base, extra)


# name -> overrides. The ingredient rows are today's default plus that one ingredient.
RECIPES: dict[str, dict] = {
    "plain": {"model": {"block": "plain"}, "loss": {"name": "bce"}, "optim": {"name": "adam"},
              "schedule": {"name": "none"}, "augment": {"names": []}},
    "default_v0": DEFAULT_V0,
    "scse": _on(DEFAULT_V0, {"model": {"block": "residual_scse"}}),
    "deep_supervision": _on(DEFAULT_V0, {"model": {"deep_supervision": True, "salt_head": True}}),
    "loss_stages": _on(DEFAULT_V0, {"loss": {"stages": "bce+dice:4,lovasz_symmetric"}}),
    "pad_128": _on(DEFAULT_V0, {"model": {"input_size": 128, "input_mode": "pad"}}),
    "smp_resnet18": _on(DEFAULT_V0, {"model": {"network": "smp_unet", "encoder": "resnet18"}}),
    # More, smaller steps: on 2 CPU cores a quarter of the channels runs an epoch ~3x faster.
    "w8_bs16": _on(DEFAULT_V0, {"batch_size": 16, "model": {"base_width": 8}}),
    "w8_bs16_lr1e-2": _on(DEFAULT_V0, {"batch_size": 16, "model": {"base_width": 8}, "optim": {"lr": 1e-2}}),
    "default": {},  # whatever the defaults are now
}


def load_recipes(path: str | Path | None, only: list[str] | None) -> dict[str, dict]:
    """The built-in recipes, or those of a YAML file (name -> overrides), narrowed to ``only``."""
    from salttune.settings import read_yaml_mapping

    recipes = RECIPES if path is None else read_yaml_mapping(
        Path(path), "recipes file does not exist; give a YAML file of name: {overrides}", "expected name: {overrides} mappings")
    for name, rec in recipes.items():
        if not isinstance(rec, dict):
            raise SalttuneError(f"{path}: recipe {name!r} is not a mapping of config overrides")
    if only:
        unknown = [n for n in only if n not in recipes]
        if unknown:
            raise SalttuneError(f"--only: unknown recipe {unknown[0]!r}; known: {', '.join(recipes)}")
        recipes = {n: recipes[n] for n in only}
    return recipes


def image_part(masks: np.ndarray, part: str) -> np.ndarray:
    """Indices of the images of ``part`` (see the module doc); ``choose`` and ``score`` are disjoint, fixed."""
    from salttune.split import train_val_split

    if part not in IMAGE_PARTS:
        raise SalttuneError(f"--images {part!r} is unknown; allowed: {', '.join(IMAGE_PARTS)}")
    if part == "all":
        return np.arange(len(masks))
    score, choose = train_val_split(masks, _CHOOSE_SHARE, seed=_PART_SEED)
    return choose if part == "choose" else score


def _config(recipe: dict, seed: int, budget_s: float):
    from salttune.config import config_from_dict

    # epochs is a ceiling the budget always reaches first
    return config_from_dict(_on(recipe, {"seed": seed, "epochs": 10000, "time_budget_s": budget_s}))


def _one_run(cfg, data, train_idx: np.ndarray, oof_idx: np.ndarray, inner_val: float, seed: int, run_dir: Path) -> dict:
    """Train on ``train_idx`` (minus an inner validation part), score the best snapshot on ``oof_idx``."""
    from salttune.checkpoint import build_from_checkpoint
    from salttune.metric import score_per_image
    from salttune.predict import predict_proba
    from salttune.split import Arrays, train_val_split
    from salttune.train import fit

    full = Arrays(data.train_ids, data.train_images, data.train_masks, data.train_depths)
    part = full.subset(train_idx)
    tr, va = train_val_split(part.masks, inner_val, seed=seed)
    t = time.perf_counter()
    summary = fit(cfg, part.subset(tr), part.subset(va), run_dir)
    train_s = time.perf_counter() - t
    best = max(summary["snapshots"], key=lambda s: s["score"])
    model, _ = build_from_checkpoint(best["path"])
    oof = full.subset(oof_idx)
    probs = predict_proba(model, oof.images, oof.depths if cfg.model.use_depth else None, torch.device("cpu"), tta="flip")
    scores = score_per_image(probs > cfg.threshold, oof.masks)
    return {"oof_score": float(scores.mean()), "oof_images": len(oof_idx), "inner_val_score": best["score"],
            "epochs_run": summary["epochs_run"], "train_seconds": train_s, "ids": oof.ids, "image_scores": scores.tolist()}


def bench_quality(data_dir: str, out_dir: Path, *, budget_s: float, folds: int = 5, seeds: int = 2, inner_val: float = 0.1,
                  images: str = "all",
                  recipes: dict[str, dict] | None = None, baseline: str = BASELINE,
                  log: Callable[[str], None] = print) -> dict:
    """Every recipe, on every fold of every seed, at ``budget_s`` seconds of training each; see the module doc.

    Returns:
        The settings, one row per run (``runs``), and :func:`summarise`'s figures per recipe.
    """
    from salttune.config import config_to_dict
    from salttune.data import load_dataset
    from salttune.split import kfold_splits

    recipes = RECIPES if recipes is None else recipes
    configs = {}
    for name, rec in recipes.items():  # every recipe checked before anything trains
        try:
            configs[name] = _config(rec, 0, budget_s)
        except SalttuneError as e:
            raise SalttuneError(f"recipe {name!r}: {e}") from None
    # A recipe is known by its resolved config (seed 0), not its overrides: "default" ({}) changes with the defaults.
    resolved = {name: json.loads(json.dumps(config_to_dict(cfg))) for name, cfg in configs.items()}
    data = load_dataset(data_dir, with_test=False)
    chosen = image_part(data.train_masks, images)
    settings = {"data": str(data_dir), "image_part": images, "images": len(chosen), "budget_s": budget_s, "folds": folds,
                "seeds": seeds, "inner_val": inner_val, "threads": torch.get_num_threads()}
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "runs.jsonl"
    done = {}
    if log_path.exists():
        for line in log_path.read_text().splitlines():
            r = json.loads(line)
            if r.get("settings") == settings and r["recipe"] in resolved and r.get("config") == resolved[r["recipe"]]:
                done[(r["recipe"], r["seed"], r["fold"])] = r
    for seed in range(seeds):
        splits = kfold_splits(data.train_masks[chosen], folds, seed=seed)
        for fold, (train_idx, oof_idx) in enumerate(splits):
            train_idx, oof_idx = chosen[train_idx], chosen[oof_idx]
            for name, rec in recipes.items():
                if (name, seed, fold) in done:
                    continue
                cfg = _config(rec, seed, budget_s)
                run_dir = out_dir / f"{name}-seed{seed}-fold{fold}"
                r = _one_run(cfg, data, train_idx, oof_idx, inner_val, seed, run_dir)
                shutil.rmtree(run_dir)  # its figures are in the row; 80 runs of checkpoints would fill gigabytes
                r = {"recipe": name, "seed": seed, "fold": fold, "overrides": rec, "config": resolved[name], "settings": settings, **r}
                with open(log_path, "a") as f:
                    f.write(json.dumps(r) + "\n")
                done[(name, seed, fold)] = r
                log(f"seed {seed} fold {fold} {name:18s} OOF {r['oof_score']:.4f}  inner val {r['inner_val_score']:.4f}  "
                    f"{r['epochs_run']} epochs in {r['train_seconds']:.0f} s")
    rows = [done[(n, s, f)] for s in range(seeds) for f in range(folds) for n in configs]
    return {**settings, "baseline": baseline, "recipes": recipes, "configs": resolved, **summarise(rows, baseline),
            "runs": [{k: v for k, v in r.items() if k not in ("ids", "image_scores", "settings", "overrides", "config")} for r in rows]}


def summarise(rows: list[dict], baseline: str) -> dict:
    """Per recipe: mean and standard deviation of the fold scores, each seed's OOF score (over all images), epochs
    run; and against ``baseline`` the mean paired difference per (seed, fold) with its standard error."""
    by = {}
    for r in rows:
        by.setdefault(r["recipe"], {})[(r["seed"], r["fold"])] = r
    table = {}
    for name, runs in by.items():
        scores = [r["oof_score"] for r in runs.values()]
        per_seed = {}
        for (seed, _), r in runs.items():
            per_seed.setdefault(seed, []).extend(r["image_scores"])
        row = {"runs": len(scores), "mean": statistics.mean(scores), "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
               "oof_by_seed": {str(s): float(np.mean(v)) for s, v in sorted(per_seed.items())},
               "epochs_run_mean": statistics.mean(r["epochs_run"] for r in runs.values())}
        base = by.get(baseline, {})
        pairs = [r["oof_score"] - base[k]["oof_score"] for k, r in runs.items() if k in base]
        if name != baseline and len(pairs) > 1:
            se = statistics.stdev(pairs) / math.sqrt(len(pairs))
            row.update({"vs_baseline": statistics.mean(pairs), "vs_baseline_se": se,
                        "vs_baseline_z": statistics.mean(pairs) / se if se > 0 else math.inf,
                        "vs_baseline_wins": sum(p > 0 for p in pairs)})
        table[name] = row
    return {"table": table}


def quality_table(r: dict) -> str:
    """The markdown table of a quality result."""
    lines = [f"| recipe | OOF score, mean ± sd over {r['folds']} folds x {r['seeds']} seeds | OOF by seed | vs {r['baseline']} "
             "(mean paired difference ± SE, wins) | epochs in the budget |", "|---|---|---|---|---|"]
    for name, row in r["table"].items():
        vs = (f"{row['vs_baseline']:+.4f} ± {row['vs_baseline_se']:.4f} ({row['vs_baseline_wins']}/{row['runs']})"
              if "vs_baseline" in row else "-")
        seeds = ", ".join(f"{v:.4f}" for v in row["oof_by_seed"].values())
        lines.append(f"| {name} | {row['mean']:.4f} ± {row['std']:.4f} | {seeds} | {vs} | {row['epochs_run_mean']:.1f} |")
    return "\n".join(lines) + "\n"
