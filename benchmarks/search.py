"""Search benchmarks, run as a user runs them: real ``salttune search`` processes on one space.

- ``search``: time for each of several search algorithms (default ``tpe+asha`` and ``random``, random search
  without early stopping) to first reach a target validation score, with the same space, trial budget and
  concurrency, over several seeds: the searches differ only in ``--set algorithm=NAME``
  (:mod:`salttune.search.algorithms`). All run with ``stop_at`` = the target, so each search ends when it
  gets there. Times run from the start of a search's first trial (Ray's start-up is not counted). A search
  that spends its whole trial budget without reaching the target counts as its whole time, so its speed-up
  is a lower bound (``reached`` says which). Each run keeps its timeline and its trials' curves, so that
  ``python -m benchmarks confirm`` (:mod:`benchmarks.confirm`) can replay the same searches.
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

__all__ = ["search_timeline", "bench_search", "bench_scale", "RACE", "BASELINE", "check_algorithms"]

# The labels of result files written before ``--algorithms`` (results/benchmarks/search.json) -> the algorithm
# each ran. Newer files label a run by its algorithm's name and list them under ``algorithms``.
RACE = {"tpe_asha": "tpe+asha", "random_no_es": "random"}
BASELINE = "random"  # speed-ups are the baseline's time over each other algorithm's


def check_algorithms(names: list[str], known, flag: str = "--algorithms") -> list[str]:
    """``names`` when each is a key of ``known``, once; else a :class:`SalttuneError` listing the valid names."""
    if not names:
        raise SalttuneError(f"{flag}: give at least one algorithm, e.g. {flag} {','.join(list(known)[:2])}")
    for a in names:
        if a not in known:
            raise SalttuneError(f"{flag}: unknown algorithm {a!r}; allowed: {', '.join(known)}")
    if len(set(names)) < len(names):
        raise SalttuneError(f"{flag}: {','.join(names)} names an algorithm twice; give each once")
    return list(names)


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
    """Seconds until a score first reaches ``target`` (None if never): the replay's ``time_to``."""
    import math

    from benchmarks.replay import time_to

    t = time_to(timeline, target)
    return t if math.isfinite(t) else None


def _search(space: str, root: Path, name: str, data: str, sets: list[str]) -> dict:
    from benchmarks.replay import record_curves

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
            "trials": len(list((root / name / "trials").glob("trial_*/result.json"))),
            "curves": record_curves(root / name, partial=True)["curves"]}  # each trial's parameters and the epochs it ran


def _setup(which: str, space_file: str | None, data: str, out: str | Path, trials: int | None, sets: list[str]):
    from salttune.search.space import load_space

    space_file = space_file or ("benchmarks/spaces/bench.yaml" if which == "search" else "search_spaces/quick.yaml")
    base = ([f"trials={trials}"] if trials else []) + list(sets)
    space = load_space(space_file, base, data=data)
    root = Path(out) / "runs" / which / time.strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    return space_file, base, space, root


def bench_scale(data: str, out: str | Path, *, space_file: str | None = None, trials: int | None = None,
                sets: list[str] = ()) -> dict:
    """Epochs per minute of the same search with 1 and with 2 trials at a time."""
    space_file, base, space, root = _setup("scale", space_file, data, out, trials, list(sets))
    result = {"space": space_file, "trials": space.trials}
    for conc in (1, 2):
        r = _search(space_file, root, f"concurrent{conc}", data, base + [f"concurrent={conc}"])
        result[f"concurrent_{conc}"] = {"wall_s": r["wall_s"], "epochs": r["epochs"], "epochs_per_min": 60 * r["epochs"] / r["wall_s"]}
    result["throughput_gain"] = result["concurrent_2"]["epochs_per_min"] / result["concurrent_1"]["epochs_per_min"]
    return result


def bench_search(data: str, out: str | Path, target: float | None, *, space_file: str | None = None,
                 trials: int | None = None, seeds: int = 3, sets: list[str] = (),
                 algorithms: tuple[str, ...] | list[str] = ("tpe+asha", BASELINE)) -> dict:
    """Seconds for each of ``algorithms`` (keys of salttune.search.algorithms.ALGORITHMS) to first reach
    ``target``, seed by seed (paired seeds); speed-ups against :data:`BASELINE` when it is among them."""
    from salttune.search.algorithms import ALGORITHMS

    algorithms = check_algorithms(list(algorithms), ALGORITHMS)
    if target is None:
        raise SalttuneError("--target is required: give the validation score the searches race to, e.g. --target 0.5 "
                            "(results/benchmarks/README.md says how the committed figure chose it)")
    space_file, base, space, root = _setup("search", space_file, data, out, trials, list(sets))
    base.append(f"stop_at={target}")
    per_seed = []
    for seed in range(seeds):
        row = {"seed": seed}
        for algorithm in algorithms:  # interleaved, so drifts in machine load hit all alike
            name = f"{algorithm.replace('+', '_')}-{seed}"
            r = _search(space_file, root, name, data, base + [f"seed={seed}", f"algorithm={algorithm}"])
            t = _time_to(r["timeline"], target)
            row[algorithm] = {"seconds": t if t is not None else r["timeline"][-1][0], "reached": t is not None,
                              "trials": r["trials"], "epochs": r["epochs"], "best": r["best"], "wall_s": r["wall_s"],
                              "timeline": r["timeline"], "curves": r["curves"]}
        if BASELINE in algorithms:
            row["speedup"] = {a: row[BASELINE]["seconds"] / row[a]["seconds"] for a in algorithms if a != BASELINE}
        per_seed.append(row)
    result = {"space": space_file, "sets": base, "data": data, "trials": space.trials, "seeds": seeds, "target": target,
              "algorithms": algorithms, "reached": {a: sum(r[a]["reached"] for r in per_seed) for a in algorithms}}
    if BASELINE in algorithms and len(algorithms) > 1:
        result["median_speedup"] = {a: statistics.median(r["speedup"][a] for r in per_seed) for a in algorithms if a != BASELINE}
    return {**result, "per_seed": per_seed, "folder": str(root)}
