"""A search's time budget (``--time-budget 2h``, or ``time_budget:`` in the space; the syntax is
:mod:`salttune.search.duration`'s): sizing the search to the budget, the measured first epoch and the deadline the
trials and the driver keep.

Imports neither Ray nor Optuna; the Tune side of the deadline (the stopper, the sampling cut-off) lives in
:mod:`salttune.search.stopping`.

How a budgeted search runs (``salttune search``), the budget being the whole job's: search, final models,
ensemble and test prediction (``salttune search --time-budget 1h && salttune ensemble --search NAME``):

1. The clock starts when the search does (after the command's own start-up): loading the data, starting Ray,
   the measurement, the trials, the final models and the leaderboard must end within the budget less the time
   reserved for the ensemble.
2. One epoch of a typical trial (:func:`measure_epoch`: the space's prior when it names one, else the middle of
   every range and of every choice) is timed in the driver, with the threads one trial gets; so is the
   prediction of its validation images, which prices the ensemble.
3. :func:`plan_job` splits the time left: the ensemble's predictions (measured, reserved), then ``final_share``
   of the rest for the final models (the best configurations trained long on every non-holdout image, one per
   slot: :mod:`salttune.search.final`), the remainder for exploring. :func:`size_to_budget` sizes the
   exploring trials (the concurrency, ASHA's ``max_t`` and ``grace_period``, the random start of TPE) to
   their share, and :func:`sizing_line` says how the time is split.
4. Every trial trains with ``time_budget_s`` set to the time it has until the deadline, so it ends after the
   last epoch that fits; the driver samples no new trial once less than :func:`cutoff_s` is left, stops a
   trial whose next epoch would pass the deadline and, at the deadline, cuts what still runs. Trials ended
   short of ``max_t`` by the budget are ``stopped`` in the leaderboard and PRUNED in the study; the search
   exits 0.

``--resume`` of a budgeted search needs ``--time-budget`` again: the time the rest may take. The sizing stays
the one the search started with (its trials and epochs are in ``space.yaml``); the deadline is counted from
the resumed command's start. A search whose sampling had stopped for the deadline samples no more trials
when resumed (Tune records that its searcher finished): the trials that were running continue.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from salttune.errors import SalttuneError
from salttune.fileio import write_json
from salttune.layout import RunFiles, SearchFiles
from salttune.search.catalog import ALGORITHMS
from salttune.search.duration import format_duration

if TYPE_CHECKING:
    from salttune.search.space import Resources, SearchSpace
    from salttune.split import Arrays

__all__ = ["FULL_TRIALS_PER_SLOT", "TRIAL_OVERHEAD_S", "MIN_EXPLORE_TRIALS", "EXPLORE_MIN_TRAININGS", "FINAL_EPOCH_SAFETY", "ENSEMBLE_START_S", "JobPlan", "plan_job", "depth_only", "end_reserve",
           "fits_at_once", "rungs", "comparable_from", "expected_epochs", "size_to_budget", "sizing_line", "cutoff_s", "measure_epoch",
           "typical_point", "write_budget", "read_budget", "mark_sampling_ended"]

FULL_TRIALS_PER_SLOT = 3  # max_t is cut so that one trial running all of it takes at most a third of a slot's time
# Seconds a trial costs besides its epochs: its worker's start (torch imported, the data fetched), its checkpoints.
# A rough figure that matters only when epochs are short: measured 12-14 s on 2 CPU cores shared with another
# search and a training run (Ray 2.60), about 4 s of it inside the trial's function; an idle machine needs less.
TRIAL_OVERHEAD_S = 5.0
MAX_END_RESERVE_S = 10.0  # kept at the end of the budget to write the leaderboard and stop Ray (7 s measured, busy)
# The ensemble command's own cost besides its predictions: Python, torch and the data loaded, the combiners
# cross-validated, the reports written. Measured 15-25 s on 2 CPU cores for 1,000 images.
ENSEMBLE_START_S = 30.0
ENSEMBLE_SAFETY = 1.2  # the measured prediction time (one thread) times this: the ensemble runs once, late, and must fit
MAX_ENSEMBLE_SHARE = 0.25  # the reserve never takes more of the budget (a 40 s budget may end late by the rest)
MIN_EXPLORE_EPOCHS = 4  # the final models never take the time of a first trial of this many epochs
# Depth first: the final models get the space's final_min_epochs before exploring gets any time, and exploring needs
# time for MIN_EXPLORE_TRIALS trials of MIN_EXPLORE_EPOCHS epochs, or it is not worth its cost: a 15-minute budget on
# 2 CPU cores explored 4-6 five-epoch trials and left the final models 17 epochs, 0.06 below the default trained
# alone (results/benchmarks/budget).
MIN_EXPLORE_TRIALS = 8
# And the budget must hold this many trainings of final_min_epochs epochs of one model on the whole machine: below
# that, exploring and then training the best on one slot each is shallower than the prior alone on every slot's
# resources. On 2 cores, 15 minutes (2 such trainings) explored 4-6 trials and trained 2 one-thread final models of
# 30 epochs, where one two-thread model trains 70 (results/benchmarks/budget).
EXPLORE_MIN_TRAININGS = 3
# A final model's epochs are planned at this times the measured epoch: the one epoch timed in the driver ran 8%
# faster than the final model's epochs in a Ray task on 2 busy cores, and a run cut by its deadline loses the end of
# its last cosine cycle.
FINAL_EPOCH_SAFETY = 1.1


@dataclasses.dataclass(frozen=True)
class JobPlan:
    """How a time budget is spent (:func:`plan_job`); seconds from the moment it was planned."""

    explore_s: float  # the exploring trials (ASHA), ending at the trials' deadline
    final_s: float  # the final models, after the exploring
    ensemble_s: float  # reserved for salttune ensemble: its start-up and its predictions
    final_models: int  # trained at once (0: none; the ensemble uses the top trials)
    final_epochs: int  # epochs of each final model
    final_images: int  # images each final model trains on
    final_slots: int = 1  # the trials' resources each final model takes: 1, or every slot (the whole machine)


def plan_job(left_s: float, epoch_s: float, predict_s: float, slots: int, *, train_images: int, fit_images: int,
             predicted_images: int, snapshots: int, final_share: float, min_final_epochs: int = 1,
             depth_epochs: int = 30, machine_epoch_s: float | None = None, overhead_s: float = TRIAL_OVERHEAD_S) -> JobPlan:
    """Split the seconds left of a budget between exploring, the final models and the ensemble.

    - ``ensemble_s = ENSEMBLE_START_S + ENSEMBLE_SAFETY * predict_s * passes``: each final model's ``snapshots``
      predicts the ``predicted_images`` (validation and holdout three times: without and with the flip, and the
      flip's own pass; the test images twice); at most :data:`MAX_ENSEMBLE_SHARE` of ``left_s``, so that a budget
      of a minute still explores (its ensemble may then end late by its start-up);
    - ``final_s``: ``final_share`` of what is left, but at least the time of ``depth_epochs`` epochs of a final model
      (the space's ``final_min_epochs``: depth first); one final model per slot trains ``fit_images`` (every
      non-holdout image) for ``final_epochs = floor((final_s - overhead_s) / (epoch_s * fit_images / train_images
      * FINAL_EPOCH_SAFETY))`` epochs;
    - ``explore_s``: the rest, when it holds :data:`MIN_EXPLORE_TRIALS` trials of :data:`MIN_EXPLORE_EPOCHS` epochs
      (``slots`` at a time) and the whole budget holds :data:`EXPLORE_MIN_TRAININGS` trainings of ``depth_epochs``
      epochs of one model on the whole machine (``machine_epoch_s``, timed by the search when one node holds every
      slot; without it, a slot's epoch over ``slots``, the most the whole machine could gain). When it does not, there is no exploring: the final models take all of it, and they are
      the space's prior (or its typical point, :mod:`salttune.search.final`): given ``machine_epoch_s``, one model
      on the whole machine (``final_slots = slots``; on 2 CPU cores one 2-thread model trains 1.5 times faster than
      each of two 1-thread ones, and at 15 minutes epochs pay more than seeds), else one per slot, with ``slots``
      seeds. With exploring, a final model no longer than ``min_final_epochs`` (a trial's) is no better than the
      trials, which the ensemble then uses instead: no final models, and exploring takes it all; so it does when
      ``final_share`` is 0.

    Args:
        left_s: seconds from now to the budget's end, less the end reserve.
        epoch_s: one epoch of a typical trial on ``train_images`` images (:func:`measure_epoch`).
        predict_s: seconds to predict one image with one snapshot (:func:`measure_epoch`).
        slots: trials (and final models) that run at once.
        predicted_images: ``(validation + holdout) * 3 + test * 2`` image passes per snapshot.
        snapshots: snapshots a final model keeps (1 for a plateau schedule, the cycles of cosine ones).
        min_final_epochs: the fewest epochs worth a final model beside exploring trials (the space's ``asha.max_t``).
        depth_epochs: the epochs the final models get before exploring gets any time.
        machine_epoch_s: one epoch of the typical trial with every slot's resources, on ``train_images`` images.
    """
    def reserve(models: int) -> float:
        s = ENSEMBLE_START_S + ENSEMBLE_SAFETY * predict_s * predicted_images * max(1, models) * snapshots
        return min(s, MAX_ENSEMBLE_SHARE * left_s)  # a budget of seconds still explores

    scale = FINAL_EPOCH_SAFETY * fit_images / max(1, train_images)
    models = slots if final_share > 0 else 0
    ensemble_s = reserve(models)
    rest = max(0.0, left_s - ensemble_s)
    if not models:
        return JobPlan(rest, 0.0, ensemble_s, 0, 0, fit_images)
    per_epoch = epoch_s * scale
    depth_s = overhead_s + depth_epochs * per_epoch
    explore_min_s = math.ceil(MIN_EXPLORE_TRIALS / max(1, slots)) * (overhead_s + MIN_EXPLORE_EPOCHS * epoch_s)
    final_s = min(rest, max(final_share * rest, depth_s))
    whole_epoch = (machine_epoch_s if machine_epoch_s is not None else epoch_s / max(1, slots)) * scale
    deep_enough = rest >= EXPLORE_MIN_TRAININGS * (overhead_s + depth_epochs * whole_epoch)
    if rest - final_s < explore_min_s or not deep_enough:  # too little to explore as well: depth only
        whole = machine_epoch_s is not None and slots > 1
        if whole:
            ensemble_s = reserve(1)
            rest = max(0.0, left_s - ensemble_s)
            models, per_epoch = 1, machine_epoch_s * scale
        epochs = math.floor((rest - overhead_s) / per_epoch)
        if epochs >= 1:
            return JobPlan(0.0, rest, ensemble_s, models, epochs, fit_images, slots if whole else 1)
        return JobPlan(rest, 0.0, ensemble_s, 0, 0, fit_images)
    epochs = math.floor((final_s - overhead_s) / per_epoch)
    if epochs < max(1, min_final_epochs):  # no longer than a trial: no better than the trials themselves
        return JobPlan(rest, 0.0, ensemble_s, 0, 0, fit_images)
    return JobPlan(rest - final_s, final_s, ensemble_s, models, epochs, fit_images)


def depth_only(job: JobPlan) -> bool:
    """The plan trains final models and explores nothing (a budget too small to explore as well)."""
    return bool(job.final_models) and not job.explore_s


def end_reserve(budget_s: float) -> float:
    """Seconds kept at the end of a budget for the leaderboard and stopping Ray: 10 s, or a tenth of a short budget."""
    return min(MAX_END_RESERVE_S, 0.1 * budget_s)


def fits_at_once(resources: Resources, totals: dict) -> int:
    """How many trials asking for ``resources`` fit at once in ``totals`` (``ray.cluster_resources()``); at least 1."""
    n = math.floor(totals.get("CPU", 0) / resources.cpu + 1e-9)
    if resources.gpu > 0:
        n = min(n, math.floor(totals.get("GPU", 0) / resources.gpu + 1e-9))
    return max(1, n)


def rungs(max_t: int, grace: int, eta: float) -> list[float]:
    """ASHA's milestones below ``max_t`` (one bracket): ``grace * eta**k`` epochs, as Ray places them (Ray may add
    one at ``max_t`` itself, which stops nothing: a trial ends there anyway)."""
    out, k = [], 0
    while grace * eta ** k < max_t - 1e-9:
        out.append(grace * eta ** k)
        k += 1
    return out


def expected_epochs(max_t: int, grace: int, eta: float, asha: bool = True) -> float:
    """The epochs one trial is expected to train: ``max_t`` without ASHA; with ASHA (one bracket, reduction factor
    ``eta``, milestones ``r_0 < r_1 < ... < r_{K-1}`` below ``max_t`` and ``r_K = max_t``), a trial passes each
    milestone with probability ``1/eta``, so it trains ``sum_k eta**-k * (r_k - r_{k-1})`` epochs (``r_{-1} = 0``).
    (An estimate: ASHA lets more trials through while its rungs are still empty, at the start of a search.)

    Example: ``max_t=9, grace=1, eta=3``: milestones 1, 3, then 9: ``1 + (3 - 1)/3 + (9 - 3)/9 = 2.33`` epochs.
    """
    if not asha:
        return float(max_t)
    marks = [*rungs(max_t, grace, eta), max_t]
    return sum((m - prev) / eta ** k for k, (m, prev) in enumerate(zip(marks, [0, *marks[:-1]])))


def size_to_budget(space: SearchSpace, budget_s: float, epoch_s: float, slots: int,
                   overhead_s: float = TRIAL_OVERHEAD_S) -> SearchSpace:
    """The space sized to a time budget: a new frozen space with ``trials``, ``concurrent``, ``startup_trials``,
    ``asha.max_t`` and ``asha.grace_period`` chosen (everything else as it was).

    With ``E = budget_s / epoch_s`` epochs in each slot:

    - ``max_t = min(space max_t, max(1, floor(E / FULL_TRIALS_PER_SLOT)))``: a trial that runs to the end takes
      at most a third of a slot's time, so several full-fidelity trials fit;
    - ``grace_period = min(space grace_period, max_t)``, raised to :func:`comparable_from` (the first epoch of the
      last loss stage, or the first cycle's end, when the lengths are shares of the run), so ASHA's first rung
      compares trials that have all reached the loss they end with;
    - one trial is expected to take ``overhead_s + epoch_s * e`` seconds, ``e`` from :func:`expected_epochs`
      (ASHA's survival shares; ``max_t`` for the algorithms without ASHA);
    - ``trials = ceil(slots * budget_s / that)``: enough to fill every slot until the deadline (a trial too many
      costs nothing: sampling stops at the deadline);
    - ``concurrent = min(slots, trials)``;
    - ``startup_trials = min(space startup_trials, max(concurrent, trials // 10))``: a tenth of the trials random,
      at least one per slot, never more than the space asked for.

    Args:
        space: the validated space.
        budget_s: the seconds the trials have (the deadline less now).
        epoch_s: seconds of one epoch of one trial (:func:`measure_epoch`).
        slots: trials that fit at once in the usable resources (:func:`fits_at_once`).
        overhead_s: seconds a trial costs besides its epochs (its worker's start, checkpoints).

    Raises:
        SalttuneError: not one trial of one epoch fits in the budget.
    """
    if budget_s < epoch_s + overhead_s:
        raise SalttuneError(
            f"time budget: {budget_s:.0f} s left for the trials and one epoch takes {epoch_s:.1f} s (plus about "
            f"{overhead_s:g} s to start a trial), so no trial fits; give a larger --time-budget or a cheaper space "
            "(data.max_train_images, a smaller model.base_width)")
    epoch_s = max(epoch_s, 1e-3)
    a = space.asha
    max_t = min(a.max_t, max(1, math.floor(budget_s / epoch_s / FULL_TRIALS_PER_SLOT)))
    grace = min(max(a.grace_period, comparable_from(space, max_t)), max_t)
    trial_s = overhead_s + epoch_s * expected_epochs(max_t, grace, a.reduction_factor, ALGORITHMS[space.algorithm].stops_early)
    trials = min(100000, math.ceil(slots * budget_s / trial_s))
    concurrent = min(slots, trials, 10000)
    startup = min(space.startup_trials, max(concurrent, trials // 10))
    return dataclasses.replace(space, trials=trials, concurrent=concurrent, startup_trials=startup,
                               asha=dataclasses.replace(a, max_t=max_t, grace_period=grace))


def sizing_line(space: SearchSpace, sized: SearchSpace, total_s: float, budget_s: float, epoch_s: float, slots: int,
                job: JobPlan | None = None) -> str:
    """What :func:`plan_job` and :func:`size_to_budget` chose, and why: how the time is split, then the trials."""
    a, b = space.asha, sized.asha
    why_t = (f"the space's {a.max_t} would take over a third of a slot's time" if b.max_t < a.max_t else "the space's")
    at_once = "all that fit" if sized.concurrent == slots else f"{slots} would fit"
    asha = ALGORITHMS[space.algorithm].stops_early
    epochs = expected_epochs(b.max_t, b.grace_period, b.reduction_factor, asha)
    split = ""
    if job is not None and depth_only(job):
        what = "the prior" if space.prior else "the middle of the space"
        how = (f"{what}, one model on the whole machine ({job.final_slots} slots)" if job.final_slots > 1 else
               f"{what} with {job.final_models} seed{'s' if job.final_models > 1 else ''} at once")
        return (f"time budget {format_duration(total_s)}: first epoch {epoch_s:.1f} s; too short to explore as well "
                f"(it holds fewer than {EXPLORE_MIN_TRAININGS} whole-machine trainings of final_min_epochs "
                f"{space.final_min_epochs}, or no {MIN_EXPLORE_TRIALS} trials of {MIN_EXPLORE_EPOCHS} epochs beside "
                f"them): final model{'s' if job.final_models > 1 else ''} "
                f"{format_duration(job.final_s)} ({how}, {job.final_epochs} epochs on all {job.final_images} "
                f"non-holdout images), ensemble and test prediction {format_duration(job.ensemble_s)} reserved")
    if job is not None:
        final = (f"final models {format_duration(job.final_s)} ({job.final_models} at once, the best configurations "
                 f"trained {job.final_epochs} epochs on all {job.final_images} non-holdout images)" if job.final_models
                 else "no final models (the ensemble uses the top trials)")
        split = (f"; split: explore {format_duration(job.explore_s)}, {final}, ensemble and test prediction "
                 f"{format_duration(job.ensemble_s)} reserved")
    return (f"time budget {format_duration(total_s)}: first epoch {epoch_s:.1f} s{split}\n"
            f"  explore: {budget_s:.0f} s for the trials; "
            f"{sized.concurrent} trial{'s' if sized.concurrent > 1 else ''} at a time ({at_once}), max_t {b.max_t} "
            f"({why_t}), grace_period {b.grace_period}, about {epochs:.1f} epochs a trial"
            f"{' under ASHA' if asha else ''}, so {sized.trials} trials")


def comparable_from(space: SearchSpace, max_t: int) -> int:
    """The first epoch at which a typical trial of ``max_t`` epochs has reached its last loss stage (stage lengths given
    as shares of the run) and closed a cosine cycle (``schedule.cycles``): 1 when neither applies. Stages given in
    epochs are left alone: they may never switch within ``max_t``."""
    from salttune.losses import parse_stages, resolve_stages
    from salttune.schedule import cycle_ends
    from salttune.search.space import trial_config

    cfg = trial_config(space, typical_point(space))
    first = 1
    if cfg.loss.stages and any(s.share is not None for s in parse_stages(cfg.loss.stages)):
        first = sum(s.epochs or 0 for s in resolve_stages(parse_stages(cfg.loss.stages), max_t)[:-1]) + 1
    if cfg.schedule.name == "cosine_snapshots" and cfg.schedule.cycles:
        first = next((e for e in cycle_ends(max_t, cfg.schedule.cycles) if e >= first), max_t)
    return first


def cutoff_s(space: SearchSpace, epoch_s: float, overhead_s: float = TRIAL_OVERHEAD_S) -> float:
    """No trial is started with less than this left: the time to reach ASHA's first rung (``grace_period`` epochs)."""
    return overhead_s + space.asha.grace_period * epoch_s


# -- the measured first epoch --------------------------------------------------------------------------

def typical_point(space: SearchSpace) -> dict:
    """The sampled point of a trial of typical cost, as :func:`salttune.search.params.suggest` returns it: the space's
    prior when it names one (the search trains it first), else the middle of every range and choice
    (:class:`salttune.search.params.Typical`)."""
    from salttune.search.params import Typical, suggest
    from salttune.search.prior import prior_point

    return prior_point(space) or suggest(space, Typical())


def measure_epoch(space: SearchSpace, train: Arrays, val: Arrays, resources: Resources) -> tuple[float, float]:
    """Wall seconds of one epoch (training, validation and its checkpoint, as ``fit`` times an epoch) of a typical
    trial, and seconds to predict one validation image, trained here with the threads one trial gets
    (``resources.cpu``), on the CPU unless trials get a GPU. Faults the space injects are left out. Building the
    model and the data is not counted: a trial pays it once, in :data:`TRIAL_OVERHEAD_S`.

    The driver's torch thread count is restored afterwards; the run goes to a temporary folder.
    """
    import torch

    from salttune.config import FaultConfig
    from salttune.search.space import trial_config
    from salttune.train import fit

    cfg = trial_config(space, typical_point(space))
    device = "cpu" if resources.gpu == 0 and cfg.device == "auto" else cfg.device
    cfg = dataclasses.replace(cfg, epochs=1, time_budget_s=None, device=device, faults=FaultConfig())
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(resources.cpu)))
    try:
        with tempfile.TemporaryDirectory(prefix="salttune-epoch-") as tmp:
            summary = fit(cfg, train, val, Path(tmp) / "run")
            metrics = json.loads(RunFiles(Path(tmp) / "run").metrics.read_text().splitlines()[-1])
            return summary["seconds"], metrics["eval_seconds"] / max(1, len(val.ids))
    finally:
        torch.set_num_threads(threads)


# -- the deadline on disk ------------------------------------------------------------------------------

def write_budget(local_dir: Path, budget_s: float, deadline: float, epoch_s: float, cutoff: float,
                 sampling_ended: str | None = None, job: dict | None = None) -> dict:
    """Write ``budget.json``: the trials' deadline (``time.time()`` seconds) and what the driver's stopper and
    sampler need. Read by them rather than kept in their pickles, so that ``--resume`` can move the deadline.

    Args:
        sampling_ended: when the sampler stopped for the deadline (:func:`mark_sampling_ended`), kept by a resume:
            Tune's searcher stays finished.
        job: the rest of the plan (:func:`plan_job`): the final models' deadline and epochs, the ensemble's
            reserve and the job's end (``time.time()`` seconds).
    """
    budget = {"budget_s": budget_s, "deadline": deadline, "ends": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(deadline)),
              "epoch_s": epoch_s, "stop_sampling_s": cutoff, **(job or {})}
    if sampling_ended is not None:
        budget["sampling_ended"] = sampling_ended
    write_json(SearchFiles(local_dir).budget, budget, "time budget")
    return budget


def mark_sampling_ended(local_dir: Path) -> dict:
    """Record in ``budget.json`` that sampling stopped for the deadline (so fewer trials than sized is no interruption)."""
    budget = read_budget(local_dir)
    if budget is not None and "sampling_ended" not in budget:
        budget["sampling_ended"] = time.strftime("%Y-%m-%d %H:%M:%S")
        write_json(SearchFiles(local_dir).budget, budget, "time budget")
    return budget


def read_budget(local_dir: Path) -> dict | None:
    """``budget.json`` of a search, or None when it has none (no time budget)."""
    path = SearchFiles(local_dir).budget
    if not path.is_file():
        return None
    try:
        budget = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise SalttuneError(f"{path}: damaged (not JSON); delete it and resume with --time-budget DURATION") from None
    if not isinstance(budget, dict) or not {"deadline", "epoch_s", "stop_sampling_s"} <= set(budget):
        raise SalttuneError(f"{path}: not a time budget (it needs 'deadline', 'epoch_s' and 'stop_sampling_s'); "
                            "delete it and resume with --time-budget DURATION")
    return budget
