"""Bad flags and files given to ``python -m benchmarks``, run as a user runs them from a checkout: exit code 2, one
line naming the thing, no traceback, nothing written. And where a run writes when no --out is given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from conftest import ROOT, assert_user_error, run_bench, write_tgs_folder

SPACE = "name: s\ndata: {folder: DATA}\nspace:\n  optim.lr: {loguniform: [1.0e-3, 1.0e-2]}\n"


def _write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def _folder(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def _live(tmp: Path) -> str:
    """A search benchmark's result that raced to 0.5."""
    return _write(tmp / "search.json", '{"target": 0.5, "trials": 4, "space": "s.yaml", "per_seed": [{"seed": 0}]}')


# (the input, short; (data folder, tmp) -> the arguments; fragments the one line contains)
CASES: list[tuple[str, Callable[[Path, Path], list[str]], list[str]]] = [
    ("no such benchmark", lambda r, t: ["fastest"], ["invalid choice: 'fastest'", "train"]),
    ("train without --data", lambda r, t: ["train"], ["required: --data"]),
    ("train --out FILE", lambda r, t: ["train", "--data", str(r), "--out", _write(t / "f", "x")], ["is a file", "--out"]),
    ("train --steps 0", lambda r, t: ["train", "--data", str(r), "--steps", "0"], ["argument --steps: must be at least 1, not 0"]),
    ("train --out and --reference", lambda r, t: ["train", "--data", str(r), "--out", str(t / "o"), "--reference"],
     ["--reference", "not allowed with argument --out"]),
    ("quality --folds 1", lambda r, t: ["quality", "--data", str(r), "--folds", "1"], ["--folds: must be at least 2, not 1"]),
    ("search without --target", lambda r, t: ["search", "--data", str(r)], ["required: --target"]),
    ("search --algorithms random,random", lambda r, t: ["search", "--data", str(r), "--target", "0.5", "--algorithms",
                                                       "random,random", "--out", str(t / "o")], ["--algorithms", "twice"]),
    ("replay --seeds 0", lambda r, t: ["replay", "--seeds", "0"], ["argument --seeds: must be at least 1, not 0"]),
    ("replay --concurrent 0", lambda r, t: ["replay", "--concurrent", "0"], ["--concurrent: must be at least 1"]),
    ("replay --horizon-trials 0", lambda r, t: ["replay", "--horizon-trials", "0"], ["--horizon-trials", "positive number"]),
    ("replay --horizon-trials nan", lambda r, t: ["replay", "--horizon-trials", "nan"], ["--horizon-trials", "positive number"]),
    ("replay --horizon-trials inf", lambda r, t: ["replay", "--horizon-trials", "inf"], ["--horizon-trials", "positive number"]),
    ("lcbench --startup-epochs -1", lambda r, t: ["lcbench", "--startup-epochs", "-1"], ["--startup-epochs", "non-negative number of epochs"]),
    ("replay --data (not its flag)", lambda r, t: ["replay", "--data", str(r)], ["unrecognized arguments: --data"]),
    ("replay --algorithms random,bogus", lambda r, t: ["replay", "--algorithms", "random,bogus", "--out", str(t / "o")],
     ["--algorithms", "unknown algorithm 'bogus'", "tpe+asha"]),
    ("record without --search", lambda r, t: ["record"], ["required: --search"]),
    ("confirm --target above the live races'", lambda r, t: ["confirm", "--live", _live(t), "--target", "0.9", "--out", str(t / "o")],
     ["--target 0.9", "stopped at 0.5"]),
    # empty or missing files
    ("replay --curves an empty file", lambda r, t: ["replay", "--curves", _write(t / "c.json", "")], ["c.json", "not a JSON curve table"]),
    ("replay --curves a missing file", lambda r, t: ["replay", "--curves", str(t / "none.json")],
     ["none.json", "no such file", "python -m benchmarks record"]),
    ("record of an empty folder", lambda r, t: ["record", "--search", _folder(t / "s"), "--out", str(t / "c.json")], ["no space.yaml"]),
    ("record of a search with no results",
     lambda r, t: ["record", "--search", str(Path(_write(t / "s" / "space.yaml", SPACE.replace("DATA", str(r)))).parent),
                   "--out", str(t / "c.json")], ["no trial reported a result"]),
    ("confirm --live a missing file", lambda r, t: ["confirm", "--live", str(t / "none.json")], ["none.json", "no such file", "benchmarks search"]),
    # a folder where a file is wanted, or the reverse
    ("record --out FOLDER", lambda r, t: ["record", "--search", str(t), "--out", _folder(t / "table")], ["is a folder", "--out"]),
    ("replay --curves FOLDER", lambda r, t: ["replay", "--curves", _folder(t / "c")], ["is a folder", "--curves"]),
    ("confirm --live FOLDER", lambda r, t: ["confirm", "--live", _folder(t / "l")], ["is a folder", "--live"]),
    # wrong content
    ("replay --curves not JSON", lambda r, t: ["replay", "--curves", _write(t / "c.json", "{broken")],
     ["c.json", "not a JSON curve table", "record it again"]),
    ("confirm --live a JSON that is no search result", lambda r, t: ["confirm", "--live", _write(t / "s.json", '{"benchmark": "train"}')],
     ["s.json", "not a result of python -m benchmarks search"]),
]


@pytest.mark.parametrize("name, make, fragments", CASES, ids=[c[0] for c in CASES])
def test_a_bad_flag_or_file_is_one_line_and_writes_nothing(name, make, fragments, tmp_path):
    root = tmp_path / "data"
    write_tgs_folder(root, n_train=6, n_test=2)
    before = _status()
    proc = run_bench(*make(root, tmp_path), timeout=120)
    assert_user_error(proc, *fragments)
    assert not (tmp_path / "o").exists() and _status() == before  # nothing in the checkout changed either


def _status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--ignored", "--", "results", "bench-out"], capture_output=True, text=True,
                          cwd=ROOT).stdout


def test_a_run_writes_to_bench_out_and_only_reference_writes_the_reference_folder(tmp_path):
    # run in an empty folder (the package on PYTHONPATH), so the defaults resolve there and not in the checkout
    from test_replay import choice_table

    table = str(choice_table(tmp_path))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = [sys.executable, "-m", "benchmarks", "replay", "--curves", table, "--seeds", "1", "--algorithms", "random",
           "--horizon-trials", "3"]
    work = tmp_path / "checkout"
    work.mkdir()
    proc = subprocess.run(run, capture_output=True, text=True, cwd=work, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (work / "bench-out").iterdir()) == ["README.md", "replay.json", "replay_anytime.png"]
    assert not (work / "results").exists()
    proc = subprocess.run([*run, "--reference"], capture_output=True, text=True, cwd=work, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    reference = work / "results" / "benchmarks"
    assert json.loads((reference / "replay.json").read_text())["command"].endswith("--reference")
    assert "## replay" in (reference / "README.md").read_text()
