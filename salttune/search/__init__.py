"""Distributed hyperparameter search: Ray Tune runs the trials, Optuna's TPE proposes them, ASHA stops the weak.

The only part of salttune that imports Ray or Optuna, and only inside the modules that need them, so that
``import salttune.search`` and ``salttune --help`` stay fast and the rest of the package runs without them.

Modules:
    space       the YAML search space: reading, validation, define-by-run sampling (no Ray, no Optuna)
    trainable   one trial: ``fit`` with a ``report`` that calls ``tune.report`` and checkpoints every epoch
    sampler     Optuna's TPE through Ray's ``OptunaSearch``, told about pruned and failed trials
    asha        ASHA whose rungs survive a killed driver
    monitor     the progress table and the failure reasons (Tune callbacks)
    leaderboard ``results/NAME/leaderboard.csv`` from the finished search
    session     starting or joining Ray, the dashboard, token authentication, GPUs
    command     ``salttune search``: flags, then the whole run
"""

__all__: list[str] = []
