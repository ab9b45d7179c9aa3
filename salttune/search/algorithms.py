"""Search algorithms built: a :class:`~salttune.search.catalog.Algorithm` entry -> Tune's searcher and scheduler.

The entries (``ALGORITHMS``, one per name the space's ``algorithm:`` key takes) are declared in
:mod:`salttune.search.catalog`; this module builds them. :func:`build_algorithm` takes the validated space and the
search's local folder (``results/NAME``, where the searcher keeps its Optuna study and ASHA its state) and returns
Tune's ``search_alg`` and ``scheduler``. Importing this module imports no Ray or Optuna (the builders import them
inside), so ``salttune --help`` does not pay for them.

``--resume`` never calls a builder: Tune restores the searcher from its saved state and the scheduler from
``tuner.pkl`` (``ResumableASHA`` then reloads its rungs from ``asha_state.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from salttune.layout import SearchFiles
from salttune.search.catalog import ALGORITHMS, DEFAULT_ALGORITHM, Algorithm
from salttune.search.space import SearchSpace, rung_metric

__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHM", "Algorithm", "SAMPLERS", "build", "build_algorithm", "asha_scheduler", "rung_metric"]


def _tpe(space: SearchSpace, **options) -> Any:
    from salttune.search.sampler import tpe_sampler

    return tpe_sampler(space, **options)


def _random(space: SearchSpace, **options) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=space.seed, **options)


def _rung_tpe(space: SearchSpace, **options) -> Any:
    from salttune.search.rung_tpe import RungTPESampler, rungs_of
    from salttune.search.sampler import tpe_options

    a = space.asha
    return RungTPESampler(tpe_options(space, **options), rungs_of(a.grace_period, a.reduction_factor, a.max_t),
                          min_points=max(space.startup_trials, len(space.params) + 1))


# Algorithm.sampler -> builder(space, **Algorithm.options) -> an Optuna sampler
SAMPLERS: dict[str, Callable[..., Any]] = {
    "tpe": _tpe,  # seeded TPE, multivariate and grouped, with a constant liar (sampler.tpe_options)
    "random": _random,  # seeded random sampling
    "rung_tpe": _rung_tpe,  # TPE fitted on the highest rung with enough trials, as BOHB's model is
}


def asha_scheduler(space: SearchSpace, local_dir: Path, brackets: int = 1) -> Any:
    """The space's ASHA (``asha:`` settings, rungs comparing :func:`rung_metric`), keeping its state in
    ``local_dir/asha_state.json``; ``brackets > 1``: asynchronous Hyperband."""
    from salttune.search.asha import ResumableASHA

    metric, mode = rung_metric(space)
    return ResumableASHA(SearchFiles(local_dir).asha_state, metric=metric, mode=mode, max_t=space.asha.max_t,
                         grace_period=space.asha.grace_period, reduction_factor=space.asha.reduction_factor,
                         rung_score=space.asha.rung_score, brackets=brackets)


def build(algorithm: Algorithm, space: SearchSpace, local_dir: Path, *, study_on_disk: bool = True) -> tuple[Any, Any]:
    """Tune's (searcher, scheduler) that ``algorithm`` declares, for ``space``, keeping their state under ``local_dir``
    (also for entries outside ``ALGORITHMS``, such as a benchmark's variants). A space with a ``prior:`` gets the
    sampler wrapped in :class:`salttune.search.prior.PriorSampler` (whatever the algorithm). ``study_on_disk=False``
    keeps the Optuna study in memory (a benchmark's virtual clock; the draws are the same).

    Raises:
        ValueError: the entry's sampler is not in :data:`SAMPLERS`.
    """
    from salttune.search.prior import with_prior
    from salttune.search.sampler import make_searcher

    if algorithm.sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {algorithm.sampler!r}; allowed: {', '.join(SAMPLERS)}")
    local_dir = Path(local_dir)
    sampler = with_prior(SAMPLERS[algorithm.sampler](space, **algorithm.options), space)  # the space's prior: first, then around
    searcher = make_searcher(space, SearchFiles(local_dir).study if study_on_disk else None, sampler)
    if algorithm.stops_early:
        return searcher, asha_scheduler(space, local_dir, algorithm.brackets)
    from ray.tune.schedulers import FIFOScheduler

    return searcher, FIFOScheduler()


def build_algorithm(space: SearchSpace, local_dir: Path) -> tuple[Any, Any]:
    """Tune's (searcher, scheduler) for ``space.algorithm``, keeping their state under ``local_dir``.

    Raises:
        ValueError: the name is not in ``ALGORITHMS`` (the space's validation refuses it first).
    """
    try:
        algorithm = ALGORITHMS[space.algorithm]
    except KeyError:
        raise ValueError(f"unknown algorithm {space.algorithm!r}; allowed: {', '.join(ALGORITHMS)}") from None
    return build(algorithm, space, local_dir)
