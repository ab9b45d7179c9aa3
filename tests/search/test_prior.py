"""A space's ``prior:``: validated at load, trained first, then sampled around with a decaying weight
(``salttune.search.prior``)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import optuna
import pytest
import yaml

from search_fixtures import space_yaml
from salttune.errors import SalttuneError
from salttune.search.params import suggest
from salttune.search.prior import (AROUND, PRIOR, SAMPLER, PriorSampler, around, origin, prior_point, prior_weight,
                                   with_prior)
from salttune.search.space import load_space, space_from_dict, space_to_dict

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = """\
  optim.lr: {loguniform: [1.0e-4, 1.0e-2]}
  optim.name: {choice: [adam, sgd]}
  optim.momentum: {uniform: [0.8, 0.99], when: {optim.name: sgd}}
  model.block: {choice: [plain, residual, se]}
  loss.name: {choice: [bce, bce+dice, focal+dice]}
  loss.focal_gamma: {uniform: [0.5, 3.0], when: {loss.name: {has_term: focal}}}
  loss.weights: {loguniform: [0.2, 5.0]}
  schedule.max_snapshots: {int: [2, 4]}
  schedule.patience: {int: [4, 16], step: 4}"""
PRIOR_YAML = "prior: {optim: {lr: 3.0e-3}, model.block: residual, loss.name: bce+dice, loss.weights.dice: 2.0, schedule.patience: 8}\n"


def prior_space(tmp_path, prior: str = PRIOR_YAML, sets=(), seed: int = 0):
    f = space_yaml(tmp_path, "pri", SPACE, seed=seed)
    f.write_text(f.read_text() + prior)
    return load_space(f, list(sets))


def study(space, base=None, storage=None, name="pri"):
    base = base or optuna.samplers.RandomSampler(seed=space.seed)
    return optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True,
                               sampler=PriorSampler(base, space))


def ask(st, space, n: int) -> list[tuple[str, dict]]:
    """n trials asked, drawn as the search draws them (define-by-run), told a constant; (origin, params) each."""
    out = []
    for _ in range(n):
        trial = st.ask()
        out.append((trial.user_attrs["origin"], suggest(space, trial)))
        st.tell(trial, 0.5)
    return out


# -- the file ---------------------------------------------------------------------------------------------

def test_the_prior_is_read_flat_and_completed_to_a_full_point(tmp_path):
    space = prior_space(tmp_path)
    assert space.prior == {"optim.lr": 3e-3, "model.block": "residual", "loss.name": "bce+dice", "loss.weights.dice": 2.0,
                           "schedule.patience": 8}
    # the named values; the middle of the others (geometric for log, on the step) or the middle choice; momentum
    # (optim.name is adam, the first choice) and focal_gamma (no focal term) are not drawn
    assert prior_point(space) == {"optim.lr": 3e-3, "optim.name": "adam", "model.block": "residual", "loss.name": "bce+dice",
                                  "loss.weights.dice": 2.0, "schedule.max_snapshots": 3, "schedule.patience": 8}
    sgd = prior_space(tmp_path, "prior: {optim.name: sgd, optim.momentum: 0.9, loss.name: focal+dice}\n")
    assert prior_point(sgd) == {"optim.lr": pytest.approx(1e-3), "optim.name": "sgd", "optim.momentum": 0.9,
                                "model.block": "residual", "loss.name": "focal+dice", "loss.focal_gamma": 1.75,
                                "loss.weights.dice": pytest.approx(1.0), "schedule.max_snapshots": 3, "schedule.patience": 12}
    # a conditional parameter the prior names while its condition is false under it: simply absent
    assert "optim.momentum" not in prior_point(prior_space(tmp_path, "prior: {optim.name: adam, optim.momentum: 0.9}\n"))
    assert prior_point(load_space(space_yaml(tmp_path, "none", SPACE))) is None


def test_the_prior_round_trips_and_takes_set(tmp_path):
    space = prior_space(tmp_path)
    text = yaml.safe_dump(space_to_dict(space), sort_keys=False)  # the resolved space.yaml a resumed search reads
    assert space_from_dict(yaml.safe_load(text), source=space.source) == space
    changed = prior_space(tmp_path, sets=["prior.optim.lr=1e-3", "prior.optim.name=sgd"])
    assert (changed.prior["optim.lr"], changed.prior["optim.name"], changed.prior["model.block"]) == (1e-3, "sgd", "residual")
    added = load_space(space_yaml(tmp_path, "none", SPACE), ["prior.model.block=se"])
    assert added.prior == {"model.block": "se"} and prior_point(added)["model.block"] == "se"
    assert space_to_dict(load_space(space_yaml(tmp_path, "none", SPACE)))["prior"] == {}


def test_a_list_choice_is_given_as_a_list_or_as_optuna_records_it(tmp_path):
    f = tmp_path / "aug.yaml"
    f.write_text("space: {augment.names: {choice: [[hflip], [hflip, translate]]}}\nprior: {augment.names: [hflip, translate]}\n")
    space = load_space(f)
    assert space.prior == {"augment.names": ["hflip", "translate"]} and prior_point(space) == {"augment.names": "hflip+translate"}
    assert load_space(f, ["prior.augment.names=hflip+translate"]).prior == space.prior


BAD = [  # (prior, fragments of the one-line message after "FILE: ")
    ("prior: {optim.lrr: 1.0e-3}", ["key 'prior.optim.lrr'", "unknown parameter", "searched parameters: optim.lr, optim.name"]),
    ("prior: {optim.lr: 0.5}", ["key 'prior.optim.lr'", "0.5 is out of range", "allowed: [0.0001, 0.01]"]),
    ("prior: {model.block: spam}", ["key 'prior.model.block'", "'spam' is not a choice of space.model.block",
                                    "allowed: plain, residual, se"]),
    ("prior: {model.base_width: 8}", ["key 'prior.model.base_width'", "is not searched (not under space:)"]),
    ("prior: {schedule.patience: 6}", ["key 'prior.schedule.patience'", "6 is not on the step", "allowed: 4 + k * 4, up to 16"]),
    ("prior: {schedule.max_snapshots: 2.5}", ["key 'prior.schedule.max_snapshots'", "2.5 is not an integer", "[2, 4]"]),
    ("prior: {optim.lr: fast}", ["key 'prior.optim.lr'", "'fast' is not a number"]),
    ("prior: {loss.weights.lovasz: 2.0}", ["key 'prior.loss.weights.lovasz'", "allowed: loss.weights.dice"]),
    ("prior: {loss.weights: [1, 2]}", ["key 'prior.loss.weights'", "one weight per term", "loss.weights.dice"]),
    ("prior: {loss.weights.dice: 9.0}", ["key 'prior.loss.weights.dice'", "9.0 is out of range", "[0.2, 5.0]"]),
    ("prior: [optim.lr]", ["key 'prior'", "expected a mapping"]),
]


@pytest.mark.parametrize("prior, fragments", BAD, ids=[b[1][0] + b[1][1][:12] for b in BAD])
def test_a_bad_prior_is_one_line_naming_the_file_and_the_key(tmp_path, prior, fragments):
    with pytest.raises(SalttuneError) as e:
        prior_space(tmp_path, prior + "\n")
    msg = str(e.value)
    assert msg.startswith(str(tmp_path / "pri.yaml") + ": ") and "\n" not in msg
    for frag in fragments:
        assert frag in msg, (frag, msg)


def test_a_bad_prior_set_names_the_key(tmp_path):
    with pytest.raises(SalttuneError, match=r"pri.yaml: key 'prior.optim.lr': 1.0 is out of range"):
        prior_space(tmp_path, sets=["prior.optim.lr=1.0"])


# -- the sampler ------------------------------------------------------------------------------------------

def test_the_weight_decays_as_documented_and_origins_follow_it():
    assert [prior_weight(k) for k in (1, 4, 46)] == [0.4, 0.25, 0.04]
    assert origin(0, 0) == origin(7, 0) == PRIOR
    seeds = range(3000)
    for k in (1, 3, 10, 40):
        share = np.mean([origin(s, k) == AROUND for s in seeds])
        sd = math.sqrt(prior_weight(k) * (1 - prior_weight(k)) / len(seeds))
        assert abs(share - prior_weight(k)) < 4 * sd + 1e-3, (k, share)
    early = np.mean([origin(s, k) == AROUND for s in range(200) for k in range(1, 11)])  # expected 0.234
    late = np.mean([origin(s, k) == AROUND for s in range(200) for k in range(101, 201)])  # expected 0.013
    assert 0.20 < early < 0.27 and 0.007 < late < 0.02


def test_trial_0_is_the_prior_and_every_trial_records_its_origin(tmp_path):
    space = prior_space(tmp_path, seed=3)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    draws = ask(study(space, storage=storage), space, 30)
    assert draws[0] == (PRIOR, prior_point(space))
    assert [o for o, _ in draws] == [origin(3, n) for n in range(30)]  # the decision is a function of (seed, number)
    assert Counter(o for o, _ in draws[1:])[AROUND] >= 2 and SAMPLER in {o for o, _ in draws}
    stored = optuna.load_study(study_name="pri", storage=storage).trials
    assert stored[0].params == prior_point(space) and [t.user_attrs["origin"] for t in stored] == [o for o, _ in draws]


def test_around_prior_draws_stay_in_range_and_near_the_prior(tmp_path):
    space = prior_space(tmp_path)
    rng = np.random.default_rng(0)
    d = optuna.distributions
    lr = [around(3e-3, d.FloatDistribution(1e-4, 1e-2, log=True), rng) for _ in range(2000)]
    assert min(lr) >= 1e-4 and max(lr) <= 1e-2
    # sd 0.15 of the log range: the median distance is 0.674 * 0.15 * log(100) = 0.47 in log (uniform's: 1.1)
    spread = np.median(np.abs(np.log(lr) - math.log(3e-3)))
    uniform = np.median(np.abs(rng.uniform(math.log(1e-4), math.log(1e-2), 2000) - math.log(3e-3)))  # loguniform's
    assert 0.38 < spread < 0.56 and uniform > 0.9
    sizes = Counter(around(12, d.IntDistribution(4, 16, step=4), rng) for _ in range(2000))
    assert set(sizes) <= {4, 8, 12, 16} and sizes.most_common(1)[0][0] == 12
    blocks = Counter(around("residual", d.CategoricalDistribution(["plain", "residual", "se"]), rng) for _ in range(3000))
    assert abs(blocks["residual"] / 3000 - (0.5 + 0.5 / 3)) < 0.03 and abs(blocks["se"] / 3000 - 0.5 / 3) < 0.03
    stepped = [around(0.5, d.FloatDistribution(0.0, 1.0, step=0.25), rng) for _ in range(200)]
    assert set(stepped) <= {0.0, 0.25, 0.5, 0.75, 1.0}

    # in a study: every around-prior trial is inside the space, and its lr is near the prior's
    draws = ask(study(space, storage=None), space, 120)
    near = [p for o, p in draws if o == AROUND]
    assert len(near) >= 3
    for p in near:
        assert 1e-4 <= p["optim.lr"] <= 1e-2 and p["schedule.patience"] in (4, 8, 12, 16) and 2 <= p["schedule.max_snapshots"] <= 4
    others = [p for o, p in draws if o == SAMPLER]
    dist = lambda ps: np.median([abs(math.log(p["optim.lr"] / 3e-3)) for p in ps])  # noqa: E731
    assert dist(near) < 0.7 < dist(others)


def test_the_same_seed_gives_the_same_sequence_and_a_resumed_study_continues_it(tmp_path):
    space = prior_space(tmp_path, seed=5)
    first = ask(study(space, name="a"), space, 25)
    assert ask(study(space, name="b"), space, 25) == first
    assert ask(study(prior_space(tmp_path, seed=6), name="c"), space, 25) != first
    # a resumed search: a new sampler (its base freshly seeded) on the same stored study
    storage = f"sqlite:///{tmp_path / 'resume.db'}"
    part = ask(study(space, storage=storage), space, 12) + ask(study(space, storage=storage), space, 13)
    assert [o for o, _ in part] == [o for o, _ in first]
    assert [p for o, p in part if o != SAMPLER] == [p for o, p in first if o != SAMPLER]


def test_a_space_without_prior_keeps_its_sampler(tmp_path):
    plain = load_space(space_yaml(tmp_path, "none", SPACE))
    base = optuna.samplers.RandomSampler(seed=0)
    assert with_prior(base, plain) is base
    assert isinstance(with_prior(base, prior_space(tmp_path)), PriorSampler)
    with pytest.raises(ValueError, match="no prior"):
        PriorSampler(base, plain)


def test_the_search_wraps_tpe_and_ray_draws_the_prior_first(tmp_path):
    from salttune.search.algorithms import build_algorithm

    space = prior_space(tmp_path, sets=["startup_trials=2"])
    (tmp_path / "pri").mkdir()
    searcher, _ = build_algorithm(space, tmp_path / "pri")
    sampler = searcher.study.sampler
    assert isinstance(sampler, PriorSampler) and type(sampler.base).__name__ == "TPESampler"
    configs = [searcher.suggest(f"t{i}") for i in range(8)]  # Ray's OptunaSearch: study.ask() + define-by-run
    assert {k: v for k, v in configs[0].items() if k != "optuna_trial"} == prior_point(space)
    for i, c in enumerate(configs[:4]):  # a score each, so that TPE models past its 2 startup trials
        searcher.on_trial_complete(f"t{i}", {"val_score": 0.1 * i, "epoch": space.asha.max_t})
    assert searcher.suggest("t8")["optuna_trial"] == 8
    assert [t.user_attrs["origin"] for t in searcher.study.trials] == [origin(space.seed, n) for n in range(9)]
