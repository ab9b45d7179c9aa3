"""Loss values on tiny hand-computed cases, Lovasz gradients, empty masks and the combiner."""

import itertools
import math

import pytest
import torch

from salttune.config import LossConfig
from salttune.errors import SalttuneError
from salttune.heads import NOT_FAMILY, build_loss_from_config  # the config's settings reaching the loss functions
from salttune.losses import (
    LOSSES,
    CombinedLoss,
    bce,
    build_loss,
    dice,
    family_params,
    focal,
    lovasz_grad,
    lovasz_hinge,
    lovasz_hinge_elu,
    lovasz_symmetric,
)


def t4(*values: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Four values as a (1, 1, 2, 2) tensor, row-major."""
    return torch.tensor(values, dtype=dtype).reshape(1, 1, 2, 2)


# The worked Lovasz example used below (hand computation):
#   logits  = [2, -0.5, 0.5, -3], targets = [1, 0, 0, 1], signs = [1, -1, -1, 1]
#   errors  = 1 - logits*signs = [-1, 0.5, 1.5, 4]
#   sorted  = 4 (px3, gt 1), 1.5 (px2, gt 0), 0.5 (px1, gt 0), -1 (px0, gt 1);   gt = {0, 3}
#   J(S) = |S| / |gt U S|: J({3}) = 1/2, J({3,2}) = 2/3, J({3,2,1}) = 3/4, J(all) = 1
#   grad  = [1/2, 1/6, 1/12, 1/4]
#   loss  = 4/2 + 1.5/6 + 0.5/12 + 0 = 55/24
#   dloss/dlogit_i = -sign_i * grad_i * [error_i > 0] = [0, +1/12, +1/6, -1/2]
LOGITS = (2.0, -0.5, 0.5, -3.0)
TARGETS = (1.0, 0.0, 0.0, 1.0)


def lovasz_bruteforce(logits: list[float], labels: list[float], act=lambda e: max(e, 0.0)) -> float:
    """Lovasz extension by its definition: sum_i act(e_(i)) * (J(S_i) - J(S_{i-1})), J by Python sets."""
    gt = {i for i, y in enumerate(labels) if y == 1.0}
    errors = [1.0 - x * (2.0 * y - 1.0) for x, y in zip(logits, labels)]
    order = sorted(range(len(errors)), key=lambda i: -errors[i])

    def jaccard_loss(wrong: set[int]) -> float:
        union = gt | wrong
        return len(wrong) / len(union) if union else 0.0

    total, prev, wrong = 0.0, 0.0, set()
    for i in order:
        wrong.add(i)
        cur = jaccard_loss(wrong)
        total += act(errors[i]) * (cur - prev)
        prev = cur
    return total


# ---------------------------------------------------------------------------------------------- bce, focal, dice


def test_bce_hand_value():
    # p = sigmoid(0) = 1/2 and sigmoid(ln 3) = 3/4 for positives; 1 - sigmoid(-ln 3) = 3/4 for a negative.
    logits, targets = t4(0.0, math.log(3), -math.log(3), 0.0), t4(1, 1, 0, 0)
    expected = (math.log(2) + math.log(4 / 3) + math.log(4 / 3) + math.log(2)) / 4
    assert bce(logits, targets).item() == pytest.approx(expected, rel=1e-6)


def test_focal_hand_value():
    # Every p_t = 1/2: loss_i = alpha_t * (1/2)**2 * ln 2, alpha_t = 0.25 for the 2 positives, 0.75 for the 2 negatives.
    logits, targets = t4(0, 0, 0, 0), t4(1, 1, 0, 0)
    expected = (2 * 0.25 + 2 * 0.75) * 0.25 * math.log(2) / 4
    assert focal(logits, targets, alpha=0.25).item() == pytest.approx(expected, rel=1e-6)
    # the default, alpha=None, weighs every pixel 1: (1/2)**2 * ln 2
    assert focal(logits, targets).item() == pytest.approx(0.25 * math.log(2), rel=1e-6)
    # alpha=None, gamma=1, p_t = 3/4 everywhere: (1/4) * ln(4/3)
    logits, targets = t4(math.log(3), math.log(3), -math.log(3), -math.log(3)), t4(1, 1, 0, 0)
    assert focal(logits, targets, gamma=1.0, alpha=None).item() == pytest.approx(0.25 * math.log(4 / 3), rel=1e-6)


def test_focal_gamma0_no_alpha_is_bce():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 5, 5, generator=g) * 3
    targets = (torch.rand(3, 1, 5, 5, generator=g) > 0.5).float()
    assert torch.allclose(focal(logits, targets, gamma=0.0, alpha=None), bce(logits, targets))


def test_dice_hand_value():
    # p = 1/2 everywhere, t = [1, 0, 0, 1]: |pt| = 1, |p| + |t| = 4 -> dice (2 + 1)/(4 + 1) = 0.6
    assert dice(t4(0, 0, 0, 0), t4(1, 0, 0, 1)).item() == pytest.approx(0.4, rel=1e-6)
    assert dice(t4(0, 0, 0, 0), t4(1, 0, 0, 1), smooth=0.0).item() == pytest.approx(0.5, rel=1e-6)


def test_dice_per_image():
    # image 0: p = 1/2, t = [1, 0, 0, 1] -> 0.4 (above); image 1: p = 1/2, t = 0 -> 1 - 1/(2 + 1) = 2/3
    logits = torch.zeros(2, 1, 2, 2)
    targets = torch.cat([t4(1, 0, 0, 1), t4(0, 0, 0, 0)])
    assert dice(logits, targets, per_image=True).item() == pytest.approx((0.4 + 2 / 3) / 2, rel=1e-6)
    # whole batch: |pt| = 1, |p| + |t| = 4 + 2 -> 1 - 3/7
    assert dice(logits, targets).item() == pytest.approx(1 - 3 / 7, rel=1e-6)


# ---------------------------------------------------------------------------------------------- Lovasz


def test_lovasz_grad_hand_value():
    # gt sorted [1, 0, 0, 1] (the worked example) -> [1/2, 1/6, 1/12, 1/4]
    grad = lovasz_grad(torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64))
    assert torch.allclose(grad, torch.tensor([1 / 2, 1 / 6, 1 / 12, 1 / 4], dtype=torch.float64))
    assert lovasz_grad(torch.tensor([1.0, 0.0, 0.0, 1.0])).sum().item() == pytest.approx(1.0)  # telescopes to J(all) = 1


def test_lovasz_hinge_hand_value_and_gradient():
    logits = t4(*LOGITS, dtype=torch.float64).requires_grad_()
    loss = lovasz_hinge(logits, t4(*TARGETS, dtype=torch.float64))
    assert loss.item() == pytest.approx(55 / 24, rel=1e-12)
    loss.backward()
    assert torch.allclose(logits.grad, t4(0, 1 / 12, 1 / 6, -1 / 2, dtype=torch.float64))


def test_lovasz_elu_hand_value():
    # elu(e) + 1 on the sorted errors [4, 1.5, 0.5, -1] -> [5, 2.5, 1.5, e^-1]
    expected = 5 / 2 + 2.5 / 6 + 1.5 / 12 + math.exp(-1) / 4
    got = lovasz_hinge_elu(t4(*LOGITS, dtype=torch.float64), t4(*TARGETS, dtype=torch.float64))
    assert got.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_lovasz_matches_bruteforce_definition(seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(1, 1, 3, 3, generator=g, dtype=torch.float64) * 2
    targets = (torch.rand(1, 1, 3, 3, generator=g) > 0.5).double()
    x, y = logits.flatten().tolist(), targets.flatten().tolist()
    assert lovasz_hinge(logits, targets).item() == pytest.approx(lovasz_bruteforce(x, y), rel=1e-10)
    elu1 = lambda e: e + 1 if e > 0 else math.exp(e)  # noqa: E731
    assert lovasz_hinge_elu(logits, targets).item() == pytest.approx(lovasz_bruteforce(x, y, elu1), rel=1e-10)


def test_lovasz_per_image_is_mean_of_images():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 1, 3, 3, generator=g, dtype=torch.float64)
    targets = (torch.rand(3, 1, 3, 3, generator=g) > 0.5).double()
    per = [lovasz_bruteforce(lg.flatten().tolist(), t.flatten().tolist()) for lg, t in zip(logits, targets)]
    assert lovasz_hinge(logits, targets, per_image=True).item() == pytest.approx(sum(per) / 3, rel=1e-10)
    whole = lovasz_bruteforce(logits.flatten().tolist(), targets.flatten().tolist())
    assert lovasz_hinge(logits, targets, per_image=False).item() == pytest.approx(whole, rel=1e-10)


@pytest.mark.parametrize("fn", [lovasz_hinge, lovasz_hinge_elu, lovasz_symmetric])
def test_lovasz_gradcheck(fn):
    g = torch.Generator().manual_seed(2)
    # Values spread apart so that no two errors tie and none sits at the relu kink within eps.
    values = torch.randperm(18, generator=g).double() * 0.37 - 3.1
    logits = values.reshape(2, 1, 3, 3).requires_grad_()
    targets = (torch.rand(2, 1, 3, 3, generator=g) > 0.5).double()
    assert torch.autograd.gradcheck(lambda x: fn(x, targets), (logits,), eps=1e-6, atol=1e-6)


def test_lovasz_empty_mask_reference_behaviour():
    # No salt: lovasz_grad = [1, 0, 0, 0], so the loss is relu(1 + max logit) = relu(1 + 0.5) = 1.5.
    logits, empty = t4(-2.0, -1.0, 0.5, -3.0), t4(0, 0, 0, 0)
    assert lovasz_grad(torch.zeros(4)).tolist() == [1.0, 0.0, 0.0, 0.0]
    assert lovasz_hinge(logits, empty).item() == pytest.approx(1.5)
    # ... and 0 as soon as every logit is <= -1, however wrong the rest might have been before.
    assert lovasz_hinge(t4(-1.0, -5.0, -1.0, -2.0), empty).item() == 0.0
    # Symmetric: the background term sees a full mask, errors 1 + logit = [-1, 0, 1.5, -2], grad 1/4 each.
    assert lovasz_symmetric(logits, empty).item() == pytest.approx((1.5 + 1.5 / 4) / 2)
    assert lovasz_hinge_elu(logits, empty).item() == pytest.approx(2.5)  # elu(1.5) + 1


def test_every_loss_finite_on_empty_masks():
    logits = torch.randn(2, 1, 4, 4, requires_grad=True)
    empty = torch.zeros(2, 1, 4, 4)
    for name, fn in LOSSES.items():
        loss = fn(logits, empty)
        loss.backward()
        assert torch.isfinite(loss), name
        assert torch.isfinite(logits.grad).all(), name
        logits.grad = None
    assert lovasz_symmetric(torch.zeros(2, 1, 4, 4), empty).item() > 0


def test_perfect_predictions_near_zero():
    targets = torch.cat([t4(1, 0, 0, 1), t4(0, 0, 0, 0), t4(1, 1, 1, 1)])
    logits = (2 * targets - 1) * 20.0  # confident and right everywhere
    for name in ("dice", "lovasz", "lovasz_symmetric", "bce", "focal"):
        assert LOSSES[name](logits, targets).item() == pytest.approx(0.0, abs=1e-6), name
    assert dice(logits, targets, per_image=True).item() == pytest.approx(0.0, abs=1e-6)


def test_bfloat16_logits_are_upcast():
    logits = torch.randn(2, 1, 8, 8)
    targets = (torch.rand(2, 1, 8, 8) > 0.5).float()
    for name, fn in LOSSES.items():
        got = fn(logits.bfloat16(), targets)
        assert got.dtype == torch.float32, name
        assert got.item() == pytest.approx(fn(logits.bfloat16().float(), targets).item(), rel=1e-6), name


# ---------------------------------------------------------------------------------------------- build_loss


def test_build_loss_weights_and_params():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 1, 5, 5, generator=g)
    targets = (torch.rand(2, 1, 5, 5, generator=g) > 0.5).float()
    loss = build_loss("bce+lovasz")
    assert isinstance(loss, CombinedLoss)
    assert torch.allclose(loss(logits, targets), bce(logits, targets) + lovasz_hinge(logits, targets))
    loss = build_loss("focal + dice", weights=[2.0, 0.5], focal_gamma=1.0, focal_alpha=None, dice_per_image=True)
    expected = 2.0 * focal(logits, targets, gamma=1.0, alpha=None) + 0.5 * dice(logits, targets, per_image=True)
    assert torch.allclose(loss(logits, targets), expected)
    # the longest term name owns the parameter: lovasz_elu_per_image goes to lovasz_elu, not lovasz
    loss = build_loss("lovasz+lovasz_elu", weights=[0.0, 1.0], lovasz_elu_per_image=False)
    assert loss.params == {"lovasz": {}, "lovasz_elu": {"per_image": False}}
    assert torch.allclose(loss(logits, targets), lovasz_hinge_elu(logits, targets, per_image=False))


def test_build_loss_every_name():
    logits, targets = t4(*LOGITS), t4(*TARGETS)
    for a, b in itertools.combinations(LOSSES, 2):
        got = build_loss(f"{a}+{b}")(logits, targets)
        assert got.item() == pytest.approx((LOSSES[a](logits, targets) + LOSSES[b](logits, targets)).item(), rel=1e-6)


@pytest.mark.parametrize(
    "spec, kwargs, match",
    [
        ("bce+lovaz", {}, "unknown loss 'lovaz'.*valid names: bce, dice, focal, lovasz, lovasz_elu"),
        ("bce+", {}, "unknown loss ''"),
        ("bce+bce", {}, "repeats"),
        ("bce+dice", {"weights": [1.0]}, "2 term.*1 weight"),
        ("bce+dice", {"weights": [1.0, -0.5]}, ">= 0"),
        ("bce+dice", {"weights": [1.0, float("nan")]}, ">= 0"),
        ("bce+dice", {"focal_gamma": 1.0}, "names no term"),
        ("focal", {"focal_beta": 1.0}, "no argument 'beta'.*gamma, alpha"),
    ],
)
def test_build_loss_errors(spec, kwargs, match):
    with pytest.raises(SalttuneError, match=match):
        build_loss(spec, **kwargs)


# ---------------------------------------------------------------------------------------------- config settings


def test_family_settings_reach_every_term_of_the_family_in_the_spec():
    settings = {"focal_gamma": 1.0, "dice_per_image": True, "lovasz_per_image": False}
    assert family_params("bce+lovasz_symmetric", settings) == {"lovasz_symmetric_per_image": False}
    assert family_params("focal+lovasz+lovasz_elu", settings) == {
        "focal_gamma": 1.0, "lovasz_per_image": False, "lovasz_elu_per_image": False}
    assert family_params("dice", settings) == {"dice_per_image": True}
    assert family_params("bce", settings) == {}
    # a narrower family overrides a wider one, whatever the order of the settings
    assert family_params("lovasz+lovasz_elu", {"lovasz_elu_per_image": True, "lovasz_per_image": False}) == {
        "lovasz_per_image": False, "lovasz_elu_per_image": True}


@pytest.mark.parametrize(
    "settings, match",
    [({"hinge_margin": 1.0}, "'hinge_margin' names no loss"), ({"dice_gamma": 1.0}, "no dice loss has an argument 'gamma'")],
)
def test_family_settings_errors(settings, match):
    with pytest.raises(SalttuneError, match=match):
        family_params("bce", settings)


def test_every_loss_config_setting_names_a_family_argument():
    settings = {k: v for k, v in vars(LossConfig()).items() if k not in NOT_FAMILY}
    assert set(settings) >= {"focal_gamma", "focal_alpha", "dice_per_image", "lovasz_per_image"}
    family_params("bce", settings)  # raises on a setting no loss takes


def test_config_defaults_are_the_functions_defaults():
    """The default LossConfig settings give the loss functions' own defaults: dice over the batch, Lovasz per image."""
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(3, 1, 6, 6, generator=g)
    targets = (torch.rand(3, 1, 6, 6, generator=g) > 0.6).float()
    spec = "focal+dice+lovasz_elu+lovasz_symmetric"
    got = build_loss_from_config(LossConfig(name=spec, weights=None))(logits, targets)
    assert got.item() == pytest.approx(build_loss(spec)(logits, targets).item(), rel=1e-6)
    flipped = LossConfig(name=spec, weights=None, focal_gamma=0.5, focal_alpha=None, dice_per_image=True, lovasz_per_image=False)
    expected = (focal(logits, targets, gamma=0.5, alpha=None) + dice(logits, targets, per_image=True)
                + lovasz_hinge_elu(logits, targets, per_image=False) + lovasz_symmetric(logits, targets, per_image=False))
    assert build_loss_from_config(flipped)(logits, targets).item() == pytest.approx(expected.item(), rel=1e-6)


def _salt_and_empty():
    """Image A: logits [0.5, 0], mask [1, 0]. Image B: logits [3, 3], empty mask. (2, 1, 1, 2)."""
    logits = torch.tensor([[[[0.5, 0.0]]], [[[3.0, 3.0]]]], requires_grad=True)
    return logits, torch.tensor([[[[1.0, 0.0]]], [[[0.0, 0.0]]]])


def test_lovasz_nonempty_only_hand_value():
    # A: errors [0.5, 1] -> sorted [1 (background), 0.5 (salt)], lovasz_grad([0, 1]) = [0.5, 0.5]: 0.75.
    # B (empty): relu(1 + max logit) = 4. Per image: (0.75 + 4) / 2 = 2.375; over non-empty images only: 0.75.
    logits, targets = _salt_and_empty()
    assert lovasz_hinge(logits, targets).item() == pytest.approx(2.375)
    assert lovasz_hinge(logits, targets, nonempty_only=True).item() == pytest.approx(0.75)
    assert lovasz_hinge(logits, targets, per_image=False, nonempty_only=True).item() == pytest.approx(0.75)
    # Symmetric: background term of A: errors [0.5 (t=0), 1 (t=1)] of -x, grad [1, 0]: 1; (0.75 + 1) / 2.
    assert lovasz_symmetric(logits, targets, nonempty_only=True).item() == pytest.approx(0.875)
    # elu + 1 on A alone: sorted errors [1, 0.5] -> (elu(1) + 1) * 0.5 + (elu(0.5) + 1) * 0.5 = 1.75.
    assert lovasz_hinge_elu(logits, targets, nonempty_only=True).item() == pytest.approx(1.75)
    lovasz_hinge(logits, targets, nonempty_only=True).backward()
    assert logits.grad[1].abs().sum() == 0  # the empty image gets no gradient


@pytest.mark.parametrize("fn", [lovasz_hinge, lovasz_hinge_elu, lovasz_symmetric])
@pytest.mark.parametrize("per_image", [True, False])
def test_lovasz_nonempty_only_batch_without_salt_is_zero(fn, per_image):
    logits = torch.randn(3, 1, 4, 4, requires_grad=True)
    loss = fn(logits, torch.zeros(3, 1, 4, 4), per_image=per_image, nonempty_only=True)
    assert loss.item() == 0.0
    loss.backward()  # still part of the graph, with zero gradient
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_lovasz_nonempty_only_from_config():
    logits, targets = _salt_and_empty()
    on = build_loss_from_config(LossConfig(name="bce+lovasz", weights=(0.0, 1.0), lovasz_nonempty_only=True))
    assert on(logits, targets).item() == pytest.approx(0.75)
    off = build_loss_from_config(LossConfig(name="bce+lovasz", weights=(0.0, 1.0)))
    assert off(logits, targets).item() == pytest.approx(2.375)


def test_a_replanned_run_moves_only_the_stage_switches_it_has_not_passed():
    from salttune.losses import StagedLoss, parse_stages

    staged = StagedLoss([1, 2, 3], parse_stages("bce:20%,dice:30%,lovasz"), run_epochs=10)
    assert staged.stage_epochs() == [2, 3, None]
    staged.replan(20, done=1)  # nothing switched yet: the shares of 20 epochs
    assert staged.stage_epochs() == [4, 6, None] and staged.at(3) == 1 and staged.at(4) == 2
    staged.replan(10, done=5)  # 2 + 3 would put epochs 2-4 in later stages than they trained: kept
    assert staged.stage_epochs() == [4, 6, None]
    staged.replan(30, done=5)  # the first switch (at 4) is passed and would move to 6: kept
    assert staged.stage_epochs() == [4, 6, None]
    staged.set_stage_epochs([1, 1, None])
    assert [staged.index(e) for e in range(4)] == [0, 1, 2, 2]
