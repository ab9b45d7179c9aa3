import numpy as np
import pytest

from salttune.errors import SalttuneError
from salttune.metric import coverage_class
from salttune.split import kfold_splits, strata, train_val_split


def masks_with_classes(counts: dict[int, int], size: int = 10) -> np.ndarray:
    out = []
    for c, n in counts.items():
        m = np.zeros((n, size * size), bool)
        m[:, : c * 10] = True  # coverage c/10 -> class c
        out.append(m.reshape(n, size, size))
    return np.concatenate(out)


def test_split_is_stratified_and_seeded():
    masks = masks_with_classes({0: 40, 1: 20, 5: 20, 10: 20})
    tr, va = train_val_split(masks, 0.2, seed=3)
    assert len(va) == 20 and len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 100
    np.testing.assert_array_equal(np.bincount(coverage_class(masks[va]), minlength=11)[[0, 1, 5, 10]], [8, 4, 4, 4])
    tr2, va2 = train_val_split(masks, 0.2, seed=3)
    np.testing.assert_array_equal(va, va2)
    assert not np.array_equal(va, train_val_split(masks, 0.2, seed=4)[1])


def test_kfold_partitions_and_stratifies():
    masks = masks_with_classes({0: 50, 3: 25, 9: 25})
    folds = kfold_splits(masks, k=5, seed=0)
    vals = np.concatenate([va for _, va in folds])
    np.testing.assert_array_equal(np.sort(vals), np.arange(100))
    for tr, va in folds:
        assert len(np.intersect1d(tr, va)) == 0
        np.testing.assert_array_equal(np.bincount(coverage_class(masks[va]), minlength=11)[[0, 3, 9]], [10, 5, 5])


def test_rare_classes_merge_into_neighbour():
    masks = masks_with_classes({0: 10, 4: 10, 5: 1})
    y = strata(masks, min_count=2)
    assert set(np.unique(y)) == {0, 4}
    tr, va = train_val_split(masks, 0.3, seed=0)  # would fail in scikit-learn without merging
    assert len(va) == 6


@pytest.mark.parametrize("frac", [0.0, 1.0, -0.1])
def test_bad_fraction(frac):
    with pytest.raises(SalttuneError, match="val_fraction"):
        train_val_split(masks_with_classes({0: 10}), frac)
