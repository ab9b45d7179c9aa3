"""Distributed hyperparameter search: Ray Tune runs the trials, Optuna's TPE proposes them, ASHA stops the weak.

The only part of salttune that imports Ray or Optuna, and only inside the modules that need them, so that
``import salttune.search`` and ``salttune --help`` stay fast and the rest of the package runs without them.

Modules:
    space       the YAML search file's settings (typed, through :mod:`salttune.settings`), read and validated once
    params      the ``space:`` section: distributions, ``when:`` conditions, define-by-run sampling (no Ray, no Optuna)
    catalog     the algorithms declared, one name -> (sampler, scheduler, options): ``tpe+asha``, ``random``, ``random+asha``, ``bohb``
    algorithms  an entry of the catalog built into Tune's (searcher, scheduler) (no Ray at import)
    rung_tpe    BOHB-style TPE: Optuna's TPE fitted on the highest rung with enough trials
    sampler     Optuna's samplers through Ray's ``OptunaSearch``, told about pruned and failed trials
    asha        ASHA whose rungs survive a killed driver
    stopping    ``stop_at`` (end the search once one trial is good enough) and the time budget's deadline
    duration    durations as written: ``5400``, ``90s``, ``2h``, ``1h30m``
    budget      the time budget: sizing the search to it, the timed first epoch (no Ray)
    trainable   one trial: ``fit`` with a ``report`` that calls ``tune.report`` and checkpoints every epoch
    retention   which checkpoints a search keeps
    monitor     the progress table and the failure reasons (Tune callbacks)
    leaderboard the rows of ``leaderboard.csv`` from Tune's results (the file's format: :mod:`salttune.leaderboard`)
    study       reading ``optuna.db`` for reports (parameter importance)
    session     starting or joining Ray, the dashboard, token authentication, GPUs
    command     ``salttune search``: flags, then the whole run
"""

__all__: list[str] = []
