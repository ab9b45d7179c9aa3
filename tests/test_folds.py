"""K-fold training (salttune/folds.py and `salttune train --folds K`), run as a user runs it."""

import json

import numpy as np
import pytest

from conftest import assert_user_error, run_cli, write_tgs_folder
from salttune.checkpoint import load_checkpoint
from salttune.data import load_dataset
from salttune.folds import with_extra
from salttune.layout import KFoldFiles
from salttune.split import Arrays, Split, split_data

SMALL = ["--set", "batch_size=8", "--set", "model.base_width=4", "--set", "model.depth=2", "--quiet"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("folds") / "data"
    write_tgs_folder(root, n_train=30, n_test=2, size=32)
    return root


def test_train_folds_trains_every_fold_and_summarises_them(data, tmp_path):
    out = tmp_path / "kf"
    proc = run_cli("train", "--data", str(data), "--out", str(out), "--folds", "3", "--set", "epochs=2",
                   "--set", "holdout_fraction=0.2", *SMALL)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(KFoldFiles(out).summary.read_text())
    scores = [r["best_score"] for r in summary["rows"]]
    assert [r["fold"] for r in summary["rows"]] == [0, 1, 2]
    assert summary["mean_score"] == pytest.approx(np.mean(scores)) and summary["sd_score"] == pytest.approx(np.std(scores, ddof=1))
    d = load_dataset(data, with_test=False)
    vals, holds = [], set()
    for f in range(3):
        cfg = load_checkpoint(KFoldFiles(out).fold(f).checkpoint.state)["config"]
        assert (cfg["folds"], cfg["fold"], cfg["holdout_fraction"]) == (3, f, 0.2)
        tr, va, hold = split_data(d, Split.of(cfg))
        assert json.loads(KFoldFiles(out).fold(f).summary.read_text())["val_images"] == len(va.ids)
        vals += va.ids
        holds |= set(hold.ids)
        assert not holds & (set(tr.ids) | set(va.ids))  # no fold trains or validates on the holdout
    assert len(holds) == 6 and sorted(vals) == sorted(set(d.train_ids) - holds)  # the folds' validation parts partition the rest
    assert f"mean {summary['mean_score']:.4f}" in proc.stdout
    rec = json.loads(KFoldFiles(out).record.read_text())
    assert rec["status"] == "completed" and rec["result"]["fold_scores"] == scores
    assert_user_error(run_cli("train", "--data", str(data), "--out", str(out), "--folds", "3", *SMALL), "already holds a run")


def test_an_interrupted_k_fold_run_resumes_where_it_stopped(data, tmp_path):
    from test_interrupt import assert_interrupted, interrupt_cli

    out = tmp_path / "kf"
    second = KFoldFiles(out).fold(1).metrics
    proc = interrupt_cli(["train", "--data", str(data), "--out", str(out), "--folds", "3", "--set", "epochs=40", *SMALL],
                         lambda: second.is_file() and second.read_text().count("\n") >= 1)
    assert_interrupted(proc, "train")
    first = KFoldFiles(out).fold(0).summary.read_bytes()
    assert json.loads(first)["epochs_run"] == 40
    epoch_one = second.read_text().splitlines()[0]
    assert_user_error(run_cli("train", "--data", str(data), "--out", str(out), "--folds", "3", "--resume",
                              "--set", "epochs=2", "--quiet"), "leave out --set")
    proc = run_cli("train", "--data", str(data), "--out", str(out), "--folds", "3", "--resume", "--quiet", timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "fold 1/3: finished earlier, kept" in proc.stdout
    assert KFoldFiles(out).fold(0).summary.read_bytes() == first  # the finished fold was not trained again
    lines = second.read_text().splitlines()
    assert lines[0] == epoch_one and [json.loads(x)["epoch"] for x in lines] == list(range(1, 41))  # continued, not restarted
    assert json.loads(KFoldFiles(out).summary.read_text())["rows"][2]["epochs_run"] == 40


def test_extra_images_join_the_training_part_only():
    a = Arrays(["a", "b"], np.zeros((2, 4, 4), np.uint8), np.zeros((2, 4, 4), bool), np.array([1.0, 2.0]))
    x = Arrays(["t1"], np.full((1, 4, 4), 7, np.uint8), np.ones((1, 4, 4), bool), np.array([3.0]))
    both = with_extra(a, x)
    assert both.ids == ["a", "b", "t1"] and both.images[2, 0, 0] == 7 and both.masks[2].all() and both.depths.tolist() == [1, 2, 3]
    assert with_extra(a, None) is a
