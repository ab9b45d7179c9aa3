import json
import time

import pytest

from conftest import assert_user_error, run_cli
from salttune.record import data_folder, find_records, folder_fingerprint, recorded_run, sigterm_interrupts


def test_record_written_before_and_completed_after(tmp_path, tgs_folder):
    data, _ = tgs_folder
    with recorded_run(tmp_path / "r", kind="train", name="r", config={"a": 1}, seed=7, data=data) as run:
        rec = json.loads((tmp_path / "r" / "record.json").read_text())
        assert rec["status"] == "running" and rec["seed"] == 7 and rec["config"] == {"a": 1}
        assert rec["data"]["sha256"] == folder_fingerprint(data)["sha256"] and rec["data"]["files"] > 0
        assert rec["packages"]["torch"] and rec["machine"]["cpu_count"] >= 1
        assert "commit" in rec["git"]
        run.result(best_score=0.5)
    rec = json.loads((tmp_path / "r" / "record.json").read_text())
    assert rec["status"] == "completed" and rec["result"]["best_score"] == 0.5 and rec["seconds"] >= 0


def test_failure_is_recorded_with_reason(tmp_path):
    with pytest.raises(ValueError):
        with recorded_run(tmp_path / "f", kind="train", name="f", config={}):
            raise ValueError("boom")
    rec = json.loads((tmp_path / "f" / "record.json").read_text())
    assert rec["status"] == "failed" and rec["error"] == "ValueError: boom"


def test_fingerprint_changes_with_content(tgs_folder):
    data, _ = tgs_folder
    a = folder_fingerprint(data)["sha256"]
    (data / "depths.csv").write_text((data / "depths.csv").read_text().replace(",50", ",51"))
    assert folder_fingerprint(data)["sha256"] != a


def test_history_lists_runs_newest_first(tmp_path, tgs_folder):
    root, _ = tgs_folder
    results = tmp_path / "results"
    for name in ("first", "second"):
        proc = run_cli("train", "--data", str(root), "--out", str(results / name), "--quiet", "--set", "epochs=1",
                       "--set", "batch_size=4", "--set", "model.base_width=4", "--set", "model.depth=2")
        assert proc.returncode == 0, proc.stderr
    assert [r["name"] for _, r in find_records(results)][0] == "second"
    proc = run_cli("history", "--results", str(results))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "second" in lines[1] and "first" in lines[2] and "completed" in lines[1] and "train" in lines[1]
    one = run_cli("history", "first", "--results", str(results))
    rec = json.loads(one.stdout)
    assert rec["name"] == "first" and rec["status"] == "completed" and rec["result"]["epochs_run"] == 1
    assert_user_error(run_cli("history", "nope", "--results", str(results)), "no run named 'nope'")


def test_data_folder_from_search_json_else_record_json(tmp_path, tgs_folder):
    data, _ = tgs_folder
    assert data_folder(tmp_path) is None
    with recorded_run(tmp_path, kind="train", name="r", config={}, data=data):
        pass
    assert data_folder(tmp_path) == str(data.resolve())  # record.json holds the folder's fingerprint
    (tmp_path / "search.json").write_text(json.dumps({"data": "/elsewhere"}))
    assert data_folder(tmp_path) == "/elsewhere"  # a search's own file comes first


def test_a_new_record_keeps_the_earlier_ones(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with recorded_run(tmp_path, kind="train", name="r", config={"epochs": 5}, argv=["a"]) as run:
            run.result(epochs_run=2)
            raise KeyboardInterrupt
    with recorded_run(tmp_path, kind="train", name="r", config={"epochs": 5}, argv=["b"], resumed=True) as run:
        run.result(epochs_run=5)
    with recorded_run(tmp_path, kind="train", name="r", config={"epochs": 6}, resumed=True):
        rec = json.loads((tmp_path / "record.json").read_text())
        assert rec["status"] == "running" and rec["resumed"] is True
    rec = json.loads((tmp_path / "record.json").read_text())
    assert rec["status"] == "completed" and rec["config"] == {"epochs": 6}
    assert [(e["status"], e["argv"], e["result"]) for e in rec["earlier"]] == [
        ("interrupted", ["a"], {"epochs_run": 2}), ("completed", ["b"], {"epochs_run": 5})]
    (tmp_path / "record.json").write_text("{not json")  # an unreadable record holds nothing to keep
    with recorded_run(tmp_path, kind="train", name="r", config={}):
        pass
    assert "earlier" not in json.loads((tmp_path / "record.json").read_text())


def test_sigterm_inside_the_block_is_an_interrupt(tmp_path):
    import os
    import signal

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with sigterm_interrupts(), recorded_run(tmp_path, kind="train", name="r", config={}):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
    assert json.loads((tmp_path / "record.json").read_text())["status"] == "interrupted"
    assert signal.getsignal(signal.SIGTERM) is before  # restored after the block
