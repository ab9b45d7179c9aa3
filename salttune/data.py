"""The TGS dataset as Kaggle ships it, loaded once into compact in-memory arrays.

Layout of a dataset folder::

    train/images/<id>.png   8-bit images (Kaggle's are RGB with R=G=B; read as one channel)
    train/masks/<id>.png    optional; non-empty masks are 16-bit {0, 65535}, empty ones 8-bit
    train.csv               id,rle_mask (Kaggle RLE); the masks when train/masks is absent
    depths.csv              id,z (optional)
    test/images/<id>.png    optional

Every problem with the files raises :class:`SalttuneError` with one line naming the file and the fix.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from salttune.errors import SalttuneError
from salttune.rle import RLEError, rle_decode

__all__ = ["TGSData", "load_dataset", "read_image", "read_mask", "dataset_fingerprint"]

# OpenCV prints its own warning for a corrupt PNG; we raise a clearer one-line error naming the file instead.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

# cv2 decodes in C and releases the GIL, so threads read PNGs in parallel without process start-up cost.
_READ_THREADS = 8


@dataclass(frozen=True)
class TGSData:
    """A TGS dataset in memory.

    Shape:
        train_images: (N, H, W) uint8; train_masks: (N, H, W) bool; train_depths: (N,) int32.
        test_images: (M, H, W) uint8; test_depths: (M,) int32. M may be 0.
    """

    folder: Path
    train_ids: list[str]
    train_images: np.ndarray
    train_masks: np.ndarray
    train_depths: np.ndarray
    test_ids: list[str]
    test_images: np.ndarray
    test_depths: np.ndarray
    has_depths: bool  # False when the folder has no depths.csv (depths are then 0)

    @property
    def image_shape(self) -> tuple[int, int]:
        imgs = self.train_images if len(self.train_images) else self.test_images
        return tuple(imgs.shape[1:])  # type: ignore[return-value]

    @property
    def nbytes(self) -> int:
        arrays = (self.train_images, self.train_masks, self.train_depths, self.test_images, self.test_depths)
        return sum(a.nbytes for a in arrays)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_OTHER_FORMATS = {b"\xff\xd8\xff": "a JPEG", b"GIF8": "a GIF", b"BM": "a BMP", b"II*\x00": "a TIFF", b"MM\x00*": "a TIFF"}
_PALETTE = 3  # the PNG colour type of a paletted image (byte 25 of the file, in the IHDR chunk)


def _decode_png(path: Path) -> np.ndarray:
    """The PNG's pixels as stored, (H, W) or (H, W, C) in BGR(A) order; anything else raises one line."""
    try:
        buf = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise SalttuneError(f"{path}: file is missing; restore it or remove its id from the CSV files") from None
    except IsADirectoryError:
        raise SalttuneError(f"{path}: is a folder, not a PNG file; remove it or replace it with the PNG") from None
    except OSError as e:
        raise SalttuneError(f"{path}: cannot be read ({e.strerror}); check the file's permissions") from None
    head = buf[:32].tobytes()
    if not head:
        raise SalttuneError(f"{path}: file is empty (0 bytes); replace it with the PNG")
    if not head.startswith(_PNG_SIGNATURE[:4]):  # "\x89PNG" and a bad rest: a corrupt PNG, for cv2 to judge
        kind = next((name for magic, name in _OTHER_FORMATS.items() if head.startswith(magic)), "")
        what = f"{kind} image" if kind else "not an image"
        raise SalttuneError(f"{path}: {what}, not a PNG (its bytes do not start with the PNG signature); convert it to PNG")
    if len(head) > 25 and head[25] == _PALETTE:  # cv2 would expand the palette to colours silently
        raise SalttuneError(f"{path}: paletted PNG (colour type 3); save it as 8-bit grayscale or RGB")
    arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise SalttuneError(f"{path}: not a readable PNG (truncated or corrupt); replace the file")
    return arr


def _one_channel(arr: np.ndarray, path: Path, what: str) -> np.ndarray:
    """(H, W) from a gray, gray+alpha, RGB or RGBA array, refusing what one channel would not show faithfully."""
    if arr.ndim == 2:
        return arr
    full = np.iinfo(arr.dtype).max
    if arr.shape[2] in (2, 4):  # an alpha channel: opaque is harmless, transparency changes what is seen
        if (arr[:, :, -1] != full).any():
            raise SalttuneError(f"{path}: {what} has transparent pixels (alpha channel); save it without transparency")
        arr = arr[:, :, :-1]
    if arr.shape[2] == 3 and not (np.array_equal(arr[:, :, 0], arr[:, :, 1]) and np.array_equal(arr[:, :, 0], arr[:, :, 2])):
        raise SalttuneError(f"{path}: {what} is in colour (its red, green and blue channels differ); "
                            "TGS files are grayscale (R=G=B): convert it to grayscale")
    return arr[:, :, 0]


def read_image(path: Path) -> np.ndarray:
    """Read a TGS image as (H, W) uint8; RGB files with R=G=B (and opaque alpha) are read as one channel.

    Raises:
        SalttuneError: not a PNG, an empty, corrupt or paletted file, not 8-bit, colour, or transparent.
    """
    arr = _decode_png(path)
    if arr.dtype != np.uint8:
        raise SalttuneError(f"{path}: image is {arr.dtype.itemsize * 8}-bit, expected an 8-bit PNG; save it as 8-bit")
    return np.ascontiguousarray(_one_channel(arr, path, "image"))


def read_mask(path: Path) -> np.ndarray:
    """Read a TGS mask as (H, W) bool: salt is 255 in an 8-bit mask and 65535 in a 16-bit one, the rest 0.

    Raises:
        SalttuneError: as :func:`read_image`, or a value other than 0 and full scale (a 0/1 mask, an
            anti-aliased edge), which could not be read as salt or not without guessing.
    """
    arr = _one_channel(_decode_png(path), path, "mask")
    full = np.iinfo(arr.dtype).max
    odd = (arr != 0) & (arr != full)
    if odd.any():
        bits = arr.dtype.itemsize * 8
        raise SalttuneError(f"{path}: mask has value {int(arr[odd][0])}; {'an' if bits == 8 else 'a'} {bits}-bit mask holds only 0 and "
                            f"{full} (salt); rewrite it with those two values")
    return arr == full


def _read_all(reader, paths: list[Path]) -> list[np.ndarray]:
    if not paths:
        return []
    with ThreadPoolExecutor(_READ_THREADS) as pool:
        return list(pool.map(reader, paths))


def _stack(arrays: list[np.ndarray], paths: list[Path], shape: tuple[int, int] | None, dtype) -> np.ndarray:
    """Stack same-size arrays; the first file of another size than the rest is named in the error."""
    if not arrays:
        return np.zeros((0, *(shape or (101, 101))), dtype=dtype)
    if shape is None:  # the size most files have, so the odd file is the one named, even when it comes first
        sizes, counts = np.unique(np.array([a.shape[:2] for a in arrays]), axis=0, return_counts=True)
        shape = tuple(int(v) for v in sizes[np.argmax(counts)])
    for a, p in zip(arrays, paths):
        if a.shape != shape:
            raise SalttuneError(
                f"{p}: size {a.shape[1]}x{a.shape[0]} differs from the other images' {shape[1]}x{shape[0]}; "
                "all images must have one size"
            )
    return np.stack(arrays).astype(dtype, copy=False)


def _ids_in(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.png")) if folder.is_dir() else []


def _read_csv(path: Path, columns: tuple[str, str]) -> pd.DataFrame:
    if path.is_dir():
        raise SalttuneError(f"{path}: is a folder, not a CSV file; remove it or replace it with the {','.join(columns)} file")
    if path.stat().st_size == 0:
        raise SalttuneError(f"{path}: file is empty (0 bytes); expected a header '{','.join(columns)}' and one row per id")
    try:
        df = pd.read_csv(path, dtype={columns[0]: str}, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise SalttuneError(f"{path}: not a readable CSV ({str(e).splitlines()[0]}); expected columns {','.join(columns)}") from None
    if list(df.columns[:2]) != list(columns):
        raise SalttuneError(f"{path}: columns are {','.join(map(str, df.columns))}; expected {','.join(columns)}")
    dup = df[columns[0]].duplicated()
    if dup.any():
        raise SalttuneError(f"{path}: id {df[columns[0]][dup].iloc[0]} appears more than once; keep one row per id")
    return df


def _train_masks(folder: Path, ids: list[str], shape: tuple[int, int]) -> np.ndarray:
    """Masks from train/masks PNGs and/or train.csv; when both exist they must agree."""
    mask_dir, csv_path = folder / "train" / "masks", folder / "train.csv"
    from_png = None
    if mask_dir.is_dir():
        orphans = sorted(set(_ids_in(mask_dir)) - set(ids))
        if orphans:
            raise SalttuneError(
                f"{mask_dir / (orphans[0] + '.png')}: mask has no image train/images/{orphans[0]}.png; "
                "add the image or remove the mask"
            )
        paths = [mask_dir / f"{i}.png" for i in ids]
        missing = [p for p in paths if not p.exists()]
        if missing and not csv_path.exists():
            raise SalttuneError(f"{missing[0]}: image has no mask and there is no train.csv; add the mask")
        if not missing:
            from_png = _stack(_read_all(read_mask, paths), paths, shape, bool)
    if not csv_path.exists():
        if from_png is None:
            raise SalttuneError(f"{folder}: no train/masks folder and no train.csv; the training masks are needed")
        return from_png

    df = _read_csv(csv_path, ("id", "rle_mask"))
    rows = dict(zip(df["id"], range(len(df))))
    extra = sorted(set(rows) - set(ids))
    if extra:
        raise SalttuneError(
            f"{csv_path}: line {rows[extra[0]] + 2}: id {extra[0]} has no image train/images/{extra[0]}.png; "
            "add the image or remove the row"
        )
    masks = np.zeros((len(ids), *shape), dtype=bool)
    for k, i in enumerate(ids):
        if i not in rows:
            if from_png is not None:
                masks[k] = from_png[k]
                continue
            raise SalttuneError(f"{csv_path}: no row for image {i}; add '{i},<rle>' (empty rle for no salt)")
        try:
            masks[k] = rle_decode(df["rle_mask"].iat[rows[i]], shape)
        except RLEError as e:
            raise SalttuneError(f"{csv_path}: line {rows[i] + 2} (id {i}): {e}") from None
        if from_png is not None and not np.array_equal(masks[k], from_png[k]):
            n = int((masks[k] != from_png[k]).sum())
            raise SalttuneError(
                f"{csv_path}: line {rows[i] + 2}: RLE of id {i} disagrees with {mask_dir / (i + '.png')} "
                f"in {n} pixels; fix whichever is wrong"
            )
    return masks


def _depths(folder: Path, ids: list[str]) -> tuple[np.ndarray, bool]:
    path = folder / "depths.csv"
    if not path.exists():
        return np.zeros(len(ids), dtype=np.int32), False
    df = _read_csv(path, ("id", "z"))
    z = pd.to_numeric(df["z"], errors="coerce")
    if z.isna().any():
        row = int(np.flatnonzero(z.isna().to_numpy())[0])
        raise SalttuneError(f"{path}: line {row + 2}: depth {df['z'].iat[row]!r} is not a number")
    whole = z == z.round()
    if not whole.all():
        row = int(np.flatnonzero(~whole.to_numpy())[0])
        raise SalttuneError(f"{path}: line {row + 2}: depth {df['z'].iat[row]} is not a whole number of metres; "
                            "depths are integers")
    table = dict(zip(df["id"], z.astype(np.int32)))
    missing = [i for i in ids if i not in table]
    if missing:
        raise SalttuneError(f"{path}: no depth for id {missing[0]}; add a row '{missing[0]},<z>'")
    return np.array([table[i] for i in ids], dtype=np.int32), True


def _no_images(folder: Path, img_dir: Path, test_dir: Path, with_test: bool) -> str:
    """Why there are no images to work on, saying what the folder does hold."""
    if not any(folder.iterdir()):
        return f"{folder}: folder is empty (no train/images); is this a TGS data folder?"
    if with_test:
        return f"{folder}: no PNG files in train/images or test/images; is this a TGS data folder?"
    state = "the folder is missing" if not img_dir.is_dir() else "the folder holds none"
    n_test = len(_ids_in(test_dir))
    test = f", though test/images has {n_test}" if n_test else ""
    return f"{folder}: no training images: no PNG files in train/images ({state}){test}; this command needs training images"


def test_image_count(folder: str | Path) -> int:
    """How many test images ``folder/test/images`` holds (0 without that folder), without reading them."""
    return len(_ids_in(Path(folder) / "test" / "images"))


def load_dataset(folder: str | Path, *, with_test: bool = True) -> TGSData:
    """Load a TGS dataset folder into memory.

    Args:
        folder: the dataset folder (layout in the module docstring).
        with_test: also read ``test/images`` (skip it for training-only work).

    Raises:
        SalttuneError: a missing folder or PNG, an unreadable PNG, an image of another size, a mask without an
            image, a malformed or out-of-range RLE, or an RLE that disagrees with its mask PNG.
    """
    folder = Path(folder)
    if folder.is_file():
        raise SalttuneError(f"{folder}: is a file, not a data folder; give the folder that holds train/images")
    if not folder.is_dir():
        raise SalttuneError(f"{folder}: data folder does not exist; create one with 'salttune synth --out {folder}'")
    img_dir = folder / "train" / "images"
    test_dir = folder / "test" / "images"
    for d in (img_dir, test_dir):
        if d.is_file():
            raise SalttuneError(f"{d}: is a file, not a folder; it should be the folder of <id>.png files")
    train_ids = _ids_in(img_dir)
    test_ids = _ids_in(test_dir) if with_test else []
    if not train_ids and not (with_test and test_ids):  # test images alone serve only a command that predicts
        raise SalttuneError(_no_images(folder, img_dir, test_dir, with_test))

    paths = [img_dir / f"{i}.png" for i in train_ids]
    train_images = _stack(_read_all(read_image, paths), paths, None, np.uint8)
    shape = train_images.shape[1:] if train_ids else None
    test_paths = [test_dir / f"{i}.png" for i in test_ids]
    test_images = _stack(_read_all(read_image, test_paths), test_paths, shape, np.uint8)
    shape = shape or test_images.shape[1:]

    train_masks = _train_masks(folder, train_ids, shape) if train_ids else np.zeros((0, *shape), bool)
    depths, has_depths = _depths(folder, train_ids + test_ids)
    return TGSData(
        folder=folder,
        train_ids=train_ids,
        train_images=train_images,
        train_masks=train_masks,
        train_depths=depths[: len(train_ids)],
        test_ids=test_ids,
        test_images=test_images,
        test_depths=depths[len(train_ids) :],
        has_depths=has_depths,
    )


def dataset_fingerprint(data: TGSData) -> str:
    """A SHA-256 over ids, pixels, masks and depths: two folders with equal content share it."""
    h = hashlib.sha256()
    for ids in (data.train_ids, data.test_ids):
        h.update("\n".join(ids).encode())
    for a in (data.train_images, data.train_masks, data.train_depths, data.test_images, data.test_depths):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()
