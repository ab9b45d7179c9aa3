import numpy as np
import pytest

from salttune.rle import RLEError, rle_decode, rle_encode


def test_kaggle_convention_column_major_one_indexed():
    mask = np.zeros((3, 3), bool)
    mask[0, 0] = True  # pixel 1
    mask[1, 0] = True  # pixel 2 (down the first column)
    mask[0, 1] = True  # pixel 4 (top of the second column)
    mask[2, 2] = True  # pixel 9
    assert rle_encode(mask) == "1 2 4 1 9 1"
    np.testing.assert_array_equal(rle_decode("1 2 4 1 9 1", (3, 3)), mask)


def test_runs_wrap_across_columns():
    mask = np.zeros((3, 3), bool)
    mask[2, 0] = mask[0, 1] = mask[1, 1] = True  # pixels 3, 4, 5 form one run
    assert rle_encode(mask) == "3 3"


@pytest.mark.parametrize("value", ["", "   ", float("nan"), None])
def test_empty(value):
    assert not rle_decode(value, (5, 5)).any()
    assert rle_encode(np.zeros((5, 5), bool)) == ""


def test_full_mask():
    assert rle_encode(np.ones((101, 101), bool)) == "1 10201"


def test_round_trip_random():
    rng = np.random.default_rng(0)
    for _ in range(20):
        m = rng.random((101, 101)) < rng.random()
        np.testing.assert_array_equal(rle_decode(rle_encode(m)), m)


@pytest.mark.parametrize(
    "rle, fragment",
    [
        ("1 2 3", "pairs"),
        ("1 x", "'x' is not an integer"),
        ("0 3", "1-indexed"),
        ("1 0", "length"),
        ("9 2", "past the last pixel 9"),
        ("5 1 2 1", "not sorted"),
        ("1 4 3 2", "overlap"),
    ],
)
def test_bad_strings(rle, fragment):
    with pytest.raises(RLEError, match=fragment):
        rle_decode(rle, (3, 3))
