"""Each search algorithm builds the searcher and scheduler its entry declares (``salttune.search.catalog``,
``salttune.search.algorithms``)."""

import dataclasses
import pickle
import subprocess
import sys

import pytest

from search_fixtures import space_yaml
from salttune.errors import SalttuneError
from salttune.search.algorithms import ALGORITHMS, SAMPLERS, Algorithm, build, build_algorithm
from salttune.search.resume import check_asha
from salttune.search.space import load_space

SPACE = "  optim.lr: {loguniform: [1.0e-3, 1.0e-2]}\n  model.block: {choice: [plain, se]}"


@pytest.fixture
def space(tmp_path):
    return load_space(space_yaml(tmp_path, "algo", SPACE, max_t=4, grace=1, seed=3))


def test_importing_the_algorithms_imports_no_ray():
    code = "import sys, salttune.search.algorithms; assert 'ray' not in sys.modules and 'optuna' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("name, sampler, early_stopping", [
    ("tpe+asha", "TPESampler", True), ("random", "RandomSampler", False), ("random+asha", "RandomSampler", True),
    ("bohb", "RungTPESampler", True)])
def test_each_algorithm_builds_its_searcher_and_scheduler(space, tmp_path, name, sampler, early_stopping):
    from ray.tune.schedulers import FIFOScheduler

    from salttune.search.asha import ResumableASHA
    from salttune.search.sampler import PruneAwareOptunaSearch

    (tmp_path / name).mkdir()  # salttune search creates results/NAME first
    searcher, scheduler = build_algorithm(dataclasses.replace(space, algorithm=name), tmp_path / name)
    assert isinstance(searcher, PruneAwareOptunaSearch) and type(searcher.study.sampler).__name__ == sampler
    assert (searcher.metric, searcher.mode, searcher.study.study_name) == ("val_score", "max", "algo")
    assert (tmp_path / name / "optuna.db").is_file()  # the study lives in the search's folder
    if early_stopping:
        assert isinstance(scheduler, ResumableASHA) and sorted(scheduler.rungs) == [1, 2, 4]  # grace 1, factor 2, up to max_t 4
        assert scheduler._state_path == str(tmp_path / name / "asha_state.json")
    else:
        assert type(scheduler) is FIFOScheduler  # every trial runs max_t epochs
    pickle.loads(pickle.dumps(scheduler))  # Tune keeps the scheduler in tuner.pkl for --resume
    searcher.save(str(tmp_path / "searcher.pkl"))  # and the searcher in its experiment state
    resumed, _ = build_algorithm(dataclasses.replace(space, algorithm=name), tmp_path / name)
    resumed.restore(str(tmp_path / "searcher.pkl"))
    assert type(resumed.study.sampler).__name__ == sampler


def test_random_sampling_is_seeded_and_covers_the_space(space, tmp_path):
    def draws(seed: int, folder: str) -> list[dict]:
        (tmp_path / folder).mkdir()
        searcher, _ = build_algorithm(dataclasses.replace(space, algorithm="random", seed=seed), tmp_path / folder)
        return [searcher.suggest(f"t{i}") for i in range(12)]

    first, again, other = draws(3, "a"), draws(3, "b"), draws(4, "c")
    assert first == again and first != other  # the space's seed fixes the draws
    assert [c["optuna_trial"] for c in first] == list(range(12))
    assert {c["model.block"] for c in first} == {"plain", "se"}
    assert all(1e-3 <= c["optim.lr"] <= 1e-2 for c in first)


def test_an_unknown_algorithm_names_the_valid_ones(space, tmp_path):
    with pytest.raises(ValueError, match="unknown algorithm 'dehb'; allowed: tpe\\+asha, random, random\\+asha"):
        build_algorithm(dataclasses.replace(space, algorithm="dehb"), tmp_path)
    assert set(ALGORITHMS) >= {"tpe+asha", "random", "random+asha", "bohb"}


def test_every_entry_names_a_sampler_and_a_scheduler(space, tmp_path):
    for name, algorithm in ALGORITHMS.items():
        assert algorithm.sampler in SAMPLERS and algorithm.doc, name
    assert {n for n, a in ALGORITHMS.items() if a.stops_early} == {"tpe+asha", "random+asha", "bohb"}
    for bad in [dict(scheduler="hyperband"), dict(scheduler="asha", brackets=0), dict(scheduler="fifo", brackets=2)]:
        with pytest.raises(ValueError, match="scheduler"):
            Algorithm("tpe", **bad)
    with pytest.raises(ValueError, match="unknown sampler 'cmaes'; allowed: tpe, random, rung_tpe"):
        build(Algorithm("cmaes", "fifo"), space, tmp_path)


def test_adding_an_algorithm_is_one_entry(tmp_path, monkeypatch):
    """The space accepts the new name, build_algorithm builds it, and --resume checks its ASHA state: no other list."""
    from salttune.search.asha import ResumableASHA

    monkeypatch.setitem(ALGORITHMS, "tpe+hyperband", Algorithm("tpe", "asha", brackets=2, options={"n_ei_candidates": 7},
                                                               doc="TPE with asynchronous Hyperband"))
    monkeypatch.setitem(ALGORITHMS, "tpe+fifo", Algorithm("tpe", "fifo", doc="TPE, no early stopping"))
    space = load_space(space_yaml(tmp_path, "hb", SPACE, max_t=4, grace=1, algorithm="tpe+hyperband"))
    assert space.algorithm == "tpe+hyperband"
    (tmp_path / "hb").mkdir()
    searcher, scheduler = build_algorithm(space, tmp_path / "hb")
    assert type(searcher.study.sampler).__name__ == "TPESampler" and searcher.study.sampler._n_ei_candidates == 7
    assert isinstance(scheduler, ResumableASHA) and len(scheduler._brackets) == 2
    with pytest.raises(SalttuneError, match="asha_state.json: the search's ASHA state .* is missing"):
        check_asha(tmp_path / "hb", space, top_epoch=1)  # a trial passed the first rung, so ASHA must have saved
    check_asha(tmp_path / "hb", dataclasses.replace(space, algorithm="tpe+fifo"), top_epoch=1)  # no ASHA, nothing to check
    with pytest.raises(SalttuneError, match="key 'algorithm': unknown value 'dehb'; allowed: tpe\\+asha, .*tpe\\+hyperband"):
        load_space(space_yaml(tmp_path, "d", SPACE, algorithm="dehb"))
