"""The ``space:`` section: conditional parameters drawn define-by-run, and their trial configs."""

from __future__ import annotations

from pathlib import Path

import optuna

from salttune.search.params import suggest
from salttune.search.space import load_space, trial_config

SPACES = Path(__file__).resolve().parents[2] / "search_spaces"


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


def test_the_kaggle_space_draws_valid_configs_of_every_network():
    from salttune.model import check_model
    from salttune.search.space import trial_config
    from salttune.settings import to_dict

    import importlib.util

    has_smp = importlib.util.find_spec("segmentation_models_pytorch") is not None  # CI installs it (encoders extra)
    space = load_space(SPACES / "kaggle.yaml")
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    networks = set()
    for _ in range(40):
        drawn = suggest(space, study.ask())
        cfg = trial_config(space, drawn)  # a valid training config, or it raises
        smp = cfg.model.network.startswith("smp_")
        networks.add(cfg.model.network)
        assert ("model.encoder" in drawn) == smp and ("model.block" in drawn) == (not smp)
        assert ("model.decoder_attention" in drawn) == (cfg.model.network in ("smp_unet", "smp_unetplusplus"))
        assert ("model.input_mode" in drawn) == (cfg.model.input_size in (128, 256))
        assert cfg.optim.name == "sgd" and cfg.schedule.name == "cosine_snapshots" and cfg.loss.stages
        if has_smp or not smp:
            check_model(**to_dict(cfg.model))  # names, extra and weights checked, nothing built or downloaded
    assert networks == {"unet", "smp_unet", "smp_unetplusplus", "smp_fpn"}
