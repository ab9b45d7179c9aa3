"""LCBench through the replay harness: salttune's searchers beside random search, random + ASHA and DEHB (issue 25).

LCBench (Zimmer et al. 2021) trained 2,000 configurations of a funnel-shaped MLP for 52 epochs on each of 35 OpenML
tasks; YAHPO Gym (Pfisterer et al. 2022) fitted one neural surrogate to all of it, a 2 MB ONNX file with its
configuration space, in ``../shared/yahpo/lcbench/`` (Apache-2.0). DEHB, BOHB, Hyperband, DyHPO, ifBO and PriorBand
report results on it, so salttune's figures here can be set beside published ones.

- :class:`LCBench` reads the ONNX file directly with onnxruntime (``yahpo-gym`` itself pins ``numpy<2``): inputs are
  the task's code (``encoding.json``) and the raw values of ``epoch`` and the 7 hyperparameters, in YAHPO's order;
  outputs, per row, YAHPO's ``y_names``. A configuration's curve is its 52 epochs: the validation balanced
  accuracy (what the search sees), the seconds of each epoch (differences of the cumulative ``time``), and the
  test balanced accuracy as the held-out signal no search sees (:data:`benchmarks.replay.HELD_OUT`).
- salttune's own searchers and schedulers run against it through :func:`benchmarks.replay.simulate`, the same
  virtual-clock driver the TGS replay uses (not re-implementations): ``concurrent`` trials at once, and every
  trial's first epoch costs ``startup_epochs`` epochs more (a real trial's start-up, measured on TGS as about two
  epochs: 12-14 s against about 6 s). LCBench has no prior, so the default algorithm runs without one.
- DEHB (Awad et al. 2021) is the ``dehb`` package's, asked and told on the same clock (:func:`simulate_dehb`): each
  of its jobs trains a configuration from scratch to its fidelity, as DEHB does.
- What a user gets (:func:`regret_trace`): at every moment the configuration the search would return is the
  (trial, epoch) with the best validation score so far; its test score, normalised by the task's range
  (:func:`task_range`, from ``draws`` random configurations at every epoch: ``best`` is the test score of the one
  with the best validation score, ``worst`` the lowest test score), is the regret: ``(best - test) / (best -
  worst)``, clipped at 0 (a search may return a configuration that tests better than that choice).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.replay import HELD_OUT, Curve, SearchTrace, simulate
from salttune.errors import SalttuneError
from salttune.search.params import Param

__all__ = ["LCBENCH", "EPOCHS", "TASKS", "PARAMS", "LCBench", "lcbench_space", "simulate_dehb", "regret_trace",
           "task_range", "bench_lcbench", "lcbench_table", "ALGORITHMS"]

LCBENCH = "../shared/yahpo/lcbench"  # the surrogate's folder, from a checkout's root
EPOCHS = 52
Y_NAMES = ("time", "val_accuracy", "val_cross_entropy", "val_balanced_accuracy", "test_cross_entropy", "test_balanced_accuracy")
X_CONT = ("epoch", "batch_size", "learning_rate", "momentum", "weight_decay", "num_layers", "max_units", "max_dropout")
# The first 10 tasks of the surrogate's configuration space, in its order: chosen before any search ran.
TASKS = ("3945", "7593", "34539", "126025", "126026", "126029", "146212", "167104", "167149", "167152")
# LCBench's 7 hyperparameters, with the ranges and scales of its configuration space (config_space.json).
PARAMS = (
    Param("batch_size", "int", 16, 512, 1, True),
    Param("learning_rate", "loguniform", 1e-4, 1e-1, None, True),
    Param("max_dropout", "uniform", 0.0, 1.0),
    Param("max_units", "int", 64, 1024, 1, True),
    Param("momentum", "uniform", 0.1, 0.99),
    Param("num_layers", "int", 1, 5, 1, False),
    Param("weight_decay", "uniform", 1e-5, 1e-1),
)
ALGORITHMS = ("tpe+asha", "random", "random+asha", "dehb")
STARTUP_EPOCHS = 2.0  # a trial's start-up, in epochs of the task's median configuration (TGS: 12-14 s to ~6 s epochs)
REGRET_TARGETS = (0.10, 0.05, 0.02)


class LCBench:
    """One LCBench task of YAHPO Gym's surrogate: configurations in, 52-epoch curves out.

    Args:
        folder: the surrogate's folder (``model.onnx``, ``encoding.json``).
        task: an OpenML task id of LCBench, e.g. ``"3945"``.
    """

    def __init__(self, folder: str | Path, task: str):
        import onnxruntime as ort

        folder = Path(folder)
        for name in ("model.onnx", "encoding.json"):
            if not (folder / name).is_file():
                raise SalttuneError(f"{folder}: no {name}; give --surrogate the folder of YAHPO Gym's lcbench "
                                    f"surrogate (model.onnx, encoding.json), e.g. {LCBENCH}")
        codes = json.loads((folder / "encoding.json").read_text())["OpenML_task_id"]
        if task not in codes or task == "#na#":
            raise SalttuneError(f"--tasks: {task!r} is not an LCBench task; allowed: "
                                + ", ".join(k for k in codes if k != "#na#"))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(folder / "model.onnx"), sess_options=opts, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]  # (task code, continuous values), as YAHPO feeds them
        self.task, self.code = task, int(codes[task])

    def table(self, configs: list[dict]) -> np.ndarray:
        """``[configurations, 52 epochs, len(Y_NAMES)]``: the surrogate's outputs at every epoch."""
        n = len(configs)
        x = np.empty((n, EPOCHS, len(X_CONT)), dtype=np.float32)
        x[:, :, 0] = np.arange(1, EPOCHS + 1)
        for j, name in enumerate(X_CONT[1:], start=1):
            x[:, :, j] = np.array([float(c[name]) for c in configs], dtype=np.float32)[:, None]
        cat = np.full((n * EPOCHS, 1), self.code, dtype=np.int32)
        out = self.session.run(None, {self.inputs[0]: cat, self.inputs[1]: x.reshape(n * EPOCHS, len(X_CONT))})[0]
        return np.asarray(out, dtype=float).reshape(n, EPOCHS, len(Y_NAMES))

    def curves(self, many: list[dict]) -> list[Curve]:
        return [_curve(c, t) for c, t in zip(many, self.table(many))]

    def curve(self, params: dict) -> Curve:
        return self.curves([params])[0]


def _curve(params: dict, t: np.ndarray) -> Curve:
    """A configuration's curve from its rows: validation balanced accuracy, each epoch's seconds (the surrogate's
    cumulative time, differenced; at least 1% of the mean epoch), test balanced accuracy as the held-out signal."""
    total = np.maximum.accumulate(np.maximum(t[:, Y_NAMES.index("time")], 0.0))
    mean = max(total[-1] / EPOCHS, 1e-6)
    seconds = np.maximum(np.diff(total, prepend=0.0), 0.01 * mean)
    val = t[:, Y_NAMES.index("val_balanced_accuracy")]
    test = t[:, Y_NAMES.index("test_balanced_accuracy")]
    return Curve(dict(params), tuple(map(float, val)), tuple(map(float, seconds)), signals={HELD_OUT: tuple(map(float, test))})


def random_configs(n: int, seed: int) -> list[dict]:
    """``n`` configurations drawn uniformly (on the log scale for log parameters) from :data:`PARAMS`."""
    rng = np.random.default_rng(seed)
    out = [{} for _ in range(n)]
    for p in PARAMS:
        lo, hi = (math.log(p.low), math.log(p.high)) if p.log else (p.low, p.high)
        v = rng.uniform(lo, hi + (1 if p.kind == "int" and not p.log else 0), n)
        v = np.exp(v) if p.log else v
        v = np.clip(np.floor(v + (0.5 if p.log else 0.0)), p.low, p.high).astype(int) if p.kind == "int" else v
        for c, x in zip(out, v):
            c[p.key] = x.item()
    return out


def task_range(bench: LCBench, *, draws: int = 5000, seed: int = 12345) -> dict:
    """The regret's range on a task, from ``draws`` random configurations at every epoch: ``best``, the test score
    of the (configuration, epoch) with the best validation score (what choosing by validation among that many
    returns: the highest test score of all is out of reach of any choice by validation), and ``worst``, the lowest
    test score; with ``oracle``, the highest test score of all, and the median configuration's seconds for 52 epochs
    (the clock's unit)."""
    rows = bench.table(random_configs(draws, seed))
    val = rows[:, :, Y_NAMES.index("val_balanced_accuracy")]
    test = rows[:, :, Y_NAMES.index("test_balanced_accuracy")]
    curves = [_curve({}, r) for r in rows[: min(draws, 500)]]
    return {"best": float(test.flat[int(np.argmax(val))]), "worst": float(test.min()), "oracle": float(test.max()),
            "full_trial_s": float(np.median([sum(c.seconds) for c in curves]))}


def lcbench_space(*, seed: int, concurrent: int, algorithm: str = "tpe+asha"):
    """A salttune SearchSpace over LCBench's 7 hyperparameters: the defaults of a space file (``startup_trials``,
    ``max_failures``), ASHA from 2 to 52 epochs with reduction factor 3 (rungs at 2, 6, 18: DEHB's fidelities with
    eta 3), rungs comparing the validation score itself. The parameters are not training-config keys, so they are
    put in after the space is validated."""
    from salttune.search.space import space_from_dict

    base = space_from_dict({"name": "lcbench", "seed": seed, "concurrent": concurrent, "algorithm": algorithm,
                            "trials": 100000, "asha": {"max_t": EPOCHS, "grace_period": 2, "reduction_factor": 3,
                                                       "rung_metric": "val_score"},
                            "space": {"optim.lr": {"loguniform": [1e-4, 1e-1]}}}, source="lcbench")
    return dataclasses.replace(base, params=PARAMS)


# -- DEHB on the same clock --------------------------------------------------------------------------------

def _config_space(seed: int):
    import ConfigSpace as CS

    cs = CS.ConfigurationSpace(seed=seed)
    for p in PARAMS:
        if p.kind == "int":
            cs.add(CS.UniformIntegerHyperparameter(p.key, p.low, p.high, log=p.log))
        else:
            cs.add(CS.UniformFloatHyperparameter(p.key, p.low, p.high, log=p.log))
    return cs


def simulate_dehb(bench: LCBench, *, seed: int, concurrent: int, horizon_s: float, startup_s: float, eta: int = 3) -> SearchTrace:
    """DEHB (the ``dehb`` package) for ``horizon_s`` virtual seconds with ``concurrent`` jobs at once: a job trains
    its configuration from scratch to its fidelity (``startup_s`` plus those epochs' seconds) and reports that
    epoch's validation score; fidelities from 52/27 to 52 epochs (rounded), as ASHA's rungs here."""
    import heapq
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning, module="dehb")  # its ConfigSpace calls, not ours
    from dehb import DEHB

    t_wall = time.perf_counter()
    cs = _config_space(seed)
    out = Path(tempfile.mkdtemp(prefix="salttune-dehb-"))
    try:
        # n_workers=1: DEHB runs nothing itself (more would start a Dask cluster); this clock runs `concurrent` jobs,
        # and DEHB's ask hands out jobs of brackets still waiting for results, as its asynchronous version does
        dehb = DEHB(cs=cs, dimensions=len(PARAMS), min_fidelity=EPOCHS / eta**3, max_fidelity=EPOCHS, eta=eta,
                    n_workers=1, seed=seed, output_path=str(out), log_level="ERROR", save_freq="end")  # end: never (no run())
        clock, seq, started, epochs = 0.0, 0, 0, 0
        events: list = []
        points: list[tuple[float, float]] = []
        held_out: list[float | None] = []
        starts: list[float] = []

        def start(now: float) -> None:
            nonlocal seq, started
            job = dehb.ask()
            config = job["config"]
            values = dict(dehb.vector_to_configspace(config) if not hasattr(config, "keys") else config)
            n = max(1, min(EPOCHS, round(job["fidelity"])))
            curve = bench.curve(values)
            seq += 1
            started += 1
            starts.append(now)
            heapq.heappush(events, (now + startup_s + sum(curve.seconds[:n]), seq, job, curve, n))

        while len(events) < concurrent:
            start(0.0)
        while events:
            clock, _, job, curve, n = heapq.heappop(events)
            epochs += n
            score = curve.scores[n - 1]
            points.append((clock, score))
            held_out.append(curve.signals[HELD_OUT][n - 1])
            dehb.tell(job, {"fitness": -score, "cost": clock})
            if clock < horizon_s:
                start(clock)
        return SearchTrace("dehb", seed, points, starts, started, epochs, 0, horizon_s, time.perf_counter() - t_wall, held_out)
    finally:
        shutil.rmtree(out, ignore_errors=True)


# -- what a user gets ----------------------------------------------------------------------------------------

def regret_trace(points: list[tuple[float, float]], held_out: list[float], best: float, worst: float) -> list[tuple[float, float]]:
    """(virtual seconds, normalised regret) each time the configuration the search would return changes: the best
    validation score so far (the first of equals), scored by its held-out value, ``(best - test) / (best - worst)``
    clipped at 0."""
    out, inc = [], -math.inf
    for (t, score), test in sorted(zip(points, held_out), key=lambda x: x[0][0]):
        if score > inc:
            inc = score
            out.append((t, max(0.0, (best - test) / (best - worst))))
    return out


def regret_at(trace: list[tuple[float, float]], t: float) -> float:
    """The regret of what the search would return at ``t`` (1 before its first report)."""
    r = 1.0
    for s, v in trace:
        if s > t:
            break
        r = v
    return r


def time_to_regret(trace: list[tuple[float, float]], target: float, horizon_s: float) -> float:
    """Virtual seconds until the returned configuration's regret is at most ``target`` (inf if not by the horizon)."""
    t = next((s for s, v in trace if v <= target), math.inf)
    return t if t <= horizon_s else math.inf


def _one(args) -> dict:
    make, folder, task, algorithm, seed, concurrent, horizon_s, startup_s, rng = args
    bench = make(folder, task)
    if algorithm == "dehb":
        tr = simulate_dehb(bench, seed=seed, concurrent=concurrent, horizon_s=horizon_s, startup_s=startup_s)
    else:  # a variant's space is its base algorithm's (``tpe+asha/last`` -> ``tpe+asha``)
        space = lcbench_space(seed=seed, concurrent=concurrent, algorithm=algorithm.split("/")[0])
        tr = simulate(space, bench, horizon_s=horizon_s, algorithm=algorithm, startup_s=startup_s)
    trace = regret_trace(tr.points, tr.held_out, rng["best"], rng["worst"])
    return {"task": task, "algorithm": algorithm, "seed": seed, "trials": tr.trials, "epochs": tr.epochs,
            "wall_s": tr.wall_s, "regret": trace}


def _bootstrap(per_task: dict[str, np.ndarray], stat, *, resamples: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """``stat`` of the tasks' seed arrays, and its 10-90% bootstrap interval (seeds resampled within each task)."""
    rng = np.random.default_rng(seed)
    point = stat({k: v for k, v in per_task.items()})
    boot = [stat({k: v[rng.integers(0, len(v), len(v))] for k, v in per_task.items()}) for _ in range(resamples)]
    lo, hi = np.quantile(boot, [0.1, 0.9])
    return float(point), float(lo), float(hi)


def bench_lcbench(folder: str | Path, *, tasks: list[str], algorithms: list[str], seeds: int = 30, concurrent: int = 4,
                  horizon_full_trials: float = 50.0, processes: int = 2, draws: int = 5000,
                  startup_epochs: float = STARTUP_EPOCHS, make=LCBench) -> dict:
    """Every algorithm, ``seeds`` seeds on each task, at one virtual-time budget per task: the time
    ``horizon_full_trials`` 52-epoch trials of the task's median configuration take on ``concurrent`` slots.

    Returns per algorithm the anytime mean normalised regret over tasks (10-90% bootstrap intervals) at 20 budgets,
    the share of searches reaching each regret target and, against ``random+asha`` and ``random``, the speed-up to
    each target: per task the ratio of the median times over seeds, their geometric mean over tasks.
    ``startup_epochs``: every trial's (and DEHB job's) start-up, in epochs of the task's median configuration.
    ``make(folder, task)`` reads a task (:class:`LCBench`; tests give a stand-in with the same methods).
    """
    from multiprocessing import get_context

    from benchmarks.replay import variants

    allowed = [*variants(), "dehb"]  # salttune's algorithms, the replay's one-change variants of them, and DEHB
    for a in algorithms:
        if a not in allowed:
            raise SalttuneError(f"--algorithms: unknown algorithm {a!r}; allowed: {', '.join(allowed)}")
    ranges = {t: task_range(make(folder, t), draws=draws) for t in tasks}
    horizon = {t: horizon_full_trials * r["full_trial_s"] / concurrent for t, r in ranges.items()}
    startup = {t: startup_epochs * r["full_trial_s"] / EPOCHS for t, r in ranges.items()}
    jobs = [(make, str(folder), t, a, s, concurrent, horizon[t], startup[t], ranges[t]) for t in tasks for a in algorithms for s in range(seeds)]
    t0 = time.perf_counter()
    if processes <= 1:
        runs = [_one(j) for j in jobs]
    else:
        with get_context("spawn").Pool(processes) as pool:
            runs = pool.map(_one, jobs, chunksize=1)
    wall = time.perf_counter() - t0
    grid = [k / 20 for k in range(1, 21)]  # budgets as shares of each task's horizon
    by = {(r["task"], r["algorithm"]): [] for r in runs}
    for r in runs:
        by[(r["task"], r["algorithm"])].append(r)
    per_algorithm = {}
    for a in algorithms:
        def regrets(share):
            return {t: np.array([regret_at(r["regret"], share * horizon[t]) for r in by[(t, a)]]) for t in tasks}
        anytime = []
        for share in grid:
            m, lo, hi = _bootstrap(regrets(share), lambda d: np.mean([v.mean() for v in d.values()]))
            anytime.append({"share": share, "mean_regret": m, "p10": lo, "p90": hi})
        reached = {}
        for target in REGRET_TARGETS:
            times = [time_to_regret(r["regret"], target, horizon[t]) for t in tasks for r in by[(t, a)]]
            reached[str(target)] = sum(math.isfinite(x) for x in times) / len(times)
        per_algorithm[a] = {"anytime": anytime, "reached": reached,
                            "trials_median": float(np.median([r["trials"] for t in tasks for r in by[(t, a)]])),
                            "final_by_task": {t: float(v.mean()) for t, v in regrets(1.0).items()}}
    speedups = {}
    for base in ("random+asha", "random"):
        if base not in algorithms:
            continue
        for a in algorithms:
            if a == base:
                continue
            for target in REGRET_TARGETS:
                def stat(d):  # d[task]: [seeds, (algorithm's time, base's time)]
                    return math.exp(np.mean([math.log(_ratio(np.median(d[t][:, 1]), np.median(d[t][:, 0]), horizon[t]))
                                             for t in tasks]))
                paired = {t: np.array([[time_to_regret(ra["regret"], target, horizon[t]), time_to_regret(rb["regret"], target, horizon[t])]
                                       for ra, rb in zip(by[(t, a)], by[(t, base)])]) for t in tasks}
                m, lo, hi = _bootstrap(paired, stat)
                neither = sum(min(np.median(v[:, 0]), np.median(v[:, 1])) >= 2 * horizon[t] for t, v in paired.items())
                speedups[f"regret {target}: {base} / {a}"] = {"geomean": m, "p10": lo, "p90": hi, "tasks_neither": int(neither)}
    return {"surrogate": str(folder), "tasks": list(tasks), "algorithms": list(algorithms), "seeds": seeds,
            "concurrent": concurrent, "horizon_full_trials": horizon_full_trials, "startup_epochs": startup_epochs,
            "regret_targets": list(REGRET_TARGETS), "ranges": ranges, "horizon_s": horizon, "per_algorithm": per_algorithm,
            "speedups": speedups, "wall_s": wall}


def _ratio(base_s: float, algo_s: float, horizon_s: float) -> float:
    """How many times faster ``algo`` reached a target than ``base``; a time never reached counts as twice the
    horizon (a lower bound on the speed-up when only the base fails; an upper bound when only ``algo`` fails)."""
    cap = 2 * horizon_s
    return min(base_s, cap) / min(algo_s, cap)


def lcbench_table(r: dict) -> str:
    """The result as one row per algorithm (mean normalised regret over tasks by 25%, 50% and 100% of the budget,
    with 10-90% intervals; searches reaching each target), then one line per speed-up."""
    head = ["algorithm", "trials (median)", *(f"regret by {p}% of the budget [p10, p90]" for p in (25, 50, 100)),
            *(f"reach {t}" for t in r["regret_targets"])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for a in r["algorithms"]:
        row = r["per_algorithm"][a]
        at = {round(x["share"] * 100): x for x in row["anytime"]}
        cells = [a, f"{row['trials_median']:g}"]
        cells += [f"{at[p]['mean_regret']:.4f} [{at[p]['p10']:.4f}, {at[p]['p90']:.4f}]" for p in (25, 50, 100)]
        cells += [f"{row['reached'][str(t)]:.0%}" for t in r["regret_targets"]]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    if all("final_by_task" in r["per_algorithm"][a] for a in r["algorithms"]):
        text += "\nMean regret at the end of the budget, by task:\n\n| task | " + " | ".join(r["algorithms"]) + " |\n"
        text += "|" + "---|" * (len(r["algorithms"]) + 1) + "\n"
        text += "".join(f"| {t} | " + " | ".join(f"{r['per_algorithm'][a]['final_by_task'][t]:.4f}" for a in r["algorithms"])
                        + " |\n" for t in r["tasks"])
    if r["speedups"]:
        text += "\nSpeed-ups to a regret target (geometric mean over tasks of the ratio of median times; 10-90% bootstrap):\n\n"
        text += "".join(f"- {k}: {v['geomean']:.2f}x [{v['p10']:.2f}, {v['p90']:.2f}]"
                        + (f" ({v['tasks_neither']} of {len(r['tasks'])} tasks: neither reaches it in half of the "
                           "seeds, counted as 1x)" if v["tasks_neither"] else "") + "\n" for k, v in r["speedups"].items())
    return text
