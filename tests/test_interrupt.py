"""Ctrl-C (SIGINT) and SIGTERM sent to a real ``salttune`` process mid-run: exit 130, one line, no partial
output under its final name, ``record.json`` says ``interrupted``, and ``train --resume`` carries on."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest
import torch

from conftest import CLI, run_cli, write_tgs_folder
from salttune.checkpoint import save_checkpoint
from salttune.config import config_from_dict, config_to_dict
from salttune.model import build_model

SMALL = ["--set", "batch_size=4", "--set", "model.base_width=4", "--set", "model.depth=2", "--quiet"]


def interrupt_cli(args: list[str], ready: Callable[[], bool], sig: int = signal.SIGINT, timeout: float = 240,
                  group: bool = False) -> subprocess.CompletedProcess:
    """Start ``salttune ARGS``, send ``sig`` once ``ready()`` is true, and return the finished process.

    ``group``: send it to the whole process group (child processes included), as Ctrl-C in a terminal does.
    """
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=group)
    t0 = time.time()
    while not ready():
        assert proc.poll() is None, f"ended before it could be interrupted: {proc.communicate()}"
        assert time.time() - t0 < timeout, "never got ready"
        time.sleep(0.05)
    os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def assert_interrupted(proc: subprocess.CompletedProcess, command: str) -> None:
    assert proc.returncode == 130, (proc.returncode, proc.stderr)
    assert proc.stderr.strip() == f"salttune {command}: interrupted"  # one line, no traceback


def _epochs(run: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_train_resumes_at_the_right_epoch(tgs_folder, tmp_path, sig):
    data, _ = tgs_folder
    run = tmp_path / "run"
    metrics = run / "metrics.jsonl"
    proc = interrupt_cli(["train", "--data", str(data), "--out", str(run), "--set", "epochs=200", *SMALL],
                         lambda: metrics.is_file() and metrics.read_text().count("\n") >= 1, sig)
    assert_interrupted(proc, "train")
    rec = json.loads((run / "record.json").read_text())
    done = rec["result"]["epochs_run"]
    assert rec["status"] == "interrupted" and "error" not in rec and 1 <= done < 200
    assert not list(run.rglob(".*tmp*"))  # no half-written checkpoint or summary
    # README's command, no --set: the run's own config (width 4, 200 epochs) continues; here only 2 more epochs.
    proc = run_cli("train", "--data", str(data), "--out", str(run), "--resume", "--set", f"epochs={done + 2}", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert f"after epoch {done} of {done + 2}" in proc.stdout
    assert _epochs(run) == list(range(1, done + 3))
    rec = json.loads((run / "record.json").read_text())
    assert rec["status"] == "completed" and rec["resumed"] is True and rec["result"]["epochs_run"] == done + 2
    assert [e["status"] for e in rec["earlier"]] == ["interrupted"] and rec["earlier"][0]["result"]["epochs_run"] == done


@pytest.fixture
def big_test_set(tmp_path):
    """A dataset with enough test images that predicting them takes a few seconds, and a tiny checkpoint."""
    data = tmp_path / "data"
    write_tgs_folder(data, n_train=6, n_test=1500)
    cfg = config_from_dict({"model": {"base_width": 4, "depth": 2}})
    model = build_model(in_channels=1, **config_to_dict(cfg.model))
    ckpt = save_checkpoint(tmp_path / "m.pt", {"kind": "snapshot", "model_args": dict(model.config), "config": config_to_dict(cfg),
                                              "model": {k: v.clone() for k, v in model.state_dict().items()}})
    return data, ckpt


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_predict_leaves_no_submission(big_test_set, tmp_path, sig):
    data, ckpt = big_test_set
    out = tmp_path / "sub.csv"
    torch.set_num_threads(1)
    proc = interrupt_cli(["predict", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(out), "--batch-size", "8",
                          "--tta", "flip", "--quiet"], lambda: any(tmp_path.glob(".sub.csv.tmp*")), sig)  # writing has begun
    assert_interrupted(proc, "predict")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "m.pt"]  # no sub.csv, no temporary file


@pytest.mark.parametrize("sig, group", [(signal.SIGINT, True), (signal.SIGTERM, False), (signal.SIGTERM, True)],
                         ids=["Ctrl-C to the group", "SIGTERM", "SIGTERM to the group"])
def test_interrupted_synth_writes_no_csv(tmp_path, sig, group):
    """Two worker processes; before, a Ctrl-C could leave the pool hanging and SIGTERM left orphaned workers."""
    out = tmp_path / "synth"
    images = out / "train" / "images"
    proc = interrupt_cli(["synth", "--out", str(out), "--n-train", "40", "--n-test", "3000", "--workers", "2", "--quiet"],
                         lambda: images.is_dir() and any(images.iterdir()), sig, timeout=60, group=group)
    assert_interrupted(proc, "synth")
    # The CSVs come last and appear only whole: an interrupted dataset has none, so it cannot pass for a whole one.
    assert not list(out.glob("*.csv")) and not list(out.rglob(".*tmp*"))
    again = run_cli("synth", "--out", str(out), "--n-train", "4", "--n-test", "1", "--quiet")
    assert again.returncode == 2 and "--force" in again.stderr
