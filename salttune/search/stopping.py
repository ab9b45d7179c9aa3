"""``stop_at``: end the whole search once one trial is good enough.

A user who only needs a model above some score (or the search benchmark, which times how long each strategy
takes to reach a target) should not pay for the rest of the trial budget. Once any trial reports the space's
metric at or beyond ``stop_at``, Tune stops the running trials and starts no more; the leaderboard marks
the trials it cut short ``stopped`` and the search exits 0.
"""

from __future__ import annotations

from ray.tune.stopper import Stopper

__all__ = ["StopAt", "reached"]


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
