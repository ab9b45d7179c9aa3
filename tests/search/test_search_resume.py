"""``salttune search --resume`` on a search folder missing a file, or holding a damaged one: one line, exit 2.

The folder is built the way a search leaves it (the resolved space, search.json, a real Optuna study, Tune's
tuner.pkl, ASHA's state), without running Ray: every check happens before Ray starts.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import optuna
import pytest
import yaml

from conftest import assert_user_error, run_search_cli
from search_fixtures import space_yaml
from salttune.search.command import plan
from salttune.search.space import load_space, space_to_dict


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    """results/old: what a search that ran two epochs of one trial leaves behind."""
    (tmp_path / "data").mkdir()
    space = load_space(space_yaml(tmp_path, "old", "  optim.lr: {loguniform: [1.0e-3, 1.0e-2]}"), data=str(tmp_path / "data"))
    local = tmp_path / "results" / "old"
    (local / "trials").mkdir(parents=True)
    (local / "space.yaml").write_text(yaml.safe_dump(space_to_dict(space), sort_keys=False))
    (local / "search.json").write_text(json.dumps({"fingerprint": "f", "storage": str(tmp_path / "results")}))
    study = optuna.create_study(study_name="old", storage=f"sqlite:///{local / 'optuna.db'}", direction="maximize")
    trial = study.ask()
    trial.report(0.5, step=1)
    trial.report(0.6, step=2)  # past ASHA's grace period (1): ASHA must have saved its rungs
    (local / "asha_state.json").write_text(json.dumps({"metric": "val_score", "mode": "max", "rungs": {"1": {"a": 0.5}}, "stopped": {}}))
    (local / "trials" / "tuner.pkl").write_bytes(pickle.dumps({"tuner": 1}))
    (local / "trials" / "experiment_state-2026-01-01_00-00-00.json").write_text("{}")
    return tmp_path


def test_an_intact_search_folder_passes_the_checks(saved):
    p = plan(None, "old", [], str(saved / "results"), None, resume=True)
    assert p.resume and p.space.name == "old" and p.local_dir == saved / "results" / "old"


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00\xffnot this\n")


def _folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _file(path: Path) -> None:
    shutil.rmtree(path)
    path.write_text("x")


DAMAGE = {  # id: (file, what to do to it, fragments of the one line)
    "search.json missing": ("search.json", Path.unlink, ("search.json", "is missing", "start the search again under a new --name")),
    "search.json not JSON": ("search.json", _garbage, ("search.json", "damaged (not JSON)")),
    "search.json a list": ("search.json", lambda p: p.write_text("[1]"), ("search.json", "not a search record")),
    "search.json storage not text": ("search.json", lambda p: p.write_text('{"fingerprint": "f", "storage": 5}'),
                                     ("search.json", "not a search record")),
    "search.json a folder": ("search.json", _folder, ("search.json", "is a folder")),
    "space.yaml missing": ("space.yaml", Path.unlink, ("no search to resume there (no space.yaml)", "check --name")),
    "space.yaml not YAML": ("space.yaml", lambda p: p.write_text("name: [\n"), ("space.yaml", "resolved space is damaged", "not valid YAML")),
    "space.yaml empty": ("space.yaml", lambda p: p.write_text(""), ("space.yaml", "resolved space is damaged", "empty")),
    "space.yaml a folder": ("space.yaml", _folder, ("space.yaml", "is a folder")),
    "optuna.db missing": ("optuna.db", Path.unlink, ("optuna.db", "Optuna study is missing")),
    "optuna.db garbage": ("optuna.db", _garbage, ("optuna.db", "damaged Optuna study")),
    "optuna.db other study": ("optuna.db", lambda p: (p.unlink(), optuna.create_study(study_name="other", storage=f"sqlite:///{p}")),
                              ("optuna.db", "no study named 'old'", "other")),
    "trials missing": ("trials", shutil.rmtree, ("trials", "is missing", "start the search again")),
    "trials a file": ("trials", _file, ("trials", "is a file", "should be a folder")),
    "tuner.pkl truncated": ("trials/tuner.pkl", lambda p: p.write_bytes(p.read_bytes()[:5]), ("tuner.pkl", "not a complete pickle")),
    "experiment state not JSON": ("trials/experiment_state-2026-01-01_00-00-00.json", _garbage, ("experiment_state-", "damaged (not JSON)")),
    "asha_state.json missing": ("asha_state.json", Path.unlink, ("asha_state.json", "is missing")),
    "asha_state.json not JSON": ("asha_state.json", _garbage, ("asha_state.json", "damaged ASHA state")),
    "asha_state.json without rungs": ("asha_state.json", lambda p: p.write_text('{"stopped": {}}'), ("asha_state.json", "damaged ASHA state")),
}


@pytest.mark.parametrize("case", DAMAGE, ids=list(DAMAGE))
def test_resume_with_a_missing_or_damaged_file_is_one_line(saved, case):
    name, damage, fragments = DAMAGE[case]
    damage(saved / "results" / "old" / name)
    proc = run_search_cli("--resume", "--name", "old", cwd=saved, timeout=60)
    assert_user_error(proc, *fragments)


def test_asha_state_may_be_missing_before_any_trial_reached_a_rung(saved):
    local = saved / "results" / "old"
    (local / "asha_state.json").unlink()
    (local / "optuna.db").unlink()
    optuna.create_study(study_name="old", storage=f"sqlite:///{local / 'optuna.db'}").ask()  # asked, nothing reported
    assert plan(None, "old", [], str(saved / "results"), None, resume=True).resume
