"""BOHB-style TPE: the rung it models, the stand-in study it hands TPE, and that its proposals follow that rung."""

import math
import pickle

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from salttune.search.rung_tpe import RungTPESampler, rungs_of

X = {"x": FloatDistribution(0.0, 1.0)}


def test_rungs_are_ashas_then_max_t():
    assert rungs_of(1, 2, 4) == [1, 2, 4]
    assert rungs_of(2, 3, 9) == [2, 6, 9]
    assert rungs_of(3, 3, 3) == [3]


def _trial(x: float, curve: dict[int, float], state=TrialState.PRUNED, value=None):
    return create_trial(params={"x": x}, distributions=X, intermediate_values=curve, state=state, value=value)


def test_the_highest_rung_with_enough_trials_is_modelled_by_its_values():
    study = optuna.create_study(direction="maximize")
    study.add_trial(_trial(0.1, {2: 0.3, 6: 0.5, 9: 0.6}, TrialState.COMPLETE, 0.6))
    study.add_trial(_trial(0.2, {2: 0.4, 6: 0.7}))  # stopped at rung 6
    study.add_trial(_trial(0.3, {2: 0.2}))  # stopped at rung 2: not at rung 6, left out there
    study.add_trial(_trial(0.4, {2: 0.5, 6: math.nan}))  # failed by rung 6: the worst there
    study.add_trial(_trial(0.5, {2: 0.1}, TrialState.RUNNING))  # still running: kept for the constant liar
    sampler = RungTPESampler({"seed": 0, "n_startup_trials": 1}, rungs_of(2, 3, 9), min_points=3)
    rung, view = sampler.rung_view(study, number=99)
    assert rung == 6
    done = {t.params["x"]: t.value for t in view.trials if t.state == TrialState.COMPLETE}
    assert done == pytest.approx({0.1: 0.5, 0.2: 0.7, 0.4: 0.5 - 1.0})  # the failure one below the worst value
    assert [t.params["x"] for t in view.trials if t.state == TrialState.RUNNING] == [0.5]
    # five trials reached rung 2 (the running one too): with min_points 6 no rung qualifies, TPE sees the real study
    assert RungTPESampler(sampler.tpe_options, rungs_of(2, 3, 9), min_points=6).rung_view(study, 99) == (None, None)
    assert RungTPESampler(sampler.tpe_options, rungs_of(2, 3, 9), min_points=5).rung_view(study, 99)[0] == 2
    # the trial being proposed is never part of its own model
    rung, view = sampler.rung_view(study, number=1)  # without trial 1 (x 0.2) only two reached rung 6: rung 2
    assert rung == 2 and sorted(t.params["x"] for t in view.trials) == [0.1, 0.3, 0.4, 0.5]


def test_proposals_follow_the_modelled_rung_where_plain_tpe_follows_the_furthest_trials():
    # 12 trials stopped at epoch 2, their rung value peaking at x = 0.8; 3 trials near x = 0.1 went on to epoch 6
    # (too few to model rung 6). Plain TPE ranks the 3 that got further above all others and proposes near 0.1;
    # BOHB-style TPE models rung 2, where everyone was compared, and proposes near 0.8.
    def proposals(sampler) -> list[float]:
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for i in range(12):
            x = (i + 0.5) / 12
            study.add_trial(_trial(x, {2: -(x - 0.8) ** 2}))
        for x in (0.05, 0.1, 0.15):
            study.add_trial(_trial(x, {2: -(x - 0.8) ** 2, 6: -0.5}))
        return [study.ask(X).params["x"] for _ in range(10)]

    options = {"seed": 1, "n_startup_trials": 5, "multivariate": True, "group": True, "constant_liar": True}  # salttune's
    sampler = RungTPESampler(options, [2, 6], 5)
    rung = proposals(sampler)
    assert pickle.loads(pickle.dumps(sampler)).rungs == [2, 6]  # with its stand-in study built (Tune pickles searchers)
    plain = proposals(RungTPESampler._tpe(options))
    assert sum(abs(x - 0.8) < 0.2 for x in rung) >= 8, rung
    assert sum(abs(x - 0.8) < 0.2 for x in plain) <= 3 and sum(abs(x - 0.1) < 0.3 for x in plain) >= 6, plain
