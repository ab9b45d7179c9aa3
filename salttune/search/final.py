"""A budgeted search's final models: the best configurations trained long on every non-holdout image.

A time budget buys exploring (short trials under ASHA, on the training part of the split) and then depth: once
the exploring trials' deadline has passed, the search trains its best configurations again, one per slot, for the
epochs that fit before the deadline (about those its plan gave them: :func:`salttune.search.budget.plan_job`), on
the training *and* validation images (all but the holdout), as Ray tasks with the trials' resources. Their loss
stages and cosine cycles given as shares of the run (``bce+dice:30%``, ``schedule.cycles``) stretch to the longer
run, re-planned after every epoch from the epochs' measured time (:func:`salttune.train.fit`). ``salttune ensemble`` then takes these
runs as its members; the holdout, which none of them saw, gives the honest headline.

Which configurations: the trials that ran all ``max_t`` epochs, best first, then the rest by how far they got and
their score; when fewer configurations than slots have a score, the best one is trained again with other seeds.
A budget too small to explore as well (depth first: :func:`salttune.search.budget.plan_job`) trains the space's
prior (or its typical point) and no trials: one model on the whole machine, or one per slot with its own seed
where no node holds every slot.
A final model's validation scores are on images it trained on: a monitor of its training, not an estimate.

Runs go to ``results/NAME/final/trial_<id>[_seedS]/`` or ``final/prior[_seedS]/`` (``final/typical...`` without a prior; plain run folders); a finished one is not trained again and
an interrupted one continues from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

from salttune.layout import RunFiles, SearchFiles, trial_name
from salttune.leaderboard import FAILED, FINISHED, parameters
from salttune.search.space import SearchSpace, trial_config

__all__ = ["FILL_CAP", "choose", "final_jobs", "train_final", "final_runs"]

# Under a deadline a final model trains as many epochs as fit before it (its cycles and stages stretch to them:
# salttune.train), at most this many times the epochs its plan gave it.
FILL_CAP = 3


def choose(rows: list[dict], n: int) -> list[tuple[dict, int]]:
    """The ``n`` configurations to train long: ``(leaderboard row, seed offset)``, best first (see module doc)."""
    scored = [r for r in rows if r["state"] != FAILED and r.get("best_score") not in (None, "")
              and not math.isnan(float(r["best_score"]))]
    scored.sort(key=lambda r: (r["state"] != FINISHED, -int(r.get("epochs_run") or 0), -float(r["best_score"])))
    picked = [(r, 0) for r in scored[:n]]
    k = 1
    while picked and len(picked) < n:  # too few configurations: the best one again, with another seed
        picked.append((scored[0], k))
        k += 1
    return picked


def final_jobs(space: SearchSpace, rows: list[dict], search_dir: Path, models: int, epochs: int,
               time_budget_s: float | None):
    """One :class:`salttune.search.refit.FoldJob` per final model (``everything`` set: all non-holdout images).

    Without rows (a budget too small to explore: :func:`salttune.search.budget.plan_job`), the final models are
    the space's prior, or its typical point, with ``models`` seeds: ``final/prior``, ``final/prior_seedS``
    (``final/typical...``).
    """
    from salttune.search.budget import typical_point
    from salttune.search.refit import FoldJob

    if rows:
        picks = [(_sampled(row), int(row["trial"]) if str(row.get("trial", "")).strip() else None,
                  trial_name(str(row["trial_id"])), k) for row, k in choose(rows, models)]
    else:
        picks = [(typical_point(space), None, "prior" if space.prior else "typical", k) for k in range(models)]
    jobs = []
    for point, number, name, extra_seed in picks:
        cfg = trial_config(space, point, number)
        cap = epochs if time_budget_s is None else FILL_CAP * epochs  # under a deadline, the clock ends it
        cfg = dataclasses.replace(cfg, epochs=cap, time_budget_s=time_budget_s, seed=cfg.seed + 1000 * extra_seed)
        name += f"_seed{cfg.seed}" if extra_seed else ""
        jobs.append(FoldJob(f"final model {name}", cfg, SearchFiles(search_dir).final / name, everything=True))
    return jobs


def _sampled(row: dict) -> dict:
    """The row's sampled parameters, typed as Tune reported them (a CSV row read back holds strings: YAML-typed)."""
    import yaml

    out = {}
    for k, v in parameters(row).items():
        if k in ("node_id", "seed"):
            continue
        out[k] = yaml.safe_load(v) if isinstance(v, str) else v
    return out


def train_final(space: SearchSpace, rows: list[dict], search_dir: Path, resources, models: int, epochs: int,
                deadline: float | None) -> dict[str, dict | str]:
    """Train the final models in the running Ray session; returns ``{job name: summary or failure reason}``.

    Args:
        deadline: ``time.time()`` by which they must end (each trains with ``time_budget_s`` set to the time left).
    """
    from salttune.search.refit import run_tasks

    left = None if deadline is None else max(1.0, deadline - time.time())
    jobs = final_jobs(space, rows, search_dir, models, epochs, left)
    if not jobs:
        print("final models: no trial has a score; the ensemble has no final models to use", flush=True)
        return {}
    what = (f"{len(jobs)} configuration(s)" if rows else f"the {'prior' if space.prior else 'middle of the space'}"
            + (f" with {len(jobs)} seeds," if len(jobs) > 1 else ""))
    print(f"final models: {what} trained on every non-holdout image, "
          + (f"about {epochs} epochs: as many as fit until {time.strftime('%H:%M:%S', time.localtime(deadline))}"
             if deadline else f"{epochs} epochs"), flush=True)
    return run_tasks(jobs, space.data.folder, resources, label="final models")


def final_runs(search_dir: Path) -> list[Path]:
    """The finished final models of a search (run folders with a summary), in name order; [] when it has none."""
    root = SearchFiles(search_dir).final
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if RunFiles(p).summary.is_file())
