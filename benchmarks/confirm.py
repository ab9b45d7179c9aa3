"""``python -m benchmarks confirm``: the live ``search`` races replayed, to check that the replay ranks as reality does.

``python -m benchmarks search --space benchmarks/spaces/replay.yaml`` races real searches (real training, wall-clock time)
on the space whose curves the replay benchmark recorded. :func:`replay_of_live` simulates each of those runs
(same algorithm, seed, space, concurrency and trial budget) with :func:`benchmarks.replay.simulate` against
the recording, and puts the replayed time to the target, best score and trials beside the live ones. If the
replay is faithful, the algorithms come out in the same order live and replayed; the replay's many seeds can
then stand in for live races that cost an hour each.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from benchmarks.search import RACE, _time_to
from salttune.errors import SalttuneError

__all__ = ["load_live", "replay_of_live"]

# Spaces that moved out of search_spaces/ with the benchmarks: the paths older result files name -> where they are.
MOVED_SPACES = {f"search_spaces/{n}.yaml": f"benchmarks/spaces/{n}.yaml" for n in ("bench", "replay")}


def load_live(path: str | Path) -> dict:
    """The result of ``python -m benchmarks search`` at ``path`` (results/benchmarks/search.json)."""
    path = Path(path)
    try:
        r = json.loads(path.read_text())
    except FileNotFoundError:
        raise SalttuneError(f"{path}: no such file; race live searches first with  python -m benchmarks search "
                            "--space benchmarks/spaces/replay.yaml --target X") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SalttuneError(f"{path}: not a JSON result of python -m benchmarks search ({e}); run it again") from None
    if not isinstance(r, dict) or not r.get("per_seed") or "target" not in r:
        raise SalttuneError(f"{path}: not a result of python -m benchmarks search (no per_seed runs and target); give --live "
                            "the search.json that command wrote")
    return {**r, "space": MOVED_SPACES.get(r.get("space"), r.get("space"))}


def _labels(live: dict) -> list[str]:
    """The run labels of each seed's row: algorithm names, or RACE's labels in files before ``--algorithms``."""
    return live.get("algorithms") or [k for k in RACE if k in live["per_seed"][0]]


def _same_space(space, table_space, live_file: str, curves: str) -> None:
    mine, theirs = sorted(p.key for p in space.params), sorted(p.key for p in table_space.params)
    if mine != theirs or space.asha.max_t != table_space.asha.max_t:
        raise SalttuneError(f"{live_file}: the live searches ran parameters {', '.join(mine)} for {space.asha.max_t} epochs, "
                            f"the curves in {curves} are of {', '.join(theirs)} for {table_space.asha.max_t}; race the "
                            "space the curves were recorded on (benchmarks/spaces/replay.yaml)")


def _replayed(space, surrogate, algorithm: str, target: float) -> dict:
    """One replayed search, ended as ``stop_at`` ends a live one: at its first score >= ``target``."""
    from benchmarks.replay import best_by, simulate, time_to

    trace = simulate(space, surrogate, horizon_s=math.inf, algorithm=algorithm, max_trials=space.trials)
    t = time_to(trace.points, target)
    reached = math.isfinite(t)
    seconds = t if reached else max(p[0] for p in trace.points)  # not reached: the whole search, as the live figure
    # a live search stopped at the target has started only the trials that started before it (a trial that would
    # start the moment the target is reached, in the slot just freed, never does)
    trials = sum(start < seconds for start in trace.starts)
    return {"seconds": seconds, "reached": reached, "best": best_by(trace.points, seconds), "trials": trials,
            "epochs": sum(p[0] <= seconds for p in trace.points), "wall_s": trace.wall_s}


def _live_trials(surrogate, runs: list[dict]) -> dict | None:
    """The surrogate on the live trials' own curves: each trial's best score over the epochs it ran, live and replayed."""
    from scipy.stats import spearmanr

    live, replayed = [], []
    for run in runs:
        for c in run.get("curves") or []:
            if c["scores"]:
                live.append(max(c["scores"]))
                replayed.append(max(surrogate.curve(c["params"]).scores[: len(c["scores"])], default=0.0))
    if len(live) < 3:
        return None
    return {"trials": len(live), "spearman_best": float(spearmanr(replayed, live).statistic),
            "mae_best": float(statistics.fmean(abs(a - b) for a, b in zip(replayed, live)))}


def _ranking(medians: dict) -> list[str]:
    return sorted(medians, key=lambda a: (medians[a], a))


def replay_of_live(live_result: dict, curves_path: str | Path, *, target: float | None = None, surrogate: str = "forest") -> dict:
    """Each live run of ``live_result`` (a ``python -m benchmarks search`` result) beside its replay on ``curves_path``.

    Args:
        target: the score to time (default: the live target; a higher one is refused, since the live searches
            stopped at theirs).

    Returns:
        ``runs``: per (algorithm, seed) the live and replayed seconds to the target (the whole search when not
        reached), reached, best score and trials; ``median_seconds_*`` and ``ranking_*`` per side and
        ``same_ranking``; ``live_trials``: the surrogate on the live trials' curves (when the file has them).
    """
    from benchmarks.replay import Surrogate, load_curves
    from salttune.search.space import load_space

    live_target = float(live_result["target"])
    target = live_target if target is None else float(target)
    if target > live_target:
        raise SalttuneError(f"--target {target:g}: the live searches stopped at {live_target:g}, so their times to a higher "
                            f"score are unknown; give --target {live_target:g} or lower")
    # Files before bench_search kept its --set overrides held only the trial budget and the target (stop_at).
    sets = live_result.get("sets") or [f"trials={live_result['trials']}", f"stop_at={live_target}"]
    table_space, curves = load_curves(curves_path)
    kind, surrogate = surrogate, Surrogate(table_space, curves, kind=surrogate)
    runs, live_curves = [], []
    for row in live_result["per_seed"]:
        for label in _labels(live_result):
            algorithm, live = RACE.get(label, label), row[label]
            space = load_space(live_result["space"], [*sets, f"seed={row['seed']}", f"algorithm={algorithm}"],
                               data=live_result.get("data"))
            _same_space(space, table_space, live_result["space"], str(curves_path))
            if target == live_target:
                live_s, reached = live["seconds"], live["reached"]
            elif "timeline" in live:
                t = _time_to(live["timeline"], target)
                live_s, reached = (t, True) if t is not None else (live["seconds"], False)
            else:
                raise SalttuneError(f"--target {target:g}: the live result keeps no timelines (written before they were "
                                    f"kept); leave out --target to use its own, {live_target:g}")
            runs.append({"algorithm": algorithm, "seed": row["seed"],
                         "live": {"seconds": live_s, "reached": reached, "best": live["best"], "trials": live["trials"],
                                  "epochs": live["epochs"]},
                         "replayed": _replayed(space, surrogate, algorithm, target)})
            live_curves.append(live)
    algorithms = list(dict.fromkeys(r["algorithm"] for r in runs))
    medians = {side: {a: statistics.median(r[side]["seconds"] for r in runs if r["algorithm"] == a) for a in algorithms}
               for side in ("live", "replayed")}
    ranking = {side: _ranking(m) for side, m in medians.items()}
    return {"live_space": live_result["space"], "curves": str(curves_path), "surrogate": kind, "target": target, "live_target": live_target,
            "sets": sets, "algorithms": algorithms, "seeds": len(live_result["per_seed"]),
            "median_seconds_live": medians["live"], "median_seconds_replayed": medians["replayed"],
            "ranking_live": ranking["live"], "ranking_replayed": ranking["replayed"],
            "same_ranking": ranking["live"] == ranking["replayed"],
            "live_trials": _live_trials(surrogate, live_curves), "runs": runs}
