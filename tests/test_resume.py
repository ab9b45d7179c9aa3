"""``salttune train --resume``: the run's own config, the settings that may change, and nothing written on refusal."""

import json
import shutil

import pytest

from conftest import assert_user_error, run_cli, write_tgs_folder
from salttune.errors import SalttuneError
from salttune.resume import resume_config

# The README's example: a small model, then a resume with no --set at all.
SMALL = ["--set", "batch_size=4", "--set", "model.base_width=4", "--set", "model.depth=2", "--quiet"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A completed 2-epoch run of a non-default model, and its data."""
    root = tmp_path_factory.mktemp("resume")
    write_tgs_folder(root / "data")
    run = root / "run"
    proc = run_cli("train", "--data", str(root / "data"), "--out", str(run), "--set", "epochs=2", *SMALL)
    assert proc.returncode == 0, proc.stderr
    return root / "data", run


def _files(run):
    return {p.relative_to(run): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("extra, fragments", [
    ([], ["already trained all 2 epoch(s)", "--set epochs=N with N > 2"]),  # the README's command on a finished run
    (["--set", "epochs=4", "--set", "model.base_width=8"], ["--set model.base_width=8", "cannot change", "(the run has 4)"]),
    (["--set", "epochs=4", "--set", "loss.name=bce"], ["--set loss.name=bce", "cannot change"]),
    (["--set", "epochs=4", "--set", "batch_size=8"], ["--set batch_size=8", "cannot change"]),
    (["--set", "epochs=1"], ["--set epochs=1", "already trained 2 epoch(s)"]),
    (["--set", "epochs=4", "--config", "x.yaml"], ["--config x.yaml", "keeps its own config"]),
    (["--set", "epochs=4", "--set", "nope=1"], ["nope"]),
])
def test_refused_resume_is_one_line_and_writes_nothing(finished, extra, fragments):
    data, run = finished
    before = _files(run)
    proc = run_cli("train", "--data", str(data), "--out", str(run), "--resume", "--quiet", *extra)
    assert_user_error(proc, *fragments)
    assert _files(run) == before  # config.yaml, record.json, metrics, checkpoints: byte for byte
    assert json.loads((run / "record.json").read_text())["status"] == "completed"


def test_resume_with_other_data_is_refused(finished, tmp_path):
    data, run = finished
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    write_tgs_folder(tmp_path / "other", seed=1)
    before = _files(copy)
    proc = run_cli("train", "--data", str(tmp_path / "other"), "--out", str(copy), "--resume", "--set", "epochs=3", "--quiet")
    assert_user_error(proc, "not the data this run was trained on", "--data")
    assert _files(copy) == before


def test_resume_continues_with_the_runs_own_config(finished, tmp_path):
    data, run = finished
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    # Only epochs changes; repeating a fixed setting at its own value is allowed.
    proc = run_cli("train", "--data", str(data), "--out", str(copy), "--resume", "--set", "epochs=3",
                   "--set", "model.base_width=4", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "resuming" in proc.stdout and "after epoch 2 of 3" in proc.stdout
    assert [json.loads(line)["epoch"] for line in (copy / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    cfg = (copy / "config.yaml").read_text()
    assert "epochs: 3" in cfg and "base_width: 4" in cfg and "batch_size: 4" in cfg  # not the defaults (16, 32)
    rec = json.loads((copy / "record.json").read_text())
    assert rec["status"] == "completed" and rec["resumed"] is True
    assert rec["result"]["epochs_run"] == 3 and rec["result"]["resumed_after_epoch"] == 2
    assert rec["config"]["model"]["base_width"] == 4 and rec["config"]["epochs"] == 3
    earlier = rec["earlier"]
    assert [e["status"] for e in earlier] == ["completed"] and earlier[0]["result"]["epochs_run"] == 2
    assert earlier[0]["config"]["epochs"] == 2


def test_resume_config_allows_only_the_changeable_keys(finished):
    data, run = finished
    cfg, done = resume_config(run, ["epochs=5", "num_workers=1", "faults.raise_at_epoch=4"], data)
    assert (cfg.epochs, cfg.num_workers, cfg.faults.raise_at_epoch, done) == (5, 1, 4, 2)
    assert (cfg.model.base_width, cfg.model.depth, cfg.batch_size) == (4, 2, 4)  # the run's, not the defaults
    for item, key in (("seed=3", "seed"), ("optim.lr=0.1", "optim.lr"), ("val_fraction=0.5", "val_fraction"),
                      ("schedule.name=none", "schedule.name"), ("augment.p=0.1", "augment.p")):
        with pytest.raises(SalttuneError, match=f"--set {key}="):
            resume_config(run, ["epochs=5", item], data)


def test_resume_without_a_checkpoint_is_refused(tmp_path, finished):
    data, _ = finished
    assert_user_error(run_cli("train", "--data", str(data), "--out", str(tmp_path / "none"), "--resume", "--quiet"),
                      "no checkpoint/state.pt to resume")
    assert not (tmp_path / "none").exists()
