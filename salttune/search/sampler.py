"""Optuna's samplers (TPE, random) behind Ray Tune's ``OptunaSearch``, told the truth about stopped and failed trials.

Why a subclass. Ray's ``OptunaSearch.on_trial_complete`` tells Optuna ``COMPLETE`` with the *last* reported
score for every trial that ended without an error, including the ones ASHA stopped at a low rung. TPE would
then rank an epoch-2 score of a stopped trial against the epoch-30 scores of finished ones, as if both were
final: it would learn "weak" for configurations that were only young, and "good" for none of them.

What we do instead (the fidelity is the epoch count):

- every epoch's score is reported to the Optuna trial as an intermediate value at ``step = epoch``
  (not Tune's ``training_iteration``, which restarts differently on resume);
- a trial that ran all ``asha.max_t`` epochs is told ``COMPLETE`` with its *best* epoch's score (the score of
  the snapshot the ensemble will use);
- a trial stopped before ``max_t`` (by ASHA, or by a time budget) is told ``PRUNED``. Optuna's TPE never
  mixes these with finished trials: when it splits trials into "good" and "bad", complete trials are ranked
  first by value, and pruned ones only after them, by how far they got (later step first) and then by their
  score at that step (``optuna.samplers._tpe.sampler._split_pruned_trials``). So a pruned trial counts as
  worse than any finished one, and two pruned trials are compared at their own fidelity;
- every epoch's intermediate value is the trial's *best score so far* (``rung_score="best"``, the default), so
  a cosine or restart schedule caught at a high learning rate is not ranked by its dip (``"last"``: the raw
  score, as before; measured on the replay benchmark, results/benchmarks/replay/README.md);
- a trial that failed for good (after ``max_failures`` retries: a diverged loss, an out-of-memory) is told
  ``PRUNED`` with a NaN at the step it failed (``failed_as="worst"``, the default): TPE ranks it below every
  trial that got as far, so the region that fails is learnt as bad. (``failed_as="ignored"`` tells ``FAIL``,
  which TPE ignores: the region that diverged is proposed again.) Either way the reason is the user attribute
  ``fail_reason``, which optuna-dashboard shows.

The study lives in ``results/NAME/optuna.db`` (SQLite), so ``optuna-dashboard sqlite:///results/NAME/optuna.db``
shows it live, and a resumed search continues the same study.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from salttune.search.space import SearchSpace, rung_metric, suggest

__all__ = ["DefineByRun", "PruneAwareOptunaSearch", "make_searcher", "tpe_sampler", "open_study", "settle_stopped", "mark_interrupted",
           "storage_id"]

log = logging.getLogger(__name__)


class DefineByRun:
    """The conditional space as Optuna's define-by-run function (a class, so Tune can pickle it)."""

    def __init__(self, space: SearchSpace):
        self.space = space

    def __call__(self, trial) -> dict:
        suggest(self.space, trial)  # Ray's captor records every suggest_* value as the trial's config
        return {"optuna_trial": trial.number}  # a constant extra key: links Tune's trial to Optuna's


class PruneAwareOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that reports per epoch, tells PRUNED for stopped trials and records failure reasons."""

    def __init__(self, *args, max_t: int, rung_metric: str | None = None, rung_sign: float = 1.0, rung_score: str = "best",
                 failed_as: str = "worst", **kwargs):
        super().__init__(*args, **kwargs)
        if rung_score not in ("best", "last") or failed_as not in ("worst", "ignored"):
            raise ValueError(f"rung_score {rung_score!r} (best | last), failed_as {failed_as!r} (worst | ignored)")
        self._max_t = max_t
        self._rung_score, self._failed_as = rung_score, failed_as
        # the intermediate values: this metric (None: the search's), times rung_sign so that the study's direction holds
        self._rung_metric, self._rung_sign = rung_metric, rung_sign
        self._rung_best: dict[str, float] = {}  # Tune trial id -> best rung value so far (signed)
        self._last_epoch: dict[str, int] = {}  # Tune trial id -> last epoch reported
        self._best: dict[str, float] = {}  # Tune trial id -> best score so far
        self._failed_pending: set[str] = set()

    # Ray's private state, each named once here (tests/search/test_sampler.py fails naming the attribute if a
    # Ray upgrade moves it) -----------------------------------------------------------------------------
    @property
    def study(self) -> optuna.Study:
        """The Optuna study (``OptunaSearch._ot_study``)."""
        return self._ot_study

    @property
    def live_trials(self) -> dict[str, optuna.Trial]:
        """Tune trial id -> its Optuna trial, for every trial asked for (``OptunaSearch._ot_trials``)."""
        return self._ot_trials

    @property
    def told(self) -> set[str]:
        """Tune trial ids whose outcome the study has (``OptunaSearch._completed_trials``)."""
        return self._completed_trials

    # Results ---------------------------------------------------------------------------------------
    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.told or trial_id not in self.live_trials:
            return
        score, epoch = result.get(self.metric), result.get("epoch")
        if score is None or epoch is None:
            return
        better = max if self.mode == "max" else min
        self._best[trial_id] = better(self._best.get(trial_id, score), score)
        self._last_epoch[trial_id] = max(self._last_epoch.get(trial_id, 0), int(epoch))
        rung = result.get(self._rung_metric) if self._rung_metric else score
        if rung is None:
            return
        rung = self._rung_sign * float(rung)
        self._rung_best[trial_id] = better(self._rung_best.get(trial_id, rung), rung)
        value = self._rung_best[trial_id] if self._rung_score == "best" else rung
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a step reported twice (a resumed trial) is ignored, not an error
                self.live_trials[trial_id].report(float(value), step=int(epoch))
        except optuna.exceptions.UpdateFinishedTrialError:
            # Told before the driver was killed, but Tune's saved state (a second older) still had it running:
            # Tune resumes it from its checkpoint; the study already holds its outcome.
            self.told.add(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self.told or trial_id not in self.live_trials:
            return
        if error:
            # Tune calls this just before its callbacks hear of the error; ``FailureReasons`` then calls
            # ``fail`` with the reason, because a finished Optuna trial cannot take attributes any more.
            self._failed_pending.add(trial_id)
            return
        if result:  # a result that ends a trial (ASHA's STOP, the last epoch) comes here, not to on_trial_result
            self.on_trial_result(trial_id, result)
        epoch = (result or {}).get("epoch", 0)
        if epoch >= self._max_t and trial_id in self._best:
            self._tell(trial_id, self._best[trial_id], TrialState.COMPLETE)
        else:
            self._tell(trial_id, None, TrialState.PRUNED)

    def fail(self, trial_id: str, reason: str) -> None:
        """Record a trial that failed for good, with the one-line reason."""
        if trial_id not in self.live_trials or trial_id in self.told:
            return
        self._failed_pending.discard(trial_id)
        try:
            self.live_trials[trial_id].set_user_attr("fail_reason", reason[:500])
        except Exception as e:  # noqa: BLE001 - finished already (a resumed search); the state below matters
            log.info("could not record the failure reason of %s: %s", trial_id, e)
        if self._failed_as == "ignored":
            self._tell(trial_id, None, TrialState.FAIL)
            return
        step = self._last_epoch.get(trial_id, 0) + 1  # the epoch that failed
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.live_trials[trial_id].report(float("nan"), step=step)  # worst at its fidelity (see the module doc)
        except Exception as e:  # noqa: BLE001 - finished already (a resumed search)
            log.info("could not report the failure of %s: %s", trial_id, e)
        self._tell(trial_id, None, TrialState.PRUNED)

    def _tell(self, trial_id: str, value: float | None, state: TrialState) -> None:
        try:
            self.study.tell(self.live_trials[trial_id], value, state=state)
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError, ValueError) as e:  # told already; NaN
            log.info("Optuna did not take the result of %s: %s", trial_id, e)
        self.told.add(trial_id)
        self._best.pop(trial_id, None)
        self._rung_best.pop(trial_id, None)
        self._last_epoch.pop(trial_id, None)

    # Resume ----------------------------------------------------------------------------------------
    def restore(self, checkpoint_path: str) -> None:
        """Tune's own restore, then settle what a killed driver left behind in the study.

        Tune saves this searcher with the experiment state after every checkpoint, but Optuna writes to
        SQLite at once. A trial asked for after the last save is RUNNING in the database and unknown to
        Tune: it had no checkpoint yet, so nothing of it can be resumed; it is marked FAIL with the reason,
        and Tune samples a new trial in its place.
        """
        super().restore(checkpoint_path)
        known = {t.number for t in self.live_trials.values()}
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if frozen.number not in known:
                orphan = optuna.trial.Trial(self.study, storage_id(frozen))  # no public handle by number
                orphan.set_user_attr("fail_reason", "interrupted before its first checkpoint; the resumed search sampled a new trial")
                self.study.tell(frozen.number, state=TrialState.FAIL)
        for trial_id in list(self._failed_pending):  # failures whose reason never arrived
            self.fail(trial_id, "failed (reason lost when the driver stopped)")


def _running(db_path: Path, name: str):
    """The study's storage and its trials still RUNNING."""
    storage = open_study(db_path, name)
    study = optuna.load_study(study_name=name, storage=storage)
    return storage, study, study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))


def settle_stopped(db_path: Path, name: str, reason: str) -> int:
    """Tell PRUNED, with ``reason``, every trial still RUNNING in the study; returns how many.

    For a search that ``stop_at`` ended: Tune stops its running trials without telling the searcher, so the
    study would keep them RUNNING for ever. They stopped short of ``max_t`` epochs, like ASHA's stops.
    (An interrupted search keeps them RUNNING: ``--resume`` continues them; see :func:`mark_interrupted`.)
    """
    storage, study, running = _running(db_path, name)
    for frozen in running:
        storage.set_trial_user_attr(storage_id(frozen), "stopped", reason)
        study.tell(frozen.number, state=TrialState.PRUNED)
    return len(running)


def mark_interrupted(db_path: Path, name: str, resume: str) -> int:
    """Write on every trial still RUNNING that the search was interrupted (user attribute ``interrupted``).

    Optuna has no "interrupted" state, and telling one (FAIL, PRUNED) would end the trial for good; it stays
    RUNNING, so that ``--resume`` continues it from its checkpoint and then tells its outcome. The attribute
    (shown by optuna-dashboard) says at which epoch and how to continue. Returns how many trials it marked.
    """
    storage, _, running = _running(db_path, name)
    for frozen in running:
        storage.set_trial_user_attr(storage_id(frozen), "interrupted",
                                    f"the search was interrupted after epoch {frozen.last_step or 0}; {resume}")
    return len(running)


def storage_id(frozen: optuna.trial.FrozenTrial) -> int:
    """The trial's id in the study's storage (Optuna's private ``FrozenTrial._trial_id``; no public name has it)."""
    return frozen._trial_id


def open_study(db_path: Path, name: str):
    """The SQLite storage of a search (created on first use); readers such as optuna-dashboard may share it."""
    url = f"sqlite:///{Path(db_path).resolve()}"
    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})


def tpe_sampler(space: SearchSpace, **options) -> optuna.samplers.TPESampler:
    """Seeded TPE: ``space.startup_trials`` random trials, then the model.

    ``multivariate`` + ``group`` let TPE model the conditional parameters jointly within each group of
    trials that drew the same parameters; ``constant_liar`` keeps concurrent trials from being proposed
    the same point while the first one still runs.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(**tpe_options(space, **options))


def tpe_options(space: SearchSpace, **options) -> dict:
    """The arguments of :func:`tpe_sampler`'s ``TPESampler``."""
    return {"seed": space.seed, "n_startup_trials": space.startup_trials, "multivariate": True, "group": True,
            "constant_liar": True, **options}


def make_searcher(space: SearchSpace, db_path: Path | None, sampler: optuna.samplers.BaseSampler, *,
                  failed_as: str = "worst") -> PruneAwareOptunaSearch:
    """A define-by-run searcher drawing with ``sampler`` and storing its study at ``db_path`` (None: in memory, for a
    benchmark's virtual clock: the same draws, without SQLite's cost on every report); its intermediate values
    follow the space's ``asha.rung_metric`` and ``asha.rung_score`` (what ASHA's rungs compare)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name, mode = rung_metric(space)
    rung = name if name != space.metric else None
    sign = 1.0 if mode == space.mode else -1.0
    return PruneAwareOptunaSearch(
        space=DefineByRun(space), metric=space.metric, mode=space.mode, sampler=sampler,
        study_name=space.name, storage=optuna.storages.InMemoryStorage() if db_path is None else open_study(db_path, space.name), max_t=space.asha.max_t,
        rung_metric=rung, rung_sign=sign, rung_score=space.asha.rung_score, failed_as=failed_as,
    )
