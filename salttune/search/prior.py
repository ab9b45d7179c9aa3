"""A search that starts from a known configuration: the space's ``prior:`` trained first, then sampled around.

A space may name a configuration it expects to be good (``prior:``, validated by
:func:`salttune.search.params.parse_prior`; the file format is in :mod:`salttune.search.space`).
:class:`PriorSampler` wraps the space's own Optuna sampler (TPE, random, BOHB's rung TPE):

- trial 0, the study's first, *is* the prior (:func:`prior_point`: the named values, the middle of every range and
  of every choice for the parameters it leaves out);
- trial ``k > 0`` is drawn *around the prior* with probability ``w_k = 0.5 * n0 / (n0 + k)``, ``n0 = 4`` (0.4 for
  trial 1, 0.2 by trial 6, 0.04 by trial 46), and by the wrapped sampler otherwise. Around the prior, a choice
  keeps the prior's value with probability 0.5 and is otherwise uniform among all the choices; a number is drawn
  from a normal centred on the prior's value with a standard deviation of 0.15 of the range's width (on the log
  scale for a log range), clipped to the range and rounded to its step.

So a search with a small budget is never much worse than its prior (it trains it, and spends its first trials
near it), and a long one soon samples as it would without it. This is PriorBand's mix of prior-centred and other
samples, with a weight that decays with the trials rather than with its own incumbent bookkeeping, and the
spirit of piBO's prior that the evidence gradually overrides.

Which trial is which is decided from the search's ``seed`` and the trial's number alone (a numpy ``Generator``
seeded with both), not from a state the sampler keeps: the same seed gives the same sequence, and a resumed search
(a new sampler, the same study) decides its next trials as the first run would have. Each trial records its
origin in the study as the user attribute ``origin``: ``prior``, ``around prior`` or ``sampler`` (optuna-dashboard
shows it). The wrapped sampler sees every trial in the study, so the prior's trials count towards TPE's
``startup_trials`` and TPE learns from their results like any other's.

A parameter the prior point lacks but a perturbed trial draws (a ``when:`` parameter whose condition became true
when its parent moved away from the prior's value) is centred on its typical value, the middle of its range or its
middle choice, as :func:`prior_point` completes a prior: the prior is then one density over the whole space,
rather than half a trial from the prior and half from a sampler that has not seen the other half.

References:
    Mallik, Bergman, Hvarfner, Stoll, Janowski, Lindauer, Nardi, Hutter. PriorBand: Practical Hyperparameter
    Optimization in the Age of Deep Learning. NeurIPS 2023.
    Hvarfner, Stoll, Souza, Lindauer, Hutter, Nardi. piBO: Augmenting Acquisition Functions with User Beliefs for
    Bayesian Optimization. ICLR 2022.
"""

from __future__ import annotations

import math
import zlib
from typing import Any, Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from salttune.search.params import Typical, suggest
from salttune.search.space import SearchSpace

__all__ = ["PRIOR", "AROUND", "SAMPLER", "ORIGIN", "N0", "prior_point", "prior_weight", "origin", "around",
           "PriorSampler", "with_prior"]

PRIOR, AROUND, SAMPLER = "prior", "around prior", "sampler"  # the values of a trial's ``origin`` attribute
ORIGIN = "origin"  # the Optuna user attribute
WEIGHT, N0 = 0.5, 4  # w_k = WEIGHT * N0 / (N0 + k): half the trials right after the prior, falling as 1/k
SD = 0.15  # a number's standard deviation around the prior, as a share of its range (its log range for log)
KEEP = 0.5  # a choice keeps the prior's value with this probability (else uniform among the choices)
_TAG = 0x70726F72  # 'pror': keeps these draws apart from the trial's training seed, also seeded by (seed, number)


class _Prior(Typical):
    """Answers ``suggest_*`` with the prior's value where it has one, else the typical value (:class:`Typical`)."""

    def __init__(self, values: dict):
        self.values = values

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False, step: float | None = None) -> float:
        return float(self.values[name]) if name in self.values else super().suggest_float(name, low, high, log=log, step=step)

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        return int(self.values[name]) if name in self.values else super().suggest_int(name, low, high, step=step, log=log)

    def suggest_categorical(self, name: str, choices: list) -> Any:
        return self.values[name] if name in self.values else super().suggest_categorical(name, choices)


def _labels(space: SearchSpace) -> dict:
    """The prior's values as Optuna records them (a list choice as 'a+b', like :func:`suggest`)."""
    return {k: "+".join(map(str, v)) if isinstance(v, list) else v for k, v in space.prior.items()}


def prior_point(space: SearchSpace) -> dict | None:
    """The prior as a sampled point, ``{dotted key: value}`` as :func:`~salttune.search.params.suggest` returns it
    (what trial 0 draws); ``None`` when the space has no ``prior:``.

    The parameters the prior does not name take the middle of their range (geometric for a log range, on the step)
    or their middle choice; a parameter whose ``when:`` is false under it is absent.
    """
    return suggest(space, _Prior(_labels(space))) if space.prior else None


def prior_weight(k: int) -> float:
    """``w_k = 0.5 * n0 / (n0 + k)``: the chance that trial ``k`` (``k`` trials after the prior) is drawn around it."""
    return WEIGHT * N0 / (N0 + k)


def _rng(seed: int, number: int, *more: int) -> np.random.Generator:
    return np.random.default_rng([seed, number, _TAG, *more])


def origin(seed: int, number: int) -> str:
    """Where trial ``number`` of a search seeded ``seed`` comes from: :data:`PRIOR` (trial 0), :data:`AROUND`
    (with probability :func:`prior_weight`) or :data:`SAMPLER`. A function of the two numbers only."""
    if number == 0:
        return PRIOR
    return AROUND if _rng(seed, number).random() < prior_weight(number) else SAMPLER


def _typical(d: BaseDistribution) -> Any:
    """The typical value of an Optuna distribution (the middle, or the middle choice)."""
    if isinstance(d, CategoricalDistribution):
        return Typical().suggest_categorical("", list(d.choices))
    if isinstance(d, IntDistribution):
        return Typical().suggest_int("", d.low, d.high, step=d.step, log=d.log)
    return Typical().suggest_float("", d.low, d.high, log=d.log, step=d.step)


def around(centre: Any, d: BaseDistribution, rng: np.random.Generator) -> Any:
    """One value of distribution ``d`` drawn around ``centre`` (see the module docstring).

    Args:
        centre: a value ``d`` contains (the prior's).
        d: Optuna's ``CategoricalDistribution``, ``FloatDistribution`` or ``IntDistribution`` (``log``, ``step``).
    """
    if isinstance(d, CategoricalDistribution):
        return centre if rng.random() < KEEP else d.choices[int(rng.integers(len(d.choices)))]
    to, back = (math.log, math.exp) if d.log else (float, float)
    lo, hi = to(d.low), to(d.high)
    x = min(max(back(min(max(rng.normal(to(centre), SD * (hi - lo)), lo), hi)), d.low), d.high)
    step = d.step
    if step:  # Optuna's high is already on the step (it moves a high that is not)
        x = min(d.low + round((x - d.low) / step) * step, d.high)
    return int(round(x)) if isinstance(d, IntDistribution) else float(x)


class PriorSampler(optuna.samplers.BaseSampler):
    """An Optuna sampler that trains the space's prior first and then mixes draws around it into ``base``'s.

    Args:
        base: the space's own sampler (it draws every trial whose origin is :data:`SAMPLER`).
        space: a space with a ``prior:``.
    """

    def __init__(self, base: optuna.samplers.BaseSampler, space: SearchSpace):
        point = prior_point(space)
        if point is None:
            raise ValueError(f"{space.source or space.name}: the space has no prior; use its sampler as it is")
        self.base, self.seed, self.point = base, space.seed, point

    def __str__(self) -> str:
        return f"PriorSampler({self.base})"

    def _origin(self, trial: FrozenTrial) -> str:
        return origin(self.seed, trial.number)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)
        # The sampler gets frozen trials, not Trial.set_user_attr; the storage is written as Optuna's own samplers do.
        value = self._origin(trial)
        study._storage.set_trial_user_attr(trial._trial_id, ORIGIN, value)
        trial.user_attrs[ORIGIN] = value

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.base.infer_relative_search_space(study, trial) if self._origin(trial) == SAMPLER else {}

    def sample_relative(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self.base.sample_relative(study, trial, search_space) if self._origin(trial) == SAMPLER else {}

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        where = self._origin(trial)
        if where == SAMPLER:
            return self.base.sample_independent(study, trial, param_name, param_distribution)
        centre = self.point[param_name] if param_name in self.point else _typical(param_distribution)
        if where == PRIOR:
            return centre
        # one generator per (trial, parameter): a draw does not depend on the order the parameters are drawn in
        return around(centre, param_distribution, _rng(self.seed, trial.number, zlib.crc32(param_name.encode())))

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()  # the prior's own draws are seeded per trial, from the search's seed


def with_prior(sampler: optuna.samplers.BaseSampler, space: SearchSpace) -> optuna.samplers.BaseSampler:
    """``sampler`` wrapped in a :class:`PriorSampler` when the space has a ``prior:``, else ``sampler`` itself."""
    return PriorSampler(sampler, space) if space.prior else sampler
