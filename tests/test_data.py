from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import REAL_SAMPLE, assert_user_error, run_cli
from salttune.data import dataset_fingerprint, load_dataset, read_image, read_mask
from salttune.errors import SalttuneError


def test_loads_kaggle_layout(tgs_folder):
    root, made = tgs_folder
    d = load_dataset(root)
    assert d.train_ids == made["ids"] and d.test_ids == made["test_ids"]
    assert d.train_images.dtype == np.uint8 and d.train_images.shape == (12, 101, 101)
    assert d.train_masks.dtype == bool and d.test_images.shape == (4, 101, 101)
    for k, i in enumerate(d.train_ids):
        np.testing.assert_array_equal(d.train_images[k], made["images"][i])
        np.testing.assert_array_equal(d.train_masks[k], made["masks"][i])
    np.testing.assert_array_equal(d.train_depths, 50 + 7 * np.arange(12))
    np.testing.assert_array_equal(d.test_depths, 50 + 7 * np.arange(12, 16))
    assert d.has_depths


def test_masks_only_from_csv(tgs_folder):
    root, made = tgs_folder
    for p in (root / "train" / "masks").iterdir():
        p.unlink()
    (root / "train" / "masks").rmdir()
    d = load_dataset(root)
    for k, i in enumerate(d.train_ids):
        np.testing.assert_array_equal(d.train_masks[k], made["masks"][i])


def test_fingerprint_tracks_content(tgs_folder, tmp_path):
    root, _ = tgs_folder
    a = dataset_fingerprint(load_dataset(root))
    assert a == dataset_fingerprint(load_dataset(root))
    img = root / "train" / "images" / "0000000003.png"
    cv2.imwrite(str(img), np.zeros((101, 101, 3), np.uint8))
    assert dataset_fingerprint(load_dataset(root)) != a


def _first(root: Path, sub: str) -> Path:
    return sorted((root / sub).glob("*.png"))[1]


@pytest.mark.parametrize(
    "damage, fragments",
    [
        (lambda r: _first(r, "train/images").unlink(), ["masks", "has no image"]),
        (lambda r: _first(r, "train/images").write_bytes(b"\x89PNG\r\n\x1a\n garbage"), ["not a readable PNG"]),
        (lambda r: _first(r, "train/images").write_bytes(b""), ["0000000001.png", "file is empty (0 bytes)"]),
        (
            lambda r: cv2.imwrite(str(_first(r, "train/images")), np.zeros((90, 101, 3), np.uint8)),
            ["size 101x90 differs"],
        ),
        (
            lambda r: cv2.imwrite(str(_first(r, "test/images")), np.zeros((101, 64), np.uint8)),
            ["size 64x101 differs"],
        ),
        (
            lambda r: cv2.imwrite(str(r / "train" / "masks" / "ffffffffff.png"), np.zeros((101, 101), np.uint8)),
            ["ffffffffff.png", "mask has no image"],
        ),
        (lambda r: _replace_rle(r, "1 x"), ["train.csv", "line 3", "not an integer"]),
        (lambda r: _replace_rle(r, "10200 5"), ["train.csv", "line 3", "past the last pixel"]),
        (lambda r: _replace_rle(r, "50 2 10 3"), ["train.csv", "line 3", "not sorted"]),
        (lambda r: _replace_rle(r, "10 5 12 3"), ["train.csv", "line 3", "overlap"]),
        (lambda r: _replace_rle(r, "1 1"), ["train.csv", "line 3", "disagrees with", "0000000001.png"]),
        (lambda r: (r / "depths.csv").write_text("id,z\n"), ["depths.csv", "no depth for id"]),
    ],
)
def test_bad_data_is_named(tgs_folder, damage, fragments):
    root, _ = tgs_folder
    damage(root)
    with pytest.raises(SalttuneError) as e:
        load_dataset(root)
    msg = str(e.value)
    assert "\n" not in msg
    for f in fragments:
        assert f in msg


def _replace_rle(root: Path, rle: str) -> None:
    lines = (root / "train.csv").read_text().splitlines()
    i = lines[2].split(",")[0]  # line 3 of the file: the second image, id 0000000001
    lines[2] = f"{i},{rle}"
    (root / "train.csv").write_text("\n".join(lines) + "\n")


def test_missing_folder(tmp_path):
    with pytest.raises(SalttuneError, match="does not exist"):
        load_dataset(tmp_path / "nope")
    with pytest.raises(SalttuneError, match=r"folder is empty \(no train/images\)"):
        load_dataset(tmp_path)


def test_cli_names_bad_file_without_traceback(tgs_folder):
    root, _ = tgs_folder
    _replace_rle(root, "1 x")
    assert_user_error(run_cli("stats", "--data", str(root)), "train.csv", "line 3")
    img = _first(root, "train/images")
    img.write_bytes(img.read_bytes()[:300])  # truncated PNG: OpenCV's own warning must not leak
    assert_user_error(run_cli("stats", "--data", str(root)), img.name, "not a readable PNG")
    assert_user_error(run_cli("stats", "--data", str(root / "nope")), "nope", "does not exist")


@pytest.mark.skipif(not REAL_SAMPLE.is_dir(), reason="real TGS sample not present")
def test_real_sample_quirks():
    """The 1,000 real images: RGB with R=G=B, 16-bit non-empty masks, 8-bit empty ones, and RLE agreement."""
    some_img = next((REAL_SAMPLE / "train" / "images").glob("*.png"))
    raw = cv2.imread(str(some_img), cv2.IMREAD_UNCHANGED)
    assert raw.ndim == 3 and (raw[..., 0] == raw[..., 2]).all()
    d = load_dataset(REAL_SAMPLE)  # also checks every train.csv row against its mask PNG
    assert d.train_images.shape == (1000, 101, 101) and d.test_images.shape[0] == 0
    empty = ~d.train_masks.any(axis=(1, 2))
    assert 0.3 < empty.mean() < 0.5
    assert 50 <= d.train_depths.min() and d.train_depths.max() <= 959
    depth_bits = {cv2.imread(str(REAL_SAMPLE / "train" / "masks" / f"{i}.png"), cv2.IMREAD_UNCHANGED).dtype
                  for i in np.array(d.train_ids)[empty][:5]}
    assert depth_bits == {np.dtype(np.uint8)}


def test_faithful_reads_accept_what_kaggle_ships(tmp_path):
    gray = np.arange(101 * 101, dtype=np.uint32).reshape(101, 101).astype(np.uint8)
    for name, arr in {"g": gray, "rgb": np.dstack([gray] * 3), "rgba": np.dstack([gray] * 3 + [np.full_like(gray, 255)])}.items():
        cv2.imwrite(str(tmp_path / f"{name}.png"), arr)
        np.testing.assert_array_equal(read_image(tmp_path / f"{name}.png"), gray)
    salt = np.eye(101, dtype=bool)
    cv2.imwrite(str(tmp_path / "m8.png"), salt.astype(np.uint8) * 255)
    cv2.imwrite(str(tmp_path / "m16.png"), salt.astype(np.uint16) * 65535)
    np.testing.assert_array_equal(read_mask(tmp_path / "m8.png"), salt)
    np.testing.assert_array_equal(read_mask(tmp_path / "m16.png"), salt)


@pytest.mark.parametrize("make, reader, fragment", [
    (lambda p: cv2.imwrite(str(p), np.dstack([np.zeros((9, 9), np.uint8), np.ones((9, 9), np.uint8), np.zeros((9, 9), np.uint8)])),
     "image", "channels differ"),
    (lambda p: cv2.imwrite(str(p), np.full((9, 9, 4), 254, np.uint8)), "image", "transparent"),
    (lambda p: cv2.imwrite(str(p), np.full((9, 9), 256, np.uint16)), "image", "16-bit"),
    (lambda p: p.write_bytes(cv2.imencode(".jpg", np.zeros((9, 9), np.uint8))[1].tobytes()), "image", "a JPEG image, not a PNG"),
    (lambda p: cv2.imwrite(str(p), np.eye(9, dtype=np.uint8)), "mask", "mask has value 1"),
    (lambda p: cv2.imwrite(str(p), np.eye(9, dtype=np.uint16) * 255), "mask", "mask has value 255; a 16-bit mask holds only 0 and 65535"),
])
def test_unfaithful_reads_are_refused(tmp_path, make, reader, fragment):
    path = tmp_path / "x.png"
    make(path)
    with pytest.raises(SalttuneError, match=fragment.replace("(", r"\(")):
        (read_image if reader == "image" else read_mask)(path)


def test_paletted_png_is_refused(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((9, 9), np.uint8)).convert("P").save(tmp_path / "p.png")
    with pytest.raises(SalttuneError, match="paletted PNG"):
        read_image(tmp_path / "p.png")
