from types import SimpleNamespace

import numpy as np
import pytest

from salttune.errors import SalttuneError
from salttune.metric import coverage_class
from salttune.split import Arrays, kfold_splits, split_data, strata, train_val_split


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


def test_split_data_cuts_aligned_parts():
    masks = masks_with_classes({0: 20, 3: 10, 8: 10})
    n = len(masks)
    images = np.arange(n, dtype=np.uint8)[:, None, None] * np.ones((1, 10, 10), np.uint8)  # image i is all i
    data = SimpleNamespace(folder="f", train_ids=[f"id{i}" for i in range(n)], train_images=images,
                           train_masks=masks, train_depths=np.arange(n, dtype=float) * 10)
    tr, va = split_data(data, 0.25, split_seed=1)
    _, expected_val = train_val_split(masks, 0.25, seed=1)
    assert [int(i[2:]) for i in va.ids] == expected_val.tolist() and len(tr.ids) == 30
    for part in (tr, va):  # ids, images, masks and depths stay aligned
        idx = [int(i[2:]) for i in part.ids]
        np.testing.assert_array_equal(part.images[:, 0, 0], idx)
        np.testing.assert_array_equal(part.masks, masks[idx])
        np.testing.assert_array_equal(part.depths, np.array(idx) * 10.0)
    small_tr, small_va = split_data(data, 0.25, split_seed=1, max_images=20)
    assert len(small_tr.ids) + len(small_va.ids) == 20
    assert isinstance(small_va, Arrays)


def test_split_data_needs_images():
    empty = SimpleNamespace(folder="f", train_ids=[], train_images=np.zeros((0, 2, 2)), train_masks=np.zeros((0, 2, 2), bool),
                            train_depths=np.zeros(0))
    with pytest.raises(SalttuneError, match="f: no training images"):
        split_data(empty, 0.2, 0)
