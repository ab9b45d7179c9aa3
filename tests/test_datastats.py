import json

import numpy as np
import pytest

from salttune.datastats import format_comparison, local_std, pixel_auc, summarize


def _tiny() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four 4x4 images whose statistics are worked out by hand in the tests below.

    0: blank, no salt.  1: 10 | 30 halves, salt on the right half (coverage 0.5).
    2: columns 0, 40, 0, 40, all salt (coverage 1).  3: 20 with 60 at (0, 0), salt only there (1/16).
    """
    images = np.zeros((4, 4, 4), np.uint8)
    masks = np.zeros((4, 4, 4), bool)
    images[1, :, :2], images[1, :, 2:] = 10, 30
    masks[1, :, 2:] = True
    images[2, :, 1::2] = 40
    masks[2] = True
    images[3] = 20
    images[3, 0, 0] = 60
    masks[3, 0, 0] = True
    return images, masks, np.array([100, 200, 300, 400])


def test_coverage_and_classes():
    s = summarize(*_tiny())
    assert s["n"] == 4
    assert s["empty_share"] == 0.25 and s["blank_share"] == 0.25
    assert s["mean_coverage"] == pytest.approx((0 + 0.5 + 1 + 1 / 16) / 4)
    assert s["mean_coverage_nonempty"] == pytest.approx((0.5 + 1 + 1 / 16) / 3)
    shares = [s[f"class_{c:02d}"] for c in range(11)]
    assert shares == pytest.approx([0.25, 0.25, 0, 0, 0, 0.25, 0, 0, 0, 0, 0.25])


def test_grey_levels_and_texture():
    s = summarize(*_tiny())
    assert s["px_mean"] == pytest.approx(1000 / 64)  # 80 + 240 + 320 + 300 + 60
    assert s["img_min_mean"] == pytest.approx((0 + 10 + 0 + 20) / 4)
    assert s["img_max_mean"] == pytest.approx((0 + 30 + 40 + 60) / 4)
    std3 = np.sqrt((15 * 2.5**2 + 37.5**2) / 16)  # fifteen 20s and one 60 around 22.5
    assert s["img_std_mean"] == pytest.approx((0 + 10 + 20 + std3) / 4, rel=1e-6)
    # Mean |horizontal difference|: 0, 20/3, 40, 40/12; vertical: only image 3 has one step of 40.
    assert s["grad_x"] == pytest.approx((0 + 20 / 3 + 40 + 40 / 12) / 4)
    assert s["grad_y"] == pytest.approx((40 / 12) / 4)


def test_salt_vs_sediment_uses_partly_salty_images():
    s = summarize(*_tiny())  # images 1 and 3 have 5%..95% salt
    std3 = np.sqrt((15 * 2.5**2 + 37.5**2) / 16)
    assert s["salt_mean"] == pytest.approx((30 + 60) / 2)
    assert s["sediment_mean"] == pytest.approx((10 + 20) / 2)
    assert s["salt_std"] == 0 and s["sediment_std"] == 0
    assert s["salt_contrast"] == pytest.approx((20 / 10 + 40 / std3) / 2, rel=1e-6)
    assert s["intensity_auc"] == 1.0  # salt is the brighter part in both
    assert 0.0 <= s["local_std_auc"] <= 1.0


def test_mask_geometry():
    s = summarize(*_tiny())  # non-empty: right half, full, the top-left pixel
    assert s["mask_pieces"] == 1.0
    assert s["mask_touch_top"] == 1.0
    assert s["mask_touch_bottom"] == pytest.approx(2 / 3)
    assert s["mask_touch_left"] == pytest.approx(2 / 3)
    assert s["mask_touch_right"] == pytest.approx(2 / 3)
    assert s["mask_centroid_y"] == pytest.approx((0.5 + 0.5 + 0) / 3)
    assert s["mask_centroid_x"] == pytest.approx((2.5 / 3 + 0.5 + 0) / 3)
    # Salt/sediment neighbour pairs per image side: 4/4, 0, 2/4.
    assert s["mask_boundary_per_side"] == pytest.approx((1 + 0 + 0.5) / 3)


def test_depths():
    images, masks, depths = _tiny()
    s = summarize(images, masks, depths)
    assert (s["depth_min"], s["depth_max"], s["depth_mean"]) == (100, 400, 250)
    assert s["depth_std"] == pytest.approx(np.sqrt(12500))
    assert s["depth_mean_empty"] == 100 and s["depth_mean_salt"] == 300
    cov = np.array([0, 0.5, 1, 1 / 16])
    assert s["corr_depth_coverage"] == pytest.approx(np.corrcoef(depths, cov)[0, 1])


def test_result_is_json_ready_and_ordered():
    s = summarize(*_tiny())
    json.dumps(s)  # plain floats only
    keys = list(s)
    assert keys[0] == "n" and keys.index("empty_share") < keys.index("px_mean") < keys.index("depth_min")


def test_all_empty_gives_nan_not_an_error():
    images, masks, depths = _tiny()
    s = summarize(images, np.zeros_like(masks), depths)
    assert s["empty_share"] == 1.0 and s["mean_coverage"] == 0.0
    assert np.isnan(s["salt_mean"]) and np.isnan(s["mask_pieces"]) and np.isnan(s["corr_depth_coverage"])


def test_shape_mismatch_raises():
    images, masks, depths = _tiny()
    with pytest.raises(ValueError, match="shapes differ"):
        summarize(images, masks[:3], depths)


@pytest.mark.parametrize(
    "score, label, auc",
    [
        ([1, 2, 3, 4], [0, 0, 1, 1], 1.0),
        ([1, 2, 3, 4], [1, 1, 0, 0], 0.0),
        ([1, 2, 3, 4], [0, 1, 0, 1], 0.75),  # positives 2, 4 beat 3 of the 4 (pos, neg) pairs
        ([5, 5, 5, 5], [0, 1, 0, 1], 0.5),  # ties count one half
        ([1, 2, 2, 3], [0, 0, 1, 1], 0.875),  # one tied pair
    ],
)
def test_pixel_auc(score, label, auc):
    assert pixel_auc(np.array(score), np.array(label, bool)) == pytest.approx(auc)


def test_pixel_auc_one_class_is_nan():
    assert np.isnan(pixel_auc(np.arange(4), np.ones(4, bool)))


def test_local_std():
    img = np.zeros((1, 3, 3), np.uint8)
    img[0, 1, 1] = 9
    out = local_std(img, window=3)
    assert out.shape == (1, 3, 3) and out.dtype == np.float32
    assert out[0, 1, 1] == pytest.approx(np.sqrt(9 - 1))  # E[x^2] - E[x]^2 over the 9 pixels
    assert local_std(np.full((2, 5, 5), 7, np.uint8)).max() == pytest.approx(0, abs=1e-3)


def test_format_comparison():
    text = format_comparison({"n": 10, "px_mean": 100.0, "only_a": 1.0}, {"n": 20, "px_mean": 112.5}, names=("r", "s"))
    lines = text.splitlines()
    assert lines[0].split() == ["statistic", "r", "s", "diff"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert rows["n"] == ["10", "20", "+10"]
    assert rows["px_mean"] == ["100", "112.5", "+12.5"]
    assert rows["only_a"] == ["1", "-", "-"]
