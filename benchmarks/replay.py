"""The replay benchmark: search algorithms compared on recorded learning curves, dozens of seeds in minutes.

Hyperparameter-optimisation research compares algorithms this way (LCBench, HPOBench, YAHPO Gym): train many
configurations once, keeping every epoch, then replay many searches against the recording.

1. **Record** (once, about an hour on 2 cores): ``salttune search --space benchmarks/spaces/replay.yaml`` runs random
   search without early stopping over a broad space on the real images; :func:`record_curves` turns that
   search's folder into a small table: each trial's sampled parameters, validation score per epoch, seconds
   per epoch and, for a trial that failed (a diverged loss), the reason.
2. **Replay**: :class:`Surrogate` fits, on the table, random forests from a configuration (one number per
   parameter: a one-hot per choice, the log of log-scaled ones, an "inactive" mark for a conditional one not
   drawn) to its score at every epoch, its seconds per epoch and whether it fails. A recorded configuration
   replays its own curve; any other configuration replays the forests' prediction.
   :func:`validate_surrogate` measures how faithful that is on configurations left out of the fit.
3. **Search in virtual time** (:func:`simulate`): salttune's own searcher and scheduler, built by the
   factories of :mod:`salttune.search.algorithms` exactly as ``salttune search`` builds them (and the variants
   of :func:`variants`, built from the same public pieces), are driven the way
   Ray Tune's controller drives them (``tune_controller._process_trial_result``): every result goes to the
   scheduler first; unless it says STOP the searcher hears it; a trial that ends (STOP, or its last epoch)
   is completed on both; a failed trial is an error on the scheduler and a ``fail`` on the searcher (what
   ``FailureReasons`` does), after ``max_failures`` retries that each cost the failing epoch again.
   ``concurrent`` trials run at once; each epoch takes its replayed seconds of a virtual clock. No Ray runs and
   nothing trains, so a search of hundreds of trials takes seconds.
4. **Compare** (:func:`bench_replay`): every algorithm over ``seeds`` seeds at the same virtual-time budget;
   per algorithm the median and quartiles of the time to reach targets fixed before the run, the share of
   seeds that reach them, and the best score found by each budget (the anytime curve).
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import math
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from salttune.errors import SalttuneError
from salttune.layout import TRIAL_PREFIX, SearchFiles, TrialFiles

__all__ = ["Curve", "record_curves", "load_curves", "Surrogate", "validate_surrogate", "simulate", "SearchTrace",
           "time_to", "best_by", "bench_replay", "variants", "tpe_with", "TARGET_QUANTILES"]

SIGNALS = ("val_score", "val_iou", "val_loss")  # the metrics a curve keeps per epoch (asha.rung_metric may use them)
TARGET_QUANTILES = (0.90, 0.98)  # the targets: the scores of the best 10% and the best 2% of recorded configurations


# -- the recording ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Curve:
    """One recorded trial: its sampled parameters, score and seconds per epoch, and why it failed (if it did)."""

    params: dict
    scores: tuple[float, ...]
    seconds: tuple[float, ...]
    failed: str | None = None
    signals: dict = dataclasses.field(default_factory=dict)  # other metrics per epoch (val_iou, val_loss), for rungs

    @property
    def best(self) -> float:
        return max(self.scores, default=float("nan"))


def record_curves(search_dir: str | Path, *, partial: bool = False) -> dict:
    """The table of a finished recording search (``results/NAME``): its space and one :class:`Curve` per trial.

    Args:
        partial: keep the curves of trials that stopped before ``max_t`` without failing (ASHA stopped them, or the
            search was cut at its ``stop_at`` target or by Ctrl-C): what a live benchmark's searches leave. A
            recording (False) keeps only full curves and failures, the curves a surrogate learns from.
    """
    from salttune.search.space import load_space, space_to_dict

    search_dir = Path(search_dir)
    files = SearchFiles(search_dir)
    space_file = files.space
    if not space_file.is_file():
        raise SalttuneError(f"{search_dir}: no space.yaml here; give the folder of a finished search, e.g. --search results/replay")
    space = load_space(space_file)
    curves = []
    for trial in sorted(files.trials.glob(f"{TRIAL_PREFIX}*")):
        result = TrialFiles(trial).result
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()] if result.is_file() else []
        error = next((p for p in (trial / "error.txt",) if p.is_file()), None)
        if not rows and error is None:
            continue  # never started
        by_epoch = {}
        for r in rows:  # a retried trial repeats epochs: the last report of each wins
            by_epoch[int(r["epoch"])] = r
        epochs = sorted(by_epoch)
        if epochs != list(range(1, len(epochs) + 1)):
            raise SalttuneError(f"{trial}: epochs {epochs} are not 1..n; the recording is damaged, record it again")
        params = {k: v for k, v in (rows[0]["config"] if rows else _params_file(trial)).items() if k != "optuna_trial"}
        reason = error.read_text().strip().splitlines()[-1][:300] if error else None
        if reason is None and len(epochs) < space.asha.max_t and not partial:
            continue  # interrupted (the recording was stopped): neither a finished curve nor a failure
        signals = {m: tuple(float(by_epoch[e][m]) for e in epochs) for m in SIGNALS
                   if m != space.metric and all(by_epoch[e].get(m) is not None for e in epochs)}
        curves.append(dataclasses.asdict(Curve(params, tuple(float(by_epoch[e][space.metric]) for e in epochs),
                                               tuple(float(by_epoch[e]["time_this_iter_s"]) for e in epochs), reason, signals)))
    if not curves:
        raise SalttuneError(f"{search_dir}: no trial reported a result; run the recording search first")
    return {"space": space_to_dict(space), "metric": space.metric, "max_t": space.asha.max_t, "curves": curves}


def _params_file(trial: Path) -> dict:
    p = trial / "params.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def load_curves(path: str | Path) -> tuple[object, list[Curve]]:
    """The recorded table at ``path``: (its validated SearchSpace, its curves)."""
    from salttune.search.space import space_from_dict

    path = Path(path)
    try:
        table = json.loads(path.read_text())
    except FileNotFoundError:
        raise SalttuneError(f"{path}: no such file; record one with  python -m benchmarks record --search results/replay --out {path}") from None
    except json.JSONDecodeError as e:
        raise SalttuneError(f"{path}: not a JSON curve table ({e.msg}, line {e.lineno}); record it again") from None
    if not isinstance(table, dict) or not isinstance(table.get("space"), dict) or not isinstance(table.get("curves"), list):
        raise SalttuneError(f"{path}: not a curve table of python -m benchmarks record (no 'space' and 'curves'); record it again")
    space = space_from_dict(table["space"], source=str(path))
    return space, [Curve(c["params"], tuple(c["scores"]), tuple(c["seconds"]), c.get("failed"),
                         {k: tuple(v) for k, v in (c.get("signals") or {}).items()}) for c in table["curves"]]


# -- the surrogate ----------------------------------------------------------------------------------------

def _encode(params_of_space, params: dict) -> list[float]:
    """One row of numbers for a configuration: a one-hot per choice; a number as its place in its range, 0..1 (on
    a log scale for log-scaled ones); and for a conditional number, an "active" mark (0 and 0 when not drawn)."""
    row = []
    for p in params_of_space:
        value = params.get(p.key)
        if p.kind == "choice":
            row += [float(value == c) for c in p.choices]
        else:
            log = p.log or p.kind == "loguniform"
            f = math.log if log else float
            x = (f(value) - f(p.low)) / ((f(p.high) - f(p.low)) or 1.0) if value is not None else 0.0
            row += [x, float(value is not None)] if p.when else [x]
    return row


SURROGATES = ("forest", "nearest")


class Surrogate:
    """Replays a configuration's curve: its own if recorded, else

    - ``forest``: random forests' prediction from the table (the mean curve of similar configurations: smooth,
      seed noise averaged away, extremes shrunk), or
    - ``nearest``: the recorded curve of the nearest recorded configuration (in :func:`_encode`'s units): real
      curves with their seed noise, and the replayed scores of random configurations distributed as recorded.
    """

    def __init__(self, space, curves: list[Curve], *, kind: str = "forest", seed: int = 0, min_samples_leaf: int = 2):
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        from salttune.search.params import WEIGHTS

        if kind not in SURROGATES:
            raise SalttuneError(f"--surrogate {kind!r}: allowed: {', '.join(SURROGATES)}")
        self.space, self.max_t, self.kind = space, space.asha.max_t, kind
        self._params = [p for p in space.params if p.key != WEIGHTS]  # (per-term loss weights: not encoded)
        self._recorded = {self._key(c.params): c for c in curves}
        full = [c for c in curves if c.failed is None and len(c.scores) == self.max_t]
        if len(full) < 5:
            raise SalttuneError(f"the curve table holds {len(full)} finished trials of {self.max_t} epochs; record at least 5")
        usable = [c for c in curves if c.failed is not None or len(c.scores) == self.max_t]
        self._table, self._points = usable, np.array([_encode(self._params, c.params) for c in usable])
        x = np.array([_encode(self._params, c.params) for c in full])
        forest = dict(n_estimators=64, min_samples_leaf=min_samples_leaf, random_state=seed, n_jobs=1)
        self._signals = sorted(set.intersection(*(set(c.signals) for c in full)))  # replayed beside the score
        y = np.array([np.concatenate([c.scores, *(c.signals[m] for m in self._signals)]) for c in full])
        self._scores = RandomForestRegressor(**forest).fit(x, y)
        xa = np.array([_encode(self._params, c.params) for c in curves])
        self._seconds = RandomForestRegressor(**forest).fit(xa, np.log([np.mean(c.seconds) for c in curves]))
        failed = np.array([c.failed is not None for c in curves])
        self._fails = RandomForestClassifier(**forest).fit(xa, failed) if 0 < failed.sum() < len(curves) else None
        self._fail_epoch = int(np.median([len(c.scores) + 1 for c in curves if c.failed])) if failed.any() else None

    def _key(self, params: dict) -> str:
        return json.dumps({p.key: params.get(p.key) for p in self._params}, sort_keys=True)

    def curves(self, many: list[dict]) -> list[Curve]:
        """:meth:`curve` of each configuration, the forests asked once for all (fast for thousands)."""
        if self.kind == "nearest" or not many:
            return [self.curve(p) for p in many]
        x = np.array([_encode(self._params, p) for p in many])
        y = self._scores.predict(x).reshape(len(many), 1 + len(self._signals), self.max_t)
        sec = np.exp(self._seconds.predict(x))
        fails = self._fails.predict_proba(x)[:, 1] > 0.5 if self._fails is not None else np.zeros(len(many), bool)
        out = []
        for i, params in enumerate(many):
            recorded = self._recorded.get(self._key(params))
            out.append(recorded or self._curve_of(params, y[i], float(sec[i]), bool(fails[i])))
        return out

    def _curve_of(self, params: dict, y: np.ndarray, per_epoch: float, fails: bool) -> Curve:
        n, failed = (min(self._fail_epoch, self.max_t) - 1, "replayed divergence") if fails else (self.max_t, None)
        signals = {m: tuple(float(v) for v in y[1 + i][:n]) for i, m in enumerate(self._signals)}
        return Curve(params, tuple(float(v) for v in y[0][:n]), (per_epoch,) * n, failed, signals)

    def curve(self, params: dict) -> Curve:
        """The replayed curve of ``params`` (a sampled configuration: dotted keys as the searcher draws them)."""
        recorded = self._recorded.get(self._key(params))
        if recorded is not None:
            return recorded
        x = np.array([_encode(self._params, params)])
        if self.kind == "nearest":
            c = self._table[int(np.argmin(((self._points - x) ** 2).sum(axis=1)))]
            return Curve(params, c.scores, c.seconds, c.failed, c.signals)
        per_epoch = float(np.exp(self._seconds.predict(x)[0]))
        y = self._scores.predict(x)[0].reshape(1 + len(self._signals), self.max_t)
        fails = self._fails is not None and self._fails.predict_proba(x)[0][1] > 0.5
        return self._curve_of(params, y, per_epoch, fails)


def validate_surrogate(space, curves: list[Curve], *, kind: str = "forest", folds: int = 5, seed: int = 0, min_samples_leaf: int = 2) -> dict:
    """How faithful the replay is on configurations left out of its fit (K-fold over the finished curves).

    Returns the Spearman rank correlation of replayed and recorded best scores, and of final scores, over all
    left-out configurations; the mean absolute error of the best score; and Kendall's tau of the best scores.
    """
    from scipy.stats import kendalltau, spearmanr

    full = [c for c in curves if c.failed is None and len(c.scores) == space.asha.max_t]
    order = np.random.default_rng(seed).permutation(len(full))
    replayed_best, replayed_final = np.empty(len(full)), np.empty(len(full))
    for k in range(folds):
        out = set(order[k::folds].tolist())
        fit = Surrogate(space, [c for i, c in enumerate(full) if i not in out] + [c for c in curves if c.failed], kind=kind,
                        seed=seed, min_samples_leaf=min_samples_leaf)
        for i in out:
            c = fit.curve(full[i].params)
            replayed_best[i], replayed_final[i] = max(c.scores, default=np.nan), (c.scores[-1] if c.scores else np.nan)
    real_best = np.array([c.best for c in full])
    real_final = np.array([c.scores[-1] for c in full])
    return {"configurations": len(full), "folds": folds,
            "spearman_best": float(spearmanr(replayed_best, real_best).statistic),
            "spearman_final": float(spearmanr(replayed_final, real_final).statistic),
            "kendall_best": float(kendalltau(replayed_best, real_best).statistic),
            "mae_best": float(np.mean(np.abs(replayed_best - real_best)))}


# -- one search in virtual time ---------------------------------------------------------------------------

@dataclass
class SearchTrace:
    """What one replayed search did: every reported epoch as (virtual seconds, score), and its trials."""

    algorithm: str
    seed: int
    points: list[tuple[float, float]]
    starts: list[float]  # each trial's start, virtual seconds
    trials: int
    epochs: int
    failed: int
    horizon_s: float
    wall_s: float
    held_out: list[float | None] = dataclasses.field(default_factory=list)  # per point: the curve's HELD_OUT signal then


HELD_OUT = "test_score"  # a curve's signal that no search sees: what the configuration it returns scores on held-out data


def simulate(space, surrogate: Surrogate, *, horizon_s: float, algorithm: str | None = None, max_trials: int = 10_000,
             workdir: Path | None = None, startup_s: float = 0.0, study_on_disk: bool = False) -> SearchTrace:
    """One search (seed ``space.seed``, ``space.concurrent`` trials at once) for ``horizon_s`` virtual seconds:
    trials start while the clock is below the horizon and the trial budget lasts. Each trial's first epoch costs
    ``startup_s`` more (a real trial's start-up: a worker, the data, the model). The Optuna study is kept in memory
    unless ``study_on_disk`` (SQLite, as ``salttune search`` keeps it: the same draws, 6-8 times slower on LCBench).

    ``algorithm``: a name of :func:`variants` (every entry of salttune.search.algorithms.ALGORITHMS is one);
    None: ``space.algorithm``.
    """
    from salttune.search.asha import STOP  # (Ray stays inside salttune.search)

    algorithm = algorithm or space.algorithm
    t_wall = time.perf_counter()
    np.random.seed(space.seed)  # Ray's Hyperband draws each trial's bracket from numpy's global generator
    tmp = Path(tempfile.mkdtemp(prefix="salttune-replay-", dir=workdir or _fast_tmp()))
    try:
        searcher, scheduler = variants()[algorithm](space, tmp, study_on_disk=study_on_disk)
        clock, seq, started, epochs, failed = 0.0, 0, 0, 0, 0
        events: list[tuple[float, int, str, int]] = []  # (virtual time, tie-break, trial id, epoch or -1 = failure)
        live: dict[str, tuple[SimpleNamespace, Curve, int]] = {}  # trial id -> (trial, curve, retries left)
        points: list[tuple[float, float]] = []
        held_out: list[float | None] = []
        starts: list[float] = []
        max_t = space.asha.max_t

        def start(now: float) -> None:
            nonlocal seq, started
            tid = f"r{started:05d}"
            config = searcher.suggest(tid)
            if config is None:
                return
            started += 1
            starts.append(now)
            trial = SimpleNamespace(trial_id=tid, config=config)
            scheduler.on_trial_add(None, trial)
            curve = surrogate.curve({k: v for k, v in config.items() if k != "optuna_trial"})
            live[tid] = (trial, curve, space.max_failures)
            _next(now, tid, curve, 0)

        def _next(now: float, tid: str, curve: Curve, done: int) -> None:
            nonlocal seq
            seq += 1
            extra = startup_s if done == 0 else 0.0
            if done < len(curve.scores):
                heapq.heappush(events, (now + extra + curve.seconds[done], seq, tid, done + 1))
            else:  # the curve ends in a failure: the epoch after its last score fails (costs an epoch)
                heapq.heappush(events, (now + extra + (curve.seconds[-1] if curve.seconds else _mean_epoch(surrogate)), seq, tid, -1))

        while len(live) < space.concurrent and started < max_trials:
            start(0.0)
        while events:
            clock, _, tid, epoch = heapq.heappop(events)
            trial, curve, retries = live[tid]
            ended = False
            if epoch == -1:
                if retries > 0:  # Tune retries from the last checkpoint: it fails the same way, one epoch later
                    live[tid] = (trial, curve, retries - 1)
                    _next(clock, tid, curve, len(curve.scores))
                    continue
                scheduler.on_trial_error(None, trial)
                searcher.on_trial_complete(tid, error=True)
                searcher.fail(tid, curve.failed or "failed")
                failed += 1
                ended = True
            else:
                epochs += 1
                score = curve.scores[epoch - 1]
                points.append((clock, score))
                held_out.append(curve.signals[HELD_OUT][epoch - 1] if HELD_OUT in curve.signals else None)
                seen = {m: v[epoch - 1] for m, v in curve.signals.items() if m != HELD_OUT}
                result = {**seen, space.metric: score, "epoch": epoch,
                          "training_iteration": epoch, "time_total_s": clock}
                decision = scheduler.on_trial_result(None, trial, result)
                if decision != STOP:
                    searcher.on_trial_result(tid, result)
                if decision == STOP or epoch >= max_t:
                    scheduler.on_trial_complete(None, trial, result)
                    searcher.on_trial_complete(tid, result)
                    ended = True
                else:
                    _next(clock, tid, curve, epoch)
            if ended:
                del live[tid]
                while len(live) < space.concurrent and started < max_trials and clock < horizon_s:
                    before = started
                    start(clock)
                    if started == before:
                        break
        return SearchTrace(algorithm, space.seed, points, starts, started, epochs, failed, horizon_s, time.perf_counter() - t_wall,
                           held_out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def tpe_with(space, local_dir: Path, *, failed_as: str = "worst", startup: int | None = None, brackets: int = 1,
             study_on_disk: bool = True, **tpe_options) -> tuple:
    """TPE + ASHA with each of its choices explicit, built from salttune's public pieces as ``tpe+asha`` is (the
    replay measures the choices one by one). What rungs compare (``asha.rung_metric``, ``asha.rung_score``) is the
    space's, shared with random+asha.

    Args:
        failed_as: a failed trial is the ``worst`` at its epoch for TPE, or ``ignored`` (Optuna's FAIL).
        startup: random trials before TPE models (None: ``space.startup_trials``).
        brackets: ASHA's brackets (1: ASHA; more: asynchronous Hyperband).
        tpe_options: other arguments of Optuna's ``TPESampler`` (``multivariate``, ``n_ei_candidates``...).
    """
    from salttune.search.algorithms import asha_scheduler
    from salttune.search.sampler import make_searcher, tpe_sampler

    if startup is not None:
        space = dataclasses.replace(space, startup_trials=startup)
    searcher = make_searcher(space, SearchFiles(local_dir).study if study_on_disk else None, tpe_sampler(space, **tpe_options),
                             failed_as=failed_as)
    return searcher, asha_scheduler(space, Path(local_dir), brackets)


def variants() -> dict:
    """Every algorithm the replay can run: salttune's ALGORITHMS, and variants that change one thing each, so the
    benchmark can say what each choice is worth. ``NAME/last``: rungs compare the last epoch's value, not the best
    so far; ``NAME/iou``, ``NAME/loss``: rungs compare val_iou or val_loss; ``/ignored``: TPE ignores failed trials
    (Optuna's FAIL); ``/startupN``: N random start-up trials; ``tpe+hyperband/3``: three asynchronous brackets;
    ``tpe+asha/v0``: the first tpe+asha (failed trials ignored, rungs on the last val_score)."""
    from functools import partial

    from salttune.search.algorithms import ALGORITHMS, build

    def on(factory, **asha):
        def build(space, local_dir, **kw):
            return factory(dataclasses.replace(space, asha=dataclasses.replace(space.asha, **asha)), local_dir, **kw)
        return build

    out = {name: partial(build, algorithm) for name, algorithm in ALGORITHMS.items()}
    for name in ("tpe+asha", "random+asha"):
        out[f"{name}/last"] = on(out[name], rung_score="last")
        out[f"{name}/iou"] = on(out[name], rung_metric="val_iou")
        out[f"{name}/score"] = on(out[name], rung_metric="val_score")
        out[f"{name}/loss"] = on(out[name], rung_metric="val_loss")
    out["tpe+asha/v0"] = on(partial(tpe_with, failed_as="ignored"), rung_score="last", rung_metric="val_score")
    out["tpe+asha/ignored"] = partial(tpe_with, failed_as="ignored")
    for n in (2, 10, 20):
        out[f"tpe+asha/startup{n}"] = partial(tpe_with, startup=n)
        out[f"tpe+asha/iou/startup{n}"] = on(partial(tpe_with, startup=n), rung_metric="val_iou")
    out["tpe+asha/iou/independent"] = on(partial(tpe_with, multivariate=False, group=False), rung_metric="val_iou")
    out["tpe+asha/iou/startup10/independent"] = on(partial(tpe_with, startup=10, multivariate=False, group=False), rung_metric="val_iou")
    out["tpe+hyperband/3"] = partial(tpe_with, brackets=3)
    out["tpe+hyperband/3/iou"] = on(partial(tpe_with, brackets=3), rung_metric="val_iou")
    return out


def _fast_tmp() -> str | None:
    return "/dev/shm" if Path("/dev/shm").is_dir() else None


def _mean_epoch(surrogate: Surrogate) -> float:
    return float(np.mean([np.mean(c.seconds) for c in surrogate._recorded.values() if c.seconds]))


def time_to(points: list[tuple[float, float]], target: float, horizon_s: float = math.inf) -> float:
    """Virtual seconds until a reported score first reaches ``target`` (inf if never, or only after ``horizon_s``:
    trials started before the budget ran out finish after it, and do not count)."""
    t = min((t for t, s in points if s >= target), default=math.inf)
    return t if t <= horizon_s else math.inf


def best_by(points: list[tuple[float, float]], budget_s: float) -> float | None:
    """The best score reported by ``budget_s`` virtual seconds (None before the first report)."""
    return max((s for t, s in points if t <= budget_s), default=None)


# -- the comparison ---------------------------------------------------------------------------------------

def _quartiles(values: list[float]) -> dict:
    """Quartiles without interpolation, so a censored value (inf: never reached) stays inf rather than NaN."""
    q = np.quantile(np.array(values, dtype=float), [0.25, 0.5, 0.75], method="inverted_cdf") if values else [math.nan] * 3
    return {"q25": float(q[0]), "median": float(q[1]), "q75": float(q[2])}


def replay_targets(space, surrogate: Surrogate, *, draws: int = 2000, seed: int = 12345) -> dict:
    """The targets, fixed before any search runs: the best scores of the best 10% and 2% of configurations drawn at
    random from the space, as the replay scores them (``draws`` draws with Optuna's random sampler)."""
    import optuna

    from salttune.search.params import suggest

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    drawn = []
    for _ in range(draws):
        trial = study.ask()
        suggest(space, trial)
        drawn.append(dict(trial.params))
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    best = [max(c.scores, default=0.0) for c in surrogate.curves(drawn)]
    return {f"top{round(100 * (1 - q))}%": float(np.quantile(best, q)) for q in TARGET_QUANTILES}


def _one(args) -> dict:
    space, surrogate, horizon_s, algorithm = args
    tr = simulate(space, surrogate, horizon_s=horizon_s, algorithm=algorithm)
    return dataclasses.asdict(tr)


def bench_replay(curves_path: str | Path, *, algorithms: list[str], seeds: int = 20, concurrent: int | None = None,
                 horizon_full_trials: float = 60.0, sets: list[str] = (), processes: int = 2,
                 validate_folds: int = 5, surrogate: str = "forest") -> dict:
    """Every algorithm over ``seeds`` seeds against the replay of ``curves_path``, at one virtual-time budget.

    The budget (horizon) is the time ``horizon_full_trials`` full-length trials of average cost take on
    ``concurrent`` slots: a random search without early stopping gets about that many trials.
    """
    from multiprocessing import get_context

    from salttune.search.space import apply_sets, space_from_dict, space_to_dict

    space, curves = load_curves(curves_path)
    known = variants()
    for a in algorithms:
        if a not in known:
            raise SalttuneError(f"--algorithms: unknown algorithm {a!r}; allowed: {', '.join(known)}")
    raw = space_to_dict(space)
    raw = apply_sets(raw, list(sets))
    if concurrent:
        raw["concurrent"] = concurrent
    space = space_from_dict(raw, source="--set")
    kind, surrogate = surrogate, Surrogate(space, curves, kind=surrogate)
    recorded_best = [c.best if c.failed is None else (c.best if c.scores else 0.0) for c in curves]
    recorded_targets = {f"top{round(100 * (1 - q))}%": float(np.quantile(recorded_best, q)) for q in TARGET_QUANTILES}
    targets = replay_targets(space, surrogate)
    full_s = float(np.median([sum(c.seconds) for c in curves if c.failed is None]))
    horizon = horizon_full_trials * full_s / space.concurrent
    grid = [horizon * k / 20 for k in range(1, 21)]
    jobs = [(dataclasses.replace(space, seed=seed), surrogate, horizon, a) for a in algorithms for seed in range(seeds)]
    t = time.perf_counter()
    if processes <= 1:
        traces = [_one(job) for job in jobs]
    else:
        # "spawn", not "fork": a process that has started Ray (a test session, a notebook) holds threads that a
        # forked child would inherit mid-lock, and the pool would hang
        with get_context("spawn").Pool(processes) as pool:
            traces = pool.map(_one, jobs)
    wall = time.perf_counter() - t
    per_algorithm = {}
    for a in algorithms:
        mine = [tr for tr in traces if tr["algorithm"] == a]
        row = {"seeds": len(mine), "trials_median": statistics.median(tr["trials"] for tr in mine),
               "epochs_median": statistics.median(tr["epochs"] for tr in mine),
               "failed_median": statistics.median(tr["failed"] for tr in mine)}
        for name, target in targets.items():
            times = [time_to(tr["points"], target, horizon) for tr in mine]
            row[name] = {**_quartiles(times), "reached": sum(math.isfinite(x) for x in times) / len(times),
                         "per_seed": [x if math.isfinite(x) else None for x in times]}
        row["anytime"] = [{"budget_s": b, **_quartiles([best_by(tr["points"], b) or 0.0 for tr in mine])} for b in grid]
        per_algorithm[a] = row
    speedups = {}
    for name in targets:
        for base in ("random", "random+asha"):
            if base in per_algorithm:
                for a in algorithms:
                    if a != base:
                        speedups[f"{name}: {base} / {a}"] = _ratio(per_algorithm[base][name]["median"], per_algorithm[a][name]["median"])
    return {"curves": str(curves_path), "recorded_trials": len(curves), "recorded_failed": sum(c.failed is not None for c in curves),
            "space": {k: raw[k] for k in ("name", "concurrent", "startup_trials", "asha", "max_failures") if k in raw},
            "targets": targets, "recorded_quantiles": recorded_targets, "full_trial_s": full_s, "horizon_s": horizon, "horizon_full_trials": horizon_full_trials,
            "seeds": seeds, "algorithms": algorithms, "speedups": speedups, "per_algorithm": per_algorithm,
            "surrogate_kind": kind, "surrogate": validate_surrogate(space, curves, kind=kind, folds=validate_folds), "wall_s": wall}


def _ratio(a: float, b: float) -> float | None:
    if math.isinf(a) and math.isinf(b):
        return None
    return math.inf if math.isinf(a) else (0.0 if math.isinf(b) else a / b)
