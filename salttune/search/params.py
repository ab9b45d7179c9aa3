"""The ``space:`` section of a search-space file: parameter distributions, their ``when:`` conditions, the values a
``prior:`` may give them, and define-by-run sampling. The file format is documented in :mod:`salttune.search.space`.

Imports neither Ray nor Optuna: :func:`suggest` talks to any object with Optuna's ``suggest_float`` /
``suggest_int`` / ``suggest_categorical`` methods.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

from salttune.config import TrainConfig
from salttune.errors import SalttuneError
from salttune.settings import allowed_keys, field_type, flatten, key_error

__all__ = ["DISTRIBUTIONS", "WEIGHTS", "Param", "parse_params", "parse_prior", "param_to_dict", "suggest", "trial_overrides"]

DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")
WEIGHTS = "loss.weights"  # searched as one relative weight per term of a combined loss


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


def _bad(key: str, problem: str) -> SalttuneError:
    return key_error(key, problem, what="key")


def _default_loss() -> str:
    return TrainConfig().loss.name


# -- reading --------------------------------------------------------------------------------------------

def parse_params(space_raw: Any, fixed: dict, reserved: dict[str, str], check: Callable[[dict, str], Any]) -> tuple[Param, ...]:
    """Validate the ``space:`` mapping and return its parameters, every parent before its children.

    Args:
        fixed: the space's flat fixed training-config keys (a key may not be both fixed and searched).
        reserved: training-config keys the space sets elsewhere -> where (they may not be searched).
        check: ``check(sampled, key)`` raises when ``sampled`` overrides make an invalid training config.
    """
    if not isinstance(space_raw, dict) or not space_raw:
        raise _bad("space", "expected a mapping of training-config keys to distributions, e.g. {optim.lr: {loguniform: [1.0e-4, 1.0e-2]}}")
    keys = allowed_keys(TrainConfig)
    parsed: dict[str, Param] = {}
    for key, spec in space_raw.items():
        where = f"space.{key}"
        if key in reserved:
            raise _bad(where, f"cannot be searched; it is set by {reserved[key]}")
        if key not in keys:
            raise _bad(where, f"unknown parameter; allowed: {', '.join(k for k in sorted(keys) if k not in reserved)}")
        if key in fixed:
            raise _bad(where, "is also under fixed; keep it in one place")
        parsed[key] = _param(key, spec, where)
    for p in parsed.values():
        parsed[p.key] = dataclasses.replace(p, when=tuple(_condition(p, parent, allowed, parsed) for parent, allowed in p.when))

    ordered = _order(parsed)
    for p in ordered:  # every value a parameter can take must make a valid training config
        if p.key != WEIGHTS:  # per-term weights are checked by range only
            for v in list(p.choices) if p.kind == "choice" else [p.low, p.high]:
                check({p.key: list(v) if isinstance(v, tuple) else v}, f"space.{p.key}")
    if WEIGHTS in parsed and "loss.name" not in parsed and len(str(fixed.get("loss.name", _default_loss())).split("+")) < 2:
        raise _bad(f"space.{WEIGHTS}", "the loss has a single term, so there are no weights to search; search loss.name or remove loss.weights")
    return tuple(ordered)


def _condition(p: Param, parent: str, allowed: Any, parsed: dict[str, Param]) -> tuple[str, tuple]:
    """One ``when:`` entry, checked: on a choice parameter of this space, with values it can take."""
    where = f"space.{p.key}.when.{parent}"
    if parent not in parsed:
        names = [q.key for q in parsed.values() if q.kind == "choice"]
        raise _bad(where, f"condition on '{parent}', which is not a parameter of this space; allowed: {', '.join(names) or 'none (add a choice parameter)'}")
    q = parsed[parent]
    if q.kind != "choice":
        raise _bad(where, f"'{parent}' is a {q.kind} parameter; conditions need a choice parameter")
    if isinstance(allowed, dict):  # {has_term: focal}
        term = allowed.get("has_term")
        if parent != "loss.name" or set(allowed) != {"has_term"}:
            raise _bad(where, "a mapping condition must be {has_term: TERM} on loss.name")
        allowed = tuple(c for c in q.choices if term in str(c).split("+"))
        if not allowed:
            raise _bad(where, f"no choice of loss.name has the term {term!r}; choices: {', '.join(map(str, q.choices))}")
    bad = [v for v in allowed if v not in q.choices]
    if bad:
        raise _bad(where, f"{bad[0]!r} is not a choice of '{parent}'; allowed: {', '.join(map(str, q.choices))}")
    return parent, tuple(allowed)


def _param(key: str, spec: Any, where: str) -> Param:
    if not isinstance(spec, dict):
        raise _bad(where, f"expected a distribution such as {{uniform: [0.1, 0.9]}}; allowed: {', '.join(DISTRIBUTIONS)}")
    kinds = [k for k in spec if k in DISTRIBUTIONS]
    extra = [k for k in spec if k not in DISTRIBUTIONS and k not in ("when", "step", "log")]
    if extra:
        raise _bad(where, f"unknown distribution {extra[0]!r}; allowed: {', '.join(DISTRIBUTIONS)} (with optional when, step, log)")
    if len(kinds) != 1:
        raise _bad(where, f"give exactly one distribution; allowed: {', '.join(DISTRIBUTIONS)}")
    kind, args = kinds[0], spec[kinds[0]]
    when = spec.get("when") or {}
    if not isinstance(when, dict):
        raise _bad(f"{where}.when", "expected a mapping {PARAMETER: VALUE or [VALUES]}")
    when_t = tuple((str(k), v if isinstance(v, dict) else tuple(v) if isinstance(v, list) else (v,)) for k, v in when.items())
    tp = float if key == WEIGHTS else field_type(TrainConfig, key)
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise _bad(where, "choice needs a non-empty list of values, e.g. {choice: [adam, sgd]}")
        choices = tuple(tuple(v) if isinstance(v, list) else v for v in args)
        if len(set(map(repr, choices))) != len(choices):
            raise _bad(where, "choice values repeat; list each once")
        if "step" in spec or "log" in spec:
            raise _bad(where, "step and log apply to int, uniform and loguniform, not choice")
        if key == WEIGHTS:
            raise _bad(where, "loss.weights takes uniform or loguniform (one relative weight per term)")
        return Param(key, kind, choices=choices, when=when_t)
    if not (isinstance(args, list) and len(args) == 2 and all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)):
        raise _bad(where, f"{kind} needs [low, high], two numbers")
    lo, hi = args
    if not lo < hi:
        raise _bad(where, f"low {lo} must be below high {hi}")
    if kind == "int":
        if tp is not int:
            raise _bad(where, f"'{key}' is not an integer setting; use uniform or loguniform")
        if not (isinstance(lo, int) and isinstance(hi, int)):
            raise _bad(where, "int needs integer bounds")
        step = spec.get("step", 1)
        if not isinstance(step, int) or isinstance(step, bool) or step < 1:
            raise _bad(f"{where}.step", f"{step!r} is not a positive integer")
        log = spec.get("log", False)
        if not isinstance(log, bool) or (log and (lo < 1 or step != 1)):
            raise _bad(f"{where}.log", "log needs true/false, low >= 1 and step 1")
        return Param(key, kind, lo, hi, step, log, when=when_t)
    if tp is not float:
        raise _bad(where, f"'{key}' is not a real-valued setting; use {'int or choice' if tp is int else 'choice'}")
    if "log" in spec:
        raise _bad(where, "use loguniform instead of log: true")
    if kind == "loguniform" and lo <= 0:
        raise _bad(where, f"loguniform needs low > 0, got {lo}")
    step = spec.get("step")
    if step is not None and (kind == "loguniform" or not isinstance(step, (int, float)) or isinstance(step, bool) or step <= 0):
        raise _bad(f"{where}.step", "step needs a positive number and a uniform distribution")
    return Param(key, kind, float(lo), float(hi), step, kind == "loguniform", when=when_t)


def _order(parsed: dict[str, Param]) -> list[Param]:
    """Parents before children (file order otherwise); ``loss.weights`` after ``loss.name``."""
    def parents(p: Param) -> set[str]:
        deps = {k for k, _ in p.when}
        return deps | ({"loss.name"} & set(parsed) if p.key == WEIGHTS else set())

    done: list[Param] = []
    todo = list(parsed.values())
    while todo:
        ready = [p for p in todo if parents(p) <= {q.key for q in done}]
        if not ready:
            raise _bad(f"space.{todo[0].key}.when", f"conditions form a cycle among {', '.join(p.key for p in todo)}")
        done += ready
        todo = [p for p in todo if p not in ready]
    return done


def parse_prior(prior_raw: Any, params: tuple[Param, ...], fixed: dict) -> dict:
    """Validate the ``prior:`` mapping: searched parameters (``--set`` keys, flat or nested) -> a value each can take.

    ``loss.weights`` is named per term, as :func:`suggest` draws it (``loss.weights.dice``: a term after the first
    of a loss the space can use). A parameter whose ``when:`` is false under the prior may be named; it is then
    simply not drawn (see :func:`salttune.search.prior.prior_point`).

    Args:
        params: the space's parameters (:func:`parse_params`).
        fixed: the space's flat fixed keys (the loss whose weights are searched, when ``loss.name`` is not).

    Returns:
        ``{dotted key: value}``, flat; a choice as its ``choice:`` entry (a list for a list choice), a number as
        ``float`` (``uniform``, ``loguniform``) or ``int``.
    """
    if prior_raw is None or prior_raw == {}:
        return {}
    if not isinstance(prior_raw, dict):
        raise _bad("prior", "expected a mapping of searched parameters to values, e.g. {optim.lr: 3.0e-3, model.block: residual}")
    by_key = {p.key: p for p in params}
    terms = _weighted_terms(by_key, fixed) if WEIGHTS in by_key else []
    weights = [f"{WEIGHTS}.{t}" for t in terms]
    searched = [k for k in by_key if k != WEIGHTS] + weights
    out: dict[str, Any] = {}
    for key, value in flatten(prior_raw).items():
        where = f"prior.{key}"
        if key.startswith(WEIGHTS + ".") and WEIGHTS in by_key:
            if key.removeprefix(WEIGHTS + ".") not in terms:
                raise _bad(where, f"not a weighted term of a loss this space uses (the first term's weight is 1); "
                                  f"allowed: {', '.join(weights) or 'none'}")
            p = by_key[WEIGHTS]
        elif key == WEIGHTS and WEIGHTS in by_key:
            raise _bad(where, f"give one weight per term, as {WEIGHTS}.TERM; allowed: {', '.join(weights) or 'none'}")
        elif key not in by_key:
            known = key in allowed_keys(TrainConfig)
            raise _bad(where, f"{'is not searched (not under space:)' if known else 'unknown parameter'}; a prior gives "
                              f"values to the searched parameters: {', '.join(searched)}")
        else:
            p = by_key[key]
        out[key] = _prior_value(p, value, where)
    return out


def _weighted_terms(by_key: dict[str, Param], fixed: dict) -> list[str]:
    """The terms after the first of every loss the space can use: those that get a searched weight."""
    losses = [_label(c) for c in by_key["loss.name"].choices] if "loss.name" in by_key else [fixed.get("loss.name", _default_loss())]
    return list(dict.fromkeys(t for name in losses for t in str(name).split("+")[1:]))


def _prior_value(p: Param, value: Any, where: str) -> Any:
    """``value`` checked against ``p``'s distribution (a choice, inside the range, on the step)."""
    if p.kind == "choice":
        v = tuple(value) if isinstance(value, list) else value
        for c in p.choices:  # a list choice may also be given as Optuna records it, 'a+b'
            if c == v or _label(c) == v:
                return list(c) if isinstance(c, tuple) else c
        raise _bad(where, f"{value!r} is not a choice of space.{p.key}; allowed: {', '.join(map(str, map(_label, p.choices)))}")
    if p.kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        raise _bad(where, f"{value!r} is not an integer; allowed: integers in [{p.low}, {p.high}]")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(where, f"{value!r} is not a number; allowed: [{p.low}, {p.high}]")
    if not p.low <= value <= p.high:  # (NaN fails here too)
        raise _bad(where, f"{value!r} is out of range; allowed: [{p.low}, {p.high}]")
    if p.step is not None:
        k = (value - p.low) / p.step
        if abs(k - round(k)) > 1e-9:
            raise _bad(where, f"{value!r} is not on the step; allowed: {p.low} + k * {p.step}, up to {p.high}")
    return int(value) if p.kind == "int" else float(value)


def param_to_dict(p: Param) -> dict:
    """A parameter as the file writes it (what :func:`parse_params` reads back)."""
    d: dict[str, Any] = {p.kind: [list(c) if isinstance(c, tuple) else c for c in p.choices] if p.kind == "choice" else [p.low, p.high]}
    if p.step is not None and not (p.kind == "int" and p.step == 1):
        d["step"] = p.step
    if p.kind == "int" and p.log:
        d["log"] = True
    if p.when:
        d["when"] = {k: list(v) for k, v in p.when}
    return d


# -- sampling -------------------------------------------------------------------------------------------

def _label(v: Any) -> Any:
    """Optuna's categorical values are scalars; a list choice (``augment.names``) travels as 'a+b'."""
    return "+".join(map(str, v)) if isinstance(v, tuple) else v


def suggest(space: Any, trial: Any) -> dict:
    """Draw one point, define-by-run: inactive conditional parameters are not drawn at all.

    Args:
        space: a :class:`~salttune.search.space.SearchSpace`.
        trial: an ``optuna.Trial`` (or anything with its ``suggest_*`` methods).

    Returns:
        ``{dotted key: value}``, as Optuna recorded it (list choices as 'a+b', weights per term).
    """
    drawn: dict[str, Any] = {}
    for p in space.params:
        if not all(parent in drawn and drawn[parent] in tuple(map(_label, allowed)) for parent, allowed in p.when):
            continue
        if p.key == WEIGHTS:
            terms = str(drawn.get("loss.name", space.fixed.get("loss.name", _default_loss()))).split("+")
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


def trial_overrides(space: Any, params: dict) -> dict:
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
        terms = str(out.get("loss.name", space.fixed.get("loss.name", _default_loss()))).split("+")
        out[WEIGHTS] = [1.0] + [float(params[f"{WEIGHTS}.{t}"]) for t in terms[1:]]
    return out


class Typical:
    """Answers Optuna's ``suggest_*`` with the middle of each range (geometric for log ranges, on the step) and
    the middle of each choice: a trial of typical cost, drawn without a sampler."""

    @staticmethod
    def _middle(low: float, high: float, log: bool, step: float | None) -> float:
        v = math.sqrt(low * high) if log else (low + high) / 2
        return v if not step else low + min(round((v - low) / step), math.floor((high - low) / step + 1e-9)) * step

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False, step: float | None = None) -> float:
        return float(self._middle(low, high, log, step))

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        return int(round(self._middle(low, high, log, step)))

    def suggest_categorical(self, name: str, choices: list) -> Any:
        return choices[(len(choices) - 1) // 2]  # the middle one: choices often run from cheap to costly
