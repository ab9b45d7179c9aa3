"""The benchmark commands run and write consistent figures (the figures themselves are not asserted: they are
measurements, checked by reading them, never by timed tests)."""

import json

from conftest import run_cli


def test_bench_train_and_predict_write_figures(tgs_folder, tmp_path):
    root, _ = tgs_folder
    out = tmp_path / "bench"
    tiny = ["--set", "model.base_width=4", "--set", "model.depth=2", "--set", "batch_size=4"]
    proc = run_cli("bench", "train", "--data", str(root), "--out", str(out), "--steps", "2", "--repeats", "1", *tiny)
    assert proc.returncode == 0, proc.stderr
    r = json.loads((out / "train.json").read_text())
    assert r["ratio"] == r["all_salttune"][0] / r["all_plain"][0]
    assert r["ratio_vs_plain_channels_last"] == r["all_salttune"][0] / r["all_plain_channels_last"][0]
    assert r["images_per_epoch"] == 8 and r["machine"]["cpu_count"] >= 1
    assert r["command"].startswith("salttune bench train --data")
    proc = run_cli("bench", "predict", "--data", str(root), "--out", str(out), "--images", "8", *tiny)
    assert proc.returncode == 0, proc.stderr
    readme = (out / "README.md").read_text()
    assert "## train" in readme and "## predict" in readme and "images_per_s_tta_flip" in readme
