"""A search described in YAML: what to optimise, the budget, the resources, the data and the space itself.

Read once at the edge (:func:`load_space`) and validated completely there, before Ray starts: every
problem is one :class:`SalttuneError` line naming the file, the key and what is allowed. The parameter names
are the dotted keys of the training config (``optim.lr``, ``model.block``), so a sampled point is a set of
``--set`` overrides. This module imports neither Ray nor Optuna; :func:`suggest` talks to any object with
Optuna's ``suggest_float`` / ``suggest_int`` / ``suggest_categorical`` methods (define-by-run).

A space file::

    name: quick                     # results go to results/NAME/
    metric: val_score               # val_score | val_iou (max) or val_loss | train_loss (min)
    trials: 10                      # trials sampled in all
    concurrent: 2                   # trials running at once
    seed: 0                         # seed of the TPE sampler
    startup_trials: 4               # random trials before TPE models the results
    max_failures: 1                 # retries of a failed trial (from its last checkpoint)
    stop_at: null                   # end the whole search once a trial's metric reaches this (null: run all)
    algorithm: tpe+asha             # searcher + scheduler: tpe+asha, random, random+asha (search/algorithms.py)
    asha: {max_t: 6, grace_period: 2, reduction_factor: 2}   # max_t is the epoch budget of a trial
    resources: {cpu: 1, gpu: 0.25}  # per trial; the GPU share is ignored on a machine without GPUs
    data: {folder: data/synth, val_fraction: 0.2, max_train_images: 400, split_seed: 0}
    fixed: {model.base_width: 8, schedule.name: plateau}      # training-config keys, same for every trial
    space:
      optim.lr:       {loguniform: [1.0e-4, 1.0e-2]}
      optim.name:     {choice: [adam, sgd]}
      optim.momentum: {uniform: [0.8, 0.99], when: {optim.name: sgd}}
      loss.name:      {choice: [bce, bce+lovasz, focal+dice]}
      loss.focal_gamma: {uniform: [0.5, 3.0], when: {loss.name: {has_term: focal}}}
      loss.weights:   {loguniform: [0.2, 5.0]}
      model.base_width: {int: [8, 32], step: 8}

Distributions: ``uniform: [lo, hi]``, ``loguniform: [lo, hi]``, ``int: [lo, hi]`` (``step``, ``log``), ``choice:
[values]``. ``when: {PARAM: VALUE | [VALUES] | {has_term: TERM}}`` makes a parameter conditional on a
``choice`` parameter (several entries: all must hold). ``loss.weights`` is special: it draws one relative
weight per term of a *combined* loss (``loss.weights.<term>``, the first term's weight is 1, since scaling
all weights only rescales the gradient), and nothing for a single-term loss.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from salttune.config import TrainConfig, allowed_keys, apply_overrides, config_from_dict, read_yaml_mapping
from salttune.errors import SalttuneError
from salttune.search.algorithms import ALGORITHMS, DEFAULT_ALGORITHM

__all__ = [
    "METRICS", "DISTRIBUTIONS", "Param", "Asha", "Resources", "DataSpec", "SearchSpace",
    "load_space", "space_from_dict", "space_to_dict", "suggest", "trial_overrides", "trial_config", "nest",
]

# Metrics a trial reports after every epoch, and the direction that is better.
METRICS = {"val_score": "max", "val_iou": "max", "val_loss": "min", "train_loss": "min"}
DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")
# Keys a space may not search or fix: the epoch budget belongs to ASHA, the split to the data section.
RESERVED = {"epochs": "asha.max_t", "val_fraction": "data.val_fraction", "max_train_images": "data.max_train_images",
            "split_seed": "data.split_seed"}
TOP_KEYS = ("name", "metric", "mode", "trials", "concurrent", "seed", "startup_trials", "max_failures", "stop_at",
            "algorithm", "asha", "resources", "data", "fixed", "space")
WEIGHTS = "loss.weights"


@dataclass(frozen=True)
class Param:
    """One searched training-config key. ``when``: (parent key, allowed parent values) pairs, all must hold."""

    key: str
    kind: str  # one of DISTRIBUTIONS
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple = ()
    when: tuple[tuple[str, tuple], ...] = ()


@dataclass(frozen=True)
class Asha:
    max_t: int = 10  # epochs of a trial that is never stopped
    grace_period: int = 2  # epochs before ASHA may stop a trial
    reduction_factor: float = 3.0  # keep the best 1/rf at each rung


@dataclass(frozen=True)
class Resources:
    cpu: float = 1.0
    gpu: float = 0.0  # a share of one GPU (0.25: four trials per GPU) or whole GPUs


@dataclass(frozen=True)
class DataSpec:
    folder: str | None = None
    val_fraction: float = 0.2
    max_train_images: int | None = None  # a stratified subset, for quick searches
    split_seed: int = 0  # every trial validates on the same images (and so does the ensemble)


@dataclass(frozen=True)
class SearchSpace:
    name: str
    metric: str = "val_score"
    mode: str = "max"
    trials: int = 10
    concurrent: int = 2
    seed: int = 0
    startup_trials: int = 5
    max_failures: int = 1
    stop_at: float | None = None  # the metric value that ends the whole search ("good enough"); None: run all trials
    algorithm: str = DEFAULT_ALGORITHM  # a key of salttune.search.algorithms.ALGORITHMS
    asha: Asha = field(default_factory=Asha)
    resources: Resources = field(default_factory=Resources)
    data: DataSpec = field(default_factory=DataSpec)
    fixed: dict = field(default_factory=dict)  # flat {dotted key: value}
    params: tuple[Param, ...] = ()  # in sampling order: every parent before its children
    source: str = ""  # the file it came from, for messages


# -- reading -------------------------------------------------------------------------------------------

def load_space(path: str | Path, overrides: list[str] | tuple[str, ...] = (), data: str | None = None) -> SearchSpace:
    """Read, override (``--set``, ``--data``) and validate a space file. The edge of the search.

    Raises:
        SalttuneError: one line naming the file, the key and what is allowed.
    """
    path = Path(path)
    raw = read_yaml_mapping(path, "search space file does not exist; give a YAML file such as search_spaces/quick.yaml",
                            f"expected a mapping with keys {', '.join(TOP_KEYS)}")
    if not raw:
        raise SalttuneError(f"{path}: the file is empty; expected a mapping with keys {', '.join(TOP_KEYS)}")
    raw = _apply_sets(raw, overrides, path)
    if data is not None:
        raw["data"] = {**(raw.get("data") or {}), "folder": data}
    return space_from_dict(raw, source=str(path), default_name=path.stem)


def _apply_sets(raw: dict, items: list[str] | tuple[str, ...], path: Path) -> dict:
    """``--set`` on a space: ``trials=4``, ``asha.max_t=3``, ``space.optim.lr={...}``, ``fixed.KEY=V`` or a bare
    training-config key (``model.base_width=4``), which goes to ``fixed``."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    train_keys = set(allowed_keys())
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SalttuneError(f"--set {item!r}: expected key=value, e.g. --set trials=4 or --set optim.lr=0.001")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        head, _, rest = key.partition(".")
        if head in ("asha", "resources", "data") and rest:
            out[head] = {**(out.get(head) or {}), rest: value}
        elif head in ("fixed", "space") and rest:
            out[head] = {**(out.get(head) or {}), rest: value}
        elif key in TOP_KEYS and key not in ("asha", "resources", "data", "fixed", "space"):
            out[key] = value
        elif key in train_keys:
            out["fixed"] = {**(out.get("fixed") or {}), key: value}
        else:
            raise SalttuneError(
                f"--set {item!r}: unknown key '{key}'; allowed: {', '.join(k for k in TOP_KEYS if k not in ('fixed', 'space'))}, "
                "asha.*, resources.*, data.*, space.PARAM, fixed.KEY or a training-config key such as model.base_width"
            )
    return out


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flatten(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def nest(flat: dict) -> dict:
    """``{"model.block": "se"}`` -> ``{"model": {"block": "se"}}``."""
    out: dict = {}
    for key, value in flat.items():
        node = out
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


class _Where:
    """Builds the one-line messages: ``FILE: key 'asha.max_t': ...``."""

    def __init__(self, source: str):
        self.source = source

    def __call__(self, key: str, problem: str) -> SalttuneError:
        return SalttuneError(f"{self.source}: key '{key}': {problem}")


def _section(raw: dict, name: str, cls, err: _Where) -> dict:
    value = raw.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise err(name, f"expected a mapping of {', '.join(f.name for f in dataclasses.fields(cls))}")
    allowed = [f.name for f in dataclasses.fields(cls)]
    for k in value:
        if k not in allowed:
            raise err(f"{name}.{k}", f"unknown key; allowed: {', '.join(allowed)}")
    return value


def _number(value: Any, key: str, err: _Where, *, integer: bool = False, lo: float | None = None,
            hi: float | None = None, lo_open: bool = False, none_ok: bool = False):
    if value is None and none_ok:
        return None
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or (isinstance(value, float) and not math.isfinite(value)):
        raise err(key, f"{value!r} is not {kind}")
    if (lo is not None and (value <= lo if lo_open else value < lo)) or (hi is not None and value > hi):
        low = f"({lo}" if lo_open else f"[{lo}"
        raise err(key, f"{value!r} is out of range; allowed: {low if lo is not None else '(-inf'}, {hi if hi is not None else 'inf'}]")
    return value if integer else float(value)


def space_from_dict(raw: dict, source: str = "<space>", default_name: str = "search") -> SearchSpace:
    """Validate a parsed space file (see the module docstring) and build a :class:`SearchSpace`."""
    err = _Where(source)
    for k in raw:
        if k not in TOP_KEYS:
            raise err(str(k), f"unknown key; allowed: {', '.join(TOP_KEYS)}")
    name = raw.get("name", default_name)
    if not isinstance(name, str) or not name or any(c in name for c in "/\\ ") or name.startswith("."):
        raise err("name", f"{name!r} is not a usable folder name; use letters, digits, '-' and '_'")
    metric = raw.get("metric", "val_score")
    if metric not in METRICS:
        raise err("metric", f"unknown metric {metric!r}; allowed: {', '.join(METRICS)}")
    mode = raw.get("mode", METRICS[metric])
    if mode not in ("max", "min"):
        raise err("mode", f"{mode!r} is not a mode; allowed: max, min")
    if mode != METRICS[metric]:
        raise err("mode", f"{metric} is better when {'higher' if METRICS[metric] == 'max' else 'lower'}; use mode: {METRICS[metric]}")

    algorithm = raw.get("algorithm", DEFAULT_ALGORITHM)
    if algorithm not in ALGORITHMS:
        raise err("algorithm", f"unknown algorithm {algorithm!r}; allowed: {', '.join(ALGORITHMS)}")
    a = _section(raw, "asha", Asha, err)
    max_t = _number(a.get("max_t", Asha.max_t), "asha.max_t", err, integer=True, lo=1, hi=10000)
    grace = _number(a.get("grace_period", Asha.grace_period), "asha.grace_period", err, integer=True, lo=1, hi=max_t)
    rf = _number(a.get("reduction_factor", Asha.reduction_factor), "asha.reduction_factor", err, lo=1, lo_open=True, hi=100)
    r = _section(raw, "resources", Resources, err)
    res = Resources(cpu=_number(r.get("cpu", 1), "resources.cpu", err, lo=0, lo_open=True, hi=1024),
                    gpu=_number(r.get("gpu", 0), "resources.gpu", err, lo=0, hi=64))
    if res.gpu > 1 and res.gpu != int(res.gpu):
        raise err("resources.gpu", f"{res.gpu} mixes whole and shared GPUs; give a share below 1 or a whole number")
    d = _section(raw, "data", DataSpec, err)
    folder = d.get("folder")
    if folder is not None and not isinstance(folder, str):
        raise err("data.folder", f"{folder!r} is not a path")
    data = DataSpec(folder=folder,
                    val_fraction=_number(d.get("val_fraction", 0.2), "data.val_fraction", err, lo=0.01, hi=0.9),
                    max_train_images=_number(d.get("max_train_images"), "data.max_train_images", err, integer=True, lo=2, none_ok=True),
                    split_seed=_number(d.get("split_seed", 0), "data.split_seed", err, integer=True, lo=0))

    fixed_raw = raw.get("fixed") or {}
    if not isinstance(fixed_raw, dict):
        raise err("fixed", "expected a mapping of training-config keys to values, e.g. {model.base_width: 8}")
    fixed = _flatten(fixed_raw)
    for k in fixed:
        if k in RESERVED:
            raise err(f"fixed.{k}", f"set by the search; use {RESERVED[k]} instead")
    _check_config(fixed, {}, max_t, data, lambda msg: err("fixed", msg))

    params = _params(raw.get("space"), fixed, max_t, data, err)
    space = SearchSpace(
        name=name, metric=metric, mode=mode,
        trials=_number(raw.get("trials", 10), "trials", err, integer=True, lo=1, hi=100000),
        concurrent=_number(raw.get("concurrent", 2), "concurrent", err, integer=True, lo=1, hi=10000),
        seed=_number(raw.get("seed", 0), "seed", err, integer=True, lo=0),
        startup_trials=_number(raw.get("startup_trials", 5), "startup_trials", err, integer=True, lo=0, hi=100000),
        max_failures=_number(raw.get("max_failures", 1), "max_failures", err, integer=True, lo=0, hi=100),
        stop_at=_number(raw.get("stop_at"), "stop_at", err, none_ok=True), algorithm=algorithm,
        asha=Asha(max_t, grace, rf), resources=res, data=data, fixed=fixed, params=params, source=source,
    )
    return space


def _check_config(fixed: dict, sampled: dict, max_t: int, data: DataSpec, fail) -> TrainConfig:
    """Build the training config a trial would get; a config error becomes ``fail(message)``."""
    try:
        return config_from_dict(_config_dict(fixed, sampled, max_t, data))
    except SalttuneError as e:
        raise fail(str(e)) from None


def _config_dict(fixed: dict, sampled: dict, max_t: int, data: DataSpec) -> dict:
    base = {"epochs": max_t, "val_fraction": data.val_fraction, "max_train_images": data.max_train_images,
            "split_seed": data.split_seed}
    return apply_overrides(nest({**base, **fixed}), nest(sampled))


def _field_type(key: str) -> Any:
    """The annotated type of a dotted training-config key, Optional unwrapped: ``optim.lr`` -> float."""
    cls: Any = TrainConfig
    for part in key.split("."):
        cls = typing.get_type_hints(cls)[part]
    args = [a for a in typing.get_args(cls) if a is not type(None)]
    return args[0] if typing.get_origin(cls) in (typing.Union, types.UnionType) and len(args) == 1 else cls


def _params(space_raw: Any, fixed: dict, max_t: int, data: DataSpec, err: _Where) -> tuple[Param, ...]:
    if not isinstance(space_raw, dict) or not space_raw:
        raise err("space", "expected a mapping of training-config keys to distributions, e.g. {optim.lr: {loguniform: [1.0e-4, 1.0e-2]}}")
    keys = set(allowed_keys())
    parsed: dict[str, Param] = {}
    for key, spec in space_raw.items():
        where = f"space.{key}"
        if key in RESERVED:
            raise err(where, f"cannot be searched; it is set by {RESERVED[key]}")
        if key not in keys:
            raise err(where, f"unknown parameter; allowed: {', '.join(k for k in sorted(keys) if k not in RESERVED)}")
        if key in fixed:
            raise err(where, f"is also under fixed; keep it in one place")
        parsed[key] = _param(key, spec, where, err)

    for p in parsed.values():  # conditions: on a choice parameter of this space, with values it can take
        when = []
        for parent, allowed in p.when:
            where = f"space.{p.key}.when.{parent}"
            if parent not in parsed:
                names = [q.key for q in parsed.values() if q.kind == "choice"]
                raise err(where, f"condition on '{parent}', which is not a parameter of this space; allowed: {', '.join(names) or 'none (add a choice parameter)'}")
            q = parsed[parent]
            if q.kind != "choice":
                raise err(where, f"'{parent}' is a {q.kind} parameter; conditions need a choice parameter")
            if isinstance(allowed, dict):  # {has_term: focal}
                term = allowed.get("has_term")
                if parent != "loss.name" or set(allowed) != {"has_term"}:
                    raise err(where, "a mapping condition must be {has_term: TERM} on loss.name")
                allowed = tuple(c for c in q.choices if term in str(c).split("+"))
                if not allowed:
                    raise err(where, f"no choice of loss.name has the term {term!r}; choices: {', '.join(map(str, q.choices))}")
            bad = [v for v in allowed if v not in q.choices]
            if bad:
                raise err(where, f"{bad[0]!r} is not a choice of '{parent}'; allowed: {', '.join(map(str, q.choices))}")
            when.append((parent, tuple(allowed)))
        parsed[p.key] = dataclasses.replace(p, when=tuple(when))

    ordered = _order(parsed, err)
    for p in ordered:  # every value a parameter can take must make a valid training config
        values = list(p.choices) if p.kind == "choice" else [p.low, p.high]
        for v in values:
            if p.key == WEIGHTS:
                continue  # per-term weights are checked by range only
            _check_config(fixed, {p.key: list(v) if isinstance(v, tuple) else v}, max_t, data,
                          lambda msg, p=p: err(f"space.{p.key}", msg))
    if WEIGHTS in parsed and "loss.name" not in parsed and len(str(fixed.get("loss.name", TrainConfig().loss.name)).split("+")) < 2:
        raise err(f"space.{WEIGHTS}", "the loss has a single term, so there are no weights to search; search loss.name or remove loss.weights")
    return tuple(ordered)


def _param(key: str, spec: Any, where: str, err: _Where) -> Param:
    if not isinstance(spec, dict):
        raise err(where, f"expected a distribution such as {{uniform: [0.1, 0.9]}}; allowed: {', '.join(DISTRIBUTIONS)}")
    kinds = [k for k in spec if k in DISTRIBUTIONS]
    extra = [k for k in spec if k not in DISTRIBUTIONS and k not in ("when", "step", "log")]
    if extra:
        raise err(where, f"unknown distribution {extra[0]!r}; allowed: {', '.join(DISTRIBUTIONS)} (with optional when, step, log)")
    if len(kinds) != 1:
        raise err(where, f"give exactly one distribution; allowed: {', '.join(DISTRIBUTIONS)}")
    kind, args = kinds[0], spec[kinds[0]]
    when = spec.get("when") or {}
    if not isinstance(when, dict):
        raise err(f"{where}.when", "expected a mapping {PARAMETER: VALUE or [VALUES]}")
    when_t = tuple((str(k), v if isinstance(v, dict) else tuple(v) if isinstance(v, list) else (v,)) for k, v in when.items())
    tp = _field_type(key)
    if key == WEIGHTS:
        tp = float
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise err(where, "choice needs a non-empty list of values, e.g. {choice: [adam, sgd]}")
        choices = tuple(tuple(v) if isinstance(v, list) else v for v in args)
        if len(set(map(repr, choices))) != len(choices):
            raise err(where, "choice values repeat; list each once")
        if "step" in spec or "log" in spec:
            raise err(where, "step and log apply to int, uniform and loguniform, not choice")
        if key == WEIGHTS:
            raise err(where, "loss.weights takes uniform or loguniform (one relative weight per term)")
        return Param(key, kind, choices=choices, when=when_t)
    if not (isinstance(args, list) and len(args) == 2 and all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)):
        raise err(where, f"{kind} needs [low, high], two numbers")
    lo, hi = args
    if not lo < hi:
        raise err(where, f"low {lo} must be below high {hi}")
    if kind == "int":
        if tp is not int:
            raise err(where, f"'{key}' is not an integer setting; use uniform or loguniform")
        if not (isinstance(lo, int) and isinstance(hi, int)):
            raise err(where, "int needs integer bounds")
        step = spec.get("step", 1)
        if not isinstance(step, int) or isinstance(step, bool) or step < 1:
            raise err(f"{where}.step", f"{step!r} is not a positive integer")
        log = spec.get("log", False)
        if not isinstance(log, bool) or (log and (lo < 1 or step != 1)):
            raise err(f"{where}.log", "log needs true/false, low >= 1 and step 1")
        return Param(key, kind, lo, hi, step, log, when=when_t)
    if tp is not float:
        allowed = "int or choice" if tp is int else "choice"
        raise err(where, f"'{key}' is not a real-valued setting; use {allowed}")
    if "log" in spec:
        raise err(where, "use loguniform instead of log: true")
    if kind == "loguniform" and lo <= 0:
        raise err(where, f"loguniform needs low > 0, got {lo}")
    step = spec.get("step")
    if step is not None and (kind == "loguniform" or not isinstance(step, (int, float)) or isinstance(step, bool) or step <= 0):
        raise err(f"{where}.step", "step needs a positive number and a uniform distribution")
    return Param(key, kind, float(lo), float(hi), step, kind == "loguniform", when=when_t)


def _order(parsed: dict[str, Param], err: _Where) -> list[Param]:
    """Parents before children (file order otherwise); ``loss.weights`` after ``loss.name``."""
    def parents(p: Param) -> set[str]:
        deps = {k for k, _ in p.when}
        return deps | ({"loss.name"} & set(parsed) if p.key == WEIGHTS else set())

    done: list[Param] = []
    todo = list(parsed.values())
    while todo:
        ready = [p for p in todo if parents(p) <= {q.key for q in done}]
        if not ready:
            raise err(f"space.{todo[0].key}.when", f"conditions form a cycle among {', '.join(p.key for p in todo)}")
        done += ready
        todo = [p for p in todo if p not in ready]
    return done


# -- sampling -------------------------------------------------------------------------------------------

def _label(v: Any) -> Any:
    """Optuna's categorical values are scalars; a list choice (``augment.names``) travels as 'a+b'."""
    return "+".join(map(str, v)) if isinstance(v, tuple) else v


def suggest(space: SearchSpace, trial: Any) -> dict:
    """Draw one point, define-by-run: inactive conditional parameters are not drawn at all.

    Args:
        trial: an ``optuna.Trial`` (or anything with its ``suggest_*`` methods).

    Returns:
        ``{dotted key: value}``, as Optuna recorded it (list choices as 'a+b', weights per term).
    """
    drawn: dict[str, Any] = {}
    for p in space.params:
        if not all(parent in drawn and drawn[parent] in tuple(map(_label, allowed)) for parent, allowed in p.when):
            continue
        if p.key == WEIGHTS:
            terms = str(drawn.get("loss.name", space.fixed.get("loss.name", TrainConfig().loss.name))).split("+")
            for term in terms[1:]:
                name = f"{WEIGHTS}.{term}"
                drawn[name] = trial.suggest_float(name, p.low, p.high, log=p.log, step=p.step)
        elif p.kind == "choice":
            drawn[p.key] = trial.suggest_categorical(p.key, [_label(c) for c in p.choices])
        elif p.kind == "int":
            drawn[p.key] = trial.suggest_int(p.key, p.low, p.high, step=p.step, log=p.log)
        else:
            drawn[p.key] = trial.suggest_float(p.key, p.low, p.high, log=p.log, step=p.step)
    return drawn


def trial_overrides(space: SearchSpace, params: dict) -> dict:
    """Sampled values (as :func:`suggest` returns them) -> flat training-config overrides."""
    by_key = {p.key: p for p in space.params}
    out: dict[str, Any] = {}
    for key, value in params.items():
        p = by_key.get(key)
        if p is not None and p.kind == "choice":
            value = next((list(c) if isinstance(c, tuple) else c for c in p.choices if _label(c) == value), value)
        if p is not None:
            out[key] = value
    if any(k.startswith(WEIGHTS + ".") for k in params):
        terms = str(out.get("loss.name", space.fixed.get("loss.name", TrainConfig().loss.name))).split("+")
        out[WEIGHTS] = [1.0] + [float(params[f"{WEIGHTS}.{t}"]) for t in terms[1:]]
    return out


def trial_config(space: SearchSpace, params: dict) -> TrainConfig:
    """The full, validated training config of one trial: defaults, then ``fixed``, then the sampled values."""
    return _check_config(space.fixed, trial_overrides(space, params), space.asha.max_t, space.data,
                         lambda msg: SalttuneError(f"{space.source}: sampled config is invalid: {msg}"))


def space_to_dict(space: SearchSpace) -> dict:
    """The resolved space as plain YAML-able data (written next to the results; read back on --resume)."""
    def param(p: Param) -> dict:
        d: dict[str, Any] = {p.kind: [list(c) if isinstance(c, tuple) else c for c in p.choices] if p.kind == "choice" else [p.low, p.high]}
        if p.step is not None and not (p.kind == "int" and p.step == 1):
            d["step"] = p.step
        if p.kind == "int" and p.log:
            d["log"] = True
        if p.when:
            d["when"] = {k: list(v) for k, v in p.when}
        return d

    return {
        "name": space.name, "metric": space.metric, "mode": space.mode, "trials": space.trials,
        "concurrent": space.concurrent, "seed": space.seed, "startup_trials": space.startup_trials,
        "max_failures": space.max_failures, "stop_at": space.stop_at, "algorithm": space.algorithm, "asha": dataclasses.asdict(space.asha),
        "resources": dataclasses.asdict(space.resources), "data": dataclasses.asdict(space.data),
        "fixed": dict(space.fixed), "space": {p.key: param(p) for p in space.params},
    }
