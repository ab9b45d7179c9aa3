import pytest
import yaml

from conftest import assert_user_error, run_cli
from salttune.config import (
    TrainConfig,
    config_from_dict,
    config_to_dict,
    load_config,
    parse_overrides,
)
from salttune.errors import SalttuneError
from salttune.settings import allowed_keys


def test_defaults_round_trip():
    cfg = config_from_dict({})
    assert cfg == TrainConfig()
    assert cfg.schedule.factor == 0.7 and cfg.augment.names == ("hflip", "translate")
    assert config_from_dict(config_to_dict(cfg)) == cfg
    assert "model.block" in allowed_keys(TrainConfig) and "optim.lr" in allowed_keys(TrainConfig)
    assert cfg.loss.dice_per_image is False and cfg.loss.lovasz_per_image is True  # the loss functions' defaults


def test_default_weights_belong_to_the_default_loss():
    assert config_from_dict({}).loss.weights == (1.0, 0.5)
    assert config_from_dict({"loss": {"name": "bce"}}).loss.weights is None
    assert config_from_dict({"loss": {"name": "bce+dice"}}).loss.weights is None
    assert config_from_dict({"loss": {"name": "bce+dice", "weights": [2, 1]}}).loss.weights == (2.0, 1.0)


def test_yaml_and_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("epochs: 5\nmodel:\n  block: se\nloss:\n  name: focal+dice\n  weights: [1, 2]\n")
    cfg = load_config(f, ["optim.lr=0.01", "optim.name=sgd", "augment.names=[hflip]", "loss.focal_alpha=null",
                          "loss.dice_per_image=true"])
    assert cfg.epochs == 5 and cfg.model.block == "se" and cfg.optim.lr == 0.01 and cfg.optim.name == "sgd"
    assert cfg.loss.weights == (1.0, 2.0) and cfg.augment.names == ("hflip",) and cfg.loss.focal_alpha is None
    assert cfg.loss.dice_per_image is True
    assert parse_overrides(["a.b=1", "a.c=x"]) == {"a": {"b": 1, "c": "x"}}


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"epoch": 3}, "'epoch' is unknown; allowed: seed"),
        ({"model": {"block": "dense"}}, "'model.block': unknown value 'dense'; allowed: plain, residual, residual_scse, residual_se, scse, se"),
        ({"model": {"init": "orthogonal"}}, "allowed: he_normal, xavier_uniform"),
        ({"optim": {"lr": 0}}, "'optim.lr': 0.0 is out of range"),
        ({"epochs": 2.5}, "'epochs': 2.5 is not an integer"),
        ({"amp": "yes"}, "'amp': 'yes' is not true or false"),
        ({"loss": {"name": "bce+hinge"}}, "unknown term 'hinge'"),
        ({"loss": {"name": "bce+dice", "weights": [1]}}, "1 weights for 2 terms"),
        ({"loss": {"weights": [1, -1]}}, "'loss.weights': -1.0 is out of range"),
        ({"augment": {"names": ["vflip"]}}, "unknown value 'vflip'"),
        ({"loss": {"lovasz_per_image": "no"}}, "'loss.lovasz_per_image': 'no' is not true or false"),
        ({"model": 3}, "expected a mapping"),
    ],
)
def test_bad_values_named(data, fragment):
    with pytest.raises(SalttuneError) as e:
        config_from_dict(data)
    assert fragment in str(e.value)


def test_bad_files(tmp_path):
    with pytest.raises(SalttuneError, match="does not exist"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1\n")
    with pytest.raises(SalttuneError, match="bad.yaml: not valid YAML at line"):
        load_config(bad)
    with pytest.raises(SalttuneError, match="expected key=value"):
        load_config(None, ["epochs"])


def test_cli_reports_bad_key(tgs_folder):
    root, _ = tgs_folder
    assert_user_error(run_cli("train", "--data", str(root), "--set", "model.blok=se"), "model.blok", "allowed")


def test_exponent_numbers_are_numbers(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("optim:\n  lr: 1e-3\n  weight_decay: 5E-5\nschedule: {min_lr: 1e-7}\n")
    cfg = load_config(f, ["loss.weights=[1, 5e-1]"])
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.schedule.min_lr, cfg.loss.weights) == (1e-3, 5e-5, 1e-7, (1.0, 0.5))
    assert load_config(None, ["optim.lr=2e-3"]).optim.lr == 2e-3


def test_cli_trains_with_exponent_overrides(tgs_folder, tmp_path):
    root, _ = tgs_folder
    conf = tmp_path / "c.yaml"
    conf.write_text("optim: {weight_decay: 1e-4}\n")
    out = tmp_path / "run"
    proc = run_cli("train", "--data", str(root), "--config", str(conf), "--out", str(out), "--quiet", "--set", "optim.lr=1e-3",
                   "--set", "epochs=1", "--set", "model.base_width=4", "--set", "model.depth=2", "--set", "batch_size=4")
    assert proc.returncode == 0, proc.stderr
    written = yaml.safe_load((out / "config.yaml").read_text())
    assert written["optim"]["lr"] == 1e-3 and written["optim"]["weight_decay"] == 1e-4


def test_the_default_stages_belong_to_the_default_loss():
    assert config_from_dict({}).loss.stages == "bce+dice:8,lovasz_symmetric"
    # naming a loss trains it throughout, as it did before stages existed
    assert config_from_dict({"loss": {"name": "focal+dice"}}).loss.stages == ""
    assert config_from_dict({"loss": {"weights": [1.0, 1.0]}}).loss.stages == ""
    assert config_from_dict({"loss": {"name": "bce", "stages": "bce:2,dice"}}).loss.stages == "bce:2,dice"
    assert load_config(None, ["loss.name=bce"]).loss.stages == ""
    cfg = config_from_dict({})
    assert (cfg.batch_size, cfg.model.base_width) == (16, 8)  # the CPU default chosen by python -m benchmarks quality
