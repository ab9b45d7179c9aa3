"""The equal wall-clock benchmark's own parts: the data folder whose test images are the held-out fifth, and the
per-image scoring every arm goes through (the arms themselves are real salttune commands, run by the benchmark)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from benchmarks.budget import _data_folder, _score, bench_budget
from conftest import write_tgs_folder
from salttune.data import load_dataset
from salttune.rle import rle_encode
from salttune.split import Split, split_data


def test_the_held_out_fifth_becomes_the_test_images_and_is_scored_per_image(tmp_path):
    write_tgs_folder(tmp_path / "src", n_train=20, n_test=0, size=101)
    ids = _data_folder(tmp_path / "src", tmp_path / "d", seed=3)
    data = load_dataset(tmp_path / "d")
    _, _, holdout = split_data(load_dataset(tmp_path / "src", with_test=False), Split(holdout_fraction=0.2, holdout_seed=3))
    assert ids == list(holdout.ids) and sorted(data.test_ids) == sorted(ids) and len(ids) == 4
    assert data.train_ids == load_dataset(tmp_path / "src", with_test=False).train_ids  # training images unchanged
    truth = {i: m for i, m in zip(holdout.ids, holdout.masks)}
    sub = tmp_path / "sub.csv"
    pd.DataFrame({"id": ids, "rle_mask": [rle_encode(truth[i]) for i in ids]}).to_csv(sub, index=False)
    assert np.all(_score(sub, tmp_path / "src", ids) == 1.0)
    pd.DataFrame({"id": ids, "rle_mask": [""] * len(ids)}).to_csv(sub, index=False)  # all empty
    empty = _score(sub, tmp_path / "src", ids)
    assert np.array_equal(empty, np.array([float(not truth[i].any()) for i in ids]))


def test_score_only_compares_the_arms_already_run(tmp_path):
    write_tgs_folder(tmp_path / "src", n_train=20, n_test=0, size=101)
    work = tmp_path / "w"
    ids = _data_folder(tmp_path / "src", work / "data-s0", seed=0)
    runs = []
    for arm, masks in (("default", "empty"), ("search", "truth")):
        _, _, holdout = split_data(load_dataset(tmp_path / "src", with_test=False), Split(holdout_fraction=0.2, holdout_seed=0))
        sub = work / f"{arm}.csv"
        rles = [rle_encode(m) if masks == "truth" else "" for m in holdout.masks]
        pd.DataFrame({"id": list(holdout.ids), "rle_mask": rles}).to_csv(sub, index=False)
        runs.append({"arm": arm, "seed": 0, "minutes": 15.0, "seconds": 900, "submission": str(sub)})
    (work / "runs.json").write_text(json.dumps(runs))
    result = bench_budget(str(tmp_path / "src"), work, space="x.yaml", minutes=15.0, seeds=[0],
                          arms=["default", "search", "noprior"], score_only=True)
    assert [r["arm"] for r in result["runs"]] == ["default", "search"] and len(ids) == 4
    pair = result["paired"]["search - default"]
    assert pair["per_seed"] == [1.0 - result["runs"][0]["score"]] and pair["mean"] == pair["per_seed"][0]
    assert "search - noprior" not in result["paired"]


def test_a_kept_record_pairs_by_its_per_image_scores_once_its_submission_is_gone(tmp_path):
    write_tgs_folder(tmp_path / "src", n_train=20, n_test=0, size=101)
    work = tmp_path / "w"
    ids = _data_folder(tmp_path / "src", work / "data-s0", seed=0)
    _, _, holdout = split_data(load_dataset(tmp_path / "src", with_test=False), Split(holdout_fraction=0.2, holdout_seed=0))
    sub = work / "noprior.csv"
    pd.DataFrame({"id": list(holdout.ids), "rle_mask": [rle_encode(m) for m in holdout.masks]}).to_csv(sub, index=False)
    kept = {"arm": "search", "seed": 0, "minutes": 15.0, "seconds": 900, "submission": str(work / "gone.csv"),
            "ids": ids, "per_image": [0.5, 0.25, 0.0, 1.0]}
    (work / "runs.json").write_text(json.dumps([kept, {"arm": "noprior", "seed": 0, "minutes": 15.0, "seconds": 900,
                                                       "submission": str(sub)}]))
    result = bench_budget(str(tmp_path / "src"), work, space="x.yaml", minutes=15.0, seeds=[0],
                          arms=["search", "noprior"], score_only=True)
    search, noprior = result["runs"]
    assert search["score"] == 0.4375 and noprior["per_image"] == [1.0] * 4 and noprior["ids"] == ids
    assert result["paired"]["search - noprior"]["per_seed"] == [-0.5625]
