"""Shared fixtures: a tiny TGS-layout dataset written the way Kaggle ships it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from salttune.rle import rle_encode

REAL_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "tgs_sample"


def write_tgs_folder(root: Path, n_train: int = 12, n_test: int = 4, size: int = 101, seed: int = 0) -> dict:
    """Write a small dataset with Kaggle's quirks: RGB images with R=G=B, 16-bit non-empty masks, 8-bit empty."""
    rng = np.random.default_rng(seed)
    (root / "train" / "images").mkdir(parents=True)
    (root / "train" / "masks").mkdir(parents=True)
    (root / "test" / "images").mkdir(parents=True)
    ids = [f"{k:010x}" for k in range(n_train)]
    test_ids = [f"{k + 1000:010x}" for k in range(n_test)]
    images, masks, rows = {}, {}, []
    for k, i in enumerate(ids):
        img = rng.integers(0, 256, (size, size), dtype=np.uint8)
        mask = np.zeros((size, size), bool)
        if k % 3:  # every third image empty
            mask[: rng.integers(1, size), : rng.integers(1, size)] = True
        cv2.imwrite(str(root / "train" / "images" / f"{i}.png"), np.dstack([img] * 3))
        m16 = mask.astype(np.uint16) * 65535 if mask.any() else mask.astype(np.uint8)
        cv2.imwrite(str(root / "train" / "masks" / f"{i}.png"), m16)
        images[i], masks[i] = img, mask
        rows.append(f"{i},{rle_encode(mask)}")
    for i in test_ids:
        cv2.imwrite(str(root / "test" / "images" / f"{i}.png"), np.dstack([rng.integers(0, 256, (size, size), dtype=np.uint8)] * 3))
    (root / "train.csv").write_text("id,rle_mask\n" + "\n".join(rows) + "\n")
    depths = [f"{i},{50 + 7 * k}" for k, i in enumerate(ids + test_ids)]
    (root / "depths.csv").write_text("id,z\n" + "\n".join(depths) + "\n")
    return {"ids": ids, "test_ids": test_ids, "images": images, "masks": masks}


@pytest.fixture
def tgs_folder(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "tgs"
    return root, write_tgs_folder(root)


CLI = [sys.executable, "-m", "salttune.cli"]  # the argv of ``salttune``


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``salttune ARGS`` as a user would: a separate process, text output captured, ``env`` added to ours."""
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env={**os.environ, **(env or {})})


def run_search_cli(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """``salttune search ARGS`` as a user runs it, in a separate process."""
    return run_cli("search", *args, cwd=cwd, timeout=timeout, env=env)


ROOT = Path(__file__).resolve().parents[1]  # the checkout: python -m benchmarks runs from here


def run_bench(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m benchmarks ARGS`` as a user runs it from a checkout's root, in a separate process."""
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env={**os.environ, **(env or {})})


def assert_user_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit code 2, one line on stderr naming the problem, and no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    for f in fragments:
        assert f in err, (f, err)
