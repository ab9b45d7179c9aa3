"""Search-space files: validation before anything starts, conditional define-by-run sampling, overrides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import assert_user_error, run_search_cli
from salttune.errors import SalttuneError
from salttune.search.space import load_space, space_from_dict, space_to_dict, trial_config

SPACES = Path(__file__).resolve().parents[2] / "search_spaces"
SHIPPED = ["quick", "lovasz", "losses", "architecture", "optimizers"]  # (bench.yaml: tests/benchmarks/)


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
    assert q.concurrent == 2 and q.resources.cpu == 1 and q.asha.max_t <= 8 and q.data.max_train_images <= 1000
    assert q.fixed["model.base_width"] <= 8 and q.fixed["model.depth"] <= 3
    assert {p.key for p in q.params} >= {"optim.name", "optim.momentum", "loss.name", "model.block"}


def test_trial_config_takes_budget_and_split_from_the_space(tmp_path):
    f = write_space(tmp_path / "s.yaml", BASE + "space:\n  augment.names: {choice: [[hflip], [hflip, translate]]}\n")
    space = load_space(f)
    cfg = trial_config(space, {"augment.names": "hflip+translate"})
    assert cfg.augment.names == ("hflip", "translate")  # a list choice travels through Optuna as 'a+b'
    assert (cfg.epochs, cfg.val_fraction, cfg.max_train_images, cfg.split_seed) == (4, 0.25, 40, 3)
    assert (cfg.model.base_width, cfg.model.depth, cfg.batch_size) == (4, 2, 8)


def test_each_trial_gets_its_own_seed_from_the_search_seed_and_its_number(tmp_path):
    space = load_space(write_space(tmp_path / "s.yaml", BASE + "space:\n  optim.lr: {loguniform: [1.0e-4, 1.0e-2]}\n"))
    params = {"optim.lr": 1e-3}
    seeds = [trial_config(space, params, n).seed for n in range(10)]
    assert len(set(seeds)) == 10 and all(0 <= s < 2**32 for s in seeds)  # distinct, and torch/numpy take them
    assert seeds == [int(np.random.SeedSequence([0, n]).generate_state(1)[0]) for n in range(10)]  # the documented formula
    assert seeds[:2] == [2968811710, 3964924996]  # computed once: a numpy or code change must not move old searches' seeds
    assert [trial_config(space, {"optim.lr": 5e-3}, n).seed for n in range(10)] == seeds  # the point drawn does not matter
    other = load_space(write_space(tmp_path / "s1.yaml", BASE.replace("trials: 3", "trials: 3\nseed: 1")
                                   + "space:\n  optim.lr: {loguniform: [1.0e-4, 1.0e-2]}\n"))
    assert not set(trial_config(other, params, n).seed for n in range(10)) & set(seeds)  # another search, other seeds
    assert trial_config(space, params).seed == 0  # no trial number: the training config's default


@pytest.mark.parametrize("how", ["fixed", "set", "searched"])
def test_a_seed_the_space_fixes_or_searches_wins(tmp_path, how):
    text = BASE + "space:\n  optim.lr: {loguniform: [1.0e-4, 1.0e-2]}\n"
    if how == "fixed":
        text = text.replace("batch_size: 8}", "batch_size: 8, seed: 3}")
    elif how == "searched":
        text += "  seed: {choice: [3]}\n"
    space = load_space(write_space(tmp_path / "s.yaml", text), ["fixed.seed=3"] if how == "set" else [])
    params = {"optim.lr": 1e-3, **({"seed": 3} if how == "searched" else {})}
    assert [trial_config(space, params, n).seed for n in range(4)] == [3, 3, 3, 3]


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
    ("space:\n  optim.lr: {uniform: [0.1, 0.2]}\nbudget: 3\n", ["key 'budget' is unknown; allowed: name, metric", "fixed, space"]),
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


def test_exponent_numbers_are_numbers(tmp_path):
    f = write_space(tmp_path / "s.yaml", BASE.replace("batch_size: 8", "batch_size: 8, optim.weight_decay: 1e-5")
                    + "stop_at: 9e-1\nspace:\n  optim.lr: {loguniform: [1e-4, 1e-2]}\n")
    space = load_space(f)
    assert (space.params[0].low, space.params[0].high, space.fixed["optim.weight_decay"], space.stop_at) == (1e-4, 1e-2, 1e-5, 0.9)
    space = load_space(f, ["space.optim.lr={loguniform: [1e-3, 1e-1]}", "optim.momentum=9e-1", "resources.gpu=5e-1"])
    assert (space.params[0].low, space.params[0].high, space.fixed["optim.momentum"], space.resources.gpu) == (1e-3, 1e-1, 0.9, 0.5)


def test_settings_defaults_and_rules(tmp_path):
    space = space_from_dict({"metric": "val_loss", "asha": None, "space": {"optim.lr": {"uniform": [0.1, 0.2]}}})
    assert (space.name, space.mode, space.trials, space.asha.max_t, space.resources.cpu, space.data.val_fraction) == (
        "search", "min", 10, 10, 1.0, 0.2)
    for raw, fragment in [({"resources": {"gpu": 1.5}}, "key 'resources.gpu': 1.5 mixes whole and shared GPUs"),
                          ({"resources": {"cpu": 0}}, "key 'resources.cpu': 0.0 is out of range; allowed: (0, 1024]"),
                          ({"asha": {"reduction_factor": 1}}, "key 'asha.reduction_factor': 1.0 is out of range"),
                          ({"data": {"max_train_images": 1}}, "key 'data.max_train_images': 1 is out of range"),
                          ({"algorithm": "grid"}, "key 'algorithm': unknown value 'grid'; allowed: tpe+asha, random"),
                          ({"name": "a/b"}, "key 'name': 'a/b' is not a usable folder name"),
                          ({"fixed": {"epochs": 3}}, "key 'fixed.epochs': set by the search; use asha.max_t instead")]:
        with pytest.raises(SalttuneError) as e:
            space_from_dict({**raw, "space": {"optim.lr": {"uniform": [0.1, 0.2]}}}, source="s.yaml")
        assert str(e.value).startswith(f"s.yaml: {fragment}"), str(e.value)
