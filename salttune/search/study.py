"""Reading a search's stored Optuna study (``optuna.db``) for reports: parameter importance."""

from __future__ import annotations

from pathlib import Path

import optuna

__all__ = ["param_importances"]


def param_importances(db: str | Path) -> dict[str, float]:
    """Optuna's parameter importances (fANOVA, seeded) over the finished trials of the one study in ``db``.

    Returns an empty dict when fewer than two trials have finished.
    """
    storage = f"sqlite:///{Path(db).resolve()}"
    names = optuna.study.get_all_study_names(storage)
    study = optuna.load_study(study_name=names[0], storage=storage)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(done) < 2:
        return {}
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
