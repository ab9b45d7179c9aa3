"""A budgeted search's final models: which configurations train long, and how long a late trial plans to train."""

from salttune.leaderboard import FAILED, FINISHED, PRUNED
from salttune.search.final import choose, final_jobs
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
    assert all(j.everything and j.cfg.epochs == 30 and j.cfg.time_budget_s == 100.0 and j.cfg.optim.lr == 4e-3 for j in jobs)
    assert jobs[1].cfg.seed == jobs[0].cfg.seed + 1000  # the same configuration, another seed


def test_a_late_trial_plans_the_epochs_it_has_time_for():
    assert planned_epochs(10, left_s=1000, epoch_s=10) == 10  # room: max_t
    assert planned_epochs(10, left_s=65, epoch_s=10) == 6  # (65 - 5 s start-up) / 10
    assert planned_epochs(10, left_s=3, epoch_s=10) == 1  # at least one
