"""Issue 13's sweep of bad inputs, each run as a user runs it: exit code 2, one line naming the thing, no traceback.

Every case has a class (the kinds of mistake the issue lists), a short description of the input, a function that
breaks a fresh tiny data folder and returns the CLI arguments, and fragments the one line must contain. A few
cases are legal but surely unmeant: those exit 0 (or fail later) and must print a one-line ``warning:``.

    python tests/test_bad_input.py --table [-k 'WORD|WORD']   # the table, measured from real runs, as markdown
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import assert_user_error, run_cli, write_tgs_folder  # noqa: E402
from salttune.leaderboard import FAILED, write_leaderboard  # noqa: E402

OUT_OF_RANGE = "out of range"
EMPTY = "empty or header-only"
FILE_FOLDER = "file vs folder"
WRONG = "wrong content"
IMAGE = "unfaithful image or mask"
MISLEADING = "misleading message"
TRACEBACK = "traceback"


@dataclass
class Case:
    cls: str
    name: str  # the input, short
    make: Callable[[Path, Path], list[str]]  # (data folder, tmp) -> CLI args, after breaking what it must
    fragments: list[str]  # the one line (the warning line for warn cases) contains each
    exit: int = 2
    warn: bool = False  # a warning on stderr, not an error
    slow: bool = False  # runs real work (training) after the warning


# -- helpers that break things ------------------------------------------------------------------------------

def _first(root: Path, sub: str = "images") -> Path:
    return sorted((root / "train" / sub).glob("*.png"))[0]


def _salt_mask(root: Path) -> Path:
    """The first non-empty (16-bit) mask."""
    return next(p for p in sorted((root / "train" / "masks").glob("*.png")) if cv2.imread(str(p), cv2.IMREAD_UNCHANGED).any())


def _png(path: Path, array: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), array)
    return path


def _paletted(path: Path, gray: np.ndarray) -> Path:
    from PIL import Image

    Image.fromarray(gray).convert("P").save(path)
    return path


def _write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)
    return path


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _rle(root: Path, value: str) -> None:
    lines = (root / "train.csv").read_text().splitlines()
    lines[1] = lines[1].split(",")[0] + "," + value
    (root / "train.csv").write_text("\n".join(lines) + "\n")


def _no_mask_pngs(root: Path) -> None:
    for p in (root / "train" / "masks").glob("*.png"):
        p.unlink()
    (root / "train" / "masks").rmdir()


def _space(tmp: Path, body: str) -> str:
    return str(_write(tmp / "space.yaml", body))


GOOD_SPACE = "name: s\ndata: {folder: DATA}\nspace:\n  optim.lr: {loguniform: [1.0e-3, 1.0e-2]}\n"
ROWS = ["id,rle_mask", "a,1 3", "b,", "c,5 5"]


def _submission(tmp: Path, edit, truth: list[str] = ROWS, *extra: str) -> list[str]:
    _write(tmp / "truth.csv", "\n".join(truth) + "\n")
    _write(tmp / "sub.csv", "\n".join(edit(list(truth))) + "\n")
    return ["score", str(tmp / "sub.csv"), "--truth", str(tmp / "truth.csv"), *extra]


def _score(tmp: Path, sub: Path, *extra: str) -> list[str]:
    _write(tmp / "truth.csv", "\n".join(ROWS) + "\n")
    return ["score", str(sub), "--truth", str(tmp / "truth.csv"), *extra]


def _failed_search(tmp: Path) -> None:
    d = tmp / "results" / "dead"
    d.mkdir(parents=True)
    write_leaderboard([{"trial_id": "a1", "state": FAILED, "best_score": None, "checkpoint_path": "", "snapshots": ""}], d / "leaderboard.csv")


def _torch_save(path: Path, obj) -> Path:
    import torch

    torch.save(obj, path)
    return path


def _train(root: Path, *sets: str, data: str | None = None, extra: tuple[str, ...] = ()) -> list[str]:
    args = ["train", "--data", data or str(root), "--quiet"]
    for s in sets:
        args += ["--set", s]
    return args + list(extra)


def _predict(root: Path, tmp: Path, *extra: str, ckpt: str | None = None, out: Path | None = None) -> list[str]:
    return ["predict", "--checkpoint", ckpt or str(tmp / "model.pt"), "--data", str(root), "--out", str(out or tmp / "sub.csv"),
            "--quiet", *extra]


def _synth(tmp: Path, *extra: str) -> list[str]:
    return ["synth", "--n-train", "2", "--n-test", "0", "--workers", "1", "--quiet", *extra]


# The one-epoch training run the slow warning cases finish: tiny, so it takes seconds on a CPU.
TINY = ("epochs=1", "model.base_width=2", "model.depth=2", "batch_size=4", "device=cpu")

CASES = [
    # -- inputs that once ended in a traceback --------------------------------------------------------------------------
    Case(TRACEBACK, "synth --out FILE", lambda r, t: _synth(t, "--out", str(_write(t / "f", "x"))), ["is a file", "--out"]),
    Case(TRACEBACK, "score: both files header-only", lambda r, t: _submission(t, lambda rows: rows[:1], ROWS[:1]),
         ["truth.csv", "no rows"]),
    Case(TRACEBACK, "train --out FILE", lambda r, t: _train(r, extra=("--out", str(_write(t / "f", "x")))), ["is a file", "--out"]),
    Case(TRACEBACK, "report --out FOLDER", lambda r, t: ["report", str(_train_run(t)), "--out", str(_folder(t / "o"))],
         ["is a folder", "--out"]),
    Case(TRACEBACK, "history --results FILE", lambda r, t: ["history", "--results", str(_write(t / "f", "x"))], ["is a file", "--results"]),
    Case(TRACEBACK, "predict --out FOLDER --force", lambda r, t: _predict(r, t, "--force", out=_folder(t / "o")),
         ["is a folder", "--out"]),
    Case(TRACEBACK, "synth --preview FOLDER.png", lambda r, t: ["synth", "--data", str(r), "--preview", str(_folder(t / "p.png"))],
         ["is a folder", "--preview"]),
    Case(TRACEBACK, "report on a header-only leaderboard.csv", lambda r, t: ["report", str(_header_only_search(t))],
         ["leaderboard.csv", "no trials"]),

    # -- misleading messages ---------------------------------------------------------------------------------
    Case(MISLEADING, "train on a folder with only test/images", lambda r, t: (_only_test(r), _train(r))[1],
         ["no training images", "train/images", "test/images"]),
    Case(MISLEADING, "train --config FOLDER", lambda r, t: _train(r, extra=("--config", str(_folder(t / "cfg")))),
         ["is a folder", "YAML file"]),
    Case(MISLEADING, "predict --checkpoint a PNG", lambda r, t: _predict(r, t, ckpt=str(_first(r))),
         ["a PNG image", "not a salttune checkpoint"]),
    Case(MISLEADING, "predict --out in a missing folder", lambda r, t: _predict(r, t, out=t / "no" / "sub.csv"),
         ["/no: folder does not exist", "--out"]),
    Case(MISLEADING, "report --out in a missing folder", lambda r, t: ["report", str(_train_run(t)), "--out", str(t / "no" / "r.html")],
         ["r.html", "the folder", "/no does not exist"]),
    Case(MISLEADING, "score a submission with a byte-order mark", lambda r, t: _score(t, _write(t / "bom.csv", "\ufeff" + "\n".join(ROWS) + "\n")),
         ["score 1.0000"], exit=0),
    Case(MISLEADING, "score --truth with a byte-order mark", lambda r, t: ["score", str(_write(t / "s.csv", "\n".join(ROWS) + "\n")), "--truth",
                                                                            str(_write(t / "bom.csv", "\ufeff" + "\n".join(ROWS) + "\n"))],
         ["score 1.0000"], exit=0),
    Case(MISLEADING, "predict --checkpoint FOLDER", lambda r, t: _predict(r, t, ckpt=str(_folder(t / "ck"))), ["is a folder", "checkpoint"]),
    Case(MISLEADING, "score FOLDER", lambda r, t: _score(t, _folder(t / "s")), ["is a folder", "CSV"]),
    Case(MISLEADING, "stats --data FILE", lambda r, t: ["stats", "--data", str(_write(t / "f", "x"))], ["is a file", "data folder"]),
    Case(MISLEADING, "predict --out an existing folder", lambda r, t: _predict(r, t, out=_folder(t / "o")),
         ["is a folder", "--out"]),
    Case(MISLEADING, "train on an empty folder", lambda r, t: _train(r, data=str(_folder(t / "empty"))),
         ["empty", "no train/images"]),
    Case(MISLEADING, "--set model.block=dense", lambda r, t: _train(r, "model.block=dense"), ["model.block", "residual_se"]),
    Case(MISLEADING, "--set loss.name=bce+hinge", lambda r, t: _train(r, "loss.name=bce+hinge"), ["loss.name", "hinge", "lovasz"]),
    Case(MISLEADING, "--resume of a search that does not exist", lambda r, t: ["search", "--resume", "--name", "ghost"],
         ["ghost", "no search to resume"]),
    Case(MISLEADING, "ensemble with no finished trials",
         lambda r, t: (_failed_search(t), ["ensemble", "--search", "dead", "--top", "1", "--results", str(t / "results")])[1],
         ["0 finished trial(s)", "--top 1"]),
    Case(MISLEADING, "predict --batch-size abc (argparse)", lambda r, t: _predict(r, t, "--batch-size", "abc"),
         ["--batch-size", "invalid int value", "--help"]),

    # -- values out of range ---------------------------------------------------------------------------------
    Case(OUT_OF_RANGE, "predict a use_depth model without depths.csv",
         lambda r, t: ((r / "depths.csv").unlink(), _predict(r, t, ckpt=str(_checkpoint(t, use_depth=True))))[1],
         ["model.use_depth", "no depths.csv"]),
    Case(OUT_OF_RANGE, "train --watch bogus", lambda r, t: _train(r, extra=("--watch", "bogus")), ["--watch", "bogus", "layer_stats"]),
    Case(OUT_OF_RANGE, "predict --tta rotate", lambda r, t: _predict(r, t, "--tta", "rotate"), ["--tta", "invalid choice", "flip"]),
    Case(OUT_OF_RANGE, "ensemble --combiner bogus", lambda r, t: ["ensemble", "--top", "1", "--combiner", "bogus"], ["--combiner", "invalid choice"]),
    Case(OUT_OF_RANGE, "score --size abc", lambda r, t: _submission(t, lambda rows: rows, ROWS, "--size", "abc"), ["--size", "invalid int value"]),
    *[Case(OUT_OF_RANGE, f"predict --threshold {v}", lambda r, t, v=v: _predict(r, t, "--threshold", v), ["--threshold", v, "between 0 and 1"])
      for v in ("7", "1", "0", "-0.5", "nan")],
    Case(OUT_OF_RANGE, "predict --batch-size 0", lambda r, t: _predict(r, t, "--batch-size", "0"), ["--batch-size", "at least 1"]),
    Case(OUT_OF_RANGE, "--set threshold=1.0", lambda r, t: _train(r, "threshold=1.0"), ["threshold", "out of range", "(0.0, 1.0)"]),
    Case(OUT_OF_RANGE, "--set threshold=0", lambda r, t: _train(r, "threshold=0"), ["threshold", "out of range"]),
    Case(OUT_OF_RANGE, "--set loss.weights=[0,0]", lambda r, t: _train(r, "loss.weights=[0,0]"), ["loss.weights", "all zero"]),
    Case(OUT_OF_RANGE, "--set loss.weights=[1,-1]", lambda r, t: _train(r, "loss.weights=[1,-1]"), ["loss.weights", "out of range"]),
    *[Case(OUT_OF_RANGE, f"score --size {v}", lambda r, t, v=v: _submission(t, lambda rows: rows, ROWS, "--size", v), ["--size", "at least 1"])
      for v in ("-5", "0")],
    Case(OUT_OF_RANGE, "model.use_depth=true without depths.csv", lambda r, t: ((r / "depths.csv").unlink(), _train(r, "model.use_depth=true"))[1],
         ["model.use_depth", "depths.csv"]),
    Case(OUT_OF_RANGE, "--set model.dropout=1.5", lambda r, t: _train(r, "model.dropout=1.5"), ["model.dropout", "out of range"]),
    Case(OUT_OF_RANGE, "--set optim.lr=0", lambda r, t: _train(r, "optim.lr=0"), ["optim.lr", "out of range"]),
    Case(OUT_OF_RANGE, "--set epochs=0", lambda r, t: _train(r, "epochs=0"), ["epochs", "out of range"]),
    Case(OUT_OF_RANGE, "--set optim.lr=inf", lambda r, t: _train(r, "optim.lr=.inf"), ["optim.lr", "not a finite number"]),
    Case(OUT_OF_RANGE, "synth --workers 0", lambda r, t: _synth(t, "--out", str(t / "s"))[:-3] + ["--workers", "0", "--quiet"],
         ["--workers", "at least 1"]),
    Case(OUT_OF_RANGE, "synth --n-train -1", lambda r, t: ["synth", "--out", str(t / "s"), "--n-train", "-1"], ["--n-train must be at least 0, not -1"]),
    Case(OUT_OF_RANGE, "synth --n-train 0 --n-test 0", lambda r, t: ["synth", "--out", str(t / "s"), "--n-train", "0", "--n-test", "0"],
         ["not both 0"]),
    Case(OUT_OF_RANGE, "ensemble --folds 1", lambda r, t: ["ensemble", "--top", "1", "--folds", "1"], ["--folds", "at least 2"]),
    Case(OUT_OF_RANGE, "ensemble --top 0", lambda r, t: ["ensemble", "--top", "0"], ["--top", "at least 1"]),
    Case(OUT_OF_RANGE, "ensemble --refit-folds 1", lambda r, t: ["ensemble", "--top", "1", "--refit-folds", "1"],
         ["--refit-folds", "at least 2"]),
    Case(OUT_OF_RANGE, "train --folds 1", lambda r, t: _train(r, extra=("--folds", "1")), ["--folds", "at least 2"]),
    Case(OUT_OF_RANGE, "--set fold=5 with folds=5", lambda r, t: _train(r, "folds=5", "fold=5"), ["'fold'", "0 to 4"]),
    Case(OUT_OF_RANGE, "--set holdout_fraction=0.5", lambda r, t: _train(r, "holdout_fraction=0.5"), ["holdout_fraction"]),
    Case(OUT_OF_RANGE, "--set threshold= (empty)", lambda r, t: _train(r, "threshold="), ["threshold", "not a number"]),

    # -- empty or header-only files --------------------------------------------------------------------------
    Case(EMPTY, "score --truth header-only", lambda r, t: _submission(t, lambda rows: rows, ROWS[:1]), ["truth.csv", "no rows"]),
    Case(EMPTY, "score an empty (0-byte) submission", lambda r, t: _score(t, _write(t / "e.csv", "")), ["e.csv", "empty"]),
    Case(EMPTY, "train.csv empty, no train/masks", lambda r, t: (_no_mask_pngs(r), _write(r / "train.csv", ""), _train(r))[2],
         ["train.csv", "empty"]),
    Case(EMPTY, "train.csv header-only, no train/masks", lambda r, t: (_no_mask_pngs(r), _write(r / "train.csv", "id,rle_mask\n"), _train(r))[2],
         ["train.csv", "no row for image"]),
    Case(EMPTY, "depths.csv empty", lambda r, t: (_write(r / "depths.csv", ""), _train(r))[1], ["depths.csv", "empty"]),
    Case(EMPTY, "depths.csv header-only", lambda r, t: (_write(r / "depths.csv", "id,z\n"), _train(r))[1], ["depths.csv", "no depth for id"]),
    Case(EMPTY, "an empty (0-byte) image PNG", lambda r, t: (_write(_first(r), b""), _train(r))[1], ["empty"]),
    Case(EMPTY, "an empty (0-byte) checkpoint", lambda r, t: _predict(r, t, ckpt=str(_write(t / "e.pt", b""))), ["e.pt", "empty"]),
    Case(EMPTY, "report of a run with an empty metrics.jsonl",
         lambda r, t: (_write(_train_run(t) / "metrics.jsonl", ""), ["report", str(t / "results" / "run")])[1],
         ["metrics.jsonl", "no epochs"]),
    Case(EMPTY, "train --config an empty YAML file", lambda r, t: _train(r, data=str(t / "nowhere"), extra=("--config", str(_write(t / "c.yaml", "# nothing\n")))),
         ["c.yaml", "holds no settings", "defaults"], exit=2, warn=True),
    Case(EMPTY, "train/images with no PNG", lambda r, t: ([p.unlink() for p in (r / "train" / "images").glob("*.png")], _train(r))[1],
         ["no training images", "train/images"]),
    Case(EMPTY, "stats on a folder with only test/images", lambda r, t: (_only_test(r), ["stats", "--data", str(r)])[1],
         ["no training images"]),

    # -- a file where a folder is expected, or the reverse ---------------------------------------------------
    Case(FILE_FOLDER, "train --data FILE", lambda r, t: _train(r, data=str(_write(t / "f", "x"))), ["is a file", "data folder"]),
    Case(FILE_FOLDER, "stats --compare FILE", lambda r, t: ["stats", "--data", str(r), "--compare", str(_write(t / "f", "x"))],
         ["is a file", "data folder"]),
    Case(FILE_FOLDER, "score --truth FOLDER", lambda r, t: ["score", str(_write(t / "s.csv", "\n".join(ROWS))), "--truth", str(_folder(t / "tr"))],
         ["is a folder", "CSV"]),
    Case(FILE_FOLDER, "ensemble --results FILE", lambda r, t: ["ensemble", "--top", "1", "--results", str(_write(t / "f", "x"))],
         ["is a file", "--results"]),
    Case(FILE_FOLDER, "train/images is a file", lambda r, t: (_replace_with_file(r / "train" / "images"), _train(r))[1],
         ["train/images", "is a file"]),
    Case(FILE_FOLDER, "train.csv is a folder", lambda r, t: (_no_mask_pngs(r), (r / "train.csv").unlink(), _folder(r / "train.csv"), _train(r))[3],
         ["train.csv", "is a folder"]),
    Case(FILE_FOLDER, "depths.csv is a folder", lambda r, t: ((r / "depths.csv").unlink(), _folder(r / "depths.csv"), _train(r))[2],
         ["depths.csv", "is a folder"]),
    Case(FILE_FOLDER, "report --results FILE", lambda r, t: ["report", "--results", str(_write(t / "f", "x"))], ["is a file", "--results"]),
    Case(FILE_FOLDER, "missing data folder", lambda r, t: _train(r, data=str(t / "nowhere")), ["nowhere", "does not exist"]),

    # -- a file whose content is not what its name says ------------------------------------------------------
    Case(WRONG, "corrupt PNG", lambda r, t: (_write(_first(r), b"\x89PNG broken"), _train(r))[1], ["not a readable PNG"]),
    Case(WRONG, "a JPEG named .png", lambda r, t: (_jpeg_as_png(_first(r)), _train(r))[1], ["JPEG", "not a PNG"]),
    Case(WRONG, "a text file named .png", lambda r, t: (_write(_first(r), "hello\n"), _train(r))[1], ["not a PNG"]),
    Case(WRONG, "wrong-sized PNG", lambda r, t: (_png(_first(r), np.zeros((50, 101, 3), np.uint8)), _train(r))[1], ["size 101x50 differs"]),
    Case(WRONG, "mask without an image", lambda r, t: (_png(r / "train" / "masks" / "abcdef0123.png", np.zeros((101, 101), np.uint8)), _train(r))[1],
         ["abcdef0123.png", "mask has no image"]),
    Case(WRONG, "malformed RLE in train.csv", lambda r, t: (_rle(r, "5 x"), _train(r))[1], ["train.csv", "line 2", "not an integer"]),
    Case(WRONG, "train.csv with other columns", lambda r, t: (_write(r / "train.csv", "a,b\n"), _train(r))[1], ["columns are a,b"]),
    Case(WRONG, "depths.csv with a word for z", lambda r, t: (_write(r / "depths.csv", (r / "depths.csv").read_text().replace(",50", ",deep")), _train(r))[1],
         ["depths.csv", "'deep' is not a number"]),
    Case(WRONG, "depths.csv z=12.5 (not whole)", lambda r, t: (_write(r / "depths.csv", (r / "depths.csv").read_text().replace(",50", ",12.5")), _train(r))[1],
         ["depths.csv", "12.5", "whole number"]),
    Case(WRONG, "config YAML not a mapping", lambda r, t: _train(r, extra=("--config", str(_write(t / "c.yaml", "- 1\n- 2\n")))),
         ["c.yaml", "mapping"]),
    Case(WRONG, "config file is binary", lambda r, t: _train(r, extra=("--config", str(_write(t / "c.yaml", b"\xff\xfe\x00\x01"))))
         , ["c.yaml", "not a text file"]),
    Case(WRONG, "config YAML with an unknown key", lambda r, t: _train(r, extra=("--config", str(_write(t / "c.yaml", "optim: {rate: 1}\n")))),
         ["c.yaml", "optim.rate", "is unknown"]),
    Case(WRONG, "synth --preview p.jpg", lambda r, t: ["synth", "--data", str(r), "--preview", str(t / "p.jpg")], ["p.jpg", "ending in .png"]),
    Case(WRONG, "report of a folder that is no run", lambda r, t: ["report", str(_folder(t / "x"))], ["neither leaderboard.csv", "metrics.jsonl"]),
    Case(WRONG, "report of a run whose summary.json is broken",
         lambda r, t: (_write(_train_run(t) / "summary.json", "{broken"), ["report", str(t / "results" / "run")])[1],
         ["summary.json", "not readable JSON"]),
    Case(WRONG, "search space not YAML", lambda r, t: ["search", "--space", _space(t, "name: [unclosed\n")], ["space.yaml", "YAML"]),
    Case(WRONG, "unknown search parameter", lambda r, t: ["search", "--space", _space(t, GOOD_SPACE.replace("optim.lr", "optim.lrate"))],
         ["space.yaml", "optim.lrate"]),
    Case(OUT_OF_RANGE, "search --time-budget soon", lambda r, t: ["search", "--space", _space(t, GOOD_SPACE), "--time-budget", "soon"],
         ["--time-budget", "'soon' is not a duration", "90s, 45m, 2h, 1h30m"]),
    Case(WRONG, "search space time_budget: 2 days", lambda r, t: ["search", "--space", _space(t, GOOD_SPACE + "time_budget: 2 days\n")],
         ["space.yaml", "key 'time_budget'", "'2 days' is not a duration", "1h30m"]),
    Case(WRONG, "search condition on a missing parameter",
         lambda r, t: ["search", "--space", _space(t, GOOD_SPACE + "  optim.momentum: {uniform: [0.8, 0.9], when: {optim.kind: sgd}}\n")],
         ["space.yaml", "optim.kind"]),
    Case(WRONG, "--checkpoint a text file", lambda r, t: _predict(r, t, ckpt=str(_write(t / "m.pt", "hello\n"))),
         ["m.pt", "not a salttune checkpoint"]),
    Case(WRONG, "--checkpoint a torch file of another program", lambda r, t: _predict(r, t, ckpt=str(_torch_save(t / "m.pt", {"w": 1}))),
         ["m.pt", "no 'salttune-checkpoint-v1' marker"]),
    Case(WRONG, "score a binary file", lambda r, t: _score(t, _write(t / "b.csv", b"\xff\xd8\xff\x00\x81")), ["b.csv", "not a text CSV"]),
    Case(WRONG, "score a CSV with another header", lambda r, t: _score(t, _write(t / "h.csv", "a,b\n")), ["h.csv", "line 1", "id,rle_mask"]),
    Case(WRONG, "score a submission with a missing id", lambda r, t: _submission(t, lambda rows: rows[:-1]), ["is missing"]),
    Case(WRONG, "score a submission with an extra id", lambda r, t: _submission(t, lambda rows: rows + ["zzz,1 2"]), ["zzz", "extra row"]),
    Case(WRONG, "score a submission with a duplicate id", lambda r, t: _submission(t, lambda rows: rows + [rows[1]]), ["duplicate id"]),
    Case(WRONG, "score --size 5 with RLE past 25 pixels", lambda r, t: _submission(t, lambda rows: rows, ["id,rle_mask", "a,20 10"], "--size", "5"),
         ["past the last pixel 25"]),
    Case(WRONG, "report of a leaderboard without its columns", lambda r, t: ["report", str(_write_dir(t / "s", "leaderboard.csv", "x,y\n1,2\n"))],
         ["leaderboard.csv", "missing"]),

    # -- images and masks that cannot be read faithfully -----------------------------------------------------
    Case(IMAGE, "16-bit image", lambda r, t: (_png(_first(r), np.full((101, 101), 300, np.uint16)), _train(r))[1], ["16-bit", "8-bit"]),
    Case(IMAGE, "colour image (channels differ)", lambda r, t: (_png(_first(r), _colour()), _train(r))[1], ["channels differ", "grayscale"]),
    Case(IMAGE, "paletted image", lambda r, t: (_paletted(_first(r), np.full((101, 101), 7, np.uint8)), _train(r))[1], ["paletted"]),
    Case(IMAGE, "image with transparency", lambda r, t: (_png(_first(r), _alpha(128)), _train(r))[1], ["transparen"]),
    Case(IMAGE, "mask with values 0/1", lambda r, t: (_png(_first(r, "masks"), np.eye(101, dtype=np.uint8)), _train(r))[1],
         ["mask", "value 1", "0 and 255"]),
    Case(IMAGE, "16-bit mask with value 1000", lambda r, t: (_png(_salt_mask(r), np.eye(101, dtype=np.uint16) * 1000), _train(r))[1],
         ["mask", "value 1000", "65535"]),
    Case(IMAGE, "mask in colour (channels differ)", lambda r, t: (_png(_first(r, "masks"), _colour()), _train(r))[1], ["channels differ"]),
    Case(IMAGE, "paletted mask", lambda r, t: (_paletted(_first(r, "masks"), np.eye(101, dtype=np.uint8) * 255), _train(r))[1], ["paletted"]),

    # -- legal but surely unmeant: a one-line warning --------------------------------------------------------
    Case(OUT_OF_RANGE, "score a file against itself", lambda r, t: ["score", str(_write(t / "s.csv", "\n".join(ROWS) + "\n")), "--truth", str(t / "s.csv")],
         ["the same file"], exit=0, warn=True),
    Case(OUT_OF_RANGE, "--set schedule.min_lr above optim.lr", lambda r, t: _train(r, *TINY, "schedule.min_lr=0.5", extra=("--out", str(t / "run"))),
         ["schedule.min_lr", "optim.lr"], exit=0, warn=True, slow=True),
    Case(OUT_OF_RANGE, "--set optim.momentum with adam", lambda r, t: _train(r, *TINY, "optim.momentum=0.5", extra=("--out", str(t / "run"))),
         ["optim.momentum", "adam"], exit=0, warn=True, slow=True),
]


def _only_test(root: Path) -> None:
    import shutil

    shutil.rmtree(root / "train")
    for f in ("train.csv",):
        (root / f).unlink()


def _replace_with_file(path: Path) -> None:
    import shutil

    shutil.rmtree(path)
    path.write_text("x")


def _jpeg_as_png(path: Path) -> None:
    ok, buf = cv2.imencode(".jpg", np.dstack([np.full((101, 101), 9, np.uint8)] * 3))
    path.write_bytes(buf.tobytes())


def _colour() -> np.ndarray:
    img = np.zeros((101, 101, 3), np.uint8)
    img[..., 2] = 200  # red only
    return img


def _alpha(a: int) -> np.ndarray:
    img = np.full((101, 101, 4), 100, np.uint8)
    img[..., 3] = a
    return img


def _write_dir(folder: Path, name: str, text: str) -> Path:
    _write(folder / name, text)
    return folder


def _header_only_search(tmp: Path) -> Path:
    return _write_dir(tmp / "results" / "s", "leaderboard.csv", "trial_id,state,best_score,checkpoint_path,snapshots\n")


def _checkpoint(tmp: Path, **model_args) -> Path:
    """A file salttune reads as a checkpoint (the marker and the model's arguments; no weights needed to fail)."""
    from salttune.checkpoint import save_checkpoint

    return save_checkpoint(tmp / "model.pt", {"model_args": model_args, "config": {}})


def _train_run(tmp: Path) -> Path:
    """A training run's folder as ``salttune report`` reads it (metrics.jsonl and summary.json)."""
    d = tmp / "results" / "run"
    _write(d / "metrics.jsonl", '{"epoch": 1, "train_loss": 1.0, "val_loss": 1.0, "val_score": 0.5, "val_iou": 0.5, "lr": 0.001}\n')
    _write(d / "summary.json", '{"best_score": 0.5, "best_epoch": 1, "snapshots": []}')
    return d


def run_case(case: Case, tmp: Path, timeout: float = 300):
    root = tmp / "data"
    write_tgs_folder(root, n_train=6, n_test=2)
    args = [a.replace("DATA", str(root)) for a in case.make(root, tmp)]
    return run_cli(*args, cwd=tmp, timeout=timeout)


def check(case: Case, proc) -> None:
    if case.warn:
        assert proc.returncode == case.exit, (proc.returncode, proc.stdout, proc.stderr)
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("warning:")]
        assert len(lines) == 1, proc.stderr
        for f in case.fragments:
            assert f in lines[0], (f, lines[0])
    elif case.exit == 0:
        assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
        for f in case.fragments:
            assert f in proc.stdout, (f, proc.stdout)
    else:
        assert_user_error(proc, *case.fragments)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.cls}: {c.name}" for c in CASES])
def test_bad_input(case, tmp_path):
    proc = run_case(case, tmp_path)
    check(case, proc)


def _line(case: Case, proc) -> str:
    if proc.returncode != 0 and "Traceback" in proc.stderr:
        return "Traceback: " + proc.stderr.strip().splitlines()[-1]
    if case.warn:
        return next((ln for ln in proc.stderr.splitlines() if ln.startswith("warning:")), "(no warning)")
    text = proc.stderr.strip() if proc.returncode else proc.stdout.strip()
    lines = text.splitlines()
    return (lines[0] if lines else "(nothing)") + (f" (+{len(lines) - 1} more lines)" if len(lines) > 1 else "")


def print_table(word: str = "", timeout: float = 90) -> int:
    print("| class | input | exit code | the line printed | passes |")
    print("|---|---|---|---|---|")
    failed = 0
    for case in CASES:
        if not any(w in f"{case.cls} {case.name}" for w in word.split("|")):  # -k 'a|b': either
            continue
        with tempfile.TemporaryDirectory() as d:
            try:  # an input accepted by mistake may start a long training run: stop it, it was accepted
                proc = run_case(case, Path(d), timeout=timeout)
            except subprocess.TimeoutExpired as e:
                out = (e.stderr or b"").decode(errors="replace").strip().splitlines()
                print(f"| {case.cls} | `{case.name}` | - | accepted: still running after {timeout:.0f} s"
                      f"{' (stderr: ' + out[-1] + ')' if out else ''} | NO |", flush=True)
                failed += 1
                continue
            try:
                check(case, proc)
                ok = "yes"
            except AssertionError:
                ok, failed = "NO", failed + 1
            line = _line(case, proc).replace(d, "TMP").replace("|", "\\|")
        print(f"| {case.cls} | `{case.name}` | {proc.returncode} | {line} | {ok} |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    if "--table" not in sys.argv:
        sys.exit("usage: python tests/test_bad_input.py --table [-k WORD]")
    k = sys.argv[sys.argv.index("-k") + 1] if "-k" in sys.argv else ""
    sys.exit(print_table(k))
