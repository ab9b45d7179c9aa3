"""Refitting configurations on K folds as Ray tasks (``salttune ensemble --refit-folds K``).

Each (configuration, fold) is one Ray task running :func:`salttune.folds.train_fold` with the search's per-trial
resources (``resources.cpu``, ``resources.gpu``: a quarter of a GPU runs four folds per GPU), on the local machine
or on the cluster at ``--address``. A fold already finished is not started again, and one with a checkpoint
continues from it, so an interrupted refit (Ctrl-C, a lost node) loses at most the epochs in progress. The
dataset folder must be readable at the same path on every node (as for the search).

Results are plain run folders (:mod:`salttune.folds`), so ``salttune report`` and ``predict`` read them as they
read any run.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from salttune.config import TrainConfig
from salttune.folds import finished
from salttune.search.space import Resources
from salttune.split import Arrays

__all__ = ["FoldJob", "run_folds", "run_tasks"]


@dataclass(frozen=True)
class FoldJob:
    """One fold of one configuration: its resolved config (``folds``, ``fold`` set) and run folder."""

    name: str  # for messages, e.g. "trial 3a2b fold 1/5"
    cfg: TrainConfig
    out: Path
    everything: bool = False  # train on every non-holdout image (a final model), validation part included


def _train(cfg: TrainConfig, data_folder: str, out: str, extra: Arrays | None, everything: bool = False) -> dict:
    """The Ray task: one fold (a plain function; Ray imports salttune on the worker), with as many torch threads as
    CPUs the task holds (a reused worker keeps the thread count of the task it ran before)."""
    import warnings

    import ray
    import torch

    torch.set_num_threads(max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))))

    from salttune.folds import train_fold

    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")  # arrays from the object store
    return train_fold(cfg, data_folder, out, extra=extra, everything=everything)


def run_folds(jobs: list[FoldJob], data_folder: str, resources: Resources, *, extra: Arrays | None = None,
              address: str | None = None) -> dict[str, dict | str]:
    """Train every job that is not finished yet, as Ray tasks; return ``{job name: summary or failure reason}``.

    Args:
        jobs: the folds to train (:class:`FoldJob`).
        data_folder: the dataset folder, read by each task.
        resources: per-task CPUs and GPU share (the search space's ``resources``).
        extra: images added to every fold's training part (pseudo-labels), put in Ray's object store once.
        address: a Ray cluster to join; None starts a local instance.

    A task that fails (a NaN loss, an exception) is reported by its reason; the others go on. Ctrl-C stops the
    tasks (their finished epochs are kept) and propagates.
    """
    done = {j.name: s for j in jobs if (s := finished(j.out)) is not None}
    if len(done) == len(jobs):  # nothing to train: no Ray
        return done
    from salttune.search.session import prepare_auth, start_ray, usable_resources

    prepare_auth(address)
    import ray

    start_ray(address)
    try:
        res, notes = usable_resources(resources, local=address is None)
        for line in notes:
            print(line, file=sys.stderr)
        return run_tasks(jobs, data_folder, res, extra=extra)
    finally:
        ray.shutdown()


def run_tasks(jobs: list[FoldJob], data_folder: str, resources: Resources, *, extra: Arrays | None = None,
              label: str = "refit") -> dict[str, dict | str]:
    """:func:`run_folds` in a Ray session already started (the search's final models): the unfinished jobs as Ray
    tasks with ``resources`` each; ``label`` starts the progress lines."""
    import ray

    results: dict[str, dict | str] = {j.name: s for j in jobs if (s := finished(j.out)) is not None}
    todo = [j for j in jobs if j.name not in results]
    if not todo:
        return results
    pending: dict = {}
    try:
        task = ray.remote(_train).options(num_cpus=resources.cpu, num_gpus=resources.gpu, max_retries=0)
        extra_ref = ray.put(extra) if extra is not None else None
        print(f"{label}: training {len(todo)} run(s) as Ray tasks ({resources.cpu:g} CPU, {resources.gpu:g} GPU each)", flush=True)
        pending = {task.remote(j.cfg, data_folder, str(j.out), extra_ref, j.everything): j for j in todo}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(done[0])
            try:
                summary = ray.get(done[0])
            except ray.exceptions.RayTaskError as e:
                reason = str(e.cause if getattr(e, "cause", None) is not None else e).strip().splitlines()[-1][:200]
                results[job.name] = reason
                print(f"{label}: {job.name} failed: {reason}", file=sys.stderr, flush=True)
                continue
            results[job.name] = summary
            print(f"{label}: {job.name}: best score {summary['best_score']:.4f} at epoch {summary['best_epoch']} "
                  f"({len(pending)} to go)", flush=True)
        return results
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise

