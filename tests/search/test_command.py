"""Real searches: Ray Tune on a simulated two-node cluster, a real Optuna study on disk, no mocks.

All searches share one Ray cluster (``ray.cluster_utils.Cluster``: a head and a worker node, one CPU each,
on this machine), joined by ``salttune search --address`` run as a separate process, the way a user runs it.
Token authentication is on for the cluster and the drivers.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
import yaml

from conftest import CLI, assert_user_error, run_search_cli, write_tgs_folder
from search_fixtures import FAST_STATE, space_yaml  # before Ray is imported: it turns token authentication on
from salttune.checkpoint import load_checkpoint
from salttune.leaderboard import read_leaderboard
from salttune.search.space import load_space, space_to_dict


@pytest.fixture(scope="session")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    yield c
    c.shutdown()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("searchdata") / "data"
    write_tgs_folder(root, n_train=48, n_test=2, size=32)
    return root


def study_of(root: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{root / 'results' / name / 'optuna.db'}")


def results_of(row: dict) -> list[dict]:
    trial_dir = Path(row["checkpoint_path"]).parent
    return [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines() if line.strip()]


def assert_continued(hist: list[dict], max_t: int) -> None:
    """A trial's epochs ran 1..max_t, and every restart (a retry, a resume) continued after a checkpointed epoch.

    A restart may repeat the one epoch whose checkpoint Tune had not saved in its state yet, never more: a trial
    stopped after epoch e >= 2 never starts again from epoch 1 (one stopped after epoch 1 may: that is the one epoch).
    """
    epochs = [h["epoch"] for h in hist]
    assert sorted(set(epochs)) == list(range(1, max_t + 1)), epochs
    for i, h in enumerate(hist):
        if i and h["iterations_since_restore"] == 1:
            assert epochs[i - 1] <= epochs[i] <= epochs[i - 1] + 1, epochs


# -- end to end ---------------------------------------------------------------------------------------

E2E_SPACE = """  optim.name: {choice: [adam, sgd]}
  optim.lr: {loguniform: [1.0e-3, 3.0e-2]}
  optim.momentum: {uniform: [0.8, 0.95], when: {optim.name: sgd}}
  loss.name: {choice: [bce, bce+lovasz]}
  loss.weights: {uniform: [0.5, 2.0]}
  model.block: {choice: [plain, se]}"""


@pytest.fixture(scope="module")
def e2e(cluster, data, tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    f = space_yaml(root, "e2e", E2E_SPACE, fixed="schedule.name: cosine_snapshots, schedule.cycle_epochs: 1, schedule.max_snapshots: 2",
                   data="holdout_fraction: 0.2, folds: 4")  # 10 of the 48 images held out; trials validate on fold 0 of 4
    t0 = time.monotonic()
    proc = run_search_cli("--space", str(f), "--data", str(data), "--address", cluster.address, cwd=root, env=FAST_STATE)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return SimpleNamespace(root=root, dir=root / "results" / "e2e", proc=proc, seconds=time.monotonic() - t0,
                           rows=read_leaderboard(root / "results" / "e2e" / "leaderboard.csv"))


def test_search_writes_a_ranked_leaderboard(e2e, data):
    rows, out = e2e.rows, e2e.proc.stdout
    assert "4 trials:" in out and "best val_score" in out and "leaderboard:" in out  # the progress table
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4] and sorted(int(r["trial"]) for r in rows) == [0, 1, 2, 3]
    scores = [float(r["best_score"]) for r in rows]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    stopped = json.loads((e2e.dir / "asha_state.json").read_text())["stopped"]
    for r in rows:
        assert r["state"] in ("finished", "pruned") and r["reason"] == ""
        assert (r["state"] == "finished") == (int(r["epochs_run"]) == 3) == (r["trial_id"] not in stopped)
        # conditional parameters: only drawn when their condition holds
        assert (r["optim.momentum"] != "") == (r["optim.name"] == "sgd")
        assert (r["loss.weights.lovasz"] != "") == (r["loss.name"] == "bce+lovasz")
        # the per-epoch history Tune kept agrees with the row
        hist = results_of(r)
        assert [h["epoch"] for h in hist] == list(range(1, int(r["epochs_run"]) + 1))
        assert max(h["val_score"] for h in hist) == pytest.approx(float(r["best_score"]))
    assert json.loads((e2e.dir / "search.json").read_text())["data"] == str(data)
    assert load_space(e2e.dir / "space.yaml").asha.max_t == 3


def test_each_trial_keeps_one_checkpoint_with_its_top_snapshots(e2e):
    for r in e2e.rows:
        ckpt = Path(r["checkpoint_path"])
        assert [p.name for p in ckpt.parent.glob("checkpoint_*")] == [ckpt.name]  # older ones pruned
        state = load_checkpoint(ckpt / "state.pt")
        assert state["epoch"] + 1 == int(r["epochs_run"])  # the latest epoch: resumable from here
        snaps = r["snapshots"].split(";")
        assert len(snaps) == min(int(r["epochs_run"]), 2)  # one per cosine cycle, best 2 kept
        payloads = [load_checkpoint(p) for p in snaps]
        assert max(p["metrics"]["val_score"] for p in payloads) == pytest.approx(float(r["best_score"]))
        for p in payloads:  # self-describing: the trial's own sampled config travels with the weights
            assert p["config"]["optim"]["lr"] == pytest.approx(float(r["optim.lr"]))
            assert p["config"]["model"]["block"] == r["model.block"] and p["config"]["epochs"] == 3
            assert p["config"]["val_fraction"] == 0.25
    total = sum(f.stat().st_size for f in e2e.dir.rglob("*") if f.is_file())
    assert total < 5e6, total  # bounded: a few hundred kB per tiny trial


def derived_seed(search_seed: int, trial_number: int) -> int:
    """The training seed a search gives a trial (salttune.search.space.trial_config), written out here."""
    return int(np.random.SeedSequence([search_seed, trial_number]).generate_state(1)[0])


def test_each_trial_trains_with_its_own_recorded_seed(e2e):
    seeds = {}
    for r in e2e.rows:
        seeds[r["trial"]] = expected = derived_seed(0, int(r["trial"]))  # the space's seed is 0
        assert int(r["seed"]) == expected  # the leaderboard shows it
        ckpt = Path(r["checkpoint_path"])
        assert load_checkpoint(ckpt / "state.pt")["config"]["seed"] == expected  # resumes with it
        snaps = r["snapshots"].split(";")
        assert snaps and {load_checkpoint(p)["config"]["seed"] for p in snaps} == {expected}  # and so do its weights
    assert len(set(seeds.values())) == len(e2e.rows) == 4  # ensemble members start from different weights


def test_refit_on_folds_then_pseudo_labels_scored_on_the_holdout(e2e, cluster):
    from conftest import run_cli
    from salttune.data import load_dataset
    from salttune.split import Split, split_data

    args = ("ensemble", "--search", "e2e", "--top", "2", "--folds", "2", "--refit-folds", "3", "--pseudo-confidence", "0.51",
            "--pseudo-share", "0.01", "--address", cluster.address, "--quiet")  # keeps every test image
    proc = run_cli(*args, cwd=e2e.root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((e2e.dir / "ensemble" / "report.json").read_text())
    assert report["refit_folds"] == 3 and len(report["rounds"]) == 2 and report["members"] == 2
    assert report["headline"] == "holdout" and report["holdout_images"] == 10
    assert report["selection_images"] == 38  # every non-holdout image, out of fold
    data = load_dataset(json.loads((e2e.dir / "search.json").read_text())["data"], with_test=False)
    top = [r for r in e2e.rows][:2]
    kept = report["rounds"][0]["pseudo"]["kept"]
    assert kept == 2  # both test images (a second round needs at least one)
    pseudo_dir = next((e2e.dir / "ensemble").glob("pseudo-*"))
    for r in top:
        trial_cfg = load_checkpoint(r["snapshots"].split(";")[0])["config"]
        val_ids = []
        for f in range(3):
            run = e2e.dir / "refit" / "k3" / f"trial_{r['trial_id']}" / f"fold_{f}"
            cfg = load_checkpoint(run / "checkpoint" / "state.pt")["config"]
            assert {**cfg, "folds": None, "fold": 0} == {**trial_cfg, "folds": None, "fold": 0}  # the trial's own config
            assert (cfg["folds"], cfg["fold"]) == (3, f)
            _, val, hold = split_data(data, Split.of(cfg))
            val_ids += val.ids
            first = json.loads((run / "summary.json").read_text())
            again = json.loads((pseudo_dir / f"trial_{r['trial_id']}" / f"fold_{f}" / "summary.json").read_text())
            assert first["val_images"] == again["val_images"] == len(val.ids)  # pseudo-labels never validate
            assert again["train_images"] == first["train_images"] + kept
        assert sorted(val_ids) == sorted(set(data.train_ids) - set(hold.ids))  # the folds partition the non-holdout images
    weights = json.loads((e2e.dir / "ensemble" / "weights.json").read_text())
    assert all(len(m["models"]) >= 3 and all(str(pseudo_dir) in p for p in m["models"]) for m in weights["members"])
    md = (e2e.dir / "ensemble" / "report.md").read_text()
    assert "Holdout before pseudo-labelling" in md and (e2e.dir / "ensemble" / "submission_round0.csv").is_file()
    # run again: every fold run, refit and pseudo-labelled, is finished and reused; nothing trains
    proc = run_cli(*args, "--force", cwd=e2e.root)
    assert proc.returncode == 0 and "refit: training" not in proc.stdout, proc.stdout + proc.stderr
    assert json.loads((e2e.dir / "ensemble" / "report.json").read_text())["holdout"] == report["holdout"]


def test_study_is_stored_with_pruned_and_complete_trials(e2e):
    study = study_of(e2e.root, "e2e")
    by_number = {t.number: t for t in study.trials}
    assert len(by_number) == 4
    for r in e2e.rows:
        t = by_number[int(r["trial"])]
        assert t.params["optim.name"] == r["optim.name"] and t.params["optim.lr"] == pytest.approx(float(r["optim.lr"]))
        # one intermediate value per epoch, at step = epoch
        assert sorted(t.intermediate_values) == list(range(1, int(r["epochs_run"]) + 1))
        if r["state"] == "finished":  # told COMPLETE with its best epoch's score
            assert t.state == optuna.trial.TrialState.COMPLETE and t.value == pytest.approx(float(r["best_score"]))
        else:  # stopped by ASHA: PRUNED, never passed off as a final score
            assert t.state == optuna.trial.TrialState.PRUNED
    rungs = json.loads((e2e.dir / "asha_state.json").read_text())["rungs"]
    assert set(rungs["1"]) == {r["trial_id"] for r in e2e.rows}  # every trial passed the first rung


def test_trials_land_on_both_nodes(e2e, cluster):
    nodes = {r["node"] for r in e2e.rows}
    assert nodes == {n.node_id for n in cluster.list_all_nodes()}, nodes  # head and worker both trained


def test_random_search_runs_every_trial_to_the_end_and_records_it(cluster, data, tmp_path):
    # algorithm: random draws every trial at random and stops none early: every trial runs max_t epochs,
    # and the study and the leaderboard look as they do for tpe+asha.
    f = space_yaml(tmp_path, "rand", "  optim.lr: {loguniform: [1.0e-3, 3.0e-2]}\n  model.block: {choice: [plain, se]}",
                   trials=3, max_t=2, grace=1, algorithm="random")
    proc = run_search_cli("--space", str(f), "--data", str(data), "--address", cluster.address, cwd=tmp_path, env=FAST_STATE)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "results" / "rand"
    rows = read_leaderboard(out / "leaderboard.csv")
    assert [int(r["rank"]) for r in rows] == [1, 2, 3] and sorted(int(r["trial"]) for r in rows) == [0, 1, 2]
    assert all(r["state"] == "finished" and int(r["epochs_run"]) == 2 for r in rows)  # grace 1, yet none stopped
    assert not (out / "asha_state.json").exists()  # no ASHA
    assert load_space(out / "space.yaml").algorithm == "random"
    study = {t.number: t for t in study_of(tmp_path, "rand").trials}
    for r in rows:
        t = study[int(r["trial"])]
        assert t.state == optuna.trial.TrialState.COMPLETE and t.value == pytest.approx(float(r["best_score"]))
        assert sorted(t.intermediate_values) == [1, 2] and t.params["optim.lr"] == pytest.approx(float(r["optim.lr"]))
        assert [h["epoch"] for h in results_of(r)] == [1, 2]


# -- failures -----------------------------------------------------------------------------------------

@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without GPU: device=cuda must fail")
def test_failed_trial_is_retried_then_recorded_and_the_search_goes_on(cluster, data, tmp_path):
    # device=cuda passes config validation but raises in the trial on a machine without GPU: a real failure.
    f = space_yaml(tmp_path, "fails", "  device: {choice: [cpu, cuda]}\n  optim.lr: {loguniform: [1.0e-3, 1.0e-2]}",
                   trials=3, max_t=2, seed=6)  # seed 6 draws cpu, cuda, cpu
    proc = run_search_cli("--space", str(f), "--data", str(data), "--address", cluster.address, cwd=tmp_path, env=FAST_STATE)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = read_leaderboard(tmp_path / "results" / "fails" / "leaderboard.csv")
    failed = [r for r in rows if r["state"] == "failed"]
    done = [r for r in rows if r["state"] != "failed"]
    assert failed and done and len(rows) == 3
    assert all(r["device"] == "cuda" for r in failed) and all(r["device"] == "cpu" for r in done)
    assert sorted(int(r["rank"]) for r in failed) == list(range(len(done) + 1, len(rows) + 1))  # ranked last
    study = {t.number: t for t in study_of(tmp_path, "fails").trials}
    for r in failed:
        assert "cuda was asked for but no GPU is visible" in r["reason"] and r["reason"].startswith("SalttuneError: ")
        t = study[int(r["trial"])]
        # told PRUNED with a NaN at the epoch that failed: TPE ranks it below every trial that got as far
        assert t.state == optuna.trial.TrialState.PRUNED and t.user_attrs["fail_reason"] == r["reason"]
        assert list(t.intermediate_values) == [1] and math.isnan(t.intermediate_values[1])
        errors = (tmp_path / "results" / "fails" / "trials" / f"trial_{r['trial_id']}" / "error.txt").read_text()
        assert errors.count("Failure #") == 2  # max_failures=1: tried, retried, then failed for good
    for r in done:
        assert study[int(r["trial"])].state == optuna.trial.TrialState.COMPLETE and int(r["epochs_run"]) == 2
    assert "failed" in proc.stdout and "cuda was asked for" in proc.stdout  # the progress table says why


# -- resume after the driver is killed ---------------------------------------------------------------

def _db_states(db: Path) -> tuple[dict, dict]:
    con = sqlite3.connect(db)
    try:
        states = dict(con.execute("select number, state from trials").fetchall())
        steps = dict(con.execute("select t.number, count(v.step) from trials t join trial_intermediate_values v "
                                 "on v.trial_id = t.trial_id group by t.number").fetchall())
    finally:
        con.close()
    return states, steps


def _tune_view(experiment: Path) -> dict[int, tuple[str, int]]:
    """Tune's saved experiment state, as ``--resume`` will read it: (status, last epoch reported) by Optuna trial.

    Tune saves it every ``TUNE_GLOBAL_CHECKPOINT_S`` seconds, so it lags the Optuna study (told at every result):
    a trial the study shows at epoch 5 may still be at epoch 0 here, and a resume restarts it from there.
    """
    files = sorted(experiment.glob("experiment_state-*.json"))
    if not files:
        return {}
    view = {}
    for trial_json, meta_json in json.loads(files[-1].read_text())["trial_data"]:
        trial, meta = json.loads(trial_json), json.loads(meta_json)
        view[trial["config"]["optuna_trial"]] = (trial["status"], meta["last_result"].get("epoch", 0))
    return view


def test_resume_after_the_driver_is_killed(cluster, data, tmp_path):
    max_t = 6
    f = space_yaml(tmp_path, "killed", "  optim.lr: {loguniform: [1.0e-3, 3.0e-2]}\n  model.block: {choice: [plain, se]}",
                   trials=4, max_t=max_t, grace=2)
    args = ["--space", str(f), "--data", str(data), "--address", cluster.address]
    log = open(tmp_path / "first.log", "w")
    # Epochs here take a fraction of a second: Tune saves its state every 0.1 s so that one save catches a trial midway.
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "0.1"}
    driver = subprocess.Popen([*CLI, "search", *args], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=env)
    db, deadline = tmp_path / "results" / "killed" / "optuna.db", time.monotonic() + 180
    states, view, finished, midway = {}, {}, [], {}
    try:
        while time.monotonic() < deadline and driver.poll() is None:
            time.sleep(0.05)
            try:
                states, _ = _db_states(db) if db.exists() else ({}, {})
                view = _tune_view(tmp_path / "results" / "killed" / "trials")
            except (sqlite3.Error, ValueError, KeyError):  # caught mid-write: look again
                continue
            finished = [n for n, s in states.items() if s in ("COMPLETE", "PRUNED")]
            midway = {n: epoch for n, (status, epoch) in view.items() if status == "RUNNING" and 2 <= epoch < max_t}
            if finished and midway:
                break
    finally:
        driver.send_signal(signal.SIGKILL)  # no clean-up: what a crash or an OOM kill leaves behind
        driver.wait()
        log.close()
    assert finished and midway, ((tmp_path / "first.log").read_text()[-3000:], states, view)
    asha_before = json.loads((tmp_path / "results" / "killed" / "asha_state.json").read_text())
    told_before = {t.number: t for t in study_of(tmp_path, "killed").trials if t.state.is_finished()}

    proc = run_search_cli("--resume", "--name", "killed", "--address", cluster.address, cwd=tmp_path, env=FAST_STATE)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "resuming" in proc.stdout
    rows = read_leaderboard(tmp_path / "results" / "killed" / "leaderboard.csv")
    assert len(rows) == 4 and {r["state"] for r in rows} <= {"finished", "pruned"}
    by_number = {int(r["trial"]): r for r in rows}
    # no finished trial lost: each keeps its outcome and score
    for number, t in told_before.items():
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert by_number[number]["state"] == "finished"
            assert float(by_number[number]["best_score"]) == pytest.approx(t.value)
    # the trial killed midway continued from the checkpoint Tune had saved (at the epoch seen, or a later one;
    # the result of that epoch may be saved a step before its checkpoint, so that one epoch may run again)
    for number, saved_epoch in midway.items():
        row = by_number[number]
        hist = results_of(row)
        restarts = [h["epoch"] for h in hist if h["iterations_since_restore"] == 1][1:]
        assert restarts and restarts[-1] >= saved_epoch, (saved_epoch, [(h["epoch"], h["iterations_since_restore"]) for h in hist])
        assert int(row["epochs_run"]) == max_t or row["state"] == "pruned"
    # Optuna: nothing left running; trials lost before their first checkpoint are marked failed
    final = study_of(tmp_path, "killed").trials
    assert not [t for t in final if not t.state.is_finished()]
    assert sum(t.state != optuna.trial.TrialState.FAIL for t in final) == 4
    for t in final:
        if t.state == optuna.trial.TrialState.FAIL:
            assert "interrupted before its first checkpoint" in t.user_attrs["fail_reason"]
    # ASHA's rungs came back: every score recorded before the kill is still there
    asha_after = json.loads((tmp_path / "results" / "killed" / "asha_state.json").read_text())
    for milestone, recorded in asha_before["rungs"].items():
        assert set(recorded) <= set(asha_after["rungs"][milestone]), (milestone, asha_before, asha_after)


# -- injected faults (chaos testing through the real stack: the faults travel in the fixed settings) ---

def test_killed_worker_resumes_its_trial_at_the_right_epoch(cluster, data, tmp_path):
    f = space_yaml(tmp_path, "killed-worker", "  optim.lr: {loguniform: [1.0e-3, 1.0e-2]}", trials=1, max_t=3,
                   max_failures=1, fixed="faults.kill_worker_at_epoch: 2")
    proc = run_search_cli("--space", str(f), "--data", str(data), "--address", cluster.address, cwd=tmp_path, env=FAST_STATE)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (row,) = read_leaderboard(tmp_path / "results" / "killed-worker" / "leaderboard.csv")
    assert row["state"] == "finished" and int(row["epochs_run"]) == 3
    epochs = [r["epoch"] for r in results_of(row)]
    assert epochs == [1, 2, 3]  # killed after epoch 2's checkpoint, resumed at epoch 3: nothing trained twice
    errors = (Path(row["checkpoint_path"]).parent / "error.txt").read_text()
    assert errors.count("Failure #") == 1  # one retry used of max_failures=1
    assert int(row["seed"]) == derived_seed(0, 0)  # the retry kept the trial's seed
    assert load_checkpoint(Path(row["checkpoint_path"]) / "state.pt")["config"]["seed"] == derived_seed(0, 0)


def test_nan_loss_fails_the_trial_with_its_reason_and_the_search_goes_on(cluster, data, tmp_path):
    f = space_yaml(tmp_path, "nan", "  faults.nan_loss_at_epoch: {choice: [2, 9]}", trials=2, max_t=2, seed=0)
    proc = run_search_cli("--space", str(f), "--data", str(data), "--address", cluster.address, cwd=tmp_path, env=FAST_STATE)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {r["faults.nan_loss_at_epoch"]: r for r in read_leaderboard(tmp_path / "results" / "nan" / "leaderboard.csv")}
    assert set(rows) == {"2", "9"}, rows  # seed 0 draws both: NaN in epoch 2, and never (9 > the 2-epoch budget)
    assert rows["2"]["state"] == "failed" and "loss became nan" in rows["2"]["reason"]
    assert rows["9"]["state"] == "finished" and int(rows["9"]["epochs_run"]) == 2


def test_stop_at_ends_the_search_once_a_trial_is_good_enough(cluster, data, tmp_path):
    # val_score is never below 0, so the first reported epoch reaches stop_at: 0 and ends the search there.
    f = space_yaml(tmp_path, "enough", "  optim.lr: {loguniform: [1.0e-3, 1.0e-2]}", trials=8, max_t=3, grace=3)
    proc = run_search_cli("--space", str(f), "--data", str(data), "--address", cluster.address, "--set", "stop_at=0",
                          cwd=tmp_path, env=FAST_STATE)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "the search reached stop_at: val_score" in proc.stdout
    rows = read_leaderboard(tmp_path / "results" / "enough" / "leaderboard.csv")
    assert 1 <= len(rows) < 8  # the rest of the trial budget was never started
    assert {r["state"] for r in rows} <= {"stopped", "finished"} and "stopped" in {r["state"] for r in rows}
    stopped = [r for r in rows if r["state"] == "stopped"]
    assert all(int(r["epochs_run"]) < 3 and "reached stop_at 0.0" in r["reason"] for r in stopped)
    states = {t.state for t in study_of(tmp_path, "enough").trials}
    assert optuna.trial.TrialState.RUNNING not in states  # every started trial was told to the study
    assert all(t.user_attrs["stopped"] == "the search reached stop_at 0.0" for t in study_of(tmp_path, "enough").trials
               if t.state == optuna.trial.TrialState.PRUNED)


def test_a_time_budget_sizes_the_search_and_ends_it_on_time(cluster, data, tmp_path):
    f = space_yaml(tmp_path, "budget", "  optim.lr: {loguniform: [1.0e-3, 1.0e-2]}", trials=2, max_t=3, grace=1)
    t0 = time.monotonic()
    # the exploring alone (final_share 0: no final models; the next test has them)
    proc = run_search_cli("--space", str(f), "--data", str(data), "--address", cluster.address, "--time-budget", "40s",
                          "--set", "final_share=0", cwd=tmp_path, env=FAST_STATE)
    seconds = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert seconds < 40 + 15, seconds  # the budget, plus the command's start-up and Ray's goodbye
    assert "time budget 40s: first epoch" in proc.stdout and "2 trials at a time (all that fit), max_t 3" in proc.stdout
    out = tmp_path / "results" / "budget"
    space = load_space(out / "space.yaml")  # the sized space, which --resume keeps
    assert space.time_budget == 40 and space.trials > 2 and space.concurrent == 2 and space.asha.max_t == 3
    budget = json.loads((out / "budget.json").read_text())
    assert 0 < budget["epoch_s"] < 10
    rows = read_leaderboard(out / "leaderboard.csv")
    # it ran until its deadline, or ran every trial it was sized to before then (the sizing is an estimate), or it
    # stopped sampling because no new trial could reach its first rung in time and its last trials then ended just
    # before the deadline (seen on a loaded machine: 0.2 s early)
    assert budget["deadline"] <= time.time() or len(rows) == space.trials or "sampling_ended" in budget, \
        (budget, len(rows), space.trials)
    assert "finished" in {r["state"] for r in rows} and {r["state"] for r in rows} <= {"finished", "pruned", "stopped"}
    if len(rows) < space.trials:  # the deadline ended the sampling (or cut the last trials), not an interruption
        assert f"the time budget 40s ended the search: it started {len(rows)} of {space.trials} trials" in proc.stdout
    for r in rows:
        assert (r["state"] == "stopped") == ("stopped by the time budget" in r["reason"]), r
    trials = study_of(tmp_path, "budget").trials
    assert all(t.state.is_finished() for t in trials)  # every trial told to Optuna; those the budget cut are PRUNED
    stopped = {r["trial"] for r in rows if r["state"] == "stopped"}
    assert all(t.state == optuna.trial.TrialState.PRUNED for t in trials if str(t.number) in stopped)
    # --resume of a budgeted search asks for the time the rest may take (before Ray starts)
    proc = run_search_cli("--resume", "--name", "budget", cwd=tmp_path, timeout=60)
    assert_user_error(proc, f"{out}: the search had a time budget (40s)", "--resume --time-budget 30m")


def test_a_budgeted_job_trains_final_models_and_the_ensemble_uses_them(cluster, data, tmp_path):
    from conftest import run_cli
    from salttune.layout import read_summary
    from salttune.search.final import final_runs

    f = space_yaml(tmp_path, "job", "  optim.lr: {loguniform: [1.0e-3, 1.0e-2]}", trials=2, max_t=2, grace=1,
                   data="holdout_fraction: 0.25")
    proc = run_search_cli("--space", str(f), "--data", str(data), "--address", cluster.address, "--time-budget", "75s",
                          "--set", "final_share=0.5", "--set", "final_min_epochs=2", cwd=tmp_path, env=FAST_STATE)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "split: explore" in proc.stdout and "ensemble and test prediction" in proc.stdout
    out = tmp_path / "results" / "job"
    budget = json.loads((out / "budget.json").read_text())
    assert budget["final_models"] == 2 and budget["final_epochs"] >= 2 and budget["job_ends"] > budget["final_deadline"] > budget["deadline"]
    runs = final_runs(out)
    assert len(runs) == 2 and "final models: 2 of 2 trained" in proc.stdout
    for run in runs:  # every non-holdout image trained them: 36 of the 48 (the holdout is a quarter)
        summary = read_summary(run / "summary.json")
        assert summary["train_images"] == 36 and summary["epochs_run"] >= 1
    ens = run_cli("ensemble", "--search", "job", "--folds", "2", "--quiet", cwd=tmp_path)
    assert ens.returncode == 0, ens.stderr
    assert "the 2 final models of the search" in ens.stdout and "time budget of the search and ensemble (75 s)" in ens.stdout
    report = json.loads((out / "ensemble" / "report.json").read_text())
    assert report["final"] is True and report["chosen"] == "mean" and report["holdout_images"] == 12


def test_a_budget_too_small_to_explore_as_well_trains_the_prior_alone(cluster, data, tmp_path):
    from conftest import run_cli
    from salttune.layout import read_summary
    from salttune.search.final import final_runs

    f = space_yaml(tmp_path, "deep", "  optim.lr: {loguniform: [1.0e-3, 1.0e-2]}", trials=2, max_t=2, grace=1,
                   data="holdout_fraction: 0.25")
    proc = run_search_cli("--space", str(f), "--data", str(data), "--address", cluster.address, "--time-budget", "30s",
                          "--set", "final_min_epochs=1000", "--set", "prior.optim.lr=0.004", cwd=tmp_path, env=FAST_STATE)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the test cluster's two nodes have one CPU each: no node holds both slots, so two one-CPU models, two seeds
    # (on one 2-CPU machine it is one model with both CPUs: test_budget's plan, results/benchmarks/budget)
    assert "too short to explore as well" in proc.stdout and "the prior with 2 seeds at once" in proc.stdout
    assert "training 2 run(s) as Ray tasks (1 CPU, 0 GPU each)" in proc.stdout
    out = tmp_path / "results" / "deep"
    budget = json.loads((out / "budget.json").read_text())
    assert (budget["explore_s"], budget["final_models"], budget["final_slots"], budget["machine_epoch_s"]) == (0, 2, 1, None)
    assert read_leaderboard(out / "leaderboard.csv") == [] and not list(out.glob("trials/*"))
    runs = final_runs(out)
    assert [r.name for r in runs] == ["prior", f"prior_seed{yaml.safe_load((runs[1] / 'config.yaml').read_text())['seed']}"]
    for run in runs:  # the prior, on all 36 non-holdout images
        summary = read_summary(run / "summary.json")
        assert summary["train_images"] == 36 and summary["epochs_run"] >= 1
        assert yaml.safe_load((run / "config.yaml").read_text())["optim"]["lr"] == 0.004
    ens = run_cli("ensemble", "--search", "deep", "--folds", "2", "--quiet", cwd=tmp_path)
    assert ens.returncode == 0, ens.stderr
    assert "members: the 2 final models of the search (" in ens.stdout


def test_report_of_a_search_draws_every_trial(e2e, tmp_path):
    from salttune.report import trial_histories, write_report
    from test_report import CHROMIUM, open_in_browser

    trials = {t["label"]: t for t in trial_histories(e2e.dir)}
    for row in e2e.rows:  # every trial's learning curve, as long as the epochs it ran
        assert len(trials[f"trial {row['trial']}"]["history"]) == int(row["epochs_run"]), row
    page = write_report(e2e.dir, tmp_path / "report.html")
    text = page.read_text()
    assert "Search progress" in text and "Parameter importance" in text and 'alt="slice view"' in text
    if CHROMIUM:
        body, console = open_in_browser(page, tmp_path)
        n = text.count("<img ")
        assert f'data-images-loaded="{n}/{n}"' in body and console == "", (body, console)


# -- the same search twice at once; Ctrl-C -----------------------------------------------------------

def test_the_same_search_started_twice_at_once_runs_once(cluster, data, tmp_path):
    f = space_yaml(tmp_path, "twice", "  optim.lr: {loguniform: [1.0e-3, 1.0e-2]}", trials=2, max_t=1)
    args = [*CLI, "search", "--space", str(f), "--data", str(data), "--address", cluster.address]
    env = {**os.environ, **FAST_STATE}
    drivers = [subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for _ in range(2)]
    outs = [d.communicate(timeout=300) for d in drivers]
    codes = sorted(d.returncode for d in drivers)
    assert codes == [0, 2], [(d.returncode, o[1][-2000:]) for d, o in zip(drivers, outs)]
    loser = next(o for d, o in zip(drivers, outs) if d.returncode == 2)
    err = loser[1].strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    lock = tmp_path / "results" / "twice" / "search.lock"
    assert f"{lock}: this search is already running (pid " in err and f"delete {lock}" in err, err
    # one study, one leaderboard, written by one driver: two trials, not four
    assert len(study_of(tmp_path, "twice").trials) == 2
    assert len(read_leaderboard(tmp_path / "results" / "twice" / "leaderboard.csv")) == 2
    assert not lock.exists()  # released at exit


def test_ctrl_c_stops_the_search_and_resume_completes_it(cluster, data, tmp_path):
    max_t = 20  # tiny epochs take a fraction of a second: enough of them that Ctrl-C finds the trials mid-way
    f = space_yaml(tmp_path, "ctrlc", "  optim.lr: {loguniform: [1.0e-3, 3.0e-2]}", trials=3, max_t=max_t, grace=max_t)
    args = ["--space", str(f), "--data", str(data), "--address", cluster.address]
    driver = subprocess.Popen([*CLI, "search", *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, **FAST_STATE})
    out = tmp_path / "results" / "ctrlc"
    deadline, steps = time.monotonic() + 180, {}
    while time.monotonic() < deadline and driver.poll() is None and max(steps.values(), default=0) < 2:
        time.sleep(0.2)
        try:
            steps = _db_states(out / "optuna.db")[1] if (out / "optuna.db").exists() else {}
        except sqlite3.Error:
            continue
    driver.send_signal(signal.SIGINT)  # what Ctrl-C sends, once a trial has reported two epochs
    stdout, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 130, (driver.returncode, stdout[-3000:], stderr[-3000:])
    assert "search interrupted: continue it with  salttune search --resume --name ctrlc" in stdout
    assert "Tuner.restore" not in stdout + stderr  # Tune's own advice, for Python users, is not shown
    record = json.loads((out / "record.json").read_text())
    assert record["status"] == "interrupted" and record["result"]["exit_code"] == 130
    rows = read_leaderboard(out / "leaderboard.csv")
    interrupted = [r for r in rows if r["state"] == "interrupted"]
    assert interrupted and all(int(r["epochs_run"]) < max_t and "--resume continues it" in r["reason"] for r in interrupted)
    running = [t for t in study_of(tmp_path, "ctrlc").trials if t.state == optuna.trial.TrialState.RUNNING]
    assert running and all("interrupted after epoch" in t.user_attrs["interrupted"] for t in running)
    assert not (out / "search.lock").exists()

    proc = run_search_cli("--resume", "--name", "ctrlc", "--address", cluster.address, cwd=tmp_path, env=FAST_STATE)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = read_leaderboard(out / "leaderboard.csv")
    assert len(rows) == 3 and all(r["state"] == "finished" and int(r["epochs_run"]) == max_t for r in rows), rows
    for r in rows:  # the interrupted trials continued from their checkpoint, not from epoch 1
        assert_continued(results_of(r), max_t)
    starts = {r["trial"]: [(h["epoch"], h["iterations_since_restore"]) for h in results_of(r)] for r in rows}
    assert any(sum(i == 1 for _, i in s) == 2 for s in starts.values()), (starts, interrupted)  # one was resumed
    final = study_of(tmp_path, "ctrlc").trials
    assert not [t for t in final if not t.state.is_finished()]
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in final) == 3
    assert json.loads((out / "record.json").read_text())["status"] == "completed"


# -- a worker node lost mid-search --------------------------------------------------------------------

def test_lost_node_its_trial_resumes_on_the_other_node_at_the_right_epoch(tmp_path):
    # A cluster of its own (a subprocess): removing a node from the shared one would break the other tests.
    max_t = 6
    data = tmp_path / "data"
    write_tgs_folder(data, n_train=160, n_test=2, size=64)  # epochs of a second or so: time to remove the node
    f = space_yaml(tmp_path, "lost", "  optim.lr: {loguniform: [1.0e-3, 1.0e-2]}", trials=1, max_t=max_t, grace=max_t)
    here = Path(__file__).parent
    cluster = subprocess.Popen([sys.executable, str(here / "cluster_process.py")], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    driver = None
    try:
        info = json.loads(cluster.stdout.readline())
        driver = subprocess.Popen([*CLI, "search", "--space", str(f), "--data", str(data), "--address", info["address"]],
                                  cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env={**os.environ, **FAST_STATE})
        trials, deadline, seen = tmp_path / "results" / "lost" / "trials", time.monotonic() + 240, []
        while time.monotonic() < deadline and driver.poll() is None and len(seen) < 2:
            time.sleep(0.1)
            seen = [json.loads(ln) for p in trials.glob("trial_*/result.json") for ln in p.read_text().splitlines()
                    if ln.endswith("}")]
        assert len(seen) >= 2 and driver.poll() is None, seen  # two epochs reported, the trial still training
        lost = seen[-1]["node_id"]
        cluster.stdin.write(f"remove {lost}\n")
        cluster.stdin.flush()
        assert cluster.stdout.readline().strip() == "removed"
        out, _ = driver.communicate(timeout=300)
    finally:
        if driver is not None and driver.poll() is None:
            driver.kill()
        cluster.stdin.close()
        cluster.wait(timeout=120)
    assert driver.returncode == 0, out[-4000:]
    (row,) = read_leaderboard(tmp_path / "results" / "lost" / "leaderboard.csv")
    (survivor,) = set(info["workers"]) - {lost}
    assert row["state"] == "finished" and int(row["epochs_run"]) == max_t and row["node"] == survivor
    hist = results_of(row)
    assert_continued(hist, max_t)
    restarts = [h for h in hist if h["iterations_since_restore"] == 1]
    assert len(restarts) == 2 and restarts[1]["node_id"] == survivor  # resumed once, on the surviving node
    before = [h["epoch"] for h in hist[: hist.index(restarts[1])]]
    assert restarts[1]["epoch"] in (before[-1], before[-1] + 1) and restarts[1]["epoch"] > 1  # from its last checkpoint
    assert all(h["node_id"] == lost for h in hist[: hist.index(restarts[1])])
    errors = (Path(row["checkpoint_path"]).parent / "error.txt").read_text()
    assert errors.count("Failure #") == 1  # the node's death used the one retry of max_failures=1
    (t,) = study_of(tmp_path, "lost").trials
    assert t.state == optuna.trial.TrialState.COMPLETE and sorted(t.intermediate_values) == list(range(1, max_t + 1))
    assert t.value == pytest.approx(float(row["best_score"]))


# -- flags and files a user can get wrong: one line, exit 2, before Ray starts -------------------------

OK = ["--space", "ok.yaml", "--data", "data"]  # relative to the test's folder, where _bad_files writes them
BAD_INPUTS = {  # id: (argv, fragments of the one line)
    "space is a PNG": (["--space", "picture.png", "--data", "data"], ("picture.png: not a text file",)),
    "space is a training config": (["--space", "train.yaml", "--data", "data"], ("train.yaml: looks like a training config",)),
    "space is empty": (["--space", "empty.yaml", "--data", "data"], ("empty.yaml: the file is empty",)),
    "space is a folder": (["--space", "data", "--data", "data"], ("data: is a folder; give the search space YAML file",)),
    "space value out of range": ([*OK, "--set", "trials=0"], ("key 'trials': 0 is out of range",)),
    "set without =": ([*OK, "--set", "trials"], ("--set 'trials': expected key=value",)),
    "name empty": ([*OK, "--name", ""], ("--name '': not a usable folder name",)),
    "name with a slash": ([*OK, "--name", "../up"], ("--name '../up': not a usable folder name",)),
    "name is a file": ([*OK, "--name", "taken"], ("taken: is a file where the search's folder goes",)),
    "data is a file": ([*OK, "--data", "a_file"], ("--data a_file: is a file; give the dataset folder",)),
    "storage is a file": ([*OK, "--storage", "a_file"], ("--storage a_file:", "is a file; give a folder")),
    "storage empty": ([*OK, "--storage", ""], ("--storage '': give a results folder",)),
    "address without port": ([*OK, "--address", "headnode"], ("--address 'headnode': expected HOST:PORT",)),
    "address port out of range": ([*OK, "--address", "10.0.0.5:70000"], ("--address '10.0.0.5:70000': expected HOST:PORT",)),
    "dashboard host empty": ([*OK, "--dashboard-host", ""], ("--dashboard-host '': not an address of this machine",)),
    "dashboard host unknown": ([*OK, "--dashboard-host", "no such host"], ("--dashboard-host 'no such host'",)),
    "resume without name": (["--resume"], ("--resume: give --name NAME",)),
    "resume of nothing": (["--resume", "--name", "nothing"], ("no search to resume there (no space.yaml)",)),
    "resume with --set": (["--resume", "--name", "ok", "--set", "trials=2"], ("--set cannot change a search being resumed",)),
    "time budget not a duration": ([*OK, "--time-budget", "soon"], ("--time-budget: 'soon' is not a duration; give seconds",
                                                                    "90s, 45m, 2h, 1h30m")),
    "time budget zero": ([*OK, "--time-budget", "0m"], ("--time-budget: '0m' is not a positive duration",)),
    "time budget in the space not a duration": ([*OK, "--set", "time_budget=2 hours"], ("key 'time_budget': '2 hours'",)),
    "time budget on resume of a search without one": (["--resume", "--name", "plain", "--time-budget", "1h"],
                                                      ("--time-budget: the search in", "started without one")),
}


def _bad_files(root: Path) -> None:
    space_yaml(root, "ok", "  optim.lr: {loguniform: [1.0e-3, 1.0e-2]}")
    (root / "data").mkdir()
    (root / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    (root / "train.yaml").write_text("epochs: 3\nmodel: {base_width: 8}\noptim: {lr: 0.001}\n")
    (root / "empty.yaml").write_text("")
    (root / "a_file").write_text("x")
    (root / "results").mkdir()
    (root / "results" / "taken").write_text("x")
    (root / "results" / "plain").mkdir()  # a search without a time budget, as --resume reads it first
    (root / "results" / "plain" / "space.yaml").write_text(yaml.safe_dump(space_to_dict(load_space(root / "ok.yaml"))))


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_a_bad_flag_or_file_is_one_line(tmp_path, case):
    _bad_files(tmp_path)
    argv, fragments = BAD_INPUTS[case]
    proc = run_search_cli(*argv, cwd=tmp_path, timeout=60)
    assert_user_error(proc, *fragments)
    assert not (tmp_path / "results" / "ok").exists()  # refused before anything was written


def test_a_search_held_by_a_live_driver_is_refused_and_a_stale_lock_is_taken_over(tmp_path, capsys):
    import socket

    from salttune.search.lock import search_lock

    space = space_yaml(tmp_path, "held", "  optim.lr: {loguniform: [1.0e-3, 1.0e-2]}")
    (tmp_path / "data").mkdir()
    lock = tmp_path / "results" / "held" / "search.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "now"}))  # alive: this test
    proc = run_search_cli("--space", str(space), "--data", str(tmp_path / "data"), cwd=tmp_path, timeout=60)
    assert_user_error(proc, f"{lock}: this search is already running (pid {os.getpid()} on {socket.gethostname()}",
                      f"delete {lock} and run again")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(json.dumps({"pid": int(gone.stdout), "host": socket.gethostname(), "started": "then"}))  # a dead driver
    with search_lock(lock.parent) as held:
        assert json.loads(held.read_text())["pid"] == os.getpid()
    assert f"taking over the lock of a search that ended without releasing it (pid {int(gone.stdout)} is gone)" in capsys.readouterr().err
    assert not lock.exists()  # released when the block ended
