from pathlib import Path

import cv2
import numpy as np
import pytest

from salttune.errors import SalttuneError
from salttune.preview import preview_sheet, write_preview
from salttune.synth import SIZE, generate


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "ds"
    generate(out, n_train=30, n_test=0, seed=3, progress=False, workers=1)
    return out


def test_preview_png(small_set, tmp_path):
    out = tmp_path / "sheets" / "preview.png"
    write_preview(small_set, out, n=48, seed=0)
    img = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    # 30 training images -> 4 rows of 8 tiles, each 2 * 101 pixels plus a 2-pixel border on each side.
    assert img.shape == (4 * 206, 8 * 206, 3) and img.dtype == np.uint8
    with pytest.raises(SalttuneError, match=r"\.png"):
        write_preview(small_set, tmp_path / "preview.jpg")
    with pytest.raises(SalttuneError):
        write_preview(tmp_path / "missing", tmp_path / "p.png")


def test_preview_sheet_outlines_salt_only():
    images = np.full((10, SIZE, SIZE), 128, np.uint8)
    masks = np.zeros((10, SIZE, SIZE), bool)
    for k in range(5):
        masks[k, 30:70, 30:70] = True  # coverage 1600 / 10201
    sheet = preview_sheet(images, masks, n=6, seed=0, cols=3, scale=1)
    assert sheet.shape == (2 * 105, 3 * 105, 3)
    green = (sheet[..., 1] == 255) & (sheet[..., 0] == 0) & (sheet[..., 2] == 0)
    tiles = [green[r * 105 : (r + 1) * 105, c * 105 : (c + 1) * 105].sum() for r in range(2) for c in range(3)]
    # max(6 // 3, 6 - 5) = 2 empty tiles first (sorted by coverage), then 4 with a 40x40 square outlined.
    assert tiles[:2] == [0, 0] and all(t >= 4 * 39 for t in tiles[2:])
