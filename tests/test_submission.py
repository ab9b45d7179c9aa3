import json

import numpy as np
import pytest

from conftest import assert_user_error, run_cli
from salttune.errors import SalttuneError
from salttune.submission import read_masks_csv, score_files, write_submission


@pytest.fixture
def truth_and_pred(tmp_path):
    rng = np.random.default_rng(1)
    ids = [f"id{k}" for k in range(6)]
    truth = np.zeros((6, 101, 101), bool)
    truth[1, :50] = True  # coverage ~0.5
    truth[2, :, :30] = True
    truth[3] = rng.random((101, 101)) < 0.5
    pred = truth.copy()
    pred[2] = False  # missed salt: 0
    pred[4, :3, :3] = True  # false positive on empty: 0
    write_submission(tmp_path / "truth.csv", ids, truth)
    write_submission(tmp_path / "sub.csv", ids[::-1], pred[::-1])  # order must not matter
    return tmp_path, ids, truth, pred


def test_round_trip_and_score(truth_and_pred):
    d, ids, truth, pred = truth_and_pred
    got_ids, got = read_masks_csv(d / "truth.csv")
    assert got_ids == ids
    np.testing.assert_array_equal(got, truth)
    r = score_files(d / "sub.csv", d / "truth.csv")
    assert r["n"] == 6 and r["score"] == pytest.approx(4 / 6)
    assert r["by_coverage"]["0"] == {"n": 3, "score": pytest.approx(2 / 3), "iou": pytest.approx(2 / 3)}  # ids 0, 4, 5; 4 has a false positive


def test_write_streams_masks_and_refuses_a_count_mismatch(truth_and_pred):
    d, ids, truth, _ = truth_and_pred
    write_submission(d / "gen.csv", ids, (m for m in truth))  # a generator: masks written as they arrive
    assert (d / "gen.csv").read_text() == (d / "truth.csv").read_text()
    for masks in (truth[:-1], np.concatenate([truth, truth[:1]])):
        with pytest.raises(ValueError, match="6 ids but"):
            write_submission(d / "gen.csv", ids, masks)
        assert (d / "gen.csv").read_text() == (d / "truth.csv").read_text()  # the earlier file is kept
    assert sorted(f.name for f in d.iterdir()) == ["gen.csv", "sub.csv", "truth.csv"]  # no temporary left


def test_cli_json(truth_and_pred):
    d, *_ = truth_and_pred
    proc = run_cli("score", str(d / "sub.csv"), "--truth", str(d / "truth.csv"), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["score"] == pytest.approx(4 / 6) and out["n"] == 6 and "by_coverage" in out
    text = run_cli("score", str(d / "sub.csv"), "--truth", str(d / "truth.csv"))
    assert "score 0.6667" in text.stdout


@pytest.mark.parametrize(
    "edit, fragments",
    [
        (lambda rows: rows[:-1], ["id0", "is missing"]),
        (lambda rows: rows + ["extra1,1 5"], ["line 8", "extra1", "extra row"]),
        (lambda rows: rows + [rows[1]], ["line 8", "duplicate id", "first on line 2"]),
        (lambda rows: rows[:2] + [rows[2].split(",")[0] + ",3 x"] + rows[3:], ["line 3", "not an integer"]),
        (lambda rows: ["idx,mask"] + rows[1:], ["line 1", "header"]),
    ],
)
def test_bad_submissions_name_first_bad_row(truth_and_pred, edit, fragments):
    d, *_ = truth_and_pred
    rows = (d / "sub.csv").read_text().splitlines()
    (d / "bad.csv").write_text("\n".join(edit(rows)) + "\n")
    with pytest.raises(SalttuneError):
        score_files(d / "bad.csv", d / "truth.csv")
    proc = run_cli("score", str(d / "bad.csv"), "--truth", str(d / "truth.csv"))
    assert_user_error(proc, "bad.csv", *fragments)


def test_missing_file(tmp_path):
    assert_user_error(run_cli("score", str(tmp_path / "no.csv"), "--truth", str(tmp_path / "t.csv")), "no.csv", "does not exist")
