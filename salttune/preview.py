"""Looking at a dataset: a contact sheet of images with their salt outlines, real or synthetic."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from salttune.errors import SalttuneError

__all__ = ["GREEN", "RED", "preview_sheet", "draw_tile", "tile_sheet", "write_preview"]

GREEN, RED = (0, 255, 0), (0, 0, 255)  # BGR: truth outlines green, predictions red


def preview_sheet(
    images: np.ndarray, masks: np.ndarray, n: int = 48, seed: int = 0, cols: int = 8, scale: int = 2
) -> np.ndarray:
    """A contact sheet: ``n`` images (a third of them without salt), sorted by coverage, mask outlines in
    green and the coverage in per cent in the corner.

    Shape:
        images (N, H, W) uint8, masks (N, H, W) bool -> (rows * (H * scale + 4), cols * (W * scale + 4), 3)
        uint8 BGR, rows = ceil(min(n, N) / cols).
    """
    rng = np.random.default_rng(seed)
    salty = masks.reshape(len(masks), -1).any(axis=1)
    n = min(n, len(images))
    empty_idx, salt_idx = np.flatnonzero(~salty), np.flatnonzero(salty)
    n_empty = min(len(empty_idx), max(n // 3, n - len(salt_idx)))
    pick = np.r_[rng.choice(empty_idx, n_empty, replace=False), rng.choice(salt_idx, n - n_empty, replace=False)]
    cover = masks[pick].reshape(len(pick), -1).mean(axis=1)
    pick = pick[np.argsort(cover, kind="stable")]

    tiles = [draw_tile(images[i], [(masks[i], GREEN)], scale, f"{100 * masks[i].mean():.0f}") for i in pick]
    return tile_sheet(tiles, cols)


def draw_tile(image: np.ndarray, outlines: list[tuple[np.ndarray, tuple[int, int, int]]], scale: int = 2, label: str = "") -> np.ndarray:
    """One image enlarged ``scale`` times with each mask's outline in its BGR colour and a label in the corner.

    Shape: image (H, W) uint8, masks (H, W) bool -> (H * scale, W * scale, 3) uint8 BGR.
    """
    h, w = image.shape[0] * scale, image.shape[1] * scale
    tile = cv2.cvtColor(cv2.resize(image, (w, h), interpolation=cv2.INTER_NEAREST), cv2.COLOR_GRAY2BGR)
    for mask, colour in outlines:
        m = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(m, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(tile, contours, -1, colour, 1)
    if label:
        cv2.putText(tile, label, (3, 12), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 255, 255), 1)
    return tile


def tile_sheet(tiles: list[np.ndarray], cols: int = 8, border: int = 2) -> np.ndarray:
    """Tiles of equal size on a white sheet, ``cols`` per row, ``border`` pixels around each."""
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // cols)
    sheet = np.full((rows * (h + 2 * border), cols * (w + 2 * border), 3), 255, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        y, x = r * (h + 2 * border) + border, c * (w + 2 * border) + border
        sheet[y : y + h, x : x + w] = tile
    return sheet


def write_preview(data: str | Path, out_png: str | Path, n: int = 48, seed: int = 0) -> None:
    """Draw a contact sheet of a TGS-layout folder's training images (real or synthetic) to ``out_png``.

    Raises:
        SalttuneError: the folder cannot be loaded, or the PNG cannot be written.
    """
    from salttune.data import load_dataset

    d = load_dataset(data, with_test=False)
    if len(d.train_images) == 0:
        raise SalttuneError(f"{data}: no training images to draw; give a folder with train/images")
    out_png = Path(out_png)
    if out_png.suffix.lower() != ".png":
        raise SalttuneError(f"{out_png}: the preview is a PNG; give a file name ending in .png")
    out_png.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out_png), preview_sheet(d.train_images, d.train_masks, n=n, seed=seed)):
        raise SalttuneError(f"{out_png}: cannot write the preview; check the folder is writable")
