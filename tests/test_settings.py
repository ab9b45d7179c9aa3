"""The config language: typed fields, one-line messages, dotted keys, --set and YAML 1.2 floats."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from salttune.errors import SalttuneError
from salttune.settings import (allowed_keys, apply_overrides, build, field_type, flatten, like, load_yaml, nest, opt,
                               parse_overrides, parse_set, read_yaml_mapping, to_dict)


@dataclass(frozen=True)
class Inner:
    rate: float = opt(3.0, lo=1, lo_open=True, hi=100, doc="above 1")
    names: tuple[str, ...] = opt(("a",), choices=lambda: ("a", "b", "c"))


@dataclass(frozen=True)
class Outer:
    count: int = opt(2, lo=0, hi=10)
    limit: float | None = opt(None, lo=0.0)
    mode: str = opt("max", choices=("max", "min"))
    inner: Inner = field(default_factory=Inner)
    derived: tuple = ()  # not a setting: filled in by code, never read from a file


@dataclass(frozen=True)
class Copy:
    count: int = like(Outer, "count", hi=5)


@pytest.mark.parametrize("text, value", [
    ("1e-3", 0.001), ("-2E-2", -0.02), ("1e3", 1000.0), ("1.0e3", 1000.0), ("1.0e-3", 0.001), (".5", 0.5),
    ("10", 10), ("0.25", 0.25), ("1.2.3", "1.2.3"), ("1e", "1e"), ("e3", "e3"), (".inf", float("inf")),
    ("[1e-4, 1e-2]", [0.0001, 0.01]), ("{lr: 1e-3}", {"lr": 0.001}),
])
def test_yaml_reads_exponent_floats_as_numbers(text, value):
    assert load_yaml(text) == value and type(load_yaml(text)) is type(value)


def test_yaml_mapping_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("optim:\n  lr: 1e-3\n  weight_decay: 5E-5\n")
    assert read_yaml_mapping(f, "missing", "not a mapping") == {"optim": {"lr": 0.001, "weight_decay": 5e-5}}
    (tmp_path / "l.yaml").write_text("[1, 2]\n")
    with pytest.raises(SalttuneError, match="l.yaml: not a mapping"):
        read_yaml_mapping(tmp_path / "l.yaml", "missing", "not a mapping")


def test_build_defaults_values_and_round_trip():
    assert build(Outer, {}) == Outer()
    o = build(Outer, {"count": 3, "limit": 1, "inner": {"rate": 2, "names": "b"}})
    assert o == Outer(count=3, limit=1.0, inner=Inner(rate=2.0, names=("b",)))
    assert type(o.limit) is float and type(o.inner.rate) is float
    assert to_dict(o) == {"count": 3, "limit": 1.0, "mode": "max", "inner": {"rate": 2.0, "names": ["b"]}}
    assert build(Outer, to_dict(o)) == o
    assert build(Outer, {"inner": None}) == Outer()  # an empty section: its defaults
    assert allowed_keys(Outer) == ["count", "limit", "mode", "inner.rate", "inner.names"]
    assert field_type(Outer, "limit") is float and field_type(Outer, "inner.rate") is float


@pytest.mark.parametrize("data, message", [
    ({"count": 11}, "config key 'count': 11 is out of range; allowed: [0, 10]"),
    ({"count": 2.0}, "config key 'count': 2.0 is not an integer"),
    ({"count": True}, "config key 'count': True is not an integer"),
    ({"limit": -1}, "config key 'limit': -1.0 is out of range; allowed: [0.0, inf)"),
    ({"limit": "1e-3x"}, "config key 'limit': '1e-3x' is not a number"),
    ({"limit": float("nan")}, "config key 'limit': nan is not a finite number"),
    ({"mode": "up"}, "config key 'mode': unknown value 'up'; allowed: max, min"),
    ({"inner": {"rate": 1}}, "config key 'inner.rate': 1.0 is out of range; allowed: (1, 100]"),
    ({"inner": {"names": ["a", "z"]}}, "config key 'inner.names': unknown value 'z'; allowed: a, b, c"),
    ({"inner": {"names": {"a": 1}}}, "config key 'inner.names': {'a': 1} is not a list"),
    ({"inner": 3}, "config key 'inner': expected a mapping of keys, got 3"),
    ({"inner": {"rat": 2}}, "config key 'inner.rat' is unknown; allowed: inner.rate, inner.names"),
    ({"derived": (1,)}, "config key 'derived' is unknown; allowed: count, limit, mode, inner.rate, inner.names"),
])
def test_bad_values_are_one_line_naming_key_and_allowed(data, message):
    with pytest.raises(SalttuneError) as e:
        build(Outer, data)
    assert str(e.value).startswith(message), str(e.value)


def test_extra_keys_and_message_label():
    assert build(Outer, {"count": 1, "space": {}}, extra=("space",)) == Outer(count=1)
    with pytest.raises(SalttuneError, match=r"^key 'mode' is unknown; allowed: count, space$"):
        build(Copy, {"mode": 1}, what="key", extra=("space",))


def test_like_copies_a_setting_with_changes():
    assert Copy().count == 2 and build(Copy, {"count": 5}).count == 5
    with pytest.raises(SalttuneError, match=r"'count': 6 is out of range; allowed: \[0, 5\]"):
        build(Copy, {"count": 6})


def test_set_items_and_dotted_keys():
    assert parse_set("optim.lr=1e-3") == ("optim.lr", 0.001)
    assert parse_set(" a = [x, 2e2]") == ("a", ["x", 200.0])
    assert parse_set("a=") == ("a", None) and parse_set("a={b") == ("a", "{b")  # not YAML: the text itself
    with pytest.raises(SalttuneError, match="--set 'epochs': expected key=value"):
        parse_set("epochs")
    assert parse_overrides(["optim.lr=1e-3", "model.block=se", "optim.lr=2e-3"]) == {"optim": {"lr": 0.002}, "model": {"block": "se"}}
    with pytest.raises(SalttuneError, match="--set: key 'a.b': 'a' is a value, not a section"):
        parse_overrides(["a=1", "a.b=2"])
    flat = {"model.block": "se", "model.depth": 2, "seed": 1}
    assert nest(flat) == {"model": {"block": "se", "depth": 2}, "seed": 1} and flatten(nest(flat)) == flat


def test_apply_overrides_merges_deeply_without_touching_the_base():
    base = {"model": {"block": "se", "depth": 2}, "seed": 1}
    assert apply_overrides(base, {"model": {"depth": 3}, "epochs": 2}) == {"model": {"block": "se", "depth": 3}, "seed": 1, "epochs": 2}
    assert base == {"model": {"block": "se", "depth": 2}, "seed": 1}
