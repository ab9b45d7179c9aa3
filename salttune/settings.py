"""The one config language: typed frozen dataclasses read from YAML files and ``--set key=value``.

A settings class is a frozen dataclass whose fields are made with :func:`opt` (a default plus its range or
allowed names) or are themselves settings classes (sections). :func:`build` turns a nested dict into one,
raising one :class:`SalttuneError` line naming the dotted key and what is allowed. The training config
(:mod:`salttune.config`) and the search-space file (:mod:`salttune.search.space`) are both written this way.

YAML is read with :data:`Loader`: PyYAML's safe loader with YAML 1.2 floats, so ``1e-3`` is a number (the
YAML 1.1 rules PyYAML follows need a dot, ``1.0e-3``, and read ``1e-3`` as a string).
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import field, fields
from pathlib import Path
from typing import Any

import yaml

from salttune.errors import SalttuneError

__all__ = [
    "opt", "like", "key_error", "coerce", "build", "to_dict", "allowed_keys", "field_type",
    "Loader", "load_yaml", "read_yaml_mapping", "parse_set", "parse_overrides", "apply_overrides", "nest", "flatten",
]


# -- fields and their checks ----------------------------------------------------------------------------

def opt(default: Any, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False,
        choices: Any = None, doc: str = ""):
    """A setting: its default and its allowed range (``lo_open``: above ``lo``, not at it; ``hi_open``: below
    ``hi``) or names (``choices`` may be a callable returning the names, for registries that import heavy modules)."""
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples for sequence defaults")
    meta = {"lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open, "choices": choices, "doc": doc}
    return field(default=default, metadata=meta)


def like(cls: type, name: str, **changes: Any):
    """The setting ``cls.name`` again (same default, range and doc), with ``changes`` to its metadata."""
    f = {f.name: f for f in fields(cls)}[name]
    return field(default=f.default, metadata={**f.metadata, **changes})


def key_error(key: str, problem: str, what: str = "config key") -> SalttuneError:
    """The one-line message form: ``config key 'optim.lr': 0.0 is out of range; allowed: ...``."""
    return SalttuneError(f"{what} '{key}': {problem}")


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _settings(cls: type) -> dict[str, Any]:
    """The fields of ``cls`` a file may set, with their types: :func:`opt` fields and sections. Other fields
    (derived values such as a search space's parameters) are filled in by the code that builds ``cls``."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls) if "doc" in f.metadata or _is_section(hints[f.name])}


def allowed_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key a settings class accepts, e.g. ``['seed', ..., 'model.block', ...]``."""
    out = []
    for name, tp in _settings(cls).items():
        out += allowed_keys(tp, f"{prefix}{name}.") if _is_section(tp) else [f"{prefix}{name}"]
    return out


def _optional_inner(tp: Any) -> Any:
    """``float | None`` -> ``float``; any other type unchanged."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1 else tp


def field_type(cls: type, key: str) -> Any:
    """The annotated type of a dotted key, Optional unwrapped: ``field_type(TrainConfig, 'optim.lr')`` -> float."""
    tp: Any = cls
    for part in key.split("."):
        tp = typing.get_type_hints(tp)[part]
    return _optional_inner(tp)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _range(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool = False) -> str:
    return f"{'(' if lo_open else '['}{'-inf' if lo is None else lo}, {'inf)' if hi is None else f'{hi}' + (')' if hi_open else ']')}"


def coerce(key: str, value: Any, tp: Any, meta: dict, what: str = "config key") -> Any:
    """Check ``value`` against the annotation ``tp`` and the field's range/choices; return the typed value."""
    def bad(problem: str) -> SalttuneError:
        return key_error(key, problem, what)

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return coerce(key, value, _optional_inner(tp), meta, what)
    if origin is tuple:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]  # a single name or number where a list is expected
        if not isinstance(value, (list, tuple)):
            raise bad(f"{value!r} is not a list; give e.g. [{_type_name(args[0])}, ...]")
        return tuple(coerce(key, v, args[0], meta, what) for v in value)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad(f"{value!r} is not true or false")
        return value
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise bad(f"{value!r} is not an integer")
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad(f"{value!r} is not a number")
        if not math.isfinite(value):
            raise bad(f"{value!r} is not a finite number")
        value = float(value)
    if tp is str and not isinstance(value, str):
        raise bad(f"{value!r} is not a string")
    lo, hi, choices = meta.get("lo"), meta.get("hi"), meta.get("choices")
    lo_open, hi_open = meta.get("lo_open", False), meta.get("hi_open", False)
    if choices is not None:
        names = choices() if callable(choices) else choices
        if value not in names:
            raise bad(f"unknown value {value!r}; allowed: {', '.join(names)}")
    if tp in (int, float) and ((lo is not None and (value <= lo if lo_open else value < lo))
                               or (hi is not None and (value >= hi if hi_open else value > hi))):
        raise bad(f"{value!r} is out of range; allowed: {_range(lo, hi, lo_open, hi_open)}")
    return value


def build(cls: type, data: Any, prefix: str = "", what: str = "config key", extra: tuple[str, ...] = ()):
    """A ``cls`` from a nested dict: missing keys take their defaults, every value is checked.

    Args:
        extra: top-level keys the caller reads itself (accepted and listed as allowed, not built).
    Raises:
        SalttuneError: ``{what} 'KEY': PROBLEM; allowed: ...`` for an unknown key or a bad value.
    """
    if data is None and prefix:
        data = {}  # an empty section (``asha:`` with its lines commented out): all defaults
    if not isinstance(data, dict):
        raise key_error(prefix.rstrip(".") or "<top>", f"expected a mapping of keys, got {data!r}", what)
    settings, meta = _settings(cls), {f.name: dict(f.metadata) for f in fields(cls)}
    unknown = [k for k in data if k not in settings and k not in extra]
    if unknown:
        allowed = ", ".join(allowed_keys(cls, prefix) + list(extra))
        raise SalttuneError(f"{what} '{prefix}{unknown[0]}' is unknown; allowed: {allowed}")
    kwargs = {}
    for name, tp in settings.items():
        if name in data:
            key = prefix + name
            kwargs[name] = build(tp, data[name], key + ".", what) if _is_section(tp) else coerce(key, data[name], tp, meta[name], what)
    return cls(**kwargs)


def to_dict(obj: Any) -> dict:
    """The settings of ``obj`` as plain nested dicts and lists (for YAML, JSON and checkpoints): what
    :func:`build` reads back to an equal object."""
    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return to_dict(v)
        return [plain(x) for x in v] if isinstance(v, tuple) else v

    return {name: plain(getattr(obj, name)) for name in _settings(type(obj))}


# -- dotted keys ----------------------------------------------------------------------------------------

def nest(flat: dict) -> dict:
    """``{"model.block": "se"}`` -> ``{"model": {"block": "se"}}``; later keys win."""
    out: dict = {}
    for key, value in flat.items():
        node = out
        *parents, last = str(key).split(".")
        for i, p in enumerate(parents):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise SalttuneError(f"key '{key}': '{'.'.join(parents[: i + 1])}' is a value, not a section")
        node[last] = value
    return out


def flatten(d: dict, prefix: str = "") -> dict:
    """``{"model": {"block": "se"}}`` -> ``{"model.block": "se"}`` (the inverse of :func:`nest`)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(flatten(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def apply_overrides(base: dict, overrides: dict) -> dict:
    """Deep-merge ``overrides`` into a copy of ``base``."""
    out = dict(base)
    for k, v in overrides.items():
        out[k] = apply_overrides(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# -- YAML and --set -------------------------------------------------------------------------------------

class Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading floats as YAML 1.2 does: ``1e-3`` and ``1.0e3`` are numbers."""


Loader.add_implicit_resolver(  # YAML 1.2's float; PyYAML's own (tried first) misses 1e-3
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)[eE][-+]?[0-9]+
                   |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """Parse YAML text with :class:`Loader` (raises ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=Loader)  # noqa: S506 - Loader is a SafeLoader


def read_yaml_mapping(path: Path, missing: str, not_mapping: str) -> dict:
    """A YAML file whose top level is a mapping; each problem is one line naming the file (and the line)."""
    if path.is_dir():
        raise SalttuneError(f"{path}: is a folder, not a file; give the path of a YAML file")
    if not path.is_file():
        raise SalttuneError(f"{path}: {missing}")
    try:
        data = load_yaml(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SalttuneError(f"{path}: not valid YAML{where}; fix the syntax") from None
    except UnicodeDecodeError:
        raise SalttuneError(f"{path}: not a text file; give a YAML file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SalttuneError(f"{path}: {not_mapping}")
    return data


def parse_set(item: str) -> tuple[str, Any]:
    """``"optim.lr=1e-3"`` -> ``("optim.lr", 0.001)``: the value is a YAML scalar or list (text if it is not YAML)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise SalttuneError(f"--set {item!r}: expected key=value, e.g. --set optim.lr=0.001")
    try:
        value = load_yaml(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    return key.strip(), value


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict:
    """``["optim.lr=0.01", "model.block=se"]`` -> nested dict (later items win)."""
    flat = dict(parse_set(item) for item in items)
    try:
        return nest(flat)
    except SalttuneError as e:
        raise SalttuneError(f"--set: {e}") from None
