"""TPE that models one fidelity at a time, as BOHB does (Falkner et al., 2018): ``algorithm: bohb``.

Optuna's TPE learns from finished trials by their final value and sees a trial that ASHA stopped only as "worse
than every finished one", ordered by how far it got (its pruned-trial ordering). Early in a search few trials
finish, so TPE models little. BOHB instead fits its density model on the observations of the *highest rung with
enough of them*: every trial that reached epoch r, ranked by its value at r (the value ASHA compared there).

:class:`RungTPESampler` does that with Optuna's own TPE, through public API only: before each new trial it picks
the highest rung r (ASHA's rungs, then ``max_t``) that at least ``min_points`` trials have reached, and hands TPE a
stand-in study in memory holding exactly those trials, each COMPLETE with its intermediate value at r (a trial that
failed by r is the worst), plus the trials still running (so TPE's constant liar still spreads concurrent trials).
Trials stopped before r are left out, as in BOHB. While no rung has enough trials, TPE sees the real study as usual.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState, create_trial

__all__ = ["RungTPESampler", "rungs_of"]


def rungs_of(grace_period: int, reduction_factor: int, max_t: int) -> list[int]:
    """ASHA's rung epochs (grace, grace x rf, ... below max_t) and max_t, ascending."""
    rungs, r = [], grace_period
    while r < max_t:
        rungs.append(r)
        r *= reduction_factor
    return [*rungs, max_t]


class RungTPESampler(optuna.samplers.BaseSampler):
    """Optuna's ``TPESampler`` fitted on the highest rung that ``min_points`` trials have reached.

    Args:
        tpe_options: the arguments of the ``TPESampler`` that proposes (seed, start-up trials, multivariate...).
            Each stand-in study gets a fresh sampler with them, seeded by (seed, trial number): Optuna's grouped
            search space belongs to one study.
        rungs: the epochs at which trials are compared (:func:`rungs_of`), ascending.
        min_points: trials a rung needs before TPE models it (BOHB: the number of parameters + 1; at least the
            start-up trials, so TPE models rather than draws at random).
    """

    def __init__(self, tpe_options: dict, rungs: Sequence[int], min_points: int):
        self.tpe_options, self.rungs, self.min_points = dict(tpe_options), sorted(rungs), max(1, int(min_points))
        self.inner = self._tpe(self.tpe_options)  # for the real study, while no rung qualifies
        self._view: tuple | None = None  # (real trial number, sampler, study, trial) TPE proposes with

    @staticmethod
    def _tpe(options: dict) -> optuna.samplers.TPESampler:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # multivariate, group
            return optuna.samplers.TPESampler(**options)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_view": None}  # the stand-in is rebuilt from the study; Tune pickles the searcher

    # -- the stand-in study ------------------------------------------------------------------------------------

    def rung_view(self, study: optuna.Study, number: int) -> tuple[int | None, optuna.Study | None]:
        """(the rung modelled, the stand-in study) for proposing trial ``number``; (None, None): no rung has
        ``min_points`` trials yet, TPE sees the real study."""
        trials = [t for t in study.get_trials(deepcopy=False) if t.number != number]
        for r in reversed(self.rungs):
            reached = [t for t in trials if r in t.intermediate_values]
            if len(reached) >= self.min_points:
                return r, self._stand_in(study, trials, reached, r)
        return None, None

    @staticmethod
    def _stand_in(study: optuna.Study, trials: list[FrozenTrial], reached: list[FrozenTrial], r: int) -> optuna.Study:
        values = [t.intermediate_values[r] for t in reached]
        finite = [v for v in values if math.isfinite(v)]
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        worst = (min(finite) - 1.0 if maximize else max(finite) + 1.0) if finite else 0.0  # a failure: the worst
        view = optuna.create_study(direction=study.direction, sampler=optuna.samplers.RandomSampler(0))
        for t, v in zip(reached, values):
            view.add_trial(create_trial(params=t.params, distributions=t.distributions,
                                        value=v if math.isfinite(v) else worst))
        seen = {t.number for t in reached}
        for t in trials:
            if t.state == TrialState.RUNNING and t.number not in seen and t.params:
                view.add_trial(create_trial(params=t.params, distributions=t.distributions, state=TrialState.RUNNING))
        return view

    def _proposer(self, study: optuna.Study, trial: FrozenTrial) -> tuple:
        """(sampler, study, trial) that propose ``trial``: the inner TPE on the real study, or a fresh TPE on the
        stand-in study with a RUNNING stand-in for the trial (TPE writes its proposal into the trial it samples
        for, which must live in the study it is given)."""
        if self._view is None or self._view[0] != trial.number:
            view = self.rung_view(study, trial.number)[1]
            if view is None:
                self._view = (trial.number, self.inner, study, trial)
            else:
                seed = self.tpe_options.get("seed")
                tpe = self._tpe({**self.tpe_options, "seed": None if seed is None else (seed * 1_000_003 + trial.number) % 2**32})
                number = view.ask().number
                stand_in = next(t for t in view.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t.number == number)
                self._view = (trial.number, tpe, view, stand_in)
        return self._view[1:]

    # -- Optuna's sampler interface, delegated --------------------------------------------------------------------

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        tpe, s, t = self._proposer(study, trial)
        return tpe.infer_relative_search_space(s, t)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]) -> dict[str, Any]:
        tpe, s, t = self._proposer(study, trial)
        return tpe.sample_relative(s, t, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution) -> Any:
        tpe, s, t = self._proposer(study, trial)
        return tpe.sample_independent(s, t, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()
