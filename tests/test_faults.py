"""Faults during training: each injected, each survived (search-level faults are in search/test_command.py)."""

import json
import signal

import pytest
import torch

from conftest import assert_user_error, run_cli
from salttune.checkpoint import load_checkpoint
from salttune.config import config_from_dict
from salttune.data import load_dataset
from salttune.split import Split, split_data
from salttune.train import GPUOutOfMemory, InjectedFault, NonFiniteLoss, fit

TINY = ["--set", "batch_size=4", "--set", "model.base_width=4", "--set", "model.depth=2", "--quiet"]


@pytest.fixture
def parts(tgs_folder):
    root, _ = tgs_folder
    return split_data(load_dataset(root, with_test=False), Split(0.25, split_seed=0))[:2]


def tiny(**over):
    return config_from_dict({"batch_size": 4, "model": {"base_width": 4, "depth": 2}, **over})


def test_out_of_memory_names_the_settings_to_lower(parts, tmp_path, monkeypatch):
    """Simulated: this machine has no GPU, so the error torch raises there is raised by the epoch step."""
    import salttune.train as train_mod

    def oom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(train_mod, "train_epoch", oom)
    with pytest.raises(GPUOutOfMemory, match="lower batch_size or model.base_width, or give each trial a larger GPU share"):
        fit(tiny(epochs=1), *parts, tmp_path / "oom")


def test_injected_exception_then_resume_continues(parts, tmp_path):
    with pytest.raises(InjectedFault):
        fit(tiny(epochs=3, faults={"raise_at_epoch": 3}), *parts, tmp_path / "r")
    log = []
    fit(tiny(epochs=3), *parts, tmp_path / "r", lambda m, c: log.append(m["epoch"]), resume_from=tmp_path / "r" / "checkpoint")
    assert log == [3]


def test_nan_fault(parts, tmp_path):
    with pytest.raises(NonFiniteLoss, match="loss became nan"):
        fit(tiny(epochs=2, faults={"nan_loss_at_epoch": 2}), *parts, tmp_path / "n")
    assert [json.loads(l)["epoch"] for l in (tmp_path / "n" / "metrics.jsonl").read_text().splitlines()] == [1]


def test_killed_process_resumes_at_the_right_epoch(tgs_folder, tmp_path):
    root, _ = tgs_folder
    out = tmp_path / "run"
    proc = run_cli("train", "--data", str(root), "--out", str(out), "--set", "epochs=3",
                   "--set", "faults.kill_worker_at_epoch=2", *TINY)
    assert proc.returncode == -signal.SIGKILL
    assert json.loads((out / "record.json").read_text())["status"] == "running"  # it never got to say otherwise
    assert load_checkpoint(out / "checkpoint" / "state.pt")["epoch"] == 1  # epoch 2 (0-based 1) completed
    proc = run_cli("train", "--data", str(root), "--out", str(out), "--resume", "--set", "epochs=3", *TINY)
    assert proc.returncode == 0, proc.stderr
    epochs = [json.loads(l)["epoch"] for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
    assert json.loads((out / "record.json").read_text())["status"] == "completed"


def test_disk_full_is_one_line_and_earlier_results_stay_readable(tgs_folder, tmp_path):
    root, _ = tgs_folder
    out = tmp_path / "run"
    assert run_cli("train", "--data", str(root), "--out", str(out), "--set", "epochs=1", *TINY).returncode == 0
    summary = (out / "summary.json").read_text()
    metrics = out / "metrics.jsonl"
    metrics.unlink()
    metrics.symlink_to("/dev/full")  # every write there fails with ENOSPC, as on a full disk
    proc = run_cli("train", "--data", str(root), "--out", str(out), "--resume", "--set", "epochs=2", *TINY)
    assert_user_error(proc, "disk full", "No space left on device", "earlier results are intact")
    assert load_checkpoint(out / "checkpoint" / "state.pt")["epoch"] == 0
    assert (out / "summary.json").read_text() == summary
    assert json.loads((out / "record.json").read_text())["status"] == "failed"
