"""Issue 8's list of bad inputs, each run as a user runs it: exit code 2, one line naming the thing, no traceback."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import assert_user_error, run_cli, write_tgs_folder
from salttune.leaderboard import FAILED, write_leaderboard


def _first_image(root: Path) -> Path:
    return sorted((root / "train" / "images").glob("*.png"))[0]


def _rle(root: Path, value: str) -> None:
    lines = (root / "train.csv").read_text().splitlines()
    lines[1] = lines[1].split(",")[0] + "," + value
    (root / "train.csv").write_text("\n".join(lines) + "\n")


def _space(tmp: Path, body: str) -> str:
    f = tmp / "space.yaml"
    f.write_text(body)
    return str(f)


GOOD_SPACE = "name: s\ndata: {folder: DATA}\nspace:\n  optim.lr: {loguniform: [1.0e-3, 1.0e-2]}\n"

# (case, how to break things -> CLI args, fragments the one line must contain)
CASES = [
    ("missing data folder", lambda root, tmp: ["train", "--data", str(tmp / "nowhere")], ["nowhere", "does not exist"]),
    ("corrupt PNG", lambda root, tmp: (_first_image(root).write_bytes(b"\x89PNG broken"), ["train", "--data", str(root)])[1],
     ["not a readable PNG"]),
    ("wrong-sized PNG", lambda root, tmp: (cv2.imwrite(str(_first_image(root)), np.zeros((50, 101, 3), np.uint8)),
                                           ["train", "--data", str(root)])[1], ["size 101x50 differs"]),
    ("mask without an image", lambda root, tmp: (cv2.imwrite(str(root / "train" / "masks" / "abcdef0123.png"), np.zeros((101, 101), np.uint8)),
                                                 ["train", "--data", str(root)])[1], ["abcdef0123.png", "mask has no image"]),
    ("malformed RLE", lambda root, tmp: (_rle(root, "5 x"), ["train", "--data", str(root)])[1], ["train.csv", "line 2", "not an integer"]),
    ("search space not YAML", lambda root, tmp: ["search", "--space", _space(tmp, "name: [unclosed\n")], ["space.yaml", "YAML"]),
    ("unknown parameter", lambda root, tmp: ["search", "--space", _space(tmp, GOOD_SPACE.replace("optim.lr", "optim.lrate"))],
     ["space.yaml", "optim.lrate"]),
    ("unknown loss", lambda root, tmp: ["train", "--data", str(root), "--set", "loss.name=bce+hinge"], ["loss.name", "hinge", "lovasz"]),
    ("unknown block", lambda root, tmp: ["train", "--data", str(root), "--set", "model.block=dense"], ["model.block", "residual_se"]),
    ("value out of range", lambda root, tmp: ["train", "--data", str(root), "--set", "model.dropout=1.5"], ["model.dropout", "out of range"]),
    ("condition on a missing parameter", lambda root, tmp: ["search", "--space", _space(tmp, GOOD_SPACE + "  optim.momentum: {uniform: [0.8, 0.9], when: {optim.kind: sgd}}\n")],
     ["space.yaml", "optim.kind"]),
    ("--resume of a search that does not exist", lambda root, tmp: ["search", "--resume", "--name", "ghost"], ["ghost", "no search to resume"]),
    ("ensemble with no finished trials", lambda root, tmp: (_failed_search(tmp), ["ensemble", "--search", "dead", "--top", "1", "--results", str(tmp / "results")])[1],
     ["0 finished trial(s)", "--top 1"]),
    ("submission with a missing id", lambda root, tmp: _submission(tmp, lambda rows: rows[:-1]), ["is missing"]),
    ("submission with an extra id", lambda root, tmp: _submission(tmp, lambda rows: rows + ["zzz,1 2"]), ["zzz", "extra row"]),
    ("submission with a duplicate id", lambda root, tmp: _submission(tmp, lambda rows: rows + [rows[1]]), ["duplicate id"]),
]


def _failed_search(tmp: Path) -> None:
    d = tmp / "results" / "dead"
    d.mkdir(parents=True)
    write_leaderboard([{"trial_id": "a1", "state": FAILED, "best_score": None, "checkpoint_path": "", "snapshots": ""}], d / "leaderboard.csv")


def _submission(tmp: Path, edit) -> list[str]:
    rows = ["id,rle_mask", "a,1 3", "b,", "c,5 5"]
    (tmp / "truth.csv").write_text("\n".join(rows) + "\n")
    (tmp / "sub.csv").write_text("\n".join(edit(rows)) + "\n")
    return ["score", str(tmp / "sub.csv"), "--truth", str(tmp / "truth.csv")]


@pytest.mark.parametrize("case, make, fragments", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, make, fragments, tmp_path):
    root = tmp_path / "data"
    write_tgs_folder(root, n_train=6, n_test=2)
    args = make(root, tmp_path)
    args = [a.replace("DATA", str(root)) for a in args]
    proc = run_cli(*args, cwd=tmp_path)
    assert_user_error(proc, *fragments)
