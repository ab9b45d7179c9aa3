"""The figures of ``python -m benchmarks``: ``OUT/NAME.json`` per benchmark, and the README that shows the latest
of each with the command and the machine that measured it (OUT: ``bench-out/``, or ``results/benchmarks/`` for the
committed reference figures)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from benchmarks.quality import quality_table
from salttune.fileio import atomic_path, write_json
from salttune.record import machine_info, package_versions

__all__ = ["save_result", "render_readme", "plot_anytime", "replay_table", "confirm_table", "METHODS"]


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
                "`test`: the submission's score against test_truth.csv. See benchmarks/protocol.py.",
    "predict": "Images/s of prediction with the default model, without and with flip TTA; peak resident memory.",
    "quality": "Recipes compared out of fold at the same wall-clock training budget: for each seed and each of the "
               "coverage-stratified folds, every recipe trains on the other folds (an inner validation part of them "
               "picks its cuts, snapshots and best epoch) and its best snapshot predicts the fold's images (flip TTA). "
               "Mean ± sd of the fold scores; each seed's OOF score over all images; the mean paired difference per "
               "(seed, fold) to the baseline with its standard error, and the folds where the recipe won.",
    "search": "Seconds from a search's first trial start until any trial's validation score reaches `target`: each "
              "algorithm (by default TPE + ASHA and random search without early stopping) with the same space, trial "
              "budget, concurrency and seed; all stop at the target (`stop_at`). A search that never reaches it counts "
              "as its whole time, so its speed-up is a bound. `median_speedup` is the median over seeds of random's "
              "time / the algorithm's.",
    "replay": "Search algorithms replayed in virtual time on curves recorded once (`curves`: a random search without "
              "early stopping on the real images, every epoch's score and seconds kept): each algorithm runs "
              "`seeds` times at the same virtual-time budget (`horizon_s`: about `horizon_full_trials` full trials on "
              "`space.concurrent` slots), salttune's own searcher and scheduler driven as Ray Tune drives them, each "
              "epoch taking the seconds recorded for it. A configuration that was recorded replays its own curve, any "
              "other the prediction of random forests fitted on the recording. Two targets are fixed before any "
              "search runs: the best scores of the best 10% and 2% of 2000 random configurations as replayed. Per "
              "algorithm: the median and quartiles over seeds of the virtual time to first reach each target (a seed "
              "that never does counts as infinite), the share of seeds that reach it, and the median best score found "
              "by a quarter, half and all of the budget (the anytime curve: `replay_anytime.png`). Speed-ups are "
              "ratios of medians: the baseline's median time / the algorithm's. `surrogate.*`: how faithful the "
              "replay is on configurations left out of its fit (K folds): rank correlations of replayed and recorded "
              "best and final scores, and the mean absolute error of the best score.",
    "confirm": "The live `search` races replayed: each live run (algorithm, seed) is simulated with the same algorithm, "
               "seed, space, concurrency and trial budget against the curve table's replay, and its time to the same "
               "target, best score and trials started are put beside the live ones (live seconds are wall-clock on "
               "the machine that ran them; replayed seconds are the recording's). `same_ranking`: whether the "
               "algorithms ranked by median time to the target (a run that never reaches it counts as its whole "
               "time, as in `search`) come out in the same order live and replayed. `live_trials.*`: the surrogate "
               "on the live runs' own trials (rank correlation and mean absolute error of best scores).",
    "scale": "Epochs per minute of the same search with 1 and with 2 trials at once.",
    "gpu": "One device, data already on it (random tensors), salttune's own training step (`train_epoch`, the "
           "config's optimiser and first loss stage, channels-last; in the precision the config trains in (salttune.precision: bf16, else fp16 with loss scaling, on CUDA; float32 on the CPU); "
           "`gpu-cpu`: the same code on the CPU at small sizes). `training.*`: images/s (median of timed repeats "
           "after warm-up steps) of the config's network and of an smp U-Net on `encoder` (random weights); FLOPs "
           "per image of one step (forward + backward, `FlopCounterMode`); achieved TFLOP/s over `peak_tflops` "
           "(a large matmul in the step's dtype on CUDA; on the CPU the BLAS's float32 matmul, which convolutions can beat, so "
           "a CPU share may pass 1). `sharing.K.*`: K processes (spawn) training the config's network at "
           "once after their warm-up: total images/s and its ratio to one. `prediction.*`: N images x M members "
           "(random weights) with flip TTA through `iter_predictions`, every member on each batch; "
           "`projected_18000x10_s` scales it linearly to 18,000 test images x 10 members.",
}


def _per_seed_table(result: dict) -> str:
    """One row per seed of the ``search`` race, one column per algorithm (and per speed-up against random)."""
    from benchmarks.search import RACE

    rows = result["per_seed"]
    labels = result.get("algorithms") or [k for k in RACE if k in rows[0]]  # files before --algorithms: RACE's labels
    names = {label: RACE.get(label, label) for label in labels}

    def cell(r: dict) -> str:
        return f"{r['seconds']:.0f} s{'' if r['reached'] else ' (not reached)'}, {r['trials']} trials, {r['epochs']} epochs, best {r['best']:.3f}"

    first = rows[0].get("speedup")
    if isinstance(first, dict):  # {algorithm: random's time / its time}
        sped = [a for a in labels if a in first]
    else:  # files before --algorithms: one float, random's time / TPE + ASHA's (the first label)
        sped = labels[:1] if first is not None else []

    def speedups(r: dict) -> list[str]:
        s = r["speedup"]
        return [f"{s[a]:.2f}x" for a in sped] if isinstance(s, dict) else [f"{s:.2f}x"]

    head = ["seed", *(_ALGORITHM_TITLES.get(names[a], names[a]) for a in labels),
            *(f"speed-up of {names[a]}" if len(sped) > 1 else "speed-up" for a in sped)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join([str(r["seed"]), *(cell(r[a]) for a in labels), *speedups(r)]) + " |" for r in rows]
    return "\n".join(lines) + "\n"


# Column titles of the best-known algorithms; any other shows its own name.
_ALGORITHM_TITLES = {"tpe+asha": "TPE + ASHA", "random": "random, no early stopping", "random+asha": "random + ASHA",
                    "bohb": "BOHB-style TPE + ASHA"}


def _s(x: float | None) -> str:
    """Virtual seconds, or "never" for a target not reached (inf; None in per-seed lists)."""
    return "never" if x is None or math.isinf(x) else f"{x:.0f}"


def _anytime_at(row: dict, budget_s: float) -> dict:
    """The anytime point of one algorithm nearest ``budget_s`` (the grid is 1/20 of the horizon)."""
    return min(row["anytime"], key=lambda p: abs(p["budget_s"] - budget_s))


def replay_table(r: dict) -> str:
    """The ``replay`` result as one row per algorithm, then one line per speed-up."""
    targets = r["targets"]
    head = ["algorithm", "trials (median)",
            *(f"{name} ({value:.3f}): median [q25, q75] virtual s, seeds reaching" for name, value in targets.items()),
            *(f"best by {p}% of the budget (median)" for p in (25, 50, 100))]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for a in r["algorithms"]:
        row = r["per_algorithm"][a]
        cells = [a, f"{row['trials_median']:g}"]
        cells += [f"{_s(row[t]['median'])} [{_s(row[t]['q25'])}, {_s(row[t]['q75'])}], {row[t]['reached']:.0%}" for t in targets]
        cells += [f"{_anytime_at(row, f * r['horizon_s'])['median']:.3f}" for f in (0.25, 0.5, 1.0)]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    if r.get("speedups"):
        text += ("\nSpeed-ups (the baseline's median time to the target / the algorithm's; a median is finite when at "
                 "least half of the seeds reach the target):\n\n")
        for key, x in r["speedups"].items():
            text += f"- {key}: " + ("neither reaches it in half of the seeds" if x is None else
                                    "only the algorithm reaches it in half of the seeds" if math.isinf(x) else
                                    "only the baseline reaches it in half of the seeds" if x == 0 else f"{x:.2f}x")
            text += _speedup_interval(r, key) + "\n"
    return text


def _speedup_interval(r: dict, key: str, draws: int = 2000) -> str:
    """The speed-up's 10-90% interval over seeds resampled with replacement (both algorithms' seeds; seeded, so
    the README renders the same every time): the error bar of a ratio of two medians."""
    import numpy as np

    target, _, pair = key.partition(": ")
    base, _, alg = pair.partition(" / ")
    try:
        a = [math.inf if t is None else t for t in r["per_algorithm"][base][target]["per_seed"]]
        b = [math.inf if t is None else t for t in r["per_algorithm"][alg][target]["per_seed"]]
    except KeyError:
        return ""
    rng = np.random.default_rng(0)
    ratios = []
    for _ in range(draws):
        ma = np.quantile(rng.choice(a, len(a)), 0.5, method="inverted_cdf")
        mb = np.quantile(rng.choice(b, len(b)), 0.5, method="inverted_cdf")
        ratios.append(math.inf if math.isinf(ma) and not math.isinf(mb) else 0.0 if math.isinf(mb) and not math.isinf(ma)
                      else 1.0 if math.isinf(ma) else ma / mb)
    lo, hi = np.quantile(ratios, [0.1, 0.9], method="inverted_cdf")
    return f" (10-90% over resampled seeds: {lo:.2f}x to {hi:.2f}x)" if math.isfinite(hi) else f" (10-90% over resampled seeds: {lo:.2f}x to never)"


def plot_anytime(result: dict, path: str | Path) -> Path:
    """Draw the ``replay`` result's anytime curves to ``path`` (PNG): the best validation score found by each
    virtual time, median over seeds with a band from the first to the third quartile, one colour per algorithm,
    and the targets as dashed lines. Written atomically."""
    from matplotlib.figure import Figure  # no pyplot: no global state, and the Agg canvas needs no display

    scale, unit = (3600.0, "hours") if result["horizon_s"] >= 3 * 3600 else (60.0, "minutes")
    fig = Figure(figsize=(8, 4.5), dpi=110)
    ax = fig.add_subplot()
    lows = []
    for a in result["algorithms"]:
        points = result["per_algorithm"][a]["anytime"]
        x = [p["budget_s"] / scale for p in points]
        line, = ax.plot(x, [p["median"] for p in points], marker=".", label=a)
        ax.fill_between(x, [p["q25"] for p in points], [p["q75"] for p in points], color=line.get_color(), alpha=0.2, lw=0)
        lows += [p["q25"] for p in points if p["budget_s"] >= result["horizon_s"] / 4]
    for name, value in result["targets"].items():
        ax.axhline(value, ls="--", lw=1, color="grey")
        ax.annotate(f"{name} ({value:.3f})", (0, value), xycoords=("axes fraction", "data"), xytext=(3, 2),
                    textcoords="offset points", fontsize=8, color="grey")
    top = max([*result["targets"].values(), *(p["q75"] for a in result["algorithms"] for p in result["per_algorithm"][a]["anytime"])])
    if lows:  # the first minutes (nothing reported yet: 0) would squash the part that matters
        low = min(lows)
        ax.set_ylim(low - 0.1 * (top - low + 1e-9), top + 0.05 * (top - low + 1e-9))
    ax.set_xlim(0, result["horizon_s"] / scale)
    ax.set_xlabel(f"virtual {unit} (the recording's seconds per epoch, {result['space'].get('concurrent', '?')} trials at once)")
    ax.set_ylabel("best validation score found")
    ax.set_title(f"Replayed searches: median and quartiles over {result['seeds']} seeds")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    with atomic_path(path, "figure", mkdir=True) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    return Path(path)


def confirm_table(r: dict) -> str:
    """The ``confirm`` result: each live run beside its replay, then the two rankings."""
    head = ["algorithm", "seed", "live s to target", "replayed s", "live best", "replayed best", "live trials", "replayed trials"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for x in r["runs"]:
        live, rep = x["live"], x["replayed"]
        lines.append(f"| {x['algorithm']} | {x['seed']} | {live['seconds']:.0f}{'' if live['reached'] else ' (not reached)'} | "
                     f"{rep['seconds']:.0f}{'' if rep['reached'] else ' (not reached)'} | {live['best']:.3f} | {rep['best']:.3f} | "
                     f"{live['trials']} | {rep['trials']} |")
    return ("\n".join(lines) + f"\n\nRanking by median time to {r['target']:g}: live {' < '.join(r['ranking_live'])}; "
            f"replayed {' < '.join(r['ranking_replayed'])} ({'the same' if r['same_ranking'] else 'different'}).\n")


# Keys a benchmark's own table shows, left out of the generic figure | value table.
_OWN_TABLE = {"replay": {"per_algorithm", "anytime", "per_seed", "speedups"}, "confirm": {"runs"}}


def render_readme(out_dir: Path) -> str:
    """``OUT/README.md``: the latest figures in ``out_dir``, their commands and the machine."""
    parts = ["# Benchmarks\n", "Latest figures measured by `python -m benchmarks` (benchmarks/README.md says how to run "
             "each); each JSON file beside this one holds the full result, the machine and package versions. Re-run a "
             "command from a checkout to compare your hardware.\n"]
    results = [r for r in (json.loads(p.read_text()) for p in sorted(out_dir.glob("*.json"))) if isinstance(r, dict)]
    if any(str(r.get("command", "")).startswith("salttune bench ") for r in results):
        parts.append("Commands recorded as `salttune bench NAME` ran before the benchmarks left the package: today "
                     "`python -m benchmarks NAME`, with `--reference` for `--out results/benchmarks`.\n")
    for r in results:
        if "benchmark" not in r:
            continue  # not a result of save_result (a curve table written here, say)
        m = r.get("machine", {})
        parts.append(f"## {r['benchmark']}\n\n`{r['command']}`  \n{r['when']} on {m.get('cpu')} "
                     f"({m.get('cpu_count')} cores, {m.get('memory_gib')} GiB, GPUs: {', '.join(m.get('gpus') or []) or 'none'})\n")
        kind = r["benchmark"].split("-")[0]  # replay-nearest: the replay benchmark on another surrogate
        skip = {"benchmark", "command", "when", "machine", "packages", "all_plain", "all_plain_channels_last", "all_salttune", "config",
                "recipes", "configs", "table", *_OWN_TABLE.get(kind, ())}
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
        if kind in METHODS:
            parts.append(METHODS[kind] + "\n")
        parts.append("| figure | value |\n|---|---|\n" + "\n".join(rows) + "\n")
        if r["benchmark"] == "search" and r.get("per_seed"):
            parts.append(_per_seed_table(r))
        if r["benchmark"] == "quality" and "table" in r:
            parts.append(quality_table(r))
        if kind == "replay" and "per_algorithm" in r:
            parts.append(replay_table(r))
            if (out_dir / f"{r['benchmark']}_anytime.png").is_file():
                parts.append(f"![anytime curves of the replayed searches]({r['benchmark']}_anytime.png)\n")
        if r["benchmark"] == "confirm" and "runs" in r:
            parts.append(confirm_table(r))
    return "\n".join(parts)
