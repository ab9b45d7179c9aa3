"""Search benchmarks, run as a user runs them: real ``salttune search`` processes on one space.

- ``search``: time for salttune's search (TPE + ASHA) to first reach a target validation score, against
  random search without early stopping, with the same trial budget and concurrency, over several seeds.
  Random search is the same space with every trial a TPE start-up (random) trial; no early stopping is
  ASHA with ``grace_period = max_t``. The target defaults to the lower of the two strategies' median best
  scores, so both reach it on most seeds; a strategy that never reaches it counts as its whole wall time.
- ``scale``: epochs per minute with 1 and 2 concurrent trials.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["search_timeline", "run_search_bench"]


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


def _time_to(timeline: list[tuple[float, float]], target: float, wall: float) -> float:
    return next((t for t, s in timeline if s >= target), wall)


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
    return {"name": name, "wall_s": wall, "epochs": len(timeline), "best": max(s for _, s in timeline), "timeline": timeline}


def run_search_bench(args) -> dict:
    from salttune.search.space import load_space

    space_file = getattr(args, "space", None) or "search_spaces/quick.yaml"
    space = load_space(space_file, list(args.set or []), data=args.data)
    root = Path(args.out) / "runs" / args.which / time.strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    base = [f"trials={args.trials}", *list(args.set or [])]
    if args.which == "scale":
        out = {"space": space_file, "trials": args.trials}
        for conc in (1, 2):
            r = _search(space_file, root, f"concurrent{conc}", args.data, base + [f"concurrent={conc}"])
            out[f"concurrent_{conc}"] = {"wall_s": r["wall_s"], "epochs": r["epochs"], "epochs_per_min": 60 * r["epochs"] / r["wall_s"]}
        out["throughput_gain"] = out["concurrent_2"]["epochs_per_min"] / out["concurrent_1"]["epochs_per_min"]
        return out
    runs = {"tpe_asha": [], "random_no_es": []}
    for seed in range(args.seeds):
        runs["tpe_asha"].append(_search(space_file, root, f"tpe-{seed}", args.data, base + [f"seed={seed}"]))
        runs["random_no_es"].append(_search(space_file, root, f"random-{seed}", args.data, base + [
            f"seed={seed}", f"startup_trials={args.trials}", f"asha.grace_period={space.asha.max_t}"]))
    target = args.target if args.target is not None else min(statistics.median(r["best"] for r in rs) for rs in runs.values())
    speedups = []
    per_seed = []
    for a, b in zip(runs["tpe_asha"], runs["random_no_es"]):
        ta, tb = _time_to(a["timeline"], target, a["wall_s"]), _time_to(b["timeline"], target, b["wall_s"])
        speedups.append(tb / ta)
        per_seed.append({"tpe_asha_s": ta, "random_no_es_s": tb, "speedup": tb / ta, "tpe_asha_best": a["best"],
                         "random_best": b["best"], "tpe_asha_wall_s": a["wall_s"], "random_wall_s": b["wall_s"],
                         "tpe_asha_epochs": a["epochs"], "random_epochs": b["epochs"]})
    return {"space": space_file, "trials": args.trials, "seeds": args.seeds, "target": target,
            "median_speedup": statistics.median(speedups), "per_seed": per_seed, "folder": str(root)}
