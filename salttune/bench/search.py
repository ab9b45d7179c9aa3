"""Search benchmarks, run as a user runs them: real ``salttune search`` processes on one space.

- ``search``: time for salttune's search (algorithm ``tpe+asha``) to first reach a target validation score,
  against random search without early stopping (algorithm ``random``), with the same space, trial budget
  and concurrency, over several seeds: the two differ only in ``--set algorithm=NAME``
  (:mod:`salttune.search.algorithms`). Both run with ``stop_at`` = the target, so each search ends when it
  gets there. Times run from the start of a search's first trial (Ray's start-up is not counted). A search
  that spends its whole trial budget without reaching the target counts as its whole time, so its speed-up
  is a lower bound (``reached`` says which).
- ``scale``: epochs per minute with 1 and 2 concurrent trials.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from salttune.errors import SalttuneError

__all__ = ["search_timeline", "run_search_bench", "RACE"]

# The ``search`` race: its label in the figures (results/benchmarks/search.json) -> the algorithm it runs.
RACE = {"tpe_asha": "tpe+asha", "random_no_es": "random"}


def search_timeline(search_dir: Path) -> list[tuple[float, float]]:
    """Every reported epoch of a search as (seconds since the search's first trial started, val_score), in time order."""
    points, starts = [], []
    for result in (search_dir / "trials").glob("trial_*/result.json"):
        for line in result.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                points.append((r["timestamp"], r.get("val_score")))
                starts.append(r["timestamp"] - r["time_total_s"])
    if not points:
        return []
    t0 = min(starts)
    return sorted((t - t0, s) for t, s in points if s is not None)


def _time_to(timeline: list[tuple[float, float]], target: float) -> float | None:
    return next((t for t, s in timeline if s >= target), None)


def _search(space: str, root: Path, name: str, data: str, sets: list[str]) -> dict:
    cmd = [sys.executable, "-m", "salttune.cli", "search", "--space", space, "--name", name, "--storage", str(root), "--data", data]
    for s in sets:
        cmd += ["--set", s]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    timeline = search_timeline(root / name)
    return {"name": name, "wall_s": wall, "epochs": len(timeline), "best": max(s for _, s in timeline), "timeline": timeline,
            "trials": len(list((root / name / "trials").glob("trial_*/result.json")))}


def run_search_bench(args) -> dict:
    from salttune.search.space import load_space

    if args.which == "search" and args.target is None:
        raise SalttuneError("--target is required: give the validation score both searches race to, e.g. --target 0.5 "
                            "(results/benchmarks/README.md says how the committed figure chose it)")
    space_file = getattr(args, "space", None) or ("search_spaces/bench.yaml" if args.which == "search" else "search_spaces/quick.yaml")
    base = ([f"trials={args.trials}"] if args.trials else []) + list(args.set or [])
    space = load_space(space_file, base, data=args.data)
    root = Path(args.out) / "runs" / args.which / time.strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    if args.which == "scale":
        out = {"space": space_file, "trials": space.trials}
        for conc in (1, 2):
            r = _search(space_file, root, f"concurrent{conc}", args.data, base + [f"concurrent={conc}"])
            out[f"concurrent_{conc}"] = {"wall_s": r["wall_s"], "epochs": r["epochs"], "epochs_per_min": 60 * r["epochs"] / r["wall_s"]}
        out["throughput_gain"] = out["concurrent_2"]["epochs_per_min"] / out["concurrent_1"]["epochs_per_min"]
        return out
    base.append(f"stop_at={args.target}")
    seeds = args.seeds or 3
    per_seed = []
    for seed in range(seeds):
        row = {"seed": seed}
        for label, algorithm in RACE.items():  # interleaved, so drifts in machine load hit both alike
            r = _search(space_file, root, f"{label}-{seed}", args.data, base + [f"seed={seed}", f"algorithm={algorithm}"])
            t = _time_to(r["timeline"], args.target)
            row[label] = {"seconds": t if t is not None else r["timeline"][-1][0], "reached": t is not None,
                          "trials": r["trials"], "epochs": r["epochs"], "best": r["best"], "wall_s": r["wall_s"]}
        row["speedup"] = row["random_no_es"]["seconds"] / row["tpe_asha"]["seconds"]
        per_seed.append(row)
    return {"space": space_file, "trials": space.trials, "seeds": seeds, "target": args.target,
            "median_speedup": statistics.median(r["speedup"] for r in per_seed),
            "tpe_asha_reached": sum(r["tpe_asha"]["reached"] for r in per_seed),
            "random_no_es_reached": sum(r["random_no_es"]["reached"] for r in per_seed),
            "per_seed": per_seed, "folder": str(root)}
