"""The benchmark commands run and write consistent figures (the figures themselves are not asserted: they are
measurements, checked by reading them, never by timed tests)."""

import json

import pytest

from conftest import assert_user_error, run_cli
from salttune.bench import render_readme, save_result
from salttune.bench.search import RACE, _time_to, search_timeline
from salttune.search.algorithms import ALGORITHMS

TINY = ["--set", "model.base_width=4", "--set", "model.depth=2", "--set", "batch_size=4"]  # a model trained in seconds


def test_bench_train_and_predict_write_figures(tgs_folder, tmp_path):
    root, _ = tgs_folder
    out = tmp_path / "bench"
    proc = run_cli("bench", "train", "--data", str(root), "--out", str(out), "--steps", "2", "--repeats", "1", *TINY)
    assert proc.returncode == 0, proc.stderr
    r = json.loads((out / "train.json").read_text())
    assert r["ratio"] == r["all_salttune"][0] / r["all_plain"][0]
    assert r["ratio_vs_plain_channels_last"] == r["all_salttune"][0] / r["all_plain_channels_last"][0]
    assert r["images_per_epoch"] == 8 and r["machine"]["cpu_count"] >= 1
    assert r["command"].startswith("salttune bench train --data")
    proc = run_cli("bench", "predict", "--data", str(root), "--out", str(out), "--images", "8", *TINY)
    assert proc.returncode == 0, proc.stderr
    readme = (out / "README.md").read_text()
    assert "## train" in readme and "## predict" in readme and "images_per_s_tta_flip" in readme


def test_search_bench_needs_a_target(tmp_path):
    proc = run_cli("bench", "search", "--data", str(tmp_path), "--out", str(tmp_path / "bench"))
    assert_user_error(proc, "--target is required", "e.g. --target 0.5")
    assert not (tmp_path / "bench").exists()  # nothing written


def test_search_timeline_and_time_to_target(tmp_path):
    # Two trials' result.json as Tune writes them: one JSON line per epoch, with its end time and the trial's age.
    lines = {"trial_a": [(100.0, 10.0, 0.1), (105.0, 15.0, 0.3)], "trial_b": [(103.0, 5.0, 0.5)]}
    for name, rows in lines.items():
        (tmp_path / "trials" / name).mkdir(parents=True)
        (tmp_path / "trials" / name / "result.json").write_text(
            "\n".join(json.dumps({"timestamp": t, "time_total_s": age, "val_score": s}) for t, age, s in rows) + "\n")
    timeline = search_timeline(tmp_path)
    assert timeline == [(10.0, 0.1), (13.0, 0.5), (15.0, 0.3)]  # seconds since trial_a started (at 90 s), in time order
    assert _time_to(timeline, 0.05) == 10.0 and _time_to(timeline, 0.3) == 13.0 and _time_to(timeline, 0.6) is None


def test_search_bench_races_algorithms_by_name():
    # the race is two entries of the algorithm table, under the labels the committed figures use
    assert RACE == {"tpe_asha": "tpe+asha", "random_no_es": "random"} and set(RACE.values()) <= set(ALGORITHMS)


def test_readme_shows_each_seed_of_the_search_bench(tmp_path):
    run = {"seconds": 60.0, "reached": True, "trials": 5, "epochs": 14, "best": 0.41, "wall_s": 80.0}
    slow = {**run, "seconds": 240.0, "reached": False, "best": 0.38}
    result = {"target": 0.4, "median_speedup": 4.0, "per_seed": [{"seed": 0, "tpe_asha": run, "random_no_es": slow, "speedup": 4.0}]}
    save_result(tmp_path, "search", result, "salttune bench search --target 0.4")
    readme = render_readme(tmp_path)
    assert "| 0 | 60 s, 5 trials, 14 epochs, best 0.410 | 240 s (not reached), 5 trials, 14 epochs, best 0.380 | 4.00x |" in readme
    assert "| median_speedup | 4 |" in readme and "TPE + ASHA against random search" in readme


def test_bench_quality_runs_each_seed_for_both_recipes(tgs_folder, tmp_path):
    root, _ = tgs_folder
    out = tmp_path / "bench"
    proc = run_cli("bench", "quality", "--data", str(root), "--out", str(out), "--epochs", "2", "--seeds", "2", *TINY)
    assert proc.returncode == 0, proc.stderr
    r = json.loads((out / "quality.json").read_text())
    for name in ("default", "plain_recipe"):
        runs = r[name]["runs"]
        assert [x["seed"] for x in runs] == [0, 1] and all(len(x["scores"]) == 2 for x in runs)
        assert all(x["best_score"] == max(x["scores"]) and x["final_score"] == x["scores"][-1] for x in runs)
        assert r[name]["mean_best_score"] == pytest.approx(sum(x["best_score"] for x in runs) / 2)
    assert r["default"]["config"]["loss"]["name"] != r["plain_recipe"]["config"]["loss"]["name"]
    assert r["best_score_gain"] == pytest.approx(r["default"]["mean_best_score"] - r["plain_recipe"]["mean_best_score"])
    assert "| 1 | " in (out / "README.md").read_text()  # the per-seed table


@pytest.mark.parametrize("flag", ["--seeds", "--trials", "--epochs", "--repeats"])
def test_bench_counts_below_one_are_refused(tmp_path, flag):
    proc = run_cli("bench", "quality", "--data", str(tmp_path), "--out", str(tmp_path / "bench"), flag, "0")
    assert proc.returncode == 2 and f"{flag} must be at least 1, not 0" in proc.stderr
    assert not (tmp_path / "bench").exists()
