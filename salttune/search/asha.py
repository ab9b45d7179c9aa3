"""ASHA on the epoch count, with rungs that survive a killed driver.

Ray saves the searcher's state with the experiment, but not the scheduler's: ``Tuner.restore`` rebuilds the
scheduler from the pickle written when the search started, with empty rungs. A resumed search would then
compare its next trials against nothing (no trial stopped at the first rung until enough new ones arrive)
and let trials that ASHA had already stopped run on. So this scheduler writes its rungs and its stop
decisions to ``results/NAME/asha_state.json`` after every change (atomically, a few hundred bytes), and reads
them back when the first trial is added after a restore.

Asynchronous successive halving: a trial reaching a rung (``grace_period * reduction_factor**k`` epochs)
is stopped when its score is below the ``1 - 1/reduction_factor`` quantile of the scores recorded at that
rung so far. Reference: Li et al. 2018, "A System for Massively Parallel Hyperparameter Tuning",
arXiv 1810.05934.

``rung_score="best"`` (the default) records a trial at a rung with its best score so far rather than its score
at that epoch, so a cosine or restart schedule caught at a high learning rate at the rung is not stopped for
its dip (``"last"``: Ray's raw score). ``brackets > 1`` runs Ray's asynchronous Hyperband: each trial goes to
one of several brackets whose first rung comes later and later.
"""

from __future__ import annotations

from pathlib import Path

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from salttune.fileio import write_json
from salttune.search.resume import read_asha_state as read_state  # Ray-free: --resume checks it before Ray starts

__all__ = ["ResumableASHA", "read_state", "STOP"]

STOP = TrialScheduler.STOP  # a scheduler's decision to end a trial (for code that drives schedulers, e.g. the replay)


class ResumableASHA(ASHAScheduler):
    """``ASHAScheduler`` (one bracket, ``time_attr='epoch'``) that persists its rungs to ``state_path``."""

    def __init__(self, state_path: str | Path, *, metric: str, mode: str, max_t: int, grace_period: int, reduction_factor: float,
                 rung_score: str = "best", brackets: int = 1):
        if rung_score not in ("best", "last"):
            raise ValueError(f"rung_score {rung_score!r}: best | last")
        super().__init__(time_attr="epoch", metric=metric, mode=mode, max_t=max_t, grace_period=grace_period,
                         reduction_factor=reduction_factor, brackets=brackets)
        self._state_path = str(state_path)  # (the name old pickles in tuner.pkl carry)
        self._stopped: dict[str, int] = {}  # trial id -> epoch at which ASHA stopped it
        self._loaded = False
        self._rung_score = rung_score
        self._best: dict[str, float] = {}  # trial id -> best score so far (sign * score: higher is better)

    # Ray's private state, each named once here (tests/search/test_asha.py fails naming the attribute if a
    # Ray upgrade moves it) -----------------------------------------------------------------------------
    def _rung_records(self) -> list[tuple[float, dict[str, float]]]:
        """The brackets' rungs: (milestone, {trial id: sign * score}) (``ASHAScheduler._brackets[i]._rungs``);
        with several brackets, a milestone may appear once per bracket."""
        return [rung for bracket in self._brackets for rung in bracket._rungs]

    def _sign(self) -> float:
        """+1 or -1: Ray records ``sign * score`` so that higher is better (``ASHAScheduler._metric_op``)."""
        return self._metric_op

    def _max_epochs(self) -> int:
        return self._max_t  # ASHAScheduler._max_t

    def _set_stopped_count(self, n: int) -> None:
        self._num_stopped = n  # ASHAScheduler._num_stopped: only its debug string reads it

    def _forget(self, trial_id: str) -> None:
        """Drop a trial's bracket entry, if any (Ray's ``on_trial_remove`` raises for an unknown trial)."""
        self._trial_info.pop(trial_id, None)  # ASHAScheduler._trial_info

    # -------------------------------------------------------------------------------------------------
    @property
    def rungs(self) -> dict[int, dict[str, float]]:
        """Milestone epoch -> {trial id: score} (scores as reported, not sign-flipped)."""
        out: dict[int, dict[str, float]] = {}
        for m, rec in self._rung_records():
            out.setdefault(int(m), {}).update({t: self._sign() * s for t, s in rec.items()})
        return out

    def _load(self) -> None:
        self._loaded = True
        state = read_state(self._state_path)
        if state is None:
            return
        by_milestone = {int(m): rec for m, rec in state["rungs"].items()}
        if len(self._brackets) > 1:
            return  # (rungs shared by milestone cannot be told apart between brackets: a resumed Hyperband starts afresh)
        for milestone, recorded in self._rung_records():
            recorded.update({t: self._sign() * s for t, s in by_milestone.get(int(milestone), {}).items()})
        self._stopped = {t: int(e) for t, e in state["stopped"].items()}
        self._set_stopped_count(len(self._stopped))

    def _save(self) -> None:
        state = {"metric": self.metric, "mode": "max" if self._sign() > 0 else "min", "rungs": {str(m): r for m, r in self.rungs.items()},
                 "stopped": self._stopped}
        write_json(self._state_path, state, "ASHA state", indent=1)

    def on_trial_add(self, tune_controller, trial) -> None:
        if not self._loaded:  # first call after a start or a restore
            self._load()
        super().on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if trial.trial_id in self._stopped:  # stopped before the driver died, resumed from an older state
            return TrialScheduler.STOP
        before = self.rungs
        value = result.get(self.metric)
        if getattr(self, "_rung_score", "last") == "best" and value is not None:  # (old pickles: "last")
            signed = max(self._best.get(trial.trial_id, -float("inf")), self._sign() * float(value))
            self._best[trial.trial_id] = signed
            result = {**result, self.metric: self._sign() * signed}
        action = super().on_trial_result(tune_controller, trial, result)
        epoch = result.get("epoch")
        if action == TrialScheduler.STOP and epoch is not None and epoch < self._max_epochs():
            self._stopped[trial.trial_id] = int(epoch)
        if action == TrialScheduler.STOP or self.rungs != before:
            self._save()
        return action

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        super().on_trial_complete(tune_controller, trial, result)
        self._save()

    def on_trial_remove(self, tune_controller, trial) -> None:
        self._forget(trial.trial_id)

    def on_trial_error(self, tune_controller, trial) -> None:
        self._forget(trial.trial_id)
