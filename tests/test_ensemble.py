import numpy as np
import pytest

from salttune.ensemble import (
    COMBINERS,
    Linear,
    combiners_for,
    combine,
    combine_salt,
    cross_validate,
    cross_validate_choice,
    fit_auto,
    fit_greedy,
    fit_mean,
    fit_ridge,
    fit_single,
    tune_cutoffs,
    _binarize,
)
from salttune.errors import SalttuneError
from salttune.metric import competition_score


def planted(n=60, size=12, seed=0):
    """Truth masks (a third empty) and three members: good, mediocre, noise."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((n, size, size), bool)
    for i in range(n):
        if i % 3:
            r = rng.integers(2, size)
            truth[i, :r, : rng.integers(2, size)] = True
    good = np.clip(truth * 0.8 + rng.normal(0.1, 0.15, truth.shape), 0, 1)
    mid = np.clip(truth * 0.55 + rng.normal(0.2, 0.25, truth.shape), 0, 1)
    noise = rng.random(truth.shape)
    return np.stack([good, mid, noise]).astype(np.float16), truth


def test_linear_combiners():
    probs, truth = planted()
    np.testing.assert_allclose(fit_mean(probs, truth).weights, [1 / 3] * 3)
    single = fit_single(probs, truth)
    assert single.info["member"] == 0
    np.testing.assert_allclose(combine(probs, single), probs[0].astype(np.float32))
    greedy = fit_greedy(probs, truth)
    assert greedy.weights[0] == greedy.weights.max()
    # the kept prefix is the best ensemble on the path, and its weights give that score
    assert competition_score(combine(probs, greedy) > 0.5, truth) == max(greedy.info["round_scores"]) > 0.99
    ridge = fit_ridge(probs, truth)
    assert ridge.weights[0] > ridge.weights[1] >= 0 and ridge.weights[2] < 0.05


def two_to_one():
    """Three members on two 4x4 images where the mean of two picks of member 0 and one of member 1 is
    perfect, and nothing with fewer picks is. Image 0: salt on the left half; member 0 says 0.6 on the whole
    image, member 1 0.35 on the left half. Image 1: empty; member 1 says 0.6 on it. Member 2 says 1 everywhere.
    Scores at 0.5: member 0 alone 0.5 (image 0 has IoU 0.5: 0), member 1 alone 0 and member 2 alone 0; 1:1 of
    members 0 and 1 0.5 (left half 0.475); 2:1 1.0 (left 0.517, right 0.4, image 1 0.2)."""
    truth = np.zeros((2, 4, 4), bool)
    truth[0, :, :2] = True
    probs = np.zeros((3, 2, 4, 4), np.float32)
    probs[0, 0] = 0.6
    probs[1, 0, :, :2] = 0.35
    probs[1, 1] = 0.6
    probs[2] = 1.0
    return probs.astype(np.float16), truth


def test_greedy_picks_with_replacement_and_keeps_the_best_prefix():
    probs, truth = two_to_one()
    g = fit_greedy(probs, truth, size=4)
    # round 1: member 0 (0.5; members 1 and 2 score 0); round 2: all three tie at 0.5, the lowest index wins;
    # round 3: member 1 makes the 2:1 mix (1.0); round 4: member 0 again, 3:1 also scores 1.0
    assert g.info["picks"] == [0, 0, 1, 0]
    assert g.info["round_scores"] == [0.5, 0.5, 1.0, 1.0]
    assert g.info["prefix"] == 3 and g.info["counts"] == [2, 1, 0]  # the shorter of the two best prefixes
    np.testing.assert_allclose(g.weights, [2 / 3, 1 / 3, 0])
    assert competition_score(combine(probs, g) > 0.5, truth) == 1.0


@pytest.mark.parametrize("size", [1, 2, 7])
def test_greedy_never_exceeds_size_picks(size):
    probs, truth = two_to_one()
    g = fit_greedy(probs, truth, size=size)
    assert len(g.info["picks"]) == len(g.info["round_scores"]) == size
    assert sum(g.info["counts"]) == g.info["prefix"] <= size
    assert g.weights.sum() == pytest.approx(1.0)
    if size < 3:  # too few rounds for the 2:1 mix: member 0 alone is the best (and shortest) prefix
        np.testing.assert_allclose(g.weights, [1, 0, 0])


def test_stacker_recovers_a_known_convex_mix():
    rng = np.random.default_rng(1)
    probs = rng.random((3, 40, 10, 10)).astype(np.float16)
    target = 0.7 * probs[0].astype(np.float32) + 0.3 * probs[1].astype(np.float32)  # member 2 is useless
    comb = fit_ridge(probs, target, alpha=1e-6)
    np.testing.assert_allclose(comb.weights, [0.7, 0.3, 0.0], atol=5e-3)
    assert comb.weights.sum() == pytest.approx(1.0) and comb.bias == 0.0


def test_stacker_weights_are_non_negative_and_sum_to_one():
    probs, truth = planted()
    comb = fit_ridge(probs, truth)
    assert (comb.weights >= 0).all() and comb.weights.sum() == pytest.approx(1.0) and comb.bias == 0.0
    assert sum(comb.info["coef"]) < 0.99  # the raw coefficients do not sum to one: the normalising matters
    np.testing.assert_allclose(comb.weights, np.array(comb.info["coef"]) / sum(comb.info["coef"]))
    # a target no member explains with a positive weight: every coefficient is 0, and the result is the mean
    flat = fit_ridge(probs, np.zeros(truth.shape, bool))
    np.testing.assert_allclose(flat.weights, [1 / 3] * 3)


def test_tune_cutoffs_finds_threshold_and_min_area():
    truth = np.zeros((4, 10, 10), bool)
    truth[0, :5, :5] = True
    truth[1, :6, :6] = True
    p = truth * 0.42 + 0.0  # salt at 0.42: only thresholds below it find it
    p[2, 0, 0] = 0.9  # a lone false-positive pixel: min_area >= 10 removes it
    t, a, c, s = tune_cutoffs(p, truth)
    assert t < 0.42 and a >= 10 and c is None and s == 1.0


def test_cross_validation_scores_only_held_out_images():
    probs, truth = planted(n=90)
    res = cross_validate(fit_single, probs, truth, k=3)
    # the out-of-fold predictions are exactly what the fold's fitted combiner does on unseen images
    assert res["score"] == pytest.approx(competition_score(res["oof_pred"], truth))
    assert res["final"].info["member"] == 0
    noise_only = cross_validate(fit_mean, probs[2:], truth, k=3)
    assert noise_only["score"] < res["score"]


def test_combiner_registry():
    probs, truth = planted()
    for name, c in COMBINERS.items():  # every entry fits (M,) weights and has a label for the report
        assert c.fit(probs, truth).weights.shape == (3,) and c.label, name
    assert combiners_for("auto") == ["mean", "greedy", "ridge"]  # all but the single-snapshot baseline
    assert combiners_for("ridge") == ["ridge"]
    assert COMBINERS["ridge"].label == "non-negative stacker"
    with pytest.raises(SalttuneError, match="'vote' is unknown; allowed: auto, single, mean, greedy, ridge"):
        combiners_for("vote")


def salt_planted(n: int = 40):
    """Images in fours: two with salt (25 and 36 pixels, found at 0.8), two empty with a 49-pixel false
    positive at 0.9 that no threshold or min area removes without the true masks; salt-present probabilities
    [0.9, 0.8, 0.05, 0.3] tell them apart."""
    truth = np.zeros((n, 10, 10), bool)
    p = np.zeros((n, 10, 10), np.float32)
    salt = np.zeros(n, np.float32)
    for i in range(0, n, 4):
        truth[i, :5, :5] = truth[i + 1, :6, :6] = True
        p[i : i + 2] = truth[i : i + 2] * 0.8
        p[i + 2 : i + 4, 3:, 3:] = 0.9
        salt[i : i + 4] = [0.9, 0.8, 0.05, 0.3]
    return p, truth, salt


def test_tune_cutoffs_chooses_the_salt_cutoff():
    p, truth, salt = salt_planted(4)
    # Without the head the best is 0.5 (keep the two salt images, or empty all four); with it, every cut-off in
    # (0.3, 0.8] scores 1; the grid's first is 0.4 (0.3 keeps image 3: 0.3 >= 0.3).
    assert tune_cutoffs(p, truth)[2:] == (None, 0.5)
    t, a, c, s = tune_cutoffs(p, truth, salt)
    assert (c, s) == (0.4, 1.0)
    assert _binarize(p, t, a, salt, c).reshape(4, -1).any(1).tolist() == [True, True, False, False]
    # A cut-off that does not help stays off.
    assert tune_cutoffs(p, truth, np.ones(4, np.float32))[2] is None


def test_combine_salt_weighs_members_with_a_head():
    salt = np.array([[0.2, 0.8], [np.nan, np.nan], [0.6, 0.4]], np.float32)  # member 1 has no salt head
    got = combine_salt(salt, Linear(np.array([0.5, 0.25, 0.25])))
    np.testing.assert_allclose(got, [(0.5 * 0.2 + 0.25 * 0.6) / 0.75, (0.5 * 0.8 + 0.25 * 0.4) / 0.75], rtol=1e-6)
    assert combine_salt(salt, Linear(np.array([0.0, 1.0, 0.0]))) is None  # only a member without a head counts
    assert combine_salt(None, Linear(np.array([1.0, 0.0, 0.0]))) is None


def test_cross_validation_chooses_the_salt_cutoff_on_other_folds():
    p, truth, salt = salt_planted(40)
    probs = np.stack([p, p * 0.9]).astype(np.float16)  # (2, N, H, W)
    salts = np.stack([salt, np.full_like(salt, np.nan)])  # the second member has no salt head
    with_head = cross_validate(fit_mean, probs, truth, k=4, salt=salts)
    without = cross_validate(fit_mean, probs, truth, k=4)
    assert with_head["final"].salt_cutoff == 0.4 and without["final"].salt_cutoff is None
    assert with_head["score"] == 1.0 and without["score"] == pytest.approx(0.5)
    assert with_head["score"] == pytest.approx(competition_score(with_head["oof_pred"], truth))
    # Members without a head only: the cut-off stays off, the same result as no salt at all.
    no_heads = cross_validate(fit_mean, probs, truth, k=4, salt=np.full_like(salts, np.nan))
    assert no_heads["final"].salt_cutoff is None and no_heads["score"] == without["score"]


def test_iter_ensemble_applies_the_salt_cutoff(tmp_path):
    import torch

    from salttune.checkpoint import save_checkpoint
    from salttune.ensemble import Member, iter_ensemble, member_outputs
    from salttune.model import build_model

    members = []
    for k, (head, bias) in enumerate([(True, 0.0), (False, None), (True, 2.0)]):  # salt probabilities 0.5, -, 0.88
        torch.manual_seed(k)
        net = build_model(base_width=4, depth=2, salt_head=head)
        if head:
            torch.nn.init.zeros_(net.salt.weight)
            torch.nn.init.constant_(net.salt.bias, bias)
        path = save_checkpoint(tmp_path / f"m{k}.pt", {"model_args": net.config, "model": net.state_dict()})
        members.append(Member(f"t{k}", str(path), 0.0))
    imgs = np.random.default_rng(0).integers(0, 256, (3, 13, 13), dtype=np.uint8)
    depths = np.zeros(3)
    cpu = torch.device("cpu")
    probs, salt = member_outputs(members, imgs, depths, cpu, "none")
    assert probs.shape == (3, 3, 13, 13) and np.isnan(salt[1]).all()
    np.testing.assert_allclose(salt[[0, 2]], [[0.5] * 3, [1 / (1 + np.exp(-2.0))] * 3], rtol=1e-6)
    comb = Linear(np.array([0.5, 0.25, 0.25]), threshold=0.5)
    kept = np.concatenate(list(iter_ensemble(members, comb, imgs, depths, cpu, "none")))
    np.testing.assert_allclose(kept, combine(probs, comb), atol=2e-3)  # float16 members vs float32 here
    # ensemble salt probability (0.5 * 0.5 + 0.25 * 0.88) / 0.75 = 0.627: a cut-off of 0.7 empties every image
    cut = Linear(comb.weights, threshold=0.5, salt_cutoff=0.7)
    assert not np.concatenate(list(iter_ensemble(members, cut, imgs, depths, cpu, "none"))).any()
    cut = Linear(comb.weights, threshold=0.5, salt_cutoff=0.6)
    np.testing.assert_array_equal(np.concatenate(list(iter_ensemble(members, cut, imgs, depths, cpu, "none"))), kept)


def test_fit_auto_chooses_by_inner_folds_and_refits_on_all():
    probs, truth = planted(n=48, size=10)
    comb = fit_auto(probs, truth, names=["mean", "single"], inner_folds=3)
    inner = {n: cross_validate(COMBINERS[n].fit, probs, truth, k=3) for n in ["mean", "single"]}
    assert comb.info["chosen"] == "single"
    assert comb.info["inner_scores"] == {n: {"score": r["score"], "iou": r["iou"]} for n, r in inner.items()}
    np.testing.assert_array_equal(comb.weights, inner["single"]["final"].weights)  # the refit on all 48 images
    assert comb.threshold == inner["single"]["final"].threshold


def test_nested_choice_of_a_clearly_best_combiner():
    probs, truth = planted(n=48, size=10)  # the good member alone beats any mean with the noise
    res = cross_validate_choice(["mean", "single"], probs, truth, k=3, inner_folds=3)
    assert res["chosen"] == "single" and [f["chosen"] for f in res["folds"]] == ["single"] * 3
    assert res["score"] == pytest.approx(competition_score(res["oof_pred"], truth))
    # every fold chose single, so the nested predictions are single's own out-of-fold ones
    np.testing.assert_array_equal(res["oof_pred"], res["rows"]["single"]["oof_pred"])
    assert res["score"] == res["rows"]["single"]["score"] == 1.0 > res["rows"]["mean"]["score"]
    assert res["final"].info["member"] == 0


def test_nested_choice_is_made_without_the_held_out_images():
    from salttune.ensemble import _binarize
    from salttune.split import kfold_splits

    # members of similar quality: which combiner wins depends on the images it is chosen on
    probs, truth = planted(n=48, size=10, seed=2)
    probs = probs[:2]
    names = ["single", "mean"]
    res = cross_validate_choice(names, probs, truth, k=3, inner_folds=3)
    expected = np.zeros(truth.shape, bool)
    for fold, (tr, va) in zip(res["folds"], kfold_splits(truth, k=3, seed=0)):
        # the fold's inner scores are those of a 3-fold CV on its fitting images alone, and it chose their best
        inner = {n: cross_validate(COMBINERS[n].fit, probs[:, tr], truth[tr], k=3) for n in names}
        assert fold["inner_scores"] == {n: {"score": r["score"], "iou": r["iou"]} for n, r in inner.items()}
        assert fold["chosen"] == max(names, key=lambda n: inner[n]["score"])
        c = inner[fold["chosen"]]["final"]
        expected[va] = _binarize(combine(probs[:, va], c), c.threshold, c.min_area)
    np.testing.assert_array_equal(res["oof_pred"], expected)
    # the folds disagree, and the choice on all images (mean) is not every fold's: picking the best of the
    # combiners' own CV scores (0.925) would overstate the nested figure (0.883)
    assert [f["chosen"] for f in res["folds"]] == ["single", "single", "mean"] and res["chosen"] == "mean"
    assert res["score"] == pytest.approx(competition_score(expected, truth)) == pytest.approx(0.8833333, abs=1e-6)
    assert res["score"] < max(r["score"] for r in res["rows"].values()) == pytest.approx(0.925)


def test_nested_choice_hands_each_fold_its_salt_probabilities():
    p, truth, salt = salt_planted(40)
    probs = np.stack([p, p * 0.9]).astype(np.float16)  # (2, N, H, W)
    salts = np.stack([salt, np.full_like(salt, np.nan)])  # the second member has no salt head
    res = cross_validate_choice(["mean", "single"], probs, truth, k=4, salt=salts, inner_folds=2)
    # with its head the cut-off empties the false positives on every fold: 1.0, as in the plain CV above
    assert res["score"] == 1.0 and res["final"].salt_cutoff == 0.4
    assert res["rows"]["mean"]["score"] == cross_validate(fit_mean, probs, truth, k=4, salt=salts)["score"]
