"""Learning-rate schedules and when to take a snapshot, as one small resumable state machine.

Training is split into *cycles*; each cycle leaves one snapshot for the ensemble.

- ``none``: constant learning rate, one cycle; the snapshot is the best epoch.
- ``plateau``: the rate is cut by ``factor`` (0.7) after ``patience`` epochs without a better validation
  score; one cycle; the snapshot is the best epoch.
- ``snapshot_plateau``: as ``plateau``, but after ``snapshot_patience`` stalled epochs the cycle closes
  (its best epoch is its snapshot) and the rate restarts at its initial value from the *last* weights.
- ``cosine_snapshots``: cosine annealing from the initial rate to ``min_lr`` over ``cycle_epochs`` epochs,
  stepped every batch, restarting each cycle; the snapshot is the weights at the cycle's end.

Reference: Huang et al. 2017, "Snapshot Ensembles: Train 1, get M for free", arXiv 1704.00109.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from torch.optim import Optimizer

from salttune.config import ScheduleConfig

__all__ = ["Schedule", "ScheduleState"]


@dataclass
class ScheduleState:
    cycle: int = 0  # index of the current cycle
    cycle_start: int = 0  # first epoch of the current cycle
    best: float = -math.inf  # best validation score in the current cycle (plateau bookkeeping)
    stalled: int = 0  # epochs since the last improvement of ``best``
    since_cut: int = 0  # epochs since the last cut (plateau patience counts from a cut)


class Schedule:
    """Drives the optimizer's learning rate and says when a cycle (and so a snapshot) ends."""

    def __init__(self, cfg: ScheduleConfig, optimizer: Optimizer, base_lr: float, steps_per_epoch: int):
        self.cfg, self.opt, self.base_lr, self.steps = cfg, optimizer, base_lr, max(1, steps_per_epoch)
        self.state = ScheduleState()

    # -- learning rate -------------------------------------------------------------------------------
    def lr(self) -> float:
        return float(self.opt.param_groups[0]["lr"])

    def _set_lr(self, lr: float) -> None:
        for g in self.opt.param_groups:
            g["lr"] = lr

    def before_step(self, epoch: int, step: int) -> None:
        """Cosine cycles set the rate every batch; the other schedules change it only between epochs."""
        if self.cfg.name != "cosine_snapshots":
            return
        t = ((epoch - self.state.cycle_start) * self.steps + step) / (self.cfg.cycle_epochs * self.steps)
        lo = self.cfg.min_lr
        self._set_lr(lo + 0.5 * (self.base_lr - lo) * (1 + math.cos(math.pi * min(t, 1.0))))

    # -- end of epoch ----------------------------------------------------------------------------------
    def end_epoch(self, epoch: int, score: float) -> bool:
        """Record the epoch's validation score; return True when the current cycle has just ended.

        When a cycle ends the rate is restarted for the next one; the caller closes the snapshot.
        """
        s, c = self.state, self.cfg
        improved = score > s.best
        s.best, s.stalled = (score, 0) if improved else (s.best, s.stalled + 1)
        s.since_cut = 0 if improved else s.since_cut + 1
        if c.name == "cosine_snapshots":
            if epoch + 1 - s.cycle_start >= c.cycle_epochs:
                self._restart(epoch + 1)
                return True
            return False
        if c.name == "snapshot_plateau" and s.stalled >= c.snapshot_patience:
            self._restart(epoch + 1)
            return True
        if c.name in ("plateau", "snapshot_plateau") and s.since_cut > c.patience:
            self._set_lr(max(c.min_lr, self.lr() * c.factor))
            s.since_cut = 0
        return False

    def _restart(self, next_epoch: int) -> None:
        self.state = ScheduleState(cycle=self.state.cycle + 1, cycle_start=next_epoch)
        self._set_lr(self.base_lr)

    # -- resume ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return asdict(self.state)

    def load_state_dict(self, d: dict) -> None:
        self.state = ScheduleState(**d)
