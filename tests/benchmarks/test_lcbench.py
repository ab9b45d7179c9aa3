"""The LCBench harness (benchmarks/lcbench.py) on a stand-in surrogate whose every output is a known function of the
configuration: curves, regret, the start-up on the clock, salttune's searchers and DEHB on one clock, the summary.
The real surrogate (../shared/yahpo) is read only where it is present."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from benchmarks.lcbench import (EPOCHS, TASKS, Y_NAMES, LCBench, bench_lcbench, lcbench_space, lcbench_table, random_configs,
                                regret_at, regret_trace, simulate_dehb, task_range, time_to_regret)
from benchmarks.replay import HELD_OUT, simulate
from salttune.errors import SalttuneError

SURROGATE = Path(__file__).parents[3] / "shared" / "yahpo" / "lcbench"


class Known(LCBench):
    """Validation balanced accuracy rises with the epochs towards a ceiling set by the distance of log10(lr) from -2
    (task "b": from -3); test = validation - 0.01; every epoch takes batch_size / 100 seconds."""

    def __init__(self, folder, task):
        self.task, self.best_log_lr = task, (-2.0 if task == "a" else -3.0)

    def table(self, configs):
        out = np.zeros((len(configs), EPOCHS, len(Y_NAMES)))
        e = np.arange(1, EPOCHS + 1)
        for i, c in enumerate(configs):
            ceiling = 0.9 - 0.2 * abs(math.log10(c["learning_rate"]) - self.best_log_lr)
            val = 0.5 + (ceiling - 0.5) * (1 - 0.8 ** e)
            out[i, :, Y_NAMES.index("time")] = e * c["batch_size"] / 100
            out[i, :, Y_NAMES.index("val_balanced_accuracy")] = val
            out[i, :, Y_NAMES.index("test_balanced_accuracy")] = val - 0.01
        return out


CONFIG = {"batch_size": 50, "learning_rate": 1e-2, "max_dropout": 0.1, "max_units": 128, "momentum": 0.9,
          "num_layers": 2, "weight_decay": 1e-3}


def test_a_curve_is_validation_per_epoch_with_seconds_and_the_held_out_test_score():
    c = Known(".", "a").curve(CONFIG)
    assert len(c.scores) == EPOCHS and c.seconds == pytest.approx((0.5,) * EPOCHS)
    assert c.scores[0] == pytest.approx(0.5 + 0.4 * 0.2) and c.signals[HELD_OUT][0] == pytest.approx(c.scores[0] - 0.01)


def test_random_configurations_stay_in_lcbench_ranges_and_cover_them():
    drawn = random_configs(2000, seed=0)
    lr = np.log10([c["learning_rate"] for c in drawn])
    assert lr.min() >= -4 and lr.max() <= -1 and np.median(lr) == pytest.approx(-2.5, abs=0.1)  # log scale
    layers = [c["num_layers"] for c in drawn]
    assert set(layers) == {1, 2, 3, 4, 5} and all(isinstance(c["batch_size"], int) and 16 <= c["batch_size"] <= 512 for c in drawn)


def test_regret_follows_the_best_validation_score_so_far_scored_on_the_held_out_values():
    points = [(1.0, 0.5), (2.0, 0.7), (3.0, 0.6), (4.0, 0.8)]
    held = [0.5, 0.6, 0.9, 0.8]  # the trial at t=3 tests best but validates worse: it is never returned
    trace = regret_trace(points, held, best=0.9, worst=0.4)
    assert [x for pair in trace for x in pair] == pytest.approx([1.0, 0.8, 2.0, 0.6, 4.0, 0.2])
    assert regret_at(trace, 0.5) == 1.0 and regret_at(trace, 3.5) == pytest.approx(0.6)
    assert time_to_regret(trace, 0.5, horizon_s=10) == 4.0 and time_to_regret(trace, 0.1, horizon_s=10) == math.inf
    assert time_to_regret(trace, 0.5, horizon_s=3) == math.inf  # reached only after the budget


def test_salttunes_searchers_run_on_lcbench_with_the_start_up_on_the_clock():
    bench = Known(".", "a")
    space = lcbench_space(seed=0, concurrent=2, algorithm="random+asha")
    assert [p.key for p in space.params][:2] == ["batch_size", "learning_rate"] and space.asha.max_t == EPOCHS
    plain = simulate(space, bench, horizon_s=200.0, algorithm="random+asha")
    late = simulate(space, bench, horizon_s=200.0, algorithm="random+asha", startup_s=30.0)
    assert len(plain.held_out) == len(plain.points) and all(h == pytest.approx(s - 0.01) for (_, s), h in zip(plain.points, plain.held_out))
    # the same first trial, 30 s later: its first epoch ends after the start-up
    first = min(t for t, _ in plain.points)
    assert min(t for t, _ in late.points) == pytest.approx(first + 30.0)
    assert late.trials < plain.trials  # start-ups cost trials


def test_a_study_in_memory_draws_what_the_study_on_disk_draws():
    # the benchmark keeps its Optuna study in memory (SQLite costs most of a virtual-clock search): same search
    bench = Known(".", "a")
    space = lcbench_space(seed=1, concurrent=2, algorithm="tpe+asha")
    disk = simulate(space, bench, horizon_s=300.0, algorithm="tpe+asha", study_on_disk=True)
    memory = simulate(space, bench, horizon_s=300.0, algorithm="tpe+asha")
    assert disk.trials > space.startup_trials + 5  # TPE modelled, not only its random start-up
    assert memory.points == disk.points and memory.starts == disk.starts and memory.trials == disk.trials


def test_dehb_asks_and_is_told_on_the_same_clock():
    pytest.importorskip("dehb")
    bench = Known(".", "a")
    tr = simulate_dehb(bench, seed=0, concurrent=2, horizon_s=300.0, startup_s=1.0)
    assert tr.algorithm == "dehb" and tr.trials >= 10 and len(tr.points) == len(tr.held_out) == tr.trials
    assert tr.epochs > tr.trials  # fidelities above one epoch
    assert all(h == pytest.approx(s - 0.01) for (_, s), h in zip(tr.points, tr.held_out))
    times = [t for t, _ in tr.points]
    assert min(times) >= 1.0 + 0.5 * 2 - 1e-9  # start-up plus its smallest fidelity: 2 epochs of 0.5 s


def test_the_benchmark_summarises_regret_and_speed_ups_over_tasks_and_seeds():
    algorithms = ["random", "random+asha", "tpe+asha", "tpe+asha/last"]  # a replay variant runs as its base's space
    with pytest.raises(SalttuneError, match="unknown algorithm 'tpe'; allowed: .*tpe\\+asha/last.*dehb"):
        bench_lcbench(".", tasks=["a"], algorithms=["tpe"], seeds=1, make=Known)
    r = bench_lcbench(".", tasks=["a", "b"], algorithms=algorithms, seeds=3, concurrent=2, horizon_full_trials=8,
                      processes=1, draws=300, make=Known)
    assert set(r["per_algorithm"]) == set(algorithms) and r["tasks"] == ["a", "b"]
    rng = task_range(Known(".", "a"), draws=300)
    assert r["ranges"]["a"] == rng and rng["worst"] >= 0.49 - 1e-9
    assert rng["best"] == pytest.approx(rng["oracle"])  # here the best validation score is the best test score too
    for a in algorithms:
        anytime = r["per_algorithm"][a]["anytime"]
        assert len(anytime) == 20 and all(0.0 <= x["p10"] <= x["mean_regret"] <= x["p90"] <= 1.0 for x in anytime)
        assert anytime[-1]["mean_regret"] < 0.5  # every algorithm finds something on this easy surrogate
        by_task = r["per_algorithm"][a]["final_by_task"]
        assert set(by_task) == {"a", "b"} and np.mean(list(by_task.values())) == pytest.approx(anytime[-1]["mean_regret"])
    assert "regret 0.05: random+asha / tpe+asha" in r["speedups"] and "regret 0.05: random / random+asha" in r["speedups"]
    s = r["speedups"]["regret 0.05: random / random+asha"]
    assert s["p10"] <= s["geomean"] <= s["p90"]
    table = lcbench_table(r)
    assert f"| b | {r['per_algorithm']['random']['final_by_task']['b']:.4f} | " in table and "| tpe+asha/last |" in table


@pytest.mark.skipif(not (SURROGATE / "model.onnx").is_file(), reason="the LCBench surrogate is not at ../shared/yahpo")
def test_the_real_surrogate_gives_curves_in_range():
    pytest.importorskip("onnxruntime")
    bench = LCBench(SURROGATE, TASKS[0])
    curves = bench.curves(random_configs(20, seed=1))
    for c in curves:
        assert len(c.scores) == EPOCHS and all(0.0 <= s <= 1.0 for s in c.scores) and all(x > 0 for x in c.seconds)
    assert max(max(c.scores) for c in curves) > 0.5
