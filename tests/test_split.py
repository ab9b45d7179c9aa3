from types import SimpleNamespace

import numpy as np
import pytest

from salttune.errors import SalttuneError
from salttune.metric import coverage_class
from salttune.split import Arrays, Split, kfold_splits, split_data, strata, train_val_split


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
    tr, va, hold = split_data(data, Split(0.25, split_seed=1))
    assert len(hold.ids) == 0
    _, expected_val = train_val_split(masks, 0.25, seed=1)
    assert [int(i[2:]) for i in va.ids] == expected_val.tolist() and len(tr.ids) == 30
    for part in (tr, va):  # ids, images, masks and depths stay aligned
        idx = [int(i[2:]) for i in part.ids]
        np.testing.assert_array_equal(part.images[:, 0, 0], idx)
        np.testing.assert_array_equal(part.masks, masks[idx])
        np.testing.assert_array_equal(part.depths, np.array(idx) * 10.0)
    small_tr, small_va, _ = split_data(data, Split(0.25, split_seed=1, max_train_images=20))
    assert len(small_tr.ids) + len(small_va.ids) == 20
    assert isinstance(small_va, Arrays)


def test_split_data_needs_images():
    empty = SimpleNamespace(folder="f", train_ids=[], train_images=np.zeros((0, 2, 2)), train_masks=np.zeros((0, 2, 2), bool),
                            train_depths=np.zeros(0))
    with pytest.raises(SalttuneError, match="f: no training images"):
        split_data(empty, Split())


def _indexed(masks):
    n = len(masks)
    return SimpleNamespace(folder="f", train_ids=[f"id{i}" for i in range(n)], train_images=np.zeros((n, 2, 2), np.uint8),
                           train_masks=masks, train_depths=np.zeros(n))


def _idx(part):
    return {int(i[2:]) for i in part.ids}


def test_the_holdout_is_set_aside_first_and_no_split_setting_moves_it():
    masks = masks_with_classes({0: 40, 3: 30, 8: 30})
    data = _indexed(masks)
    tr, va, hold = split_data(data, Split(0.25, split_seed=1, holdout_fraction=0.2, holdout_seed=7))
    assert len(hold.ids) == 20 and not _idx(hold) & (_idx(tr) | _idx(va))
    assert _idx(tr) | _idx(va) | _idx(hold) == set(range(100))
    # stratified: the holdout keeps the shares of empty, 30% and 80% masks (40/30/30 of 100 -> 8/6/6 of 20)
    classes = strata(masks, 1)
    assert sorted(np.unique(classes[sorted(_idx(hold))], return_counts=True)[1].tolist()) == [6, 6, 8]
    for other in (Split(0.4, split_seed=5, holdout_fraction=0.2, holdout_seed=7),
                  Split(folds=4, fold=3, split_seed=2, holdout_fraction=0.2, holdout_seed=7)):
        assert _idx(split_data(data, other)[2]) == _idx(hold)
    assert _idx(split_data(data, Split(0.25, holdout_fraction=0.2, holdout_seed=8))[2]) != _idx(hold)


def test_folds_partition_the_images_outside_the_holdout():
    masks = masks_with_classes({0: 40, 3: 30, 8: 30})
    data = _indexed(masks)
    split = Split(folds=4, split_seed=3, holdout_fraction=0.2, holdout_seed=0)
    parts = [split_data(data, split.with_fold(f)) for f in range(4)]
    vals = [_idx(va) for _, va, _ in parts]
    assert sum(len(v) for v in vals) == 80 and set().union(*vals) == set(range(100)) - _idx(parts[0][2])
    for tr, va, _ in parts:
        assert not _idx(tr) & _idx(va) and len(_idx(tr) | _idx(va)) == 80
    with pytest.raises(SalttuneError, match="fold 4 of 4"):
        split_data(data, split.with_fold(4))


def test_split_of_a_config_and_of_an_old_checkpoint_dict():
    from salttune.config import config_from_dict

    cfg = config_from_dict({"holdout_fraction": 0.1, "folds": 5, "fold": 2})
    assert Split.of(cfg) == Split(holdout_fraction=0.1, folds=5, fold=2)
    assert Split.of({"val_fraction": 0.3, "split_seed": 4}) == Split(0.3, 4)  # keys of an older checkpoint
    with pytest.raises(SalttuneError, match="'fold': 5 is not a fold of folds=5"):
        config_from_dict({"folds": 5, "fold": 5})
