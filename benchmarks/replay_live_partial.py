"""One-off: the first live races (3 seeds, cut at 0.511 before search results kept their curves) replayed by
``confirm`` on both surrogates; wrote results/benchmarks/replay/live-partial.json, which replay/README.md discusses.

Run from the repository root, after ``python -m benchmarks search ... --reference`` left its runs in
results/benchmarks/runs/search/: ``python -m benchmarks.replay_live_partial``."""
import json, math, sys
from pathlib import Path
from benchmarks.search import search_timeline
from benchmarks.confirm import replay_of_live
root = next(Path("results/benchmarks/runs/search").iterdir())
target = 0.511
rows = []
for seed in range(3):
    row = {"seed": seed}
    for label in ("tpe+asha", "random"):
        d = root / f"{label.replace('+', '_')}-{seed}"
        tl = search_timeline(d)
        t = next((x for x, s in tl if s >= target), None)
        row[label] = {"seconds": t if t is not None else tl[-1][0], "reached": t is not None, "timeline": tl,
                      "trials": len(list((d / "trials").glob("trial_*/result.json"))), "epochs": len(tl), "best": max(s for _, s in tl)}
    rows.append(row)
live = {"space": "benchmarks/spaces/replay.yaml", "trials": 12, "seeds": 3, "target": target, "per_seed": rows,
        "algorithms": ["tpe+asha", "random"], "sets": ["trials=12", f"stop_at={target}"]}
for r in rows:
    print(r["seed"], {k: (round(v["seconds"]), v["reached"], v["trials"], round(v["best"], 3)) for k, v in r.items() if k != "seed"})
out = {}
for kind in ("nearest", "forest"):
    c = replay_of_live(live, "results/benchmarks/replay/curves.json", surrogate=kind)
    out[kind] = {k: c[k] for k in ("median_seconds_live", "median_seconds_replayed", "ranking_live", "ranking_replayed", "same_ranking")}
    out[kind]["runs"] = [(x["algorithm"], x["seed"], round(x["live"]["seconds"]), round(x["replayed"]["seconds"]), x["replayed"]["reached"]) for x in c["runs"]]
    print(kind, json.dumps(out[kind]))
json.dump({"live": {k: v for k, v in live.items()}, "confirm": out}, open("results/benchmarks/replay/live-partial.json", "w"), indent=1, default=str)
