import numpy as np
import pytest

from salttune.metric import (
    THRESHOLDS,
    competition_score,
    coverage_class,
    iou_per_image,
    mean_iou,
    score_by_coverage,
    score_per_image,
)


def masks_with_iou(n_truth: int, n_pred_inside: int, n_pred_outside: int = 0, size: int = 10) -> tuple:
    """Truth of n_truth pixels; prediction covers n_pred_inside of them plus n_pred_outside others."""
    t = np.zeros(size * size, bool)
    p = np.zeros(size * size, bool)
    t[:n_truth] = True
    p[:n_pred_inside] = True
    p[n_truth : n_truth + n_pred_outside] = True
    return p.reshape(size, size), t.reshape(size, size)


def test_thresholds():
    np.testing.assert_allclose(THRESHOLDS, [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95])


@pytest.mark.parametrize(
    "inside, outside, expected_iou, expected_score",
    [
        (25, 0, 1.0, 1.0),
        (18, 0, 0.72, 0.5),  # 0.72 beats 0.50..0.70: 5 of 10 thresholds
        (24, 0, 0.96, 1.0),
        (25, 2, 25 / 27, 0.9),  # 0.926 beats all but 0.95
        (12, 0, 0.48, 0.0),
        (25, 25, 0.5, 0.0),  # IoU must be strictly above 0.5
    ],
)
def test_score_hand_computed(inside, outside, expected_iou, expected_score):
    p, t = masks_with_iou(25, inside, outside)
    assert iou_per_image(p, t)[0] == pytest.approx(expected_iou)
    assert score_per_image(p, t)[0] == pytest.approx(expected_score)


def test_empty_cases():
    empty = np.zeros((5, 5), bool)
    some = empty.copy()
    some[2, 2] = True
    assert score_per_image(empty, empty)[0] == 1.0  # both empty: a perfect image
    # An empty prediction on non-empty truth scores 0: the histogram2d port gets this wrong.
    assert score_per_image(empty, some)[0] == 0.0
    assert score_per_image(some, empty)[0] == 0.0
    assert iou_per_image(empty, empty)[0] == 1.0


def test_mean_over_images():
    p1, t1 = masks_with_iou(25, 18)  # 0.5
    p2, t2 = masks_with_iou(25, 25)  # 1.0
    empty = np.zeros((10, 10), bool)
    pred = np.stack([p1, p2, empty])
    truth = np.stack([t1, t2, t1])  # third: missed salt, 0
    assert competition_score(pred, truth) == pytest.approx(0.5)
    assert mean_iou(pred, truth) == pytest.approx((0.72 + 1 + 0) / 3)


def test_coverage_classes():
    masks = np.zeros((4, 10, 10), bool)
    masks[1].flat[:1] = True  # 1% -> class 1
    masks[2].flat[:10] = True  # 10% -> class 1 (ceil(1.0) = 1)
    masks[3].flat[:55] = True  # 55% -> class 6
    np.testing.assert_array_equal(coverage_class(masks), [0, 1, 1, 6])


def test_score_by_coverage():
    truth = np.zeros((3, 10, 10), bool)
    truth[1].flat[:55] = True
    truth[2].flat[:58] = True
    pred = truth.copy()
    pred[2] = False
    out = score_by_coverage(pred, truth)
    assert set(out) == {0, 6}
    assert out[0] == {"n": 1, "score": 1.0, "iou": 1.0}
    assert out[6]["n"] == 2 and out[6]["score"] == pytest.approx(0.5)
