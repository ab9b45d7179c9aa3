"""The replay benchmark (benchmarks/replay.py) on curve tables written by hand, where every score and second
is a known function of the configuration: the surrogate, one search in virtual time, the comparison, its
figures, and ``python -m benchmarks record`` / ``replay`` as a user runs them. No Ray cluster starts:
``simulate`` drives salttune's searchers and schedulers itself."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import sys
from pathlib import Path

import pytest

from salttune.errors import SalttuneError

sys.path.insert(0, str(Path(__file__).parents[1] / "search"))
from conftest import run_bench  # noqa: E402
from search_fixtures import space_yaml  # noqa: E402
from benchmarks.replay import Curve, Surrogate, best_by, load_curves, simulate, time_to  # noqa: E402
from salttune.search.space import load_space, space_to_dict  # noqa: E402

MAX_T, EPOCH_S = 4, 10.0  # every recorded epoch takes 10 s: a full trial 40 s
BLOCK = {"plain": 0.5, "residual": 0.6, "se": 0.7}
LR_SPACE = "  model.block: {choice: [plain, residual, se]}\n  optim.lr: {loguniform: [1.0e-4, 1.0e-1]}\n"
CHOICE_BLOCK = {"plain": 0.5, "residual": 0.55, "se": 0.6, "residual_se": 0.65, "scse": 0.7}
SCHEDULE = {"none": 0.0, "plateau": 0.05, "cosine_snapshots": 0.02}
CHOICE_SPACE = ("  model.block: {choice: [plain, residual, se, residual_se, scse]}\n"
                "  schedule.name: {choice: [none, plateau, cosine_snapshots]}\n")


def lr_score(block: str, lr: float, epoch: int) -> float:
    """Rises with the epochs to the block's ceiling, less the distance of log10(lr) from -2.5."""
    return BLOCK[block] * (1 - 0.5**epoch) - 0.1 * abs(math.log10(lr) + 2.5)


def _space(folder: Path, body: str, **kw):
    f = space_yaml(folder, "syn", body, **{"trials": 20, "max_t": MAX_T, "grace": 1, "algorithm": "random", **kw})
    return load_space(f, ["asha.rung_metric=val_score"])  # these synthetic curves have no val_iou


def _write_table(path: Path, space, curves: list[Curve]) -> Path:
    """A curve table in the format of record_curves."""
    path.write_text(json.dumps({"space": space_to_dict(space), "metric": space.metric, "max_t": space.asha.max_t,
                                "curves": [dataclasses.asdict(c) for c in curves]}))
    return path


def lr_table(tmp: Path) -> tuple[Path, list[Curve]]:
    """21 finished curves over blocks and learning rates 1e-4..1e-1, and one that diverged after an epoch."""
    space = _space(tmp, LR_SPACE)
    curves = []
    for i in range(21):
        block, lr = list(BLOCK)[i % 3], 10 ** (-4 + 3 * i / 20)
        curves.append(Curve({"model.block": block, "optim.lr": lr}, tuple(lr_score(block, lr, e) for e in range(1, MAX_T + 1)),
                            (EPOCH_S,) * MAX_T))
    curves.append(Curve({"model.block": "plain", "optim.lr": 0.09}, (0.1,), (EPOCH_S,), "FloatingPointError: loss is nan"))
    return _write_table(tmp / "lr_curves.json", space, curves), curves


def choice_curves() -> list[Curve]:
    """Every configuration of CHOICE_SPACE recorded, so each one a search draws replays its own curve."""
    return [Curve({"model.block": b, "schedule.name": s}, tuple(CHOICE_BLOCK[b] * e / MAX_T + SCHEDULE[s] for e in range(1, MAX_T + 1)),
                  (EPOCH_S,) * MAX_T) for b, s in itertools.product(CHOICE_BLOCK, SCHEDULE)]


def choice_table(tmp: Path) -> Path:
    return _write_table(tmp / "choice_curves.json", _space(tmp, CHOICE_SPACE), choice_curves())


class Scripted:
    """A surrogate whose curve is a given function of the configuration; it keeps the configurations in the
    order the search started them."""

    def __init__(self, make):
        self.make, self.started = make, []

    def curve(self, params: dict) -> Curve:
        self.started.append(params)
        return self.make(params)


# -- the table and the surrogate --------------------------------------------------------------------------

def test_load_curves_reads_back_the_space_and_every_curve(tmp_path):
    path, curves = lr_table(tmp_path)
    space, loaded = load_curves(path)
    assert loaded == curves  # tuples again, the failure reason kept
    assert [p.key for p in space.params] == ["model.block", "optim.lr"] and space.asha.max_t == MAX_T
    assert space_to_dict(space)["space"] == space_to_dict(_space(tmp_path, LR_SPACE))["space"]


def test_the_surrogate_replays_a_recorded_configuration_exactly_and_predicts_the_others(tmp_path):
    path, curves = lr_table(tmp_path)
    surrogate = Surrogate(*load_curves(path))
    for c in curves:
        assert surrogate.curve(dict(c.params)) == c  # the failed one too: its single score and its reason
    good = surrogate.curve({"model.block": "se", "optim.lr": 10**-2.4})  # near the best corner, not recorded
    bad = surrogate.curve({"model.block": "plain", "optim.lr": 1.1e-4})  # near the worst
    assert good.failed is None and len(good.scores) == MAX_T and good.seconds == pytest.approx((EPOCH_S,) * MAX_T)
    assert good.scores[-1] > bad.scores[-1] + 0.2
    assert list(good.scores) == sorted(good.scores)  # rises with the epochs, as every recorded curve does


def test_the_nearest_surrogate_replays_the_closest_recorded_curve_and_batches_agree(tmp_path):
    path, curves = lr_table(tmp_path)
    space, table = load_curves(path)
    nearest = Surrogate(space, table, kind="nearest")
    # lr 10**-2.4 is 0.2 decades from the recorded 10**-2.35 (i = 11, block "se"? i % 3 == 2) and far from others
    closest = min((c for c in curves if c.failed is None and c.params["model.block"] == "se"),
                  key=lambda c: abs(math.log10(c.params["optim.lr"]) + 2.4))
    got = nearest.curve({"model.block": "se", "optim.lr": 10**-2.4})
    assert (got.scores, got.seconds, got.params) == (closest.scores, closest.seconds, {"model.block": "se", "optim.lr": 10**-2.4})
    forest = Surrogate(space, table)
    many = [{"model.block": b, "optim.lr": 10**x} for b in BLOCK for x in (-3.7, -2.4, -1.3)]
    assert forest.curves(many) == [forest.curve(p) for p in many]  # one batched forest call, the same curves
    with pytest.raises(SalttuneError, match="surrogate 'knn'"):
        Surrogate(space, table, kind="knn")


# -- one search in virtual time ---------------------------------------------------------------------------

@pytest.mark.parametrize("horizon, trials", [(95.0, 6), (75.0, 4), (1.0, 2)])
def test_random_search_runs_every_trial_to_max_t_while_the_horizon_allows(tmp_path, horizon, trials):
    path, _ = lr_table(tmp_path)
    space, curves = load_curves(path)
    trace = simulate(space, Surrogate(space, curves), horizon_s=horizon, algorithm="random")
    # 2 slots; a full trial takes 40 s, so pairs start at 0, 40, 80...: while the clock is below the horizon
    # (horizons between those starts: the replayed seconds are exp(log 10), a hair below 10)
    assert trace.trials == trials == 2 * math.ceil(horizon / (MAX_T * EPOCH_S))
    assert trace.epochs == trials * MAX_T and trace.failed == 0
    times = sorted(t for t, _ in trace.points)
    assert times == pytest.approx([EPOCH_S * k for k in range(1, trials // 2 * MAX_T + 1) for _ in range(2)])


def test_each_point_is_at_its_trial_start_plus_its_epoch_seconds(tmp_path):
    space = dataclasses.replace(_space(tmp_path, LR_SPACE), concurrent=1)
    seconds = {"plain": (1.0, 2.0, 1.0, 2.0), "residual": (3.0, 3.0, 3.0, 3.0), "se": (0.5, 4.0, 0.5, 4.0)}
    surrogate = Scripted(lambda p: Curve(p, tuple(BLOCK[p["model.block"]] * e for e in range(1, MAX_T + 1)), seconds[p["model.block"]]))
    trace = simulate(space, surrogate, horizon_s=30.0, algorithm="random")
    expected, clock = [], 0.0
    for p in surrogate.started:  # one slot: each trial starts when the one before ends
        for e, s in enumerate(seconds[p["model.block"]], 1):
            clock += s
            expected.append((clock, BLOCK[p["model.block"]] * e))
    assert trace.points == expected and trace.trials == len(surrogate.started)
    ends = list(itertools.accumulate(sum(seconds[p["model.block"]]) for p in surrogate.started))
    assert ends[-2] < 30.0 <= ends[-1]  # the last trial started below the horizon, and no other did after it


def test_asha_stops_trials_early_so_the_same_trials_cost_fewer_epochs(tmp_path):
    path, _ = lr_table(tmp_path)
    space, curves = load_curves(path)
    surrogate = Surrogate(space, curves)
    fifo = simulate(space, surrogate, horizon_s=math.inf, algorithm="random", max_trials=8)
    asha = simulate(space, surrogate, horizon_s=math.inf, algorithm="random+asha", max_trials=8)
    assert fifo.trials == asha.trials == 8 and fifo.epochs == 8 * MAX_T
    assert asha.epochs < fifo.epochs  # some trials stopped at a rung
    assert max(t for t, _ in asha.points) < max(t for t, _ in fifo.points)


@pytest.mark.parametrize("retries, points", [(1, [(5.0, 0.2), (20.0, 0.2)]), (0, [(5.0, 0.2), (15.0, 0.2)])])
def test_a_failing_trial_pays_its_failing_epoch_once_per_try_then_ends_failed(tmp_path, retries, points):
    space = dataclasses.replace(_space(tmp_path, LR_SPACE), concurrent=1, max_failures=retries)
    surrogate = Scripted(lambda p: Curve(p, (0.2,), (5.0,), "diverged"))  # one epoch, then the second fails
    trace = simulate(space, surrogate, horizon_s=math.inf, algorithm="random", max_trials=2)
    # epoch 1 ends at 5 s; the failing epoch 2 ends at 10 s, and its retry at 15 s; the next trial starts then
    assert trace.points == points and trace.failed == 2 and trace.epochs == 2 and trace.trials == 2


def test_time_to_and_best_by():
    points = [(10.0, 0.2), (20.0, 0.5), (30.0, 0.4)]
    assert time_to(points, 0.2) == 10.0 and time_to(points, 0.45) == 20.0 and time_to(points, 0.5) == 20.0
    assert time_to(points, 0.6) == math.inf and time_to([], 0.1) == math.inf
    assert best_by(points, 5.0) is None and best_by(points, 10.0) == 0.2 and best_by(points, 25.0) == 0.5
    assert best_by(points, 1e9) == 0.5


# -- the comparison and its figures ------------------------------------------------------------------------

def test_bench_replay_returns_what_the_figures_need(tmp_path):
    from benchmarks import figures
    from benchmarks.replay import bench_replay

    path = choice_table(tmp_path)
    r = bench_replay(path, algorithms=["random", "tpe+asha"], seeds=2, horizon_full_trials=5, validate_folds=2, processes=1)
    assert r["full_trial_s"] == MAX_T * EPOCH_S and r["horizon_s"] == pytest.approx(5 * 40.0 / 2)
    assert r["recorded_trials"] == 15 and r["recorded_failed"] == 0 and set(r["targets"]) == {"top10%", "top2%"}
    # every draw is a recorded configuration: the targets are recorded best scores (the top 2%: the best one)
    assert r["targets"]["top2%"] == pytest.approx(CHOICE_BLOCK["scse"] + SCHEDULE["plateau"])
    assert set(r["speedups"]) == {"top10%: random / tpe+asha", "top2%: random / tpe+asha"}
    for a in ("random", "tpe+asha"):
        row = r["per_algorithm"][a]
        assert row["seeds"] == 2 and len(row["anytime"]) == 20 and row["anytime"][-1]["budget_s"] == pytest.approx(r["horizon_s"])
        for target in r["targets"]:
            times = row[target]["per_seed"]
            assert len(times) == 2 and row[target]["reached"] == sum(t is not None for t in times) / 2
            assert all(t is None or (t / EPOCH_S == pytest.approx(round(t / EPOCH_S)) and t <= 3 * MAX_T * EPOCH_S) for t in times)
    assert r["per_algorithm"]["random"]["trials_median"] == 6  # pairs of 40 s trials started at 0, 40 and 80 s
    assert set(r["surrogate"]) >= {"spearman_best", "mae_best"}

    figures.save_result(tmp_path, "replay", r, "python -m benchmarks replay --seeds 2")
    png = figures.plot_anytime(r, tmp_path / "replay_anytime.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    readme = figures.render_readme(tmp_path)
    assert "## replay" in readme and "virtual time to first reach" in readme and "](replay_anytime.png)" in readme
    assert "| random | 6 |" in readme and "| tpe+asha |" in readme and "per_algorithm" not in readme
    assert "- top10%: random / tpe+asha:" in readme and "| surrogate.spearman_best |" in readme


def test_the_replay_table_shows_quartiles_shares_and_never(tmp_path):
    from benchmarks.figures import replay_table

    anytime = [{"budget_s": 10.0 * k, "q25": 0.1 * k, "median": 0.2 * k, "q75": 0.3 * k} for k in range(1, 21)]
    row = {"trials_median": 7.5, "anytime": anytime,
           "top10%": {"q25": 30.0, "median": 45.0, "q75": math.inf, "reached": 0.75, "per_seed": [30.0, 45.0, None, 40.0]},
           "top2%": {"q25": math.inf, "median": math.inf, "q75": math.inf, "reached": 0.0, "per_seed": [None] * 4}}
    r = {"targets": {"top10%": 0.5, "top2%": 0.55}, "algorithms": ["random"], "per_algorithm": {"random": row},
         "horizon_s": 200.0, "speedups": {"top2%: random / x": None, "top10%: random / x": 2.5}}
    text = replay_table(r)
    # best by 25%, 50% and 100% of the 200 s budget: the anytime points at 50, 100 and 200 s
    assert "| random | 7.5 | 45 [30, never], 75% | never [never, never], 0% | 1.000 | 2.000 | 4.000 |" in text
    assert "- top10%: random / x: 2.50x" in text and "- top2%: random / x: neither reaches it" in text


# -- the command line ------------------------------------------------------------------------------------

DEAD = {"model.block": "plain", "schedule.name": "none"}


def _fake_search(folder: Path) -> Path:
    """A finished recording search's folder as `salttune search` leaves it: space.yaml and each trial's result.json
    (one JSON line per epoch); one trial retried from epoch 2 (its later reports win), one that diverged (DEAD)."""
    folder.mkdir(parents=True)
    space_yaml(folder, "space", CHOICE_SPACE, trials=8, max_t=MAX_T, grace=1, algorithm="random")
    for i, c in enumerate(c for c in choice_curves() if c.params != DEAD):
        rows = [{"epoch": e, "val_score": s, "time_this_iter_s": EPOCH_S, "config": {**c.params, "optuna_trial": i}}
                for e, s in enumerate(c.scores, 1)]
        if i == 0:  # retried after epoch 2: its first tries of epochs 2 and 3 are superseded
            rows[1:1] = [{**rows[1], "val_score": 0.0}, {**rows[2], "val_score": 0.0}]
        (folder / "trials" / f"trial_{i}").mkdir(parents=True)
        (folder / "trials" / f"trial_{i}" / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    dead = folder / "trials" / "trial_dead"
    dead.mkdir()
    (dead / "result.json").write_text(json.dumps({"epoch": 1, "val_score": 0.05, "time_this_iter_s": 12.0, "config": DEAD}) + "\n")
    (dead / "error.txt").write_text("Traceback (most recent call last):\n  ...\nFloatingPointError: loss is nan at epoch 2\n")
    return folder


def test_bench_record_and_replay_from_the_command_line(tmp_path):
    search = _fake_search(tmp_path / "results" / "replay")
    table = tmp_path / "tables" / "curves.json"
    proc = run_bench("record", "--search", str(search), "--out", str(table))
    assert proc.returncode == 0, proc.stderr
    assert "recorded 15 curves (1 failed)" in proc.stdout
    t = json.loads(table.read_text())
    assert t["max_t"] == MAX_T and t["metric"] == "val_score" and len(t["curves"]) == 15
    recorded = {json.dumps(c["params"], sort_keys=True): c for c in t["curves"]}
    for c in choice_curves()[1:]:  # (the first is DEAD's configuration) the retried trial's curve is its last reports'
        assert recorded[json.dumps(c.params, sort_keys=True)]["scores"] == pytest.approx(list(c.scores))
    dead = [c for c in t["curves"] if c["failed"]]
    assert dead == [{"params": DEAD, "scores": [0.05], "seconds": [12.0],
                     "failed": "FloatingPointError: loss is nan at epoch 2", "signals": {}}]

    out = tmp_path / "bench"
    proc = run_bench("replay", "--curves", str(table), "--seeds", "2", "--algorithms", "random,tpe+asha",
                     "--horizon-trials", "5", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    r = json.loads((out / "replay.json").read_text())
    assert r["benchmark"] == "replay" and r["algorithms"] == ["random", "tpe+asha"] and r["seeds"] == 2
    assert r["command"].startswith("python -m benchmarks replay --curves") and r["horizon_full_trials"] == 5
    assert (out / "replay_anytime.png").read_bytes()[:4] == b"\x89PNG"
    readme = (out / "README.md").read_text()
    assert "## replay" in readme and "| tpe+asha |" in readme and "](replay_anytime.png)" in readme
    assert "| tpe+asha |" in proc.stdout and "replay_anytime.png" in proc.stdout


def test_a_live_search_cut_at_its_target_keeps_its_partial_curves_a_recording_does_not(tmp_path):
    # a search stopped at stop_at (or by ASHA) leaves trials shorter than max_t and no error: the live benchmark
    # keeps them (a search whose trials were all cut is not "no result"), a recording skips them
    from benchmarks.replay import record_curves

    folder = tmp_path / "results" / "cut"
    folder.mkdir(parents=True)
    space_yaml(folder, "space", CHOICE_SPACE, trials=8, max_t=MAX_T, grace=1, algorithm="random")
    for i, scores in enumerate([(0.2, 0.5), (0.3,)]):
        rows = [{"epoch": e, "val_score": v, "time_this_iter_s": EPOCH_S, "config": {**DEAD, "optuna_trial": i}}
                for e, v in enumerate(scores, 1)]
        (folder / "trials" / f"trial_{i}").mkdir(parents=True)
        (folder / "trials" / f"trial_{i}" / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert sorted(list(c["scores"]) for c in record_curves(folder, partial=True)["curves"]) == [[0.2, 0.5], [0.3]]
    with pytest.raises(SalttuneError, match="no trial reported a result"):
        record_curves(folder)


# -- the live races replayed (bench confirm) ----------------------------------------------------------------

def _live_result(tmp: Path, *, old: bool = False) -> dict:
    """A ``python -m benchmarks search`` result on CHOICE_SPACE: 2 seeds of tpe+asha (fast) and random (slow), the
    trials' curves the recorded ones. ``old``: as written before --algorithms (RACE's labels, no sets/timelines)."""
    space_file = space_yaml(tmp, "live", CHOICE_SPACE, trials=8, max_t=MAX_T, grace=1, algorithm="random")
    curves = [dataclasses.asdict(c) for c in choice_curves()[:5]]

    def run(seconds: float, reached: bool) -> dict:
        r = {"seconds": seconds, "reached": reached, "trials": 4, "epochs": 12, "best": 0.71, "wall_s": seconds + 20}
        return r if old else {**r, "timeline": [[10.0, 0.3], [seconds / 2, 0.6], [seconds, 0.71]], "curves": curves}

    labels = ("tpe_asha", "random_no_es") if old else ("tpe+asha", "random")
    rows = [{"seed": s, labels[0]: run(50.0 + s, True), labels[1]: run(150.0 + s, s == 0)} for s in range(2)]
    result = {"space": str(space_file), "trials": 8, "seeds": 2, "target": 0.7, "per_seed": rows}
    return result if old else {**result, "algorithms": list(labels), "sets": ["trials=8", "stop_at=0.7"]}


@pytest.mark.parametrize("old", [False, True])
def test_confirm_replays_each_live_run_with_its_algorithm_seed_and_budget(tmp_path, old):
    from benchmarks.confirm import replay_of_live

    r = replay_of_live(_live_result(tmp_path, old=old), choice_table(tmp_path))
    assert [(x["algorithm"], x["seed"]) for x in r["runs"]] == [("tpe+asha", 0), ("random", 0), ("tpe+asha", 1), ("random", 1)]
    assert r["target"] == r["live_target"] == 0.7 and r["algorithms"] == ["tpe+asha", "random"]
    assert r["median_seconds_live"] == {"tpe+asha": 50.5, "random": 150.5} and r["ranking_live"] == ["tpe+asha", "random"]
    assert r["same_ranking"] == (r["ranking_replayed"] == ["tpe+asha", "random"])
    for x in r["runs"]:
        rep = x["replayed"]
        assert rep["seconds"] / EPOCH_S == pytest.approx(round(rep["seconds"] / EPOCH_S)) and rep["trials"] <= 8
        assert (rep["best"] >= 0.7) == rep["reached"]
        if x["algorithm"] == "random" and rep["reached"]:  # pairs of 40 s trials: those started before the target
            assert rep["trials"] == 2 * math.ceil(rep["seconds"] / (MAX_T * EPOCH_S))
        if x["algorithm"] == "random" and not rep["reached"]:  # the whole budget: 8 full trials on 2 slots
            assert rep["trials"] == 8 and rep["seconds"] == pytest.approx(4 * MAX_T * EPOCH_S)
    if old:
        assert r["live_trials"] is None and r["sets"] == ["trials=8", "stop_at=0.7"]
    else:  # the live trials' configurations are recorded ones: the replay gives back their very curves
        assert r["live_trials"]["trials"] == 20 and r["live_trials"]["mae_best"] == 0 and r["live_trials"]["spearman_best"] == pytest.approx(1)


def test_confirm_times_a_lower_target_on_the_live_timelines_and_refuses_a_higher(tmp_path):
    from benchmarks.confirm import replay_of_live
    from salttune.errors import SalttuneError

    live, table = _live_result(tmp_path), choice_table(tmp_path)
    r = replay_of_live(live, table, target=0.5)
    assert [x["live"]["seconds"] for x in r["runs"]] == [25.0, 75.0, 25.5, 75.5]  # the timelines reach 0.6 half-way
    assert all(x["live"]["reached"] for x in r["runs"])
    with pytest.raises(SalttuneError, match="stopped at 0.7"):
        replay_of_live(live, table, target=0.8)
    with pytest.raises(SalttuneError, match="keeps no timelines"):
        replay_of_live(_live_result(tmp_path, old=True), table, target=0.5)
    other = space_yaml(tmp_path, "other", "  model.block: {choice: [plain, se]}\n", max_t=MAX_T, grace=1)
    with pytest.raises(SalttuneError, match="benchmarks/spaces/replay.yaml"):
        replay_of_live({**live, "space": str(other)}, table)


def test_bench_confirm_from_the_command_line(tmp_path):
    live = tmp_path / "search.json"
    live.write_text(json.dumps(_live_result(tmp_path)))
    out = tmp_path / "bench"
    proc = run_bench("confirm", "--live", str(live), "--curves", str(choice_table(tmp_path)), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    r = json.loads((out / "confirm.json").read_text())
    assert r["benchmark"] == "confirm" and len(r["runs"]) == 4
    readme = (out / "README.md").read_text()
    assert "## confirm" in readme and "| tpe+asha | 0 | 50 | " in readme and "Ranking by median time to 0.7: live tpe+asha < random" in readme
    assert "runs." not in readme
