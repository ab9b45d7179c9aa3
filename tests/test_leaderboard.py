import pytest

from salttune.errors import SalttuneError
from salttune.leaderboard import (
    COLUMNS, FAILED, FINISHED, best_score, parameters, read_leaderboard, snapshots, write_leaderboard,
)


def test_round_trip_fixed_columns_then_sorted_parameters(tmp_path):
    rows = [
        {"rank": 1, "trial": 0, "trial_id": "a", "state": FINISHED, "best_score": 0.5, "snapshots": "x.pt;y.pt",
         "optim.lr": 0.01, "model.block": "se", "loss.parts": ["bce", "lovasz"]},
        {"rank": 2, "trial": 1, "trial_id": "b", "state": FAILED, "best_score": None, "reason": "NonFiniteLoss: nan",
         "optim.lr": 0.1},
    ]
    path = write_leaderboard(rows, tmp_path / "leaderboard.csv")
    header = path.read_text().splitlines()[0].split(",")
    assert header == [*COLUMNS, "loss.parts", "model.block", "optim.lr"]
    assert [f.name for f in tmp_path.iterdir()] == ["leaderboard.csv"]  # no temporary left
    a, b = read_leaderboard(path)
    assert a["state"] == "finished" and b["state"] == "failed" and b["reason"] == "NonFiniteLoss: nan"
    assert best_score(a) == 0.5 and best_score(b) is None and best_score({"best_score": "nan"}) is None
    assert snapshots(a) == ["x.pt", "y.pt"] and snapshots(b) == []
    assert parameters(a) == {"loss.parts": "bce+lovasz", "model.block": "se", "optim.lr": "0.01"}
    assert parameters(b) == {"optim.lr": "0.1"}


def test_a_file_without_the_needed_columns_is_refused(tmp_path):
    (tmp_path / "l.csv").write_text("trial_id,score\na,0.5\n")
    with pytest.raises(SalttuneError, match=r"l\.csv: columns \['state', 'best_score'\] are missing"):
        read_leaderboard(tmp_path / "l.csv")
