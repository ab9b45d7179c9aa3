"""The figures of ``salttune bench``: ``results/benchmarks/NAME.json`` per benchmark, and the README that shows
the latest of each with the command and the machine that measured it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from salttune.bench.quality import quality_table
from salttune.fileio import write_json
from salttune.record import machine_info, package_versions

__all__ = ["save_result", "render_readme", "METHODS"]


def save_result(out_dir: Path, name: str, result: dict, command: str) -> Path:
    """Write ``out_dir/NAME.json``: the result with the command, the time, the machine and the package versions."""
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "command": command, "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
               "machine": machine_info(), "packages": package_versions(), **result}
    path = out_dir / f"{name}.json"
    write_json(path, payload, "benchmark result")  # atomic: an interrupted run leaves the earlier result whole
    return path


# What each benchmark compares, printed above its figures.
METHODS = {
    "train": "Images/s of a training epoch of the default model (CPU, float32): salttune's `train_epoch` (live loading "
             "and augmentation, finite-loss check, gradient-norm logging, fused Adam) against a plain PyTorch loop on "
             "the same network and batches, as a textbook loop (`plain`) and in salttune's channels-last memory format "
             "(`plain_channels_last`). Repeats alternate their order; ratios are medians of per-repeat ratios. The "
             "extras are also timed alone (`grad_norm_s_per_step`, `adam_step_s_*`).",
    "protocol": "Holdout scores of (a) the best single trial, (b) the top-N ensemble of one split, (c) the top-N "
                "configurations refit on K folds, (d) (c) + one round of pseudo-labels, each beside its cross-validated "
                "figure and their gap (its optimism); paired differences over the same holdout images (mean, SE); "
                "`test`: the submission's score against test_truth.csv. See salttune/bench/protocol.py.",
    "predict": "Images/s of prediction with the default model, without and with flip TTA; peak resident memory.",
    "quality": "Recipes compared out of fold at the same wall-clock training budget: for each seed and each of the "
               "coverage-stratified folds, every recipe trains on the other folds (an inner validation part of them "
               "picks its cuts, snapshots and best epoch) and its best snapshot predicts the fold's images (flip TTA). "
               "Mean ± sd of the fold scores; each seed's OOF score over all images; the mean paired difference per "
               "(seed, fold) to the baseline with its standard error, and the folds where the recipe won.",
    "search": "Seconds from a search's first trial start until any trial's validation score reaches `target`: TPE + "
              "ASHA against random search without early stopping, same space, trial budget, concurrency and seed; "
              "both stop at the target (`stop_at`). A search that never reaches it counts as its whole time, so its "
              "speed-up is a bound. `median_speedup` is the median over seeds of random's time / TPE + ASHA's.",
    "scale": "Epochs per minute of the same search with 1 and with 2 trials at once.",
}


def _per_seed_table(rows: list[dict]) -> str:
    def cell(r: dict) -> str:
        return f"{r['seconds']:.0f} s{'' if r['reached'] else ' (not reached)'}, {r['trials']} trials, {r['epochs']} epochs, best {r['best']:.3f}"

    lines = ["| seed | TPE + ASHA | random, no early stopping | speed-up |", "|---|---|---|---|"]
    lines += [f"| {r['seed']} | {cell(r['tpe_asha'])} | {cell(r['random_no_es'])} | {r['speedup']:.2f}x |" for r in rows]
    return "\n".join(lines) + "\n"


def render_readme(out_dir: Path) -> str:
    """``results/benchmarks/README.md``: the latest figures, their commands and the machine."""
    parts = ["# Benchmarks\n", "Latest figures measured by `salttune bench`; each JSON file beside this one holds the full "
             "result, the machine and package versions. Re-run a command to compare your hardware.\n"]
    for path in sorted(out_dir.glob("*.json")):
        r = json.loads(path.read_text())
        m = r.get("machine", {})
        parts.append(f"## {r['benchmark']}\n\n`{r['command']}`  \n{r['when']} on {m.get('cpu')} "
                     f"({m.get('cpu_count')} cores, {m.get('memory_gib')} GiB, GPUs: {', '.join(m.get('gpus') or []) or 'none'})\n")
        skip = {"benchmark", "command", "when", "machine", "packages", "all_plain", "all_plain_channels_last", "all_salttune", "config",
                "recipes", "configs", "table"}
        rows = []

        def walk(d, prefix=""):
            for k, v in d.items():
                if k in skip:
                    continue
                if isinstance(v, dict):
                    walk(v, f"{prefix}{k}.")
                elif not isinstance(v, list):
                    rows.append(f"| {prefix}{k} | {v:.4g} |" if isinstance(v, float) else f"| {prefix}{k} | {v} |")

        walk(r)
        if r["benchmark"] in METHODS:
            parts.append(METHODS[r["benchmark"]] + "\n")
        parts.append("| figure | value |\n|---|---|\n" + "\n".join(rows) + "\n")
        if r.get("per_seed") and "tpe_asha" in r["per_seed"][0]:
            parts.append(_per_seed_table(r["per_seed"]))
        if r["benchmark"] == "quality" and "table" in r:
            parts.append(quality_table(r))
    return "\n".join(parts)
