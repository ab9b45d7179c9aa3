"""Ending a search early: ``stop_at`` (once one trial is good enough) and the time budget's deadline.

A user who only needs a model above some score (or the search benchmark, which times how long each strategy
takes to reach a target) should not pay for the rest of the trial budget. Once any trial reports the space's
metric at or beyond ``stop_at``, Tune stops the running trials and starts no more; the leaderboard marks
the trials it cut short ``stopped`` and the search exits 0.

A time budget (:mod:`salttune.search.budget`) ends the search at its deadline: :class:`SampleUntil` samples no
trial once too little time is left for one to reach ASHA's first rung, and :class:`Deadline` stops a trial whose
next epoch would pass the deadline and, at the deadline, cuts whatever still runs. Both read the deadline from
``budget.json``, so a resumed search keeps to the deadline its own ``--time-budget`` set.
"""

from __future__ import annotations

import time
from pathlib import Path

from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.stopper import Stopper

from salttune.search.budget import mark_sampling_ended, read_budget

__all__ = ["StopAt", "reached", "Deadline", "SampleUntil"]


def reached(value: float, stop_at: float, mode: str) -> bool:
    """Whether ``value`` of a metric that is better when ``mode`` (max | min) is at or beyond ``stop_at``."""
    return value >= stop_at if mode == "max" else value <= stop_at


class StopAt(Stopper):
    """Tune's experiment-level stopper for ``stop_at``."""

    def __init__(self, metric: str, mode: str, stop_at: float):
        self.metric, self.mode, self.stop_at = metric, mode, stop_at
        self.hit = False

    def __call__(self, trial_id: str, result: dict) -> bool:
        value = result.get(self.metric)
        self.hit = self.hit or (value is not None and reached(float(value), self.stop_at, self.mode))
        return False  # the trial itself goes on until stop_all ends them all

    def stop_all(self) -> bool:
        return self.hit


class _ReadsDeadline:
    """Reads the trials' deadline from ``budget.json`` once, and forgets it when pickled (Tune pickles these
    objects with the experiment): a resumed search reads the deadline its own ``--time-budget`` wrote."""

    _budget_path: str
    _budget: dict | None = None

    def _deadline(self) -> dict:
        if self._budget is None:
            self._budget = read_budget(Path(self._budget_path).parent)
            if self._budget is None:
                raise RuntimeError(f"{self._budget_path}: missing; the search wrote it before Tune started")
        return self._budget

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_budget"}


class Deadline(_ReadsDeadline, Stopper):
    """The time budget's stopper: a trial stops after an epoch when the next one would pass the deadline (its mean
    time since it started or resumed, set-up included, is the estimate), and at the deadline everything still
    running is cut (its last finished epoch is checkpointed)."""

    def __init__(self, budget_path: str | Path):
        self._budget_path = str(budget_path)

    def __call__(self, trial_id: str, result: dict) -> bool:
        n = result.get("iterations_since_restore") or 0
        per_epoch = result.get("time_since_restore", 0.0) / n if n else 0.0
        return time.time() + per_epoch > self._deadline()["deadline"]

    def stop_all(self) -> bool:
        return time.time() >= self._deadline()["deadline"]


class SampleUntil(_ReadsDeadline, ConcurrencyLimiter):
    """Ray's ``ConcurrencyLimiter`` around the searcher (at most ``max_concurrent`` trials at once) that stops
    sampling once less than ``stop_sampling_s`` is left before the deadline: it answers ``FINISHED``, so Tune ends
    the search when the running trials end. Everything else goes to the wrapped searcher unchanged."""

    def __init__(self, searcher, max_concurrent: int, budget_path: str | Path):
        super().__init__(searcher, max_concurrent=max_concurrent)
        self._budget_path = str(budget_path)

    def suggest(self, trial_id: str):
        budget = self._deadline()
        if time.time() > budget["deadline"] - budget["stop_sampling_s"]:
            self._budget = mark_sampling_ended(Path(self._budget_path).parent)
            return Searcher.FINISHED
        return super().suggest(trial_id)

    def get_state(self) -> dict:  # what Tune saves with the experiment: without the cached deadline
        return {k: v for k, v in super().get_state().items() if k != "_budget"}
