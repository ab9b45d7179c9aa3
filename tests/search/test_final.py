"""A budgeted search's final models: which configurations train long, and how long a late trial plans to train."""

import pytest

from salttune.leaderboard import FAILED, FINISHED, PRUNED
from salttune.search.final import FILL_CAP, choose, final_jobs
from salttune.search.space import space_from_dict
from salttune.search.trainable import planned_epochs


def _row(tid, state, score, epochs, lr=3e-3, trial=0):
    return {"trial": trial, "trial_id": tid, "state": state, "best_score": score, "epochs_run": epochs, "optim.lr": lr}


def test_the_finished_trials_go_first_best_first_then_the_furthest():
    rows = [_row("a", PRUNED, 0.9, 4), _row("b", FINISHED, 0.6, 10), _row("c", FINISHED, 0.7, 10), _row("d", FAILED, None, 2),
            _row("e", PRUNED, 0.5, 8)]
    assert [(r["trial_id"], k) for r, k in choose(rows, 3)] == [("c", 0), ("b", 0), ("e", 0)]  # e got further than a


def test_too_few_configurations_train_the_best_again_with_other_seeds(tmp_path):
    rows = [_row("a", FINISHED, 0.7, 10, lr=4e-3, trial=3), _row("d", FAILED, None, 2)]
    assert [(r["trial_id"], k) for r, k in choose(rows, 3)] == [("a", 0), ("a", 1), ("a", 2)]
    assert choose([_row("d", FAILED, None, 2)], 2) == []
    space = space_from_dict({"space": {"optim.lr": {"loguniform": [1e-3, 1e-2]}}, "data": {"folder": str(tmp_path)},
                             "asha": {"max_t": 6, "grace_period": 2}})
    jobs = final_jobs(space, rows, tmp_path, models=2, epochs=30, time_budget_s=100.0)
    assert [j.out.name for j in jobs] == ["trial_a", f"trial_a_seed{jobs[1].cfg.seed}"]
    # under a deadline the clock ends them, not the 30 epochs planned
    assert all(j.everything and j.cfg.epochs == FILL_CAP * 30 and j.cfg.time_budget_s == 100.0 and j.cfg.optim.lr == 4e-3 for j in jobs)
    assert jobs[1].cfg.seed == jobs[0].cfg.seed + 1000  # the same configuration, another seed


def test_a_late_trial_plans_the_epochs_it_has_time_for():
    assert planned_epochs(10, left_s=1000, epoch_s=10) == 10  # room: max_t
    assert planned_epochs(10, left_s=65, epoch_s=10) == 6  # (65 - 5 s start-up) / 10
    assert planned_epochs(10, left_s=3, epoch_s=10) == 1  # at least one


def test_without_trials_the_final_models_are_the_prior_with_one_seed_each(tmp_path):
    raw = {"space": {"optim.lr": {"loguniform": [1e-3, 1e-2]}, "model.block": {"choice": ["residual", "scse", "plain"]}},
           "data": {"folder": str(tmp_path)}, "asha": {"max_t": 6, "grace_period": 2}}
    prior = space_from_dict({**raw, "prior": {"optim.lr": 5e-3, "model.block": "scse"}})
    jobs = final_jobs(prior, [], tmp_path, models=3, epochs=27, time_budget_s=None)
    assert [j.out.name for j in jobs] == ["prior", f"prior_seed{jobs[1].cfg.seed}", f"prior_seed{jobs[2].cfg.seed}"]
    assert [j.cfg.seed - jobs[0].cfg.seed for j in jobs] == [0, 1000, 2000]
    assert all(j.everything and j.cfg.epochs == 27 and j.cfg.optim.lr == 5e-3 and j.cfg.model.block == "scse" for j in jobs)
    middle = final_jobs(space_from_dict(raw), [], tmp_path, models=1, epochs=5, time_budget_s=None)[0]
    assert middle.out.name == "typical"
    middle = middle.cfg
    assert middle.optim.lr == pytest.approx(10 ** -2.5) and middle.model.block == "scse"  # no prior: the middle of the space
