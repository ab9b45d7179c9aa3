import json
from pathlib import Path

import pytest

from conftest import write_tgs_folder
from salttune.config import config_from_dict
from salttune.data import load_dataset
from salttune.errors import SalttuneError
from salttune.layout import (EnsembleFiles, EpochMetrics, KFoldFiles, RunFiles, RunSummary, SearchFiles, Snapshot,
                             read_summary)
from salttune.split import Split, split_data
from salttune.train import fit


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real two-epoch run with two cosine cycles (two snapshots kept), and its summary."""
    root = tmp_path_factory.mktemp("layout")
    write_tgs_folder(root / "tgs")
    train, val, _ = split_data(load_dataset(root / "tgs", with_test=False), Split(0.25, split_seed=0))
    cfg = config_from_dict({"batch_size": 4, "model": {"base_width": 4, "depth": 2}, "val_fraction": 0.25, "epochs": 2,
                            "schedule": {"name": "cosine_snapshots", "cycle_epochs": 1, "max_snapshots": 2}})
    summary = fit(cfg, train, val, root / "run")
    return RunFiles(root / "run"), summary


def test_run_files_are_exactly_what_fit_writes(run):
    files, summary = run
    written = sorted(p.relative_to(files.root).as_posix() for p in files.root.rglob("*") if p.is_file())
    named = [files.config, files.metrics, files.summary, files.checkpoint.state, files.checkpoint.snapshot(0),
             files.checkpoint.snapshot(1)]
    assert written == sorted(p.relative_to(files.root).as_posix() for p in named)
    # The names on disk, spelled out: the layout must never rename a file that earlier runs wrote.
    assert written == ["checkpoint/snapshots/snapshot_00.pt", "checkpoint/snapshots/snapshot_01.pt", "checkpoint/state.pt",
                       "config.yaml", "metrics.jsonl", "summary.json"]
    assert sorted(s["path"] for s in summary["snapshots"]) == [str(files.checkpoint.snapshot(c)) for c in (0, 1)]


def test_summary_and_metrics_have_the_typed_keys(run):
    files, summary = run
    assert read_summary(files.summary) == json.loads(json.dumps(summary))  # fit returns what it wrote
    assert set(summary) == set(RunSummary.__annotations__)  # a current run writes the optional keys too
    assert summary["epochs_run"] == summary["epochs"] == 2 and summary["stopped_by_time_budget"] is False
    assert all(set(s) == set(Snapshot.__annotations__) for s in summary["snapshots"])
    lines = [json.loads(x) for x in files.metrics.read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2] and [m["cycle"] for m in lines] == [0, 1]
    assert EpochMetrics.__optional_keys__ == {"loss_stage"}  # the default loss has stages: every key is there
    assert all(set(m) == set(EpochMetrics.__annotations__) for m in lines) and lines[0]["loss_stage"] == 0
    assert RunSummary.__optional_keys__ == {"stopped_by_time_budget", "val_images", "data_path"}


def test_read_summary_names_a_broken_file(tmp_path):
    (tmp_path / "summary.json").write_text("{broken")
    with pytest.raises(SalttuneError, match=r"summary\.json: not readable JSON"):
        read_summary(RunFiles(tmp_path).summary)


def test_search_kfold_and_ensemble_names():
    root = Path("results/s")
    s = SearchFiles(root)
    names = {k: getattr(s, k).name for k in ("space", "info", "study", "asha_state", "budget", "leaderboard", "lock",
                                              "record", "trials")}
    assert names == {"space": "space.yaml", "info": "search.json", "study": "optuna.db", "asha_state": "asha_state.json",
                     "budget": "budget.json", "leaderboard": "leaderboard.csv", "lock": "search.lock",
                     "record": "record.json", "trials": "trials"}
    assert s.trial("a1b2").result == root / "trials" / "trial_a1b2" / "result.json"
    assert s.refit(5) == root / "refit" / "k5"
    assert [p.name for p in s.ensemble.outputs] == ["submission.csv", "submission_round0.csv", "report.md", "report.json",
                                                    "weights.json"]
    assert s.ensemble == EnsembleFiles(root / "ensemble") and s.ensemble.pseudo("ab12").name == "pseudo-ab12"
    assert s.ensemble.record == root / "ensemble" / "record.json"
    k = KFoldFiles("out")
    assert (k.config, k.summary, k.record, k.fold(2).summary) == (
        Path("out/config.yaml"), Path("out/folds.json"), Path("out/record.json"), Path("out/fold_2/summary.json"))
