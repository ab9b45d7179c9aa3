"""Learning-rate schedules and when to take a snapshot: small resumable state machines, one class per name.

Training is split into *cycles*; each cycle leaves one snapshot for the ensemble. ``SCHEDULES`` maps each
name to its class; the config, the search spaces and training read it, so a new schedule is one class and
one entry here (plus its test). Training asks the schedule, never its name, how to behave:
``before_step`` sets per-batch rates and ``keeps_last_of_cycle`` picks the snapshot.

- ``none``: constant learning rate, one cycle; the snapshot is the best epoch.
- ``plateau``: the rate is cut by ``factor`` (0.7) after ``patience`` epochs without a validation score
  better by more than ``min_delta``; one cycle; the snapshot is the best epoch.
- ``snapshot_plateau``: as ``plateau``, but after ``snapshot_patience`` stalled epochs the cycle closes
  (its best epoch is its snapshot) and the rate restarts at its initial value from the *last* weights.
- ``cosine_snapshots``: cosine annealing from the initial rate to ``min_lr`` over ``cycle_epochs`` epochs,
  stepped every batch, restarting each cycle; the snapshot is the weights at the cycle's end. With ``cycles``
  set, the run is split into that many cycles instead (as equal as whole epochs allow, the last one ending at the
  run's last epoch), so a run of any length ends on a cycle's end.

The config imports ``SCHEDULES`` to validate its names, so this module does not import the config: a schedule
takes any :class:`ScheduleSettings`, which ``salttune.config.ScheduleConfig`` is.

Reference: Huang et al. 2017, "Snapshot Ensembles: Train 1, get M for free", arXiv 1704.00109.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Protocol

from torch.optim import Optimizer

from salttune.errors import SalttuneError

__all__ = ["SCHEDULES", "Schedule", "ScheduleSettings", "ScheduleState", "cycle_ends", "make_schedule"]


class ScheduleSettings(Protocol):
    """What a schedule reads (fields of ``salttune.config.ScheduleConfig``; their meaning is documented there)."""

    @property
    def name(self) -> str: ...
    @property
    def factor(self) -> float: ...
    @property
    def patience(self) -> int: ...
    @property
    def min_delta(self) -> float: ...
    @property
    def min_lr(self) -> float: ...
    @property
    def snapshot_patience(self) -> int: ...
    @property
    def cycle_epochs(self) -> int: ...
    @property
    def cycles(self) -> int | None: ...


@dataclass
class ScheduleState:
    cycle: int = 0  # index of the current cycle
    cycle_start: int = 0  # first epoch of the current cycle
    best: float = -math.inf  # best validation score in the current cycle (plateau bookkeeping)
    stalled: int = 0  # epochs since the last improvement of ``best``
    since_cut: int = 0  # epochs since the last cut (plateau patience counts from a cut)


class Schedule:
    """Drives the optimizer's learning rate and says when a cycle (and so a snapshot) ends.

    This base class is the ``none`` schedule: a constant rate and one cycle. Subclasses override
    ``before_step`` (per-batch rates), ``_cycle_ends`` and ``_after_epoch``.
    """

    keeps_last_of_cycle = False  # the cycle's snapshot is its last epoch (True) or its best one (False)

    def __init__(self, cfg: ScheduleSettings, optimizer: Optimizer, base_lr: float, steps_per_epoch: int, run_epochs: int):
        self.cfg, self.opt, self.base_lr, self.steps = cfg, optimizer, base_lr, max(1, steps_per_epoch)
        self.run_epochs = run_epochs
        self.state = ScheduleState()

    # -- learning rate -------------------------------------------------------------------------------
    def lr(self) -> float:
        return float(self.opt.param_groups[0]["lr"])

    def _set_lr(self, lr: float) -> None:
        for g in self.opt.param_groups:
            g["lr"] = lr

    def before_step(self, epoch: int, step: int) -> None:
        """Set the rate before a batch; only per-batch schedules do anything here."""

    # -- end of epoch ----------------------------------------------------------------------------------
    def end_epoch(self, epoch: int, score: float) -> bool:
        """Record the epoch's validation score; return True when the current cycle has just ended.

        When a cycle ends the rate is restarted for the next one; the caller closes the snapshot.
        """
        s = self.state
        # The score moves in steps of a share of one image; an improvement of less than min_delta is noise, and
        # counting it would reset the patience forever on a score that wobbles.
        improved = score > s.best + self.cfg.min_delta
        s.best, s.stalled = (score, 0) if improved else (s.best, s.stalled + 1)
        s.since_cut = 0 if improved else s.since_cut + 1
        if self._cycle_ends(epoch):
            self.state = ScheduleState(cycle=s.cycle + 1, cycle_start=epoch + 1)
            self._set_lr(self.base_lr)
            return True
        self._after_epoch()
        return False

    def _cycle_ends(self, epoch: int) -> bool:
        return False

    def _after_epoch(self) -> None:
        """Change the rate between epochs of a cycle that goes on."""

    # -- resume ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return asdict(self.state)

    def load_state_dict(self, d: dict) -> None:
        self.state = ScheduleState(**d)


class Plateau(Schedule):
    """Cut the rate by ``factor`` (not below ``min_lr``) after ``patience`` epochs without improvement."""

    def _after_epoch(self) -> None:
        if self.state.since_cut > self.cfg.patience:
            self._set_lr(max(self.cfg.min_lr, self.lr() * self.cfg.factor))
            self.state.since_cut = 0


class SnapshotPlateau(Plateau):
    """``Plateau``, and after ``snapshot_patience`` stalled epochs the cycle closes and the rate restarts."""

    def _cycle_ends(self, epoch: int) -> bool:
        return self.state.stalled >= self.cfg.snapshot_patience


class CosineSnapshots(Schedule):
    """Cosine annealing to ``min_lr`` over ``cycle_epochs``, set every batch; the snapshot is the cycle's end."""

    keeps_last_of_cycle = True

    def cycle_length(self) -> int:
        """Epochs of the current cycle: ``cycle_epochs``, or with ``cycles`` the run's share (:func:`cycle_ends`)."""
        if not self.cfg.cycles:
            return self.cfg.cycle_epochs
        ends = cycle_ends(self.run_epochs, self.cfg.cycles)
        k = min(self.state.cycle, len(ends) - 1)
        return max(1, ends[k] - self.state.cycle_start)

    def before_step(self, epoch: int, step: int) -> None:
        t = ((epoch - self.state.cycle_start) * self.steps + step) / (self.cycle_length() * self.steps)
        lo = self.cfg.min_lr
        self._set_lr(lo + 0.5 * (self.base_lr - lo) * (1 + math.cos(math.pi * min(t, 1.0))))

    def _cycle_ends(self, epoch: int) -> bool:
        return epoch + 1 - self.state.cycle_start >= self.cycle_length()


def cycle_ends(run_epochs: int, cycles: int) -> list[int]:
    """The epochs (1-based) at which ``cycles`` cycles of a run of ``run_epochs`` end: ``round(k * run_epochs / cycles)``,
    the last at ``run_epochs``; fewer cycles when the run has fewer epochs than cycles (each at least one epoch).

    Example: 10 epochs in 3 cycles end at epochs 3, 7 and 10.
    """
    n = max(1, min(cycles, run_epochs))
    return [round((k + 1) * run_epochs / n) for k in range(n)]


# Name -> schedule class, read by the config (``schedule.name``) and the search spaces.
SCHEDULES: dict[str, type[Schedule]] = {
    "none": Schedule,
    "plateau": Plateau,
    "snapshot_plateau": SnapshotPlateau,
    "cosine_snapshots": CosineSnapshots,
}


def make_schedule(cfg: ScheduleSettings, optimizer: Optimizer, base_lr: float, steps_per_epoch: int,
                  run_epochs: int) -> Schedule:
    """The schedule ``cfg.name`` driving ``optimizer`` from ``base_lr`` in a run of ``run_epochs`` epochs."""
    if cfg.name not in SCHEDULES:
        raise SalttuneError(f"config key 'schedule.name': unknown {cfg.name!r}; allowed: {', '.join(SCHEDULES)}")
    return SCHEDULES[cfg.name](cfg, optimizer, base_lr, steps_per_epoch, run_epochs)
