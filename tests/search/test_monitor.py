"""The progress table and the one-line failure reasons (``salttune.search.monitor``)."""

from pathlib import Path
from types import SimpleNamespace

from salttune.search.space import load_space


def test_progress_table_and_error_lines():
    from salttune.search.monitor import ProgressTable, error_line

    text = ("Traceback (most recent call last):\n  File \"x.py\", line 1, in f\n    raise NonFiniteLoss(...)\n"
            "salttune.train.NonFiniteLoss: loss became nan at step 3; lower optim.lr or change the loss\n")
    assert error_line(text) == "NonFiniteLoss: loss became nan at step 3; lower optim.lr or change the loss"
    space = load_space(Path(__file__).resolve().parents[2] / "search_spaces" / "quick.yaml")
    table = ProgressTable(space)
    trials = [SimpleNamespace(trial_id="x", status="TERMINATED", config={"optuna_trial": 0, "optim.name": "adam"}),
              SimpleNamespace(trial_id="y", status="TERMINATED", config={"optuna_trial": 1, "optim.name": "sgd", "optim.momentum": 0.9}),
              SimpleNamespace(trial_id="z", status="RUNNING", config={"optuna_trial": 2, "optim.name": "adam"})]
    m = space.asha.max_t
    for t, epochs, scores in [(trials[0], m, [0.2, 0.4]), (trials[1], 2, [0.1, 0.3]), (trials[2], 1, [0.05])]:
        for e, s in enumerate(scores, 1):
            table.on_trial_result(0, trials, t, {"val_score": s, "epoch": e})
        table.epochs[t.trial_id] = epochs
    lines = table.render(trials).splitlines()
    n = space.trials
    assert f"{n} trials: 1 running, 1 finished, 1 pruned, {n - 3} to sample | best val_score 0.4000 (#0)" in lines[0]
    assert lines[1].split() == ["#", "state", "epoch", "val_score", "optim.name", "optim.momentum"]
    assert lines[2].split() == ["0", "finished", f"{m}/{m}", "0.4000", "adam"]
    assert lines[3].split() == ["1", "pruned", f"2/{m}", "0.3000", "sgd", "0.9"]
    assert lines[4].split() == ["2", "running", f"1/{m}", "0.0500", "adam"]
