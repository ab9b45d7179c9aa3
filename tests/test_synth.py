import hashlib
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from conftest import REAL_SAMPLE
from salttune.data import load_dataset
from salttune.datastats import summarize
from salttune.errors import SalttuneError
from salttune.metric import coverage_class
from salttune.rle import rle_decode
from salttune.synth import SIZE, generate, synth_sample


def _tree_hashes(root: Path) -> dict[str, str]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "ds"
    generate(out, n_train=30, n_test=10, seed=3, progress=False, workers=1)
    return out


def test_layout(small_set):
    ids = lambda sub: sorted(p.stem for p in (small_set / sub).glob("*.png"))  # noqa: E731
    train, test = ids("train/images"), ids("test/images")
    assert len(train) == 30 and len(test) == 10
    assert ids("train/masks") == train
    assert not (small_set / "test" / "masks").exists() or not any((small_set / "test" / "masks").iterdir())
    assert all(re.fullmatch(r"[0-9a-f]{10}", i) for i in train + test)
    assert not set(train) & set(test)
    for name in ("train.csv", "test_truth.csv", "depths.csv"):
        assert (small_set / name).is_file()


def test_png_quirks_of_the_real_files(small_set):
    kinds = set()
    for p in (small_set / "train" / "images").glob("*.png"):
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8
        assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()  # R=G=B
    for p in (small_set / "train" / "masks").glob("*.png"):
        m = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        assert m.shape == (SIZE, SIZE)
        if m.any():
            assert m.dtype == np.uint16 and set(np.unique(m)) == {0, 65535}
        else:
            assert m.dtype == np.uint8
        kinds.add(m.dtype)
    assert kinds == {np.dtype(np.uint8), np.dtype(np.uint16)}  # both empty and non-empty masks were made


def test_csvs_agree_with_the_pngs(small_set):
    train = pd.read_csv(small_set / "train.csv", dtype=str, keep_default_na=False)
    assert list(train.columns) == ["id", "rle_mask"]
    assert sorted(train["id"]) == sorted(p.stem for p in (small_set / "train" / "images").glob("*.png"))
    for i, rle in zip(train["id"], train["rle_mask"]):
        png = cv2.imread(str(small_set / "train" / "masks" / f"{i}.png"), cv2.IMREAD_UNCHANGED) > 0
        np.testing.assert_array_equal(rle_decode(rle), png)
    truth = pd.read_csv(small_set / "test_truth.csv", dtype=str, keep_default_na=False)
    assert sorted(truth["id"]) == sorted(p.stem for p in (small_set / "test" / "images").glob("*.png"))
    for rle in truth["rle_mask"]:
        rle_decode(rle)  # valid Kaggle RLE
    depths = pd.read_csv(small_set / "depths.csv", dtype={"id": str})
    assert list(depths.columns) == ["id", "z"]
    assert sorted(depths["id"]) == sorted(list(train["id"]) + list(truth["id"]))
    assert depths["z"].between(50, 959).all()


def test_loader_reads_it(small_set):
    d = load_dataset(small_set)
    assert d.train_images.shape == (30, SIZE, SIZE) and d.test_images.shape == (10, SIZE, SIZE)
    assert d.has_depths and d.train_masks.any()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, small_set):
    base = _tree_hashes(small_set)
    generate(tmp_path / "again", n_train=30, n_test=10, seed=3, progress=False, workers=1)
    assert _tree_hashes(tmp_path / "again") == base
    generate(tmp_path / "other", n_train=30, n_test=10, seed=4, progress=False, workers=1)
    other = _tree_hashes(tmp_path / "other")
    assert set(other) != set(base)  # other ids
    images = lambda h: {v for k, v in h.items() if k.startswith("train/images")}  # noqa: E731
    assert len(images(other) & images(base)) <= 1  # at most an all-black image is the same


def test_serial_equals_parallel(tmp_path):
    # 70 images: enough for the process pool (it is skipped below 64 tasks).
    generate(tmp_path / "serial", n_train=60, n_test=10, seed=11, progress=False, workers=1)
    generate(tmp_path / "pool", n_train=60, n_test=10, seed=11, progress=False, workers=2)
    assert _tree_hashes(tmp_path / "serial") == _tree_hashes(tmp_path / "pool")


def test_fewer_images_are_a_prefix(tmp_path, small_set):
    generate(tmp_path / "few", n_train=12, n_test=0, seed=3, progress=False, workers=1)
    few, full = _tree_hashes(tmp_path / "few"), _tree_hashes(small_set)
    images = [k for k in few if k.startswith("train/")]
    assert len(images) == 24 and all(few[k] == full[k] for k in images)


def test_bad_counts_are_user_errors(tmp_path):
    with pytest.raises(SalttuneError, match="n_train=-1"):
        generate(tmp_path / "x", n_train=-1, n_test=5, progress=False)
    with pytest.raises(SalttuneError, match="not both 0"):
        generate(tmp_path / "x", n_train=0, n_test=0, progress=False)


def test_statistics_match_the_real_data():
    # Values measured on the 1,000-image real sample: 40% empty, mean coverage 0.253, depths 53..956.
    samples = [synth_sample(s) for s in np.random.SeedSequence(2024).spawn(300)]
    masks = np.stack([s.mask for s in samples])
    depths = np.array([s.depth for s in samples])
    cover = masks.reshape(300, -1).mean(axis=1)
    assert abs((cover == 0).mean() - 0.39) < 0.07  # about 2.5 binomial standard errors
    assert abs(cover.mean() - 0.25) < 0.05
    assert depths.min() >= 50 and depths.max() <= 959
    assert len(np.unique(coverage_class(masks))) == 11  # every coverage class occurs
    images = np.stack([s.image for s in samples])
    assert images.dtype == np.uint8 and np.median(images.reshape(300, -1).max(axis=1)) == 255  # stretched


@pytest.mark.skipif(not REAL_SAMPLE.is_dir(), reason="real TGS sample not present")
def test_close_to_the_real_sample():
    real = load_dataset(REAL_SAMPLE, with_test=False)
    a = summarize(real.train_images[:500], real.train_masks[:500], real.train_depths[:500])
    samples = [synth_sample(s) for s in np.random.SeedSequence(7).spawn(400)]
    images, masks = np.stack([s.image for s in samples]), np.stack([s.mask for s in samples])
    b = summarize(images, masks, np.array([s.depth for s in samples]))
    tolerance = {  # absolute, about three standard errors at these sizes
        "empty_share": 0.08, "mean_coverage": 0.06, "px_mean": 12, "px_std": 8, "img_std_mean": 5,
        "roughness_q50": 0.05, "lowfreq_q50": 0.06, "salt_grad": 3, "sediment_grad": 4,
        "local_std_auc": 0.07, "intensity_auc": 0.06, "mask_touch_bottom": 0.12, "depth_mean": 45,
    }
    off = {k: (a[k], b[k]) for k, tol in tolerance.items() if abs(a[k] - b[k]) > tol}
    assert not off, off
