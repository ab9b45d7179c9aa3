"""Search algorithms: one name -> factory of (searcher, scheduler). Importing this module imports no Ray.

The space file's ``algorithm:`` key names an entry (validated against ``ALGORITHMS`` at the edge). A factory
takes the validated space and the search's local folder (``results/NAME``, where the searcher keeps its
Optuna study and a scheduler its state) and returns Tune's ``search_alg`` and ``scheduler``. It imports Ray
and Optuna inside, so ``salttune --help`` does not pay for them.

Every searcher is :class:`salttune.search.sampler.PruneAwareOptunaSearch` with some Optuna sampler, so the
study in ``optuna.db`` and the leaderboard look the same whatever the algorithm; only the sampler and the
scheduler change. A new algorithm (DEHB, GP...) is one new entry here plus its test in
``tests/search/test_algorithms.py``, as ``bohb`` was.

``--resume`` never calls a factory: Tune restores the searcher from its saved state and the scheduler from
``tuner.pkl`` (``ResumableASHA`` then reloads its rungs from ``asha_state.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from salttune.layout import SearchFiles

if TYPE_CHECKING:
    from salttune.search.space import SearchSpace

__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHM", "WITH_ASHA", "build_algorithm", "tpe_with"]

DEFAULT_ALGORITHM = "tpe+asha"


def _searcher(space: SearchSpace, local_dir: Path, sampler, **options):
    from salttune.search.sampler import make_searcher

    return make_searcher(space, SearchFiles(local_dir).study, sampler, **options)


# What rungs compare when the space does not say (asha.rung_metric: null): val_iou for a val_score search. On the
# replay benchmark's recorded curves the best val_iou by epoch 2 ranks the final scores with Spearman 0.72, the
# competition score itself 0.42 (most young models predict empty masks, which that score rewards), and TPE + ASHA
# reached the harder target sooner with it on both surrogates (results/benchmarks/README.md, replay).
DEFAULT_RUNG_METRIC = {"val_score": "val_iou"}


def rung_metric(space: SearchSpace) -> tuple[str, str]:
    """(metric, mode) that ASHA's rungs compare: ``asha.rung_metric``, else :data:`DEFAULT_RUNG_METRIC` of the
    search's metric, else the search's metric itself."""
    from salttune.search.space import METRICS

    name = space.asha.rung_metric or DEFAULT_RUNG_METRIC.get(space.metric, space.metric)
    return name, (space.mode if name == space.metric else METRICS[name])


def _random_sampler(space: SearchSpace):
    import optuna

    return optuna.samplers.RandomSampler(seed=space.seed)


def _asha(space: SearchSpace, local_dir: Path, brackets: int = 1):
    from salttune.search.asha import ResumableASHA

    metric, mode = rung_metric(space)
    return ResumableASHA(SearchFiles(local_dir).asha_state, metric=metric, mode=mode, max_t=space.asha.max_t,
                         grace_period=space.asha.grace_period, reduction_factor=space.asha.reduction_factor,
                         rung_score=space.asha.rung_score, brackets=brackets)


def tpe_with(space: SearchSpace, local_dir: Path, *, failed_as: str = "worst", startup: int | None = None,
             brackets: int = 1, **tpe_options) -> tuple[Any, Any]:
    """TPE + ASHA with each of its choices explicit (the replay benchmark measures them one by one). What rungs
    compare (``asha.rung_metric``, ``asha.rung_score``) is the space's, shared with random+asha.

    Args:
        failed_as: a failed trial is the ``worst`` at its epoch for TPE, or ``ignored`` (Optuna's FAIL).
        startup: random trials before TPE models (None: ``space.startup_trials``).
        brackets: ASHA's brackets (1: ASHA; more: asynchronous Hyperband).
        tpe_options: other arguments of Optuna's ``TPESampler`` (``multivariate``, ``n_ei_candidates``...).
    """
    import dataclasses

    from salttune.search.sampler import tpe_sampler

    if startup is not None:
        space = dataclasses.replace(space, startup_trials=startup)
    return _searcher(space, local_dir, tpe_sampler(space, **tpe_options), failed_as=failed_as), _asha(space, local_dir, brackets)


def tpe_asha(space: SearchSpace, local_dir: Path) -> tuple[Any, Any]:
    """Optuna's TPE (after ``startup_trials`` random trials) proposes, ASHA stops the weak at its rungs; both
    compare trials by their best score so far, and TPE learns failed trials as the worst."""
    return tpe_with(space, local_dir)


def bohb(space: SearchSpace, local_dir: Path) -> tuple[Any, Any]:
    """TPE fitted, as BOHB's model is, on the highest ASHA rung that enough trials have reached (ranked by their
    value there), instead of on finished trials; the same ASHA stops the weak (:mod:`salttune.search.rung_tpe`)."""
    from salttune.search.rung_tpe import RungTPESampler, rungs_of
    from salttune.search.sampler import tpe_options

    a = space.asha
    sampler = RungTPESampler(tpe_options(space), rungs_of(a.grace_period, a.reduction_factor, a.max_t),
                             min_points=max(space.startup_trials, len(space.params) + 1))
    return _searcher(space, local_dir, sampler), _asha(space, local_dir)


def random_search(space: SearchSpace, local_dir: Path) -> tuple[Any, Any]:
    """Seeded random sampling, no early stopping: every trial runs ``asha.max_t`` epochs (the baseline)."""
    from ray.tune.schedulers import FIFOScheduler

    return _searcher(space, local_dir, _random_sampler(space)), FIFOScheduler()


def random_asha(space: SearchSpace, local_dir: Path) -> tuple[Any, Any]:
    """Seeded random sampling, ASHA stops the weak (what early stopping alone is worth): the same ASHA as tpe+asha."""
    return _searcher(space, local_dir, _random_sampler(space)), _asha(space, local_dir)


# name -> factory(space, local_dir) -> (searcher, scheduler)
ALGORITHMS: dict[str, Callable[[SearchSpace, Path], tuple[Any, Any]]] = {
    "tpe+asha": tpe_asha,
    "random": random_search,
    "random+asha": random_asha,
    "bohb": bohb,
}


# the algorithms whose scheduler keeps asha_state.json (checked by --resume)
WITH_ASHA = frozenset({"tpe+asha", "random+asha", "bohb"})


def build_algorithm(space: SearchSpace, local_dir: Path) -> tuple[Any, Any]:
    """Tune's (searcher, scheduler) for ``space.algorithm``, keeping their state under ``local_dir``."""
    try:
        factory = ALGORITHMS[space.algorithm]
    except KeyError:
        raise ValueError(f"unknown algorithm {space.algorithm!r}; allowed: {', '.join(ALGORITHMS)}") from None
    return factory(space, Path(local_dir))
