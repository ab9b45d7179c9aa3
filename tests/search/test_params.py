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
