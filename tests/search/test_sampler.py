"""The searcher tells Optuna the truth about finished, pruned and failed trials (``salttune.search.sampler``)."""

import math

import optuna

from search_fixtures import space_yaml
from salttune.search.space import load_space


def test_searcher_tells_optuna_complete_pruned_and_failed(tmp_path):
    from salttune.search.sampler import make_searcher, tpe_sampler

    f = space_yaml(tmp_path, "unit", "  optim.lr: {loguniform: [1.0e-3, 1.0e-2]}", max_t=3)
    space = load_space(f, ["asha.rung_metric=val_score"])  # (the default, val_iou, is checked below)
    searcher = make_searcher(space, tmp_path / "optuna.db", tpe_sampler(space))
    configs = {tid: searcher.suggest(tid) for tid in ("a", "b", "c")}
    assert [c["optuna_trial"] for c in configs.values()] == [0, 1, 2] and all("optim.lr" in c for c in configs.values())
    for epoch, score in [(1, 0.3), (2, 0.5)]:
        searcher.on_trial_result("a", {"val_score": score, "epoch": epoch})
    searcher.on_trial_complete("a", {"val_score": 0.2, "epoch": 3})  # full budget: COMPLETE with the best epoch
    searcher.on_trial_result("b", {"val_score": 0.6, "epoch": 1})
    searcher.on_trial_complete("b", {"val_score": 0.7, "epoch": 2})  # stopped by ASHA at epoch 2: PRUNED
    searcher.on_trial_complete("c", error=True)
    searcher.fail("c", "NonFiniteLoss: loss became nan at step 3")
    searcher.save(str(tmp_path / "searcher.pkl"))
    orphan = searcher.study.ask()  # asked after Tune's last save, then the driver died

    study = optuna.load_study(study_name="unit", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    a, b, c = study.trials[:3]
    # intermediate values are the best score so far (epoch 3's 0.2 is recorded as 0.5)
    assert (a.state, a.value, a.intermediate_values) == (optuna.trial.TrialState.COMPLETE, 0.5, {1: 0.3, 2: 0.5, 3: 0.5})
    assert (b.state, b.intermediate_values) == (optuna.trial.TrialState.PRUNED, {1: 0.6, 2: 0.7})
    # a trial that failed before any epoch: PRUNED with NaN at epoch 1, the worst trial at that fidelity for TPE
    assert c.state == optuna.trial.TrialState.PRUNED and c.user_attrs["fail_reason"].startswith("NonFiniteLoss")
    assert list(c.intermediate_values) == [1] and math.isnan(c.intermediate_values[1])

    resumed = make_searcher(space, tmp_path / "optuna.db", tpe_sampler(space))
    resumed.restore(str(tmp_path / "searcher.pkl"))
    lost = optuna.load_study(study_name="unit", storage=f"sqlite:///{tmp_path / 'optuna.db'}").trials[orphan.number]
    assert lost.state == optuna.trial.TrialState.FAIL and "interrupted" in lost.user_attrs["fail_reason"]
    resumed.on_trial_result("a", {"val_score": 0.9, "epoch": 3})  # re-run after a stale restore: ignored
    resumed.on_trial_complete("a", {"val_score": 0.9, "epoch": 3})
    again = optuna.load_study(study_name="unit", storage=f"sqlite:///{tmp_path / 'optuna.db'}").trials[0]
    assert (again.value, again.intermediate_values[3]) == (0.5, 0.5)


def test_the_classic_searcher_reports_raw_scores_and_tells_fail(tmp_path):
    from salttune.search.sampler import make_searcher, tpe_sampler

    space = load_space(space_yaml(tmp_path, "classic", "  optim.lr: {loguniform: [1.0e-3, 1.0e-2]}", max_t=3), ["asha.rung_score=last", "asha.rung_metric=val_score"])
    searcher = make_searcher(space, tmp_path / "optuna.db", tpe_sampler(space), failed_as="ignored")
    for tid in ("a", "c"):
        searcher.suggest(tid)
    for epoch, score in [(1, 0.3), (2, 0.5)]:
        searcher.on_trial_result("a", {"val_score": score, "epoch": epoch})
    searcher.on_trial_complete("a", {"val_score": 0.2, "epoch": 3})
    searcher.on_trial_result("c", {"val_score": 0.4, "epoch": 1})
    searcher.on_trial_complete("c", error=True)
    searcher.fail("c", "NonFiniteLoss: loss became nan")
    a, c = optuna.load_study(study_name="classic", storage=f"sqlite:///{tmp_path / 'optuna.db'}").trials
    assert (a.state, a.value, a.intermediate_values) == (optuna.trial.TrialState.COMPLETE, 0.5, {1: 0.3, 2: 0.5, 3: 0.2})
    assert (c.state, c.intermediate_values) == (optuna.trial.TrialState.FAIL, {1: 0.4})


def test_a_failed_trial_ranks_below_every_trial_that_got_as_far(tmp_path):
    # Optuna's TPE orders pruned trials by (later step first, then score); a failure is a NaN at the epoch that failed
    from optuna.samplers._tpe.sampler import _get_pruned_trial_score

    from salttune.search.sampler import make_searcher, tpe_sampler

    space = load_space(space_yaml(tmp_path, "rank", "  optim.lr: {loguniform: [1.0e-3, 1.0e-2]}", max_t=9), ["asha.rung_metric=val_score"])
    searcher = make_searcher(space, tmp_path / "optuna.db", tpe_sampler(space))
    for tid in ("weak", "failed", "young"):
        searcher.suggest(tid)
    for epoch in (1, 2):
        searcher.on_trial_result("weak", {"val_score": 0.01, "epoch": epoch})
        searcher.on_trial_result("failed", {"val_score": 0.6, "epoch": epoch})
    searcher.on_trial_complete("weak", {"val_score": 0.01, "epoch": 3})  # stopped at epoch 3
    searcher.on_trial_complete("failed", error=True)  # diverged in epoch 3
    searcher.fail("failed", "NonFiniteLoss")
    searcher.on_trial_complete("young", {"val_score": 0.9, "epoch": 1})  # stopped at epoch 1
    trials = {t.number: t for t in searcher.study.get_trials()}
    order = sorted(trials.values(), key=lambda t: _get_pruned_trial_score(t, searcher.study))
    assert [t.number for t in order] == [0, 1, 2]  # weak (epoch 3), failed (epoch 3, NaN), young (epoch 1)


def test_ray_and_optuna_still_have_the_private_attributes_the_searcher_reaches_into(tmp_path):
    # PruneAwareOptunaSearch reads Ray's OptunaSearch internals through three properties, and Optuna's
    # FrozenTrial._trial_id through storage_id; an upgrade that renames one fails here, naming it.
    from salttune.search.sampler import make_searcher, storage_id, tpe_sampler

    space = load_space(space_yaml(tmp_path, "private", "  optim.lr: {loguniform: [1.0e-3, 1.0e-2]}"))
    searcher = make_searcher(space, tmp_path / "optuna.db", tpe_sampler(space))
    for attr in ("_ot_study", "_ot_trials", "_completed_trials"):
        assert hasattr(searcher, attr), f"Ray moved OptunaSearch.{attr}: update salttune/search/sampler.py"
    searcher.suggest("a")
    assert isinstance(searcher.study, optuna.Study) and searcher.study.study_name == "private"
    assert list(searcher.live_trials) == ["a"] and isinstance(searcher.live_trials["a"], optuna.Trial)
    assert searcher.told == set()
    (frozen,) = searcher.study.get_trials(deepcopy=False)
    assert hasattr(frozen, "_trial_id"), "Optuna moved FrozenTrial._trial_id: update salttune/search/sampler.py"
    assert storage_id(frozen) == searcher.live_trials["a"]._trial_id


def test_intermediate_values_can_follow_another_metric_than_the_objective(tmp_path):
    # asha.rung_metric val_loss (lower is better) in a val_score search: intermediate values are -best val_loss so far,
    # so the study's direction (maximize) still ranks them; the completed value is still the best val_score
    from salttune.search.sampler import make_searcher, tpe_sampler

    space = load_space(space_yaml(tmp_path, "rung", "  optim.lr: {loguniform: [1.0e-3, 1.0e-2]}", max_t=2), ["asha.rung_metric=val_loss"])
    searcher = make_searcher(space, tmp_path / "optuna.db", tpe_sampler(space))
    searcher.suggest("a")
    searcher.on_trial_result("a", {"val_score": 0.3, "val_loss": 0.5, "epoch": 1})
    searcher.on_trial_complete("a", {"val_score": 0.2, "val_loss": 0.7, "epoch": 2})
    (a,) = searcher.study.get_trials()
    assert (a.value, a.intermediate_values) == (0.3, {1: -0.5, 2: -0.5})


def test_a_val_score_search_compares_val_iou_at_its_rungs_by_default(tmp_path):
    from salttune.search.algorithms import rung_metric
    from salttune.search.sampler import make_searcher, tpe_sampler

    space = load_space(space_yaml(tmp_path, "iou", "  optim.lr: {loguniform: [1.0e-3, 1.0e-2]}", max_t=2))
    assert space.asha.rung_metric is None and rung_metric(space) == ("val_iou", "max")
    searcher = make_searcher(space, tmp_path / "optuna.db", tpe_sampler(space))
    searcher.suggest("a")
    searcher.on_trial_result("a", {"val_score": 0.4, "val_iou": 0.2, "epoch": 1})
    searcher.on_trial_complete("a", {"val_score": 0.3, "val_iou": 0.5, "epoch": 2})
    (a,) = searcher.study.get_trials()
    assert (a.value, a.intermediate_values) == (0.4, {1: 0.2, 2: 0.5})  # completed by val_score, rungs by val_iou
