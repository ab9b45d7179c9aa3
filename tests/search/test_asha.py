"""ASHA whose rungs and stop decisions survive a killed driver (``salttune.search.asha``)."""

from types import SimpleNamespace


def test_asha_rungs_and_decisions_survive_a_new_scheduler(tmp_path):
    from ray.tune.schedulers import TrialScheduler

    from salttune.search.asha import ResumableASHA

    def asha():
        return ResumableASHA(tmp_path / "asha.json", metric="val_score", mode="max", max_t=8, grace_period=1, reduction_factor=2)

    first, trials = asha(), [SimpleNamespace(trial_id=f"t{i}") for i in range(5)]
    for t in trials[:4]:
        first.on_trial_add(None, t)
    decisions = [first.on_trial_result(None, t, {"epoch": 1, "val_score": s}) for t, s in zip(trials, [0.4, 0.3, 0.2, 0.1])]
    # rung 1: the first trial has no one to beat; the others are below the median of those before them
    assert decisions == [TrialScheduler.CONTINUE] + [TrialScheduler.STOP] * 3
    second = asha()  # a resumed driver: a new scheduler object, rungs read back from the file
    second.on_trial_add(None, trials[4])
    assert second.rungs[1] == {"t0": 0.4, "t1": 0.3, "t2": 0.2, "t3": 0.1}
    assert second.on_trial_result(None, trials[4], {"epoch": 1, "val_score": 0.2}) == TrialScheduler.STOP  # median 0.25
    second.on_trial_add(None, trials[1])
    assert second.on_trial_result(None, trials[1], {"epoch": 2, "val_score": 0.9}) == TrialScheduler.STOP  # stopped before


def test_ray_still_has_the_private_attributes_asha_reaches_into(tmp_path):
    # ResumableASHA reads and writes these ASHAScheduler internals (each behind one method); a Ray upgrade
    # that renames one fails here, naming it, instead of corrupting the rungs of a resumed search.
    from ray.tune.schedulers import ASHAScheduler

    from salttune.search.asha import ResumableASHA

    ray_asha = ASHAScheduler(time_attr="epoch", metric="val_score", mode="min", max_t=8, grace_period=2, reduction_factor=2)
    for attr in ("_brackets", "_metric_op", "_max_t", "_num_stopped", "_trial_info"):
        assert hasattr(ray_asha, attr), f"Ray moved ASHAScheduler.{attr}: update salttune/search/asha.py"
    assert hasattr(ray_asha._brackets[0], "_rungs"), "Ray moved ASHAScheduler._brackets[0]._rungs: update salttune/search/asha.py"
    ours = ResumableASHA(tmp_path / "asha.json", metric="val_score", mode="min", max_t=8, grace_period=2, reduction_factor=2)
    assert ours._sign() == -1.0 and ours._max_epochs() == 8  # min: Ray flips the sign so that higher is better
    assert sorted(ours.rungs) == [2, 4, 8]  # milestones grace * 2**k up to max_t, each still empty
    ours.on_trial_add(None, SimpleNamespace(trial_id="t0"))
    ours.on_trial_result(None, SimpleNamespace(trial_id="t0"), {"epoch": 2, "val_score": 0.7})
    assert ours.rungs[2] == {"t0": 0.7}  # scores read back as reported, whatever the sign Ray stores
    ours._forget("t0")
    ours._forget("never-added")  # Ray's on_trial_remove would raise KeyError here


def test_asha_compares_the_best_score_so_far_not_the_dip_at_the_rung(tmp_path):
    # a cosine-restart trial at a high learning rate at epoch 2 dips from 0.6 to 0.1; by its best so far it stays
    from ray.tune.schedulers import TrialScheduler

    from salttune.search.asha import ResumableASHA

    def run(rung_score):
        asha = ResumableASHA(tmp_path / f"{rung_score}.json", metric="val_score", mode="max", max_t=8, grace_period=2,
                             reduction_factor=2, rung_score=rung_score)
        steady, restart = SimpleNamespace(trial_id="steady"), SimpleNamespace(trial_id="restart")
        for t in (steady, restart):
            asha.on_trial_add(None, t)
        asha.on_trial_result(None, steady, {"epoch": 1, "val_score": 0.3})
        asha.on_trial_result(None, steady, {"epoch": 2, "val_score": 0.4})
        asha.on_trial_result(None, restart, {"epoch": 1, "val_score": 0.6})
        return asha.on_trial_result(None, restart, {"epoch": 2, "val_score": 0.1}), asha.rungs[2]

    assert run("best") == (TrialScheduler.CONTINUE, {"steady": 0.4, "restart": 0.6})
    assert run("last") == (TrialScheduler.STOP, {"steady": 0.4, "restart": 0.1})


def test_hyperband_brackets_keep_their_rungs_apart(tmp_path):
    import numpy as np

    from salttune.search.asha import ResumableASHA

    np.random.seed(0)
    hb = ResumableASHA(tmp_path / "hb.json", metric="val_score", mode="max", max_t=9, grace_period=1, reduction_factor=3, brackets=3)
    assert sorted(hb.rungs) == [1, 3, 9]  # bracket 0: 1, 3, 9; bracket 1: 3, 9; bracket 2: 9
    assert len(hb._rung_records()) == 6
