"""The ensemble stage on a leaderboard of real (tiny) trained runs, run as a user runs it."""

import json
import signal
from pathlib import Path

import pytest

from conftest import assert_user_error, run_cli
from salttune.config import config_from_dict
from salttune.data import load_dataset
from salttune.leaderboard import FAILED, FINISHED, read_leaderboard, write_leaderboard
from salttune.submission import score_files
from salttune.split import Split, split_data
from salttune.train import fit


def fake_search(root: Path, name: str, configs: list[dict], n_train: int = 24, n_test: int = 6) -> tuple[dict, list[dict]]:
    """A search's folder as the ensemble reads it: a dataset, one real tiny run per config, the leaderboard.

    Returns the dataset's ids and the leaderboard rows; rows list no snapshots (found in checkpoint_path).
    """
    from conftest import write_tgs_folder

    made = write_tgs_folder(root / "data", n_train=n_train, n_test=n_test)
    data = load_dataset(root / "data", with_test=False)
    rows = []
    for k, overrides in enumerate(configs):
        cfg = config_from_dict({"epochs": 2, "batch_size": 8, "seed": k, **overrides,
                                "model": {"base_width": 4, "depth": 2, **overrides.get("model", {})}})
        tr, va, _ = split_data(data, Split.of(cfg))
        run = root / "results" / name / f"trial_{k}"
        summary = fit(cfg, tr, va, run)
        rows.append({"trial_id": f"t{k}", "state": FINISHED, "best_score": summary["best_score"],
                     "checkpoint_path": str(run / "checkpoint")})
    return made, rows


def _write_board(root: Path, name: str, rows: list[dict]) -> None:
    write_leaderboard(rows, root / "results" / name / "leaderboard.csv")
    (root / "results" / name / "search.json").write_text(json.dumps({"data": str(root / "data")}))


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    root = tmp_path_factory.mktemp("ens")
    cosine = {"schedule": {"name": "cosine_snapshots", "cycle_epochs": 1}}
    made, rows = fake_search(root, "s1", [{"model": {"block": b}, **cosine} for b in ("plain", "se", "residual")])
    _write_board(root, "s1", rows + [{"trial_id": "t9", "state": FAILED, "best_score": None, "checkpoint_path": ""}])
    return root, made


def test_ensemble_cli_end_to_end(search):
    root, made = search
    proc = run_cli("ensemble", "--search", "s1", "--top", "2", "--folds", "2", "--quiet", cwd=root)
    assert proc.returncode == 0, proc.stderr
    out = root / "results" / "s1" / "ensemble"
    report = json.loads((out / "report.json").read_text())
    names = [r["name"] for r in report["rows"]]
    assert "best single snapshot" in names and "non-negative stacker" in names and "greedy selection" in names
    assert {r["tta"] for r in report["rows"]} == {"none", "flip"}
    assert report["snapshots"] == 4  # 2 trials x 2 cosine snapshots
    weights = json.loads((out / "weights.json").read_text())
    assert len(weights["members"]) == 4 and weights["combiner"] == report["chosen"]
    assert weights["salt_cutoff"] is None and report["salt_cutoff"] is None  # no member has a salt head: off
    md = (out / "report.md").read_text()
    assert "salt cut-off off" in md
    # no holdout in this search: the headline is the cross-validated figure, and the report says it is optimistic
    assert report["headline"] == "cross-validated" and report["holdout"] is None and report["score"] == report["cv_score"]
    assert "No holdout" in md and "optimistic" in md
    assert report["rows"][-1]["name"].startswith("auto: ") and "chosen inside each fold" in report["rows"][-1]["name"]
    rows = (out / "submission.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == made["test_ids"]
    # the submission is valid for `salttune score` (against itself: a perfect score)
    assert score_files(out / "submission.csv", out / "submission.csv")["score"] == 1.0
    # nothing is overwritten without --force, the record included: history still shows the completed ensemble
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    rec = json.loads((out / "record.json").read_text())
    assert rec["status"] == "completed" and rec["result"]["best_score"] == report["score"]
    again = run_cli("ensemble", "--search", "s1", "--top", "2", "--folds", "2", "--quiet", cwd=root)
    assert_user_error(again, "already exists", "--force")
    assert_user_error(run_cli("ensemble", "--search", "s1", "--top", "2", "--folds", "99", "--force", "--quiet", cwd=root),
                      "--folds 99", "validation images")  # refused after the output check too
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files
    history = run_cli("history", cwd=root)
    line = next(l for l in history.stdout.splitlines() if "s1/ensemble" in l)
    assert "completed" in line and f"{report['score']:.4f}" in line


def test_ensemble_bad_requests(search):
    root, _ = search
    assert_user_error(run_cli("ensemble", "--search", "s1", "--top", "5", cwd=root), "3 finished trial(s)", "--top 5")
    assert_user_error(run_cli("ensemble", "--search", "nope", "--top", "1", cwd=root), "no such search")
    assert_user_error(run_cli("ensemble", "--search", "s1", "--top", "1", "--data", str(root / "results"), "--out", str(root / "o2"), cwd=root), "no PNG files")


def test_truncated_snapshot_is_skipped_with_a_warning(search, tmp_path):
    root, _ = search
    import shutil

    copy = tmp_path / "results"
    shutil.copytree(root / "results", copy)
    shutil.rmtree(copy / "s1" / "ensemble", ignore_errors=True)  # another test's ensemble may be there
    board = read_leaderboard(copy / "s1" / "leaderboard.csv")
    for row in board:
        row["checkpoint_path"] = row["checkpoint_path"].replace(str(root / "results"), str(copy))
    write_leaderboard(board, copy / "s1" / "leaderboard.csv")
    best = max(board, key=lambda r: float(r["best_score"] or "-inf"))
    snaps = sorted((Path(best["checkpoint_path"]) / "snapshots").glob("*.pt"))
    snaps[0].write_bytes(snaps[0].read_bytes()[:300])  # a crash mid-write (without our atomic rename)
    proc = run_cli("ensemble", "--search", "s1", "--top", "2", "--folds", "2", "--quiet", "--results", str(copy),
                   "--data", str(root / "data"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "warning: skipping a snapshot of trial" in proc.stderr and "truncated or corrupt" in proc.stderr
    weights = json.loads((copy / "s1" / "ensemble" / "weights.json").read_text())
    assert len(weights["members"]) == 3 and str(snaps[0]) not in [m["snapshot"] for m in weights["members"]]
    for s in snaps[1:]:  # the trial's other snapshot is still used
        s.write_bytes(b"")
    proc = run_cli("ensemble", "--search", "s1", "--top", "2", "--folds", "2", "--quiet", "--results", str(copy),
                   "--data", str(root / "data"), "--force", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "the next best trial takes its place" in proc.stderr
    weights = json.loads((copy / "s1" / "ensemble" / "weights.json").read_text())
    assert best["trial_id"] not in {m["trial"] for m in weights["members"]}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_ensemble_is_recorded_and_writes_no_output(search, tmp_path, sig):
    from test_interrupt import assert_interrupted, interrupt_cli

    root, _ = search
    out = tmp_path / "ens"
    record = out / "record.json"
    proc = interrupt_cli(["ensemble", "--search", "s1", "--top", "3", "--folds", "2", "--quiet", "--results",
                          str(root / "results"), "--out", str(out)], record.is_file, sig)
    assert_interrupted(proc, "ensemble")
    rec = json.loads(record.read_text())
    assert rec["status"] == "interrupted" and "error" not in rec
    assert sorted(p.name for p in out.iterdir() if p.name != "git.diff") == ["record.json"]  # no submission, no report


def test_ensemble_with_a_salt_head_member_chooses_and_records_a_cutoff(tmp_path):
    _, rows = fake_search(tmp_path, "s2", [{"epochs": 1, "model": {"salt_head": True, "deep_supervision": True}}, {"epochs": 1}])
    _write_board(tmp_path, "s2", rows)
    proc = run_cli("ensemble", "--search", "s2", "--top", "2", "--folds", "2", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "results" / "s2" / "ensemble"
    weights = json.loads((out / "weights.json").read_text())
    report = json.loads((out / "report.json").read_text())
    # The cut-off was chosen on the folds (off, or one of the grid's values) and recorded in both files.
    assert weights["salt_cutoff"] == report["salt_cutoff"]
    assert weights["salt_cutoff"] is None or 0.0 < weights["salt_cutoff"] < 1.0
    assert "salt cut-off" in (out / "report.md").read_text()
    assert len((out / "submission.csv").read_text().splitlines()) == 1 + 6


@pytest.fixture(scope="module")
def held(tmp_path_factory):
    """A search of two trials that held out a quarter of the images."""
    root = tmp_path_factory.mktemp("held")
    held_out = {"holdout_fraction": 0.25, "holdout_seed": 5}
    _, rows = fake_search(root, "s3", [{**held_out, "model": {"block": b}} for b in ("plain", "se")], n_train=32, n_test=4)
    _write_board(root, "s3", rows)
    cfg = config_from_dict(held_out)
    return root, split_data(load_dataset(root / "data", with_test=False), Split.of(cfg))[2]


def test_the_headline_is_the_chosen_ensembles_score_on_the_holdout(held):
    import numpy as np
    import torch

    from salttune.checkpoint import build_from_checkpoint
    from salttune.ensemble import _binarize
    from salttune.metric import score_per_image
    from salttune.predict import predict_proba

    root, hold = held
    proc = run_cli("ensemble", "--search", "s3", "--top", "2", "--folds", "2", "--combiner", "single", "--quiet", cwd=root)
    assert proc.returncode == 0, proc.stderr
    out = root / "results" / "s3" / "ensemble"
    report, weights = (json.loads((out / f).read_text()) for f in ("report.json", "weights.json"))
    assert report["headline"] == "holdout" and report["holdout_images"] == len(hold.ids) == 8
    assert report["selection_images"] == 5  # round(0.2 x the 24 non-holdout images)
    # recompute: the chosen snapshot, flip TTA, its threshold and min area, on the held-out images
    chosen = next(m for m in weights["members"] if m["weight"] == 1.0)
    model, _ = build_from_checkpoint(chosen["snapshot"])
    p = 0.5 * (predict_proba(model, hold.images, None, torch.device("cpu"))
               + predict_proba(model, hold.images[:, :, ::-1].copy(), None, torch.device("cpu"))[:, :, ::-1])
    per = score_per_image(_binarize(p, weights["threshold"], weights["min_area"]), hold.masks)
    assert report["score"] == report["holdout"] == pytest.approx(per.mean(), abs=1e-6)
    assert report["holdout_se"] == pytest.approx(per.std(ddof=1) / np.sqrt(len(per)), abs=1e-6)
    md = (out / "report.md").read_text()
    assert f"Holdout score {report['holdout']:.4f}" in md and "8 images, set aside before the search" in md
    assert "the search's 5 validation images" in md
    rec = json.loads((out / "record.json").read_text())
    assert rec["result"]["best_score"] == report["holdout"] and rec["result"]["headline"] == "holdout"


def test_pseudo_labelling_needs_refits(held):
    root, _ = held
    assert_user_error(run_cli("ensemble", "--search", "s3", "--top", "1", "--pseudo-confidence", "0.9",
                              "--out", str(root / "o3"), cwd=root), "--pseudo-confidence", "--refit-folds")
    assert_user_error(run_cli("ensemble", "--search", "s3", "--top", "1", "--refit-folds", "1",
                              "--out", str(root / "o3"), cwd=root), "--refit-folds must be at least 2")
    assert not (root / "o3").exists()


def test_ensemble_without_top_uses_the_final_models_of_a_budgeted_search(tmp_path):
    """A budgeted search's final models (results/NAME/final/<run>/) are the members when --top is not given: their
    cycle-end snapshots averaged, not weighted on the images that trained them."""
    made, rows = fake_search(tmp_path, "b", [{"schedule": {"name": "cosine_snapshots", "cycles": 2}}])
    _write_board(tmp_path, "b", rows)
    data = load_dataset(tmp_path / "data", with_test=False)
    for k in range(2):  # two final models, as the search's plan trains them (on every non-holdout image)
        cfg = config_from_dict({"epochs": 2, "batch_size": 8, "seed": 10 + k, "model": {"base_width": 4, "depth": 2},
                                "schedule": {"name": "cosine_snapshots", "cycles": 2}})
        tr, va, _ = split_data(data, Split.of(cfg))
        fit(cfg, tr, va, tmp_path / "results" / "b" / "final" / f"trial_f{k}")
    proc = run_cli("ensemble", "--search", "b", "--folds", "2", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "the 2 final models of the search (4 snapshots)" in proc.stdout
    report = json.loads((tmp_path / "results" / "b" / "ensemble" / "report.json").read_text())
    assert report["final"] is True and report["snapshots"] == 4 and report["chosen"] == "mean"
    weights = json.loads((tmp_path / "results" / "b" / "ensemble" / "weights.json").read_text())
    assert {m["trial"] for m in weights["members"]} == {"trial_f0", "trial_f1"}
    assert [m["weight"] for m in weights["members"]] == pytest.approx([0.25] * 4)
    assert "final models trained on them" in (tmp_path / "results" / "b" / "ensemble" / "report.md").read_text()
    # --top N ensembles the trials instead; a search without final models needs --top
    top = run_cli("ensemble", "--search", "b", "--top", "1", "--folds", "2", "--quiet", "--out", str(tmp_path / "t"), cwd=tmp_path)
    assert top.returncode == 0, top.stderr
    assert json.loads((tmp_path / "t" / "report.json").read_text())["final"] is False
    import shutil

    shutil.rmtree(tmp_path / "results" / "b" / "final")
    assert_user_error(run_cli("ensemble", "--search", "b", "--quiet", "--out", str(tmp_path / "u"), cwd=tmp_path),
                      "--top: give the number of best trials to ensemble", "has no final models")
