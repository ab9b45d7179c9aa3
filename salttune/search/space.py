"""A search described in YAML: what to optimise, the budget, the resources, the data and the space itself.

Read once at the edge (:func:`load_space`) and validated completely there, before Ray starts: every
problem is one :class:`SalttuneError` line naming the file, the key and what is allowed. The parameter names
are the dotted keys of the training config (``optim.lr``, ``model.block``), so a sampled point is a set of
``--set`` overrides. The settings are a typed frozen dataclass (:class:`SearchSpace`) read by the same machinery
as the training config (:mod:`salttune.settings`); the ``space:`` section, its conditions and the define-by-run
sampling live in :mod:`salttune.search.params`. Neither module imports Ray or Optuna.

A space file::

    name: quick                     # results go to results/NAME/
    metric: val_score               # val_score | val_iou (max) or val_loss | train_loss (min)
    mode: max                       # optional: the metric's direction, the only value allowed
    trials: 10                      # trials sampled in all
    concurrent: 2                   # trials running at once
    seed: 0                         # seed of the TPE sampler
    startup_trials: 4               # random trials before TPE models the results
    max_failures: 1                 # retries of a failed trial (from its last checkpoint)
    stop_at: null                   # end the whole search once a trial's metric reaches this (null: run all)
    time_budget: null               # seconds (5400) or 90s, 45m, 2h, 1h30m: size the search to it and end on time
    algorithm: tpe+asha             # searcher + scheduler: tpe+asha, random, random+asha, bohb (search/catalog.py)
    asha: {max_t: 6, grace_period: 2, reduction_factor: 2}   # max_t is the epoch budget of a trial
    #   also rung_metric (what rungs compare; null: val_iou for val_score, else the metric) and rung_score (best so far | last)
    resources: {cpu: 1, gpu: 0.25}  # per trial; the GPU share is ignored on a machine without GPUs
    data: {folder: data/synth, val_fraction: 0.2, max_train_images: 400, split_seed: 0, holdout_fraction: 0.2}
    fixed: {model.base_width: 8, schedule.name: plateau}      # training-config keys, same for every trial
    space:
      optim.lr:       {loguniform: [1e-4, 1e-2]}   # YAML 1.2 floats: 1e-4 and 1.0e-4 are both numbers
      optim.name:     {choice: [adam, sgd]}
      optim.momentum: {uniform: [0.8, 0.99], when: {optim.name: sgd}}
      loss.name:      {choice: [bce, bce+lovasz, focal+dice]}
      loss.focal_gamma: {uniform: [0.5, 3.0], when: {loss.name: {has_term: focal}}}
      loss.weights:   {loguniform: [0.2, 5.0]}
      model.base_width: {int: [8, 32], step: 8}
    prior: {optim.lr: 3.0e-3, optim.name: sgd, optim.momentum: 0.9}   # optional: a configuration known to be good

Distributions: ``uniform: [lo, hi]``, ``loguniform: [lo, hi]``, ``int: [lo, hi]`` (``step``, ``log``), ``choice:
[values]``. ``when: {PARAM: VALUE | [VALUES] | {has_term: TERM}}`` makes a parameter conditional on a
``choice`` parameter (several entries: all must hold). ``loss.weights`` is special: it draws one relative
weight per term of a *combined* loss (``loss.weights.<term>``, the first term's weight is 1, since scaling
all weights only rescales the gradient), and nothing for a single-term loss.

``prior:`` (optional) names a configuration to start from, as ``--set`` keys of searched parameters (``loss.weights``
per term: ``loss.weights.dice``), each value one its distribution can take. The search trains it as its first trial
and then draws some trials around it, fewer and fewer (:mod:`salttune.search.prior`); a parameter it leaves out
takes the middle of its range (geometric for log ranges) or its middle choice; one whose ``when:`` is false under it
is not drawn.

Every key but ``space`` is optional; the defaults and ranges are the fields of
:class:`SearchSpace` below. ``--set`` takes a setting (``trials=4``, ``asha.max_t=3``), ``space.PARAM={...}``
(replacing that distribution), ``prior.PARAM=VALUE``, ``fixed.KEY=VALUE`` or a bare training-config key (``model.base_width=4``, into
``fixed``). ``epochs`` comes from ``asha.max_t``; the split keys (``val_fraction``, ``split_seed``,
``max_train_images``, ``holdout_fraction``, ``holdout_seed``, ``folds``, ``fold``) from ``data``.

``time_budget`` (or ``salttune search --time-budget``) replaces ``trials``, ``concurrent``, ``startup_trials``,
``asha.max_t`` and ``asha.grace_period`` by values sized to the budget from a measured first epoch (never a
larger ``max_t`` or ``grace_period``, nor more ``startup_trials``); see :mod:`salttune.search.budget`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path

import numpy as np

from salttune.config import TrainConfig, config_from_dict
from salttune.errors import SalttuneError
from salttune.split import SPLIT_KEYS
from salttune.search.catalog import ALGORITHMS, DEFAULT_ALGORITHM
from salttune.search.duration import parse_duration
from salttune.search.params import DISTRIBUTIONS, Param, param_to_dict, parse_params, parse_prior, suggest, trial_overrides
from salttune.settings import (allowed_keys, apply_overrides, build, coerce, flatten, key_error, like, nest, opt,
                               parse_set, read_yaml_mapping, to_dict)

__all__ = [
    "METRICS", "DISTRIBUTIONS", "Param", "Asha", "Resources", "DataSpec", "SearchSpace",
    "load_space", "apply_sets", "space_from_dict", "space_to_dict", "suggest", "trial_overrides", "trial_config",
    "rung_metric",
]

# Metrics a trial reports after every epoch, and the direction that is better.
METRICS = {"val_score": "max", "val_iou": "max", "val_loss": "min", "train_loss": "min"}
# Training-config keys a space may not search or fix -> the space setting that gives them to every trial.
RESERVED = {"epochs": "asha.max_t", **{k: f"data.{k}" for k in SPLIT_KEYS}}
SECTIONS = ("fixed", "space", "prior")  # top-level keys read here rather than by the settings machinery
WHAT = "key"  # messages read "FILE: key 'asha.max_t': ..."


@dataclass(frozen=True)
class Asha:
    max_t: int = opt(10, lo=1, hi=10000, doc="epochs of a trial that is never stopped")
    grace_period: int = opt(2, lo=1, hi=10000, doc="epochs before ASHA may stop a trial (at most max_t)")
    reduction_factor: float = opt(3.0, lo=1, lo_open=True, hi=100, doc="keep the best 1/rf at each rung")
    rung_metric: str | None = opt(None, choices=tuple(METRICS), doc="what ASHA (and TPE, for stopped trials) compares at a "
                                  "rung; null: val_iou for a val_score search (it ranks young trials better), else the metric")
    rung_score: str = opt("best", choices=("best", "last"), doc="a trial's best value so far at a rung, or its last epoch's")


@dataclass(frozen=True)
class Resources:
    cpu: float = opt(1.0, lo=0, lo_open=True, hi=1024, doc="CPUs per trial")
    gpu: float = opt(0.0, lo=0, hi=64, doc="a share of one GPU (0.25: four trials per GPU) or whole GPUs")


@dataclass(frozen=True)
class DataSpec:
    folder: str | None = opt(None, doc="the dataset folder (or --data DIR)")
    val_fraction: float = like(TrainConfig, "val_fraction")
    max_train_images: int | None = like(TrainConfig, "max_train_images", lo=2)  # a stratified subset, for quick searches
    split_seed: int = like(TrainConfig, "split_seed")  # every trial validates on the same images (and so does the ensemble)
    # Set aside before anything else: no trial trains or validates on it, no selection uses it; the ensemble's
    # headline score is on it. The shipped spaces hold out 20%.
    holdout_fraction: float = like(TrainConfig, "holdout_fraction")
    holdout_seed: int = like(TrainConfig, "holdout_seed")
    # Trials validate on fold `fold` of `folds` (one fold: cheap), so `salttune ensemble --refit-folds K` with the
    # same K retrains the other folds of the same partition.
    folds: int | None = like(TrainConfig, "folds")
    fold: int = like(TrainConfig, "fold")


@dataclass(frozen=True)
class SearchSpace:
    name: str = opt("search", doc="results go to results/NAME/ (default: the file's name)")
    metric: str = opt("val_score", choices=METRICS, doc="what the search optimises")
    mode: str = opt("max", choices=("max", "min"), doc="the metric's direction (the default; anything else is refused)")
    trials: int = opt(10, lo=1, hi=100000, doc="trials sampled in all")
    concurrent: int = opt(2, lo=1, hi=10000, doc="trials running at once")
    seed: int = opt(0, lo=0, doc="seed of the sampler")
    startup_trials: int = opt(5, lo=0, hi=100000, doc="random trials before TPE models the results")
    max_failures: int = opt(1, lo=0, hi=100, doc="retries of a failed trial (from its last checkpoint)")
    stop_at: float | None = opt(None, doc="end the whole search once a trial's metric reaches this; None: run all trials")
    time_budget: float | None = opt(None, lo=0, lo_open=True, doc="seconds the whole search may take (the file also takes "
                                    "90s, 45m, 2h, 1h30m); sizes trials, concurrency and asha to it; None: no budget")
    final_share: float = opt(0.6, lo=0.0, hi=0.9, doc="under a time budget: the share of the time after the ensemble's reserve "
                             "that trains the best configurations long on every non-holdout image (0: none, the "
                             "ensemble uses the top trials); see search.budget")
    final_min_epochs: int = opt(30, lo=1, hi=100000, doc="under a time budget: the epochs the final models get before "
                                "exploring gets any time (depth first); a budget too small for them and some exploring "
                                "trains the prior alone; see search.budget")
    algorithm: str = opt(DEFAULT_ALGORITHM, choices=ALGORITHMS, doc="searcher + scheduler, a key of search.catalog.ALGORITHMS")
    asha: Asha = field(default_factory=Asha)
    resources: Resources = field(default_factory=Resources)
    data: DataSpec = field(default_factory=DataSpec)
    # Read from `fixed:`, `space:` and `prior:` by space_from_dict, not by the settings machinery:
    fixed: dict = field(default_factory=dict)  # flat {training-config key: value}, the same for every trial
    params: tuple[Param, ...] = ()  # in sampling order: every parent before its children
    prior: dict = field(default_factory=dict)  # flat {searched key: value}, the first trial (params.parse_prior); {}: none
    source: str = ""  # the file it came from, for messages


# What ASHA's rungs compare when the space does not say (asha.rung_metric: null): val_iou for a val_score search. On the
# replay benchmark's recorded curves the best val_iou by epoch 2 ranks the final scores with Spearman 0.72, the
# competition score itself 0.42 (most young models predict empty masks, which that score rewards), and TPE + ASHA
# reached the harder target sooner with it on both surrogates (results/benchmarks/README.md, replay).
DEFAULT_RUNG_METRIC = {"val_score": "val_iou"}


def rung_metric(space: SearchSpace) -> tuple[str, str]:
    """(metric, mode) that ASHA's rungs (and the study's intermediate values) compare: ``asha.rung_metric``, else
    :data:`DEFAULT_RUNG_METRIC` of the search's metric, else the search's metric itself."""
    name = space.asha.rung_metric or DEFAULT_RUNG_METRIC.get(space.metric, space.metric)
    return name, (space.mode if name == space.metric else METRICS[name])


# -- reading -------------------------------------------------------------------------------------------

def load_space(path: str | Path, overrides: list[str] | tuple[str, ...] = (), data: str | None = None) -> SearchSpace:
    """Read, override (``--set``, ``--data``) and validate a space file. The edge of the search.

    Raises:
        SalttuneError: one line naming the file, the key and what is allowed.
    """
    path = Path(path)
    top = ", ".join([*to_dict(SearchSpace()), *SECTIONS])
    if path.is_dir():
        raise SalttuneError(f"{path}: is a folder; give the search space YAML file, such as search_spaces/quick.yaml")
    raw = read_yaml_mapping(path, "search space file does not exist; give a YAML file such as search_spaces/quick.yaml",
                            f"expected a mapping with keys {top}")
    if not raw:
        raise SalttuneError(f"{path}: the file is empty; expected a mapping with keys {top}")
    _refuse_training_config(path, raw)
    raw = apply_sets(raw, overrides)
    if data is not None:
        raw = apply_overrides(raw, {"data": {"folder": data}})
    return space_from_dict(raw, source=str(path), default_name=path.stem)


def _refuse_training_config(path: Path, raw: dict) -> None:
    """A training config given as ``--space`` (its keys are the training config's, and it has no ``space:``)."""
    train_top = {k.split(".")[0] for k in allowed_keys(TrainConfig)}
    space_top = set(to_dict(SearchSpace())) | set(SECTIONS)
    if "space" not in raw and any(k in train_top and k not in space_top for k in raw):
        raise SalttuneError(f"{path}: looks like a training config, not a search space (no 'space:' section); give a "
                            "space file such as search_spaces/quick.yaml, and put fixed training settings under its 'fixed:'")


def apply_sets(raw: dict, items: list[str] | tuple[str, ...]) -> dict:
    """``--set`` on a space: a setting (``trials=4``, ``asha.max_t=3``), ``space.PARAM={...}``, ``prior.PARAM=V``,
    ``fixed.KEY=V`` or a bare training-config key (``model.base_width=4``), which goes to ``fixed``."""
    settings, train_keys = allowed_keys(SearchSpace), allowed_keys(TrainConfig)
    sets: dict = {}
    under: dict[str, dict] = {name: {} for name in SECTIONS}  # each replaced whole, e.g. a distribution
    for item in items:
        key, value = parse_set(item)
        head, _, rest = key.partition(".")
        if key in settings:
            sets[key] = value
        elif head in under and rest:
            under[head][rest] = value
        elif key in train_keys:
            under["fixed"][key] = value
        else:
            raise SalttuneError(f"--set {item!r}: unknown key '{key}'; allowed: {', '.join(settings)}, space.PARAM, "
                                "prior.PARAM, fixed.KEY or a training-config key such as model.base_width")
    out = apply_overrides(raw, nest(sets))
    for head, values in under.items():
        if values:
            out[head] = {**(out.get(head) or {}), **values}
    return out


def space_from_dict(raw: dict, source: str = "<space>", default_name: str = "search") -> SearchSpace:
    """Validate a parsed space file (see the module docstring) and build a :class:`SearchSpace`."""
    try:
        return _space(raw, default_name, source)
    except SalttuneError as e:
        raise SalttuneError(f"{source}: {e}") from None


def _space(raw: dict, default_name: str, source: str) -> SearchSpace:
    if raw.get("time_budget") is not None:  # "2h" in the file: seconds for the settings machinery
        try:
            raw = {**raw, "time_budget": parse_duration(raw["time_budget"])}
        except ValueError as e:
            raise key_error("time_budget", str(e), WHAT) from None
    space = build(SearchSpace, {"name": default_name, **raw}, what=WHAT, extra=SECTIONS)
    name = space.name
    if not name or any(c in name for c in "/\\ ") or name.startswith("."):
        raise key_error("name", f"{name!r} is not a usable folder name; use letters, digits, '-' and '_'", WHAT)
    best = METRICS[space.metric]
    if "mode" not in raw:
        space = dataclasses.replace(space, mode=best)
    if space.mode != best:
        raise key_error("mode", f"{space.metric} is better when {'higher' if best == 'max' else 'lower'}; use mode: {best}", WHAT)
    coerce("asha.grace_period", space.asha.grace_period, int, {"lo": 1, "hi": space.asha.max_t}, WHAT)
    gpu = space.resources.gpu
    if gpu > 1 and gpu != int(gpu):
        raise key_error("resources.gpu", f"{gpu} mixes whole and shared GPUs; give a share below 1 or a whole number", WHAT)

    fixed_raw = raw.get("fixed") or {}
    if not isinstance(fixed_raw, dict):
        raise key_error("fixed", "expected a mapping of training-config keys to values, e.g. {model.base_width: 8}", WHAT)
    fixed = flatten(fixed_raw)
    for k in fixed:
        if k in RESERVED:
            raise key_error(f"fixed.{k}", f"set by the search; use {RESERVED[k]} instead", WHAT)

    def check(sampled: dict, key: str) -> None:
        try:
            _trial_config(space, fixed, sampled)
        except SalttuneError as e:
            raise key_error(key, str(e), WHAT) from None

    check({}, "fixed")
    params = parse_params(raw.get("space"), fixed, RESERVED, check)
    prior = parse_prior(raw.get("prior"), params, fixed)
    return dataclasses.replace(space, fixed=fixed, params=params, prior=prior, source=source)


def _trial_config(space: SearchSpace, fixed: dict, sampled: dict) -> TrainConfig:
    """Defaults, then the reserved keys from the space's settings, then ``fixed``, then the sampled values."""
    base = {key: attrgetter(setting)(space) for key, setting in RESERVED.items()}
    return config_from_dict(apply_overrides(nest({**base, **fixed}), nest(sampled)))


def trial_config(space: SearchSpace, params: dict, trial_number: int | None = None) -> TrainConfig:
    """The full, validated training config of one trial (``params`` as :func:`suggest` returns them).

    Each trial trains with its own seed (initial weights, data order, augmentation), so that the members of an
    ensemble are not all drawn from the same start: ``seed`` is derived from the search's seed
    (``space.seed``) and the trial's number. The same pair always gives the same seed, and a retried or resumed
    trial keeps its number, so it keeps its seed. A space that fixes the training seed (``fixed: {seed: 3}``,
    or ``--set fixed.seed=3``; a bare ``--set seed=3`` sets the search's own seed) or searches it keeps that
    value: the user asked for it.

    Args:
        trial_number: the Optuna trial number (``optuna_trial`` in the sampled point); ``None`` leaves ``seed``
            at the fixed value or the training config's default.
    """
    sampled = trial_overrides(space, params)
    if trial_number is not None and "seed" not in space.fixed and "seed" not in sampled:
        # numpy's SeedSequence hashes the pair into well-mixed entropy (its documented way to seed from several
        # numbers), so neighbouring trials and searches get unrelated seeds rather than seed+1; NumPy keeps
        # its output stable across versions (NEP 19), so a seed stays reproducible. One 32-bit word: torch,
        # numpy and random all take it.
        sampled = {**sampled, "seed": int(np.random.SeedSequence([space.seed, trial_number]).generate_state(1)[0])}
    try:
        return _trial_config(space, space.fixed, sampled)
    except SalttuneError as e:
        raise SalttuneError(f"{space.source}: sampled config is invalid: {e}") from None


def space_to_dict(space: SearchSpace) -> dict:
    """The resolved space as plain YAML-able data (written next to the results; read back on --resume)."""
    return {**to_dict(space), "fixed": dict(space.fixed), "space": {p.key: param_to_dict(p) for p in space.params},
            "prior": dict(space.prior)}
