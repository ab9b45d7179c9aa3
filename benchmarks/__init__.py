"""salttune's benchmarks: figures measured against a reference, run from a checkout as ``python -m benchmarks NAME``.

Not installed with salttune (its package is ``salttune`` alone); a client of salttune's public functions, with
its own dependencies in the ``bench`` extra (``pip install -e '.[bench]'``). benchmarks/README.md says how to run
each one. Importing this package imports nothing else, so ``python -m benchmarks --help`` is quick.

Modules:
    cli         ``python -m benchmarks``: one sub-command per benchmark, each with its own flags
    training    ``train``, ``predict``: salttune's training and prediction against plain PyTorch
    quality     ``quality``: recipes compared out of fold at the same wall-clock budget, over folds and seeds
    search      ``search``, ``scale``: real ``salttune search`` processes (no Ray imported here)
    protocol    ``protocol``: how honest and how good each way of using the labels is, on a holdout
    replay      ``record``, ``replay``: search algorithms replayed in virtual time on recorded learning curves
    confirm     ``confirm``: the live ``search`` races replayed, to check the replay ranks as reality does
    gpu         ``gpu``: training images/s and share of the matmul peak, trials sharing the device, ensemble prediction
    figures     the JSON file of each benchmark, the README that shows them, the replay's anytime plot
    spaces/     the search spaces only benchmarks use (bench.yaml: ``search``; replay.yaml: the recording and the
                live races ``confirm`` replays)
    gpu/, probe.py, replay_live_partial.py   one-off scripts of earlier device sessions, kept to rerun them
"""
