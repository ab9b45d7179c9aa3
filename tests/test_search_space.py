"""Search-space files: validation before anything starts, conditional define-by-run sampling, overrides."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from conftest import assert_user_error, run_search_cli
from salttune.errors import SalttuneError
from salttune.search.space import load_space, space_from_dict, space_to_dict, suggest, trial_config

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"
SHIPPED = ["quick", "lovasz", "losses", "architecture", "optimizers", "bench"]


def write_space(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BASE = """
name: t
trials: 3
asha: {max_t: 4, grace_period: 1, reduction_factor: 2}
data: {folder: data, val_fraction: 0.25, max_train_images: 40, split_seed: 3}
fixed: {model.base_width: 4, model: {depth: 2}, batch_size: 8}
"""


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_spaces_are_valid(name):
    space = load_space(SPACES / f"{name}.yaml")
    assert space.name == name and space.metric == "val_score" and space.mode == "max"
    assert any(p.when for p in space.params) == (name != "architecture")  # conditional parameters
    assert space.resources.gpu > 0  # fractional GPUs; ignored with a notice on CPU-only machines


def test_quick_space_is_sized_for_two_cores():
    q = load_space(SPACES / "quick.yaml")
    assert q.concurrent == 2 and q.resources.cpu == 1 and q.asha.max_t <= 6 and q.data.max_train_images <= 1000
    assert q.fixed["model.base_width"] <= 8 and q.fixed["model.depth"] <= 3
    assert {p.key for p in q.params} >= {"optim.name", "optim.momentum", "loss.name", "model.block"}


def test_conditional_parameters_are_drawn_only_when_active():
    space = load_space(SPACES / "lovasz.yaml")
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(60):
        trial = study.ask()
        drawn = suggest(space, trial)
        assert drawn == trial.params  # exactly what Optuna recorded
        sgd, terms = drawn["optim.name"] == "sgd", drawn["loss.name"].split("+")
        assert ("optim.momentum" in drawn) == sgd and ("optim.nesterov" in drawn) == sgd
        assert ("optim.weight_decay" in drawn) == (drawn["optim.name"] in ("adamw", "sgd"))
        assert ("loss.focal_gamma" in drawn) == ("focal" in terms)
        assert [k for k in drawn if k.startswith("loss.weights.")] == [f"loss.weights.{t}" for t in terms[1:]]
        assert ("schedule.cycle_epochs" in drawn) == (drawn["schedule.name"] == "cosine_snapshots")
        cfg = trial_config(space, drawn)
        assert cfg.epochs == 60 and cfg.optim.lr == drawn["optim.lr"] and cfg.model.base_width == 32
        assert cfg.loss.weights == (None if len(terms) == 1 else (1.0, drawn[f"loss.weights.{terms[1]}"]))
        if sgd:
            assert cfg.optim.momentum == drawn["optim.momentum"] and cfg.optim.nesterov == drawn["optim.nesterov"]
        seen.add((drawn["optim.name"], len(terms)))
        study.tell(trial, 0.5)
    assert len(seen) == 6  # every optimiser with single and combined losses was drawn


def test_trial_config_takes_budget_and_split_from_the_space(tmp_path):
    f = write_space(tmp_path / "s.yaml", BASE + "space:\n  augment.names: {choice: [[hflip], [hflip, translate]]}\n")
    space = load_space(f)
    cfg = trial_config(space, {"augment.names": "hflip+translate"})
    assert cfg.augment.names == ("hflip", "translate")  # a list choice travels through Optuna as 'a+b'
    assert (cfg.epochs, cfg.val_fraction, cfg.max_train_images, cfg.split_seed) == (4, 0.25, 40, 3)
    assert (cfg.model.base_width, cfg.model.depth, cfg.batch_size) == (4, 2, 8)


def test_set_overrides_the_space_and_the_fixed_settings(tmp_path):
    f = write_space(tmp_path / "s.yaml", BASE + "space:\n  optim.lr: {loguniform: [1.0e-4, 1.0e-2]}\n")
    space = load_space(f, ["trials=7", "asha.max_t=2", "model.base_width=6", "fixed.batch_size=4",
                           "space.optim.lr={loguniform: [1.0e-3, 1.0e-1]}", "data.val_fraction=0.5"], data="other")
    assert (space.trials, space.asha.max_t, space.data.val_fraction, space.data.folder) == (7, 2, 0.5, "other")
    assert space.fixed["model.base_width"] == 6 and space.fixed["batch_size"] == 4
    assert (space.params[0].low, space.params[0].high) == (1e-3, 1e-1)
    with pytest.raises(SalttuneError, match="--set 'bogus=1': unknown key"):
        load_space(f, ["bogus=1"])


def test_resolved_space_round_trips(tmp_path):
    space = load_space(SPACES / "lovasz.yaml")
    assert space_from_dict(space_to_dict(space), source=space.source) == space


BAD = [  # (space section or whole-file replacement, fragments the one-line message must hold)
    ("space:\n  model.blok: {choice: [plain]}\n", ["key 'space.model.blok'", "unknown parameter", "allowed:", "model.block"]),
    ("space:\n  optim.lr: {normal: [0, 1]}\n", ["key 'space.optim.lr'", "unknown distribution 'normal'", "uniform, loguniform, int, choice"]),
    ("space:\n  optim.name: {choice: [adam, sgd]}\n  optim.momentum: {uniform: [0.8, 0.9], when: {optim.nam: sgd}}\n",
     ["key 'space.optim.momentum.when.optim.nam'", "not a parameter of this space", "allowed: optim.name"]),
    ("space:\n  optim.name: {choice: [adam, sgd]}\n  optim.momentum: {uniform: [0.8, 0.9], when: {optim.name: adagrad}}\n",
     ["'adagrad' is not a choice of 'optim.name'", "allowed: adam, sgd"]),
    ("space:\n  loss.name: {choice: [bce, dice]}\n  loss.focal_gamma: {uniform: [1, 2], when: {loss.name: {has_term: focal}}}\n",
     ["no choice of loss.name has the term 'focal'"]),
    ("space:\n  model.block: {choice: [plain, spam]}\n", ["key 'space.model.block'", "unknown value 'spam'", "allowed: plain, residual"]),
    ("space:\n  epochs: {int: [1, 5]}\n", ["key 'space.epochs'", "asha.max_t"]),
    ("space:\n  optim.lr: {int: [1, 5]}\n", ["'optim.lr' is not an integer setting"]),
    ("space:\n  optim.lr: {loguniform: [0, 1]}\n", ["loguniform needs low > 0"]),
    ("space:\n  schedule.patience: {uniform: [4, 8]}\n", ["not a real-valued setting; use int or choice"]),
    ("space:\n  loss.name: {choice: [bce, 'bce+nope']}\n", ["unknown term 'nope'", "allowed terms"]),
    ("space:\n  optim.lr: {uniform: [0.1, 0.2]}\nmetric: val_loss\nmode: max\n", ["key 'mode'", "use mode: min"]),
    ("space:\n  optim.lr: {uniform: [0.1, 0.2]}\nbudget: 3\n", ["key 'budget'", "unknown key; allowed: name, metric"]),
    ("space: {}\n", ["key 'space'", "expected a mapping"]),
    ("space:\n  optim.lr: {uniform: [0.1, 0.2]}\nstop_at: good\n", ["key 'stop_at'", "'good' is not a number"]),
]


@pytest.mark.parametrize("section,fragments", BAD, ids=[f[1][0][:40] for f in BAD])
def test_bad_space_is_one_line_naming_file_and_key(tmp_path, section, fragments):
    f = write_space(tmp_path / "bad.yaml", BASE + section)
    with pytest.raises(SalttuneError) as e:
        load_space(f)
    msg = str(e.value)
    assert msg.startswith(f"{f}: ") and "\n" not in msg
    for frag in fragments:
        assert frag in msg, (frag, msg)


def test_other_file_problems(tmp_path):
    with pytest.raises(SalttuneError, match="not valid YAML at line 3"):
        load_space(write_space(tmp_path / "a.yaml", "name: x\nspace: {optim.lr: [\n"))
    with pytest.raises(SalttuneError, match="does not exist"):
        load_space(tmp_path / "missing.yaml")
    with pytest.raises(SalttuneError, match=r"key 'asha.grace_period': 9 is out of range"):
        load_space(write_space(tmp_path / "b.yaml", BASE.replace("grace_period: 1", "grace_period: 9")
                               + "space:\n  optim.lr: {uniform: [0.1, 0.2]}\n"))
    with pytest.raises(SalttuneError, match="key 'fixed': config key 'model.blok' is unknown"):
        load_space(write_space(tmp_path / "c.yaml", BASE.replace("batch_size: 8", "batch_size: 8, model.blok: se")
                               + "space:\n  optim.lr: {uniform: [0.1, 0.2]}\n"))


def test_cli_rejects_a_bad_space_before_starting_ray(tmp_path):
    f = write_space(tmp_path / "bad.yaml", BASE + "space:\n  model.blok: {choice: [plain]}\n")
    proc = run_search_cli("--space", str(f), cwd=tmp_path, timeout=120)
    assert_user_error(proc, str(f), "space.model.blok", "allowed:")
    assert "Ray" not in proc.stdout and not (tmp_path / "results").exists()
    proc = run_search_cli("--space", str(write_space(tmp_path / "y.yaml", "name: [")), cwd=tmp_path, timeout=120)
    assert_user_error(proc, "y.yaml", "not valid YAML")


def test_cli_rejects_missing_data_and_unknown_resume(tmp_path):
    f = write_space(tmp_path / "s.yaml", BASE + "space:\n  optim.lr: {uniform: [0.001, 0.01]}\n")
    assert_user_error(run_search_cli("--space", str(f), "--data", str(tmp_path / "nope"), cwd=tmp_path, timeout=120), "nope")
    assert_user_error(run_search_cli("--resume", "--name", "ghost", cwd=tmp_path, timeout=120), "ghost", "no search to resume")
    assert_user_error(run_search_cli(cwd=tmp_path, timeout=120), "--space FILE")
