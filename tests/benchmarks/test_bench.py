"""The benchmark commands run and write consistent figures (the figures themselves are not asserted: they are
measurements, checked by reading them, never by timed tests)."""

import json

import pytest

from benchmarks.figures import render_readme, save_result
from conftest import ROOT, assert_user_error, run_bench
from benchmarks.search import BASELINE, RACE, _time_to, check_algorithms, search_timeline
from salttune.errors import SalttuneError
from salttune.search.algorithms import ALGORITHMS

TINY = ["--set", "model.base_width=4", "--set", "model.depth=2", "--set", "batch_size=4"]  # a model trained in seconds


def test_bench_train_and_predict_write_figures(tgs_folder, tmp_path):
    root, _ = tgs_folder
    out = tmp_path / "bench"
    proc = run_bench("train", "--data", str(root), "--out", str(out), "--steps", "2", "--repeats", "1", *TINY)
    assert proc.returncode == 0, proc.stderr
    r = json.loads((out / "train.json").read_text())
    assert r["ratio"] == r["all_salttune"][0] / r["all_plain"][0]
    assert r["ratio_vs_plain_channels_last"] == r["all_salttune"][0] / r["all_plain_channels_last"][0]
    assert r["images_per_epoch"] == 8 and r["machine"]["cpu_count"] >= 1
    # the default augmentations have device versions: salttune trains on the device path, timed beside the loader's
    assert r["data_path"] == "device"
    assert r["ratio_vs_loader_path"] == r["all_salttune"][0] / r["all_salttune_loader_path"][0]
    assert r["data_path_s_per_batch"] > 0 and r["loading_and_augmentation_s_per_batch"] > 0
    assert r["command"].startswith("python -m benchmarks train --data")
    proc = run_bench("predict", "--data", str(root), "--out", str(out), "--images", "8", *TINY)
    assert proc.returncode == 0, proc.stderr
    readme = (out / "README.md").read_text()
    assert "## train" in readme and "## predict" in readme and "images_per_s_tta_flip" in readme


def test_search_bench_needs_a_target(tmp_path):
    proc = run_bench("search", "--data", str(tmp_path), "--out", str(tmp_path / "bench"))
    assert_user_error(proc, "the following arguments are required: --target")
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
    # the labels of the committed figures (before --algorithms) name two entries of the algorithm table
    assert RACE == {"tpe_asha": "tpe+asha", "random_no_es": "random"} and set(RACE.values()) <= set(ALGORITHMS)
    assert BASELINE in ALGORITHMS and check_algorithms(["random", "tpe+asha"], ALGORITHMS) == ["random", "tpe+asha"]
    for names, message in (([], "at least one"), (["tpe"], "unknown algorithm 'tpe'; allowed: tpe+asha"), (["random"] * 2, "twice")):
        with pytest.raises(SalttuneError, match=message.replace("+", r"\+")):
            check_algorithms(names, ALGORITHMS)


def test_readme_shows_any_number_of_raced_algorithms(tmp_path):
    run = {"seconds": 60.0, "reached": True, "trials": 5, "epochs": 14, "best": 0.41, "wall_s": 80.0, "timeline": [[60.0, 0.41]]}
    mid, slow = {**run, "seconds": 120.0}, {**run, "seconds": 240.0, "reached": False, "best": 0.38}
    result = {"target": 0.4, "algorithms": ["tpe+asha", "random+asha", "random"], "median_speedup": {"tpe+asha": 4.0, "random+asha": 2.0},
              "per_seed": [{"seed": 0, "tpe+asha": run, "random+asha": mid, "random": slow, "speedup": {"tpe+asha": 4.0, "random+asha": 2.0}}]}
    save_result(tmp_path, "search", result, "python -m benchmarks search --target 0.4 --algorithms tpe+asha,random+asha,random")
    readme = render_readme(tmp_path)
    assert "| seed | TPE + ASHA | random + ASHA | random, no early stopping | speed-up of tpe+asha | speed-up of random+asha |" in readme
    assert ("| 0 | 60 s, 5 trials, 14 epochs, best 0.410 | 120 s, 5 trials, 14 epochs, best 0.410 | "
            "240 s (not reached), 5 trials, 14 epochs, best 0.380 | 4.00x | 2.00x |") in readme
    assert "| median_speedup.tpe+asha | 4 |" in readme and "| median_speedup.random+asha | 2 |" in readme


def test_readme_shows_each_seed_of_the_search_bench(tmp_path):
    run = {"seconds": 60.0, "reached": True, "trials": 5, "epochs": 14, "best": 0.41, "wall_s": 80.0}
    slow = {**run, "seconds": 240.0, "reached": False, "best": 0.38}
    result = {"target": 0.4, "median_speedup": 4.0, "per_seed": [{"seed": 0, "tpe_asha": run, "random_no_es": slow, "speedup": 4.0}]}
    save_result(tmp_path, "search", result, "python -m benchmarks search --target 0.4")
    readme = render_readme(tmp_path)
    assert "| 0 | 60 s, 5 trials, 14 epochs, best 0.410 | 240 s (not reached), 5 trials, 14 epochs, best 0.380 | 4.00x |" in readme
    assert "| median_speedup | 4 |" in readme and "TPE + ASHA and random search without early stopping" in readme


def test_bench_quality_scores_every_image_out_of_fold_for_every_recipe_and_seed(tgs_folder, tmp_path):
    root, made = tgs_folder
    out = tmp_path / "bench"
    recipes = tmp_path / "recipes.yaml"
    recipes.write_text("plainish: {model: {block: plain}, loss: {name: bce}}\nbase: {}\n")
    args = ("quality", "--data", str(root), "--out", str(out), "--recipes", str(recipes), "--folds", "2",
            "--seeds", "2", "--budget-s", "1", *TINY)
    proc = run_bench(*args)
    assert proc.returncode == 0, proc.stderr
    r = json.loads((out / "quality.json").read_text())
    rows = [json.loads(x) for x in (out / "quality-runs" / "runs.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 2 * 2 and r["baseline"] == "default_v0"  # no default_v0 among these: no comparison
    for name in ("plainish", "base"):
        for seed in (0, 1):
            mine = [x for x in rows if x["recipe"] == name and x["seed"] == seed]
            ids = [i for x in mine for i in x["ids"]]
            assert sorted(ids) == sorted(made["ids"])  # the folds' OOF parts partition the images
            assert r["table"][name]["oof_by_seed"][str(seed)] == pytest.approx(
                sum(s for x in mine for s in x["image_scores"]) / len(ids))
        scores = [x["oof_score"] for x in rows if x["recipe"] == name]
        assert r["table"][name]["mean"] == pytest.approx(sum(scores) / 4) and r["table"][name]["runs"] == 4
    assert all(x["epochs_run"] >= 1 and 0 <= x["oof_score"] <= 1 for x in rows)
    assert all(not (out / "quality-runs" / f"{x['recipe']}-seed{x['seed']}-fold{x['fold']}").exists() for x in rows)
    assert "| plainish | " in (out / "README.md").read_text()
    assert r["image_part"] == "all" and r["images"] == len(made["ids"])
    # the same command again finds every run done and trains nothing
    proc = run_bench(*args)
    assert proc.returncode == 0 and len((out / "quality-runs" / "runs.jsonl").read_text().splitlines()) == 8


def test_quality_compares_each_recipe_with_the_baseline_pair_by_pair():
    from benchmarks.quality import summarise

    rows = [{"recipe": n, "seed": s, "fold": f, "oof_score": v, "epochs_run": 3, "image_scores": [v]}
            for n, vals in (("default_v0", [0.5, 0.6, 0.7]), ("new", [0.55, 0.7, 0.72])) for (s, f), v in zip([(0, 0), (0, 1), (1, 0)], vals)]
    t = summarise(rows, "default_v0")["table"]
    diffs = [0.05, 0.1, 0.02]
    mean = sum(diffs) / 3
    se = (sum((d - mean) ** 2 for d in diffs) / 2) ** 0.5 / 3**0.5
    assert t["new"]["vs_baseline"] == pytest.approx(mean) and t["new"]["vs_baseline_se"] == pytest.approx(se)
    assert t["new"]["vs_baseline_wins"] == 3 and "vs_baseline" not in t["default_v0"]
    assert t["new"]["oof_by_seed"] == {"0": pytest.approx(0.625), "1": pytest.approx(0.72)}


def test_the_choose_and_score_parts_are_disjoint_fixed_and_stratified():
    import numpy as np

    from benchmarks.quality import image_part

    rng = np.random.default_rng(0)
    masks = np.zeros((100, 4, 4), bool)
    for i in range(60):  # 60 images with salt, 40 empty
        masks[i, : rng.integers(1, 5)] = True
    choose, score = image_part(masks, "choose"), image_part(masks, "score")
    assert len(choose) == 40 and len(score) == 60 and not set(choose) & set(score)
    assert sorted([*choose, *score]) == list(range(100)) and list(image_part(masks, "all")) == list(range(100))
    assert masks[choose].any((1, 2)).sum() == 24  # 60% with salt in each part, as in the whole
    assert list(image_part(masks, "choose")) == list(choose)  # the same images every time


def test_bench_quality_refuses_a_bad_recipe_before_training(tgs_folder, tmp_path):
    root, _ = tgs_folder
    recipes = tmp_path / "recipes.yaml"
    recipes.write_text("bad: {model: {blok: plain}}\n")
    proc = run_bench("quality", "--data", str(root), "--out", str(tmp_path / "b"), "--recipes", str(recipes))
    assert_user_error(proc, "model.blok")
    assert_user_error(run_bench("quality", "--data", str(root), "--out", str(tmp_path / "b"), "--only", "nope"),
                      "--only: unknown recipe 'nope'")
    assert_user_error(run_bench("quality", "--data", str(root), "--out", str(tmp_path / "b"), "--budget-s", "0"),
                      "argument --budget-s: 0: must be a positive number of seconds")
    assert not (tmp_path / "b" / "quality-runs").exists()


@pytest.mark.parametrize("name, flag", [("quality", "--seeds"), ("search", "--trials"), ("train", "--repeats"),
                                        ("predict", "--images")])
def test_bench_counts_below_one_are_refused(tmp_path, name, flag):
    proc = run_bench(name, "--data", str(tmp_path), "--out", str(tmp_path / "bench"), flag, "0")
    assert_user_error(proc, f"python -m benchmarks {name}: error: argument {flag}: must be at least 1, not 0")
    assert not (tmp_path / "bench").exists()


def test_each_benchmark_takes_only_its_own_flags(tmp_path):
    # --budget-s is quality's: train refuses it rather than ignoring it
    assert_user_error(run_bench("train", "--data", str(tmp_path), "--budget-s", "5"), "unrecognized arguments: --budget-s 5")
    assert_user_error(run_bench("train"), "the following arguments are required: --data")  # no default outside the checkout
    assert_user_error(run_bench("fastest"), "invalid choice: 'fastest'", "train")


@pytest.mark.parametrize("name, algorithm", [("bench", "tpe+asha"), ("replay", "random")])
def test_the_benchmark_spaces_are_valid(name, algorithm):
    from salttune.search.space import load_space

    space = load_space(ROOT / "benchmarks" / "spaces" / f"{name}.yaml")
    assert space.name == name and space.metric == "val_score" and space.mode == "max" and space.algorithm == algorithm
    assert any(p.when for p in space.params)  # conditional parameters (SGD's momentum)
    assert space.resources.gpu > 0  # fractional GPUs; ignored with a notice on CPU-only machines
