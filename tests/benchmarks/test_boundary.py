"""The benchmarks are a client of salttune, outside it: nothing in salttune/ imports them, they import no private
name of salttune, and salttune runs without what only they need (scipy, the ``bench`` extra)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names imported from it) of every import statement in ``path``, at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, [a.name for a in node.names]))
    return out


def test_nothing_in_salttune_imports_the_benchmarks():
    found = [(str(p.relative_to(ROOT)), m) for p in (ROOT / "salttune").rglob("*.py") for m, _ in _imports(p)
             if m == "benchmarks" or m.startswith("benchmarks.") or m.startswith("salttune.bench")]
    assert found == []
    assert not (ROOT / "salttune" / "bench").exists()


def test_the_benchmarks_use_only_salttunes_public_names():
    private = [(str(p.relative_to(ROOT)), m, n) for p in (ROOT / "benchmarks").rglob("*.py") for m, names in _imports(p)
               if m.startswith("salttune") for n in names if n.startswith("_") or any(part.startswith("_") for part in m.split("."))]
    assert private == []


MODULES = ["salttune.cli", "salttune.train", "salttune.search.algorithms", "salttune.search.sampler", "salttune.search.command",
           "salttune.ensemble", "salttune.predict", "salttune.report"]


def test_salttune_imports_without_scipy():
    # one process for all of them (each start imports torch); None in sys.modules: any 'import scipy' raises ImportError
    code = "import importlib, sys; sys.modules['scipy'] = None\nfor m in sys.argv[1:]: importlib.import_module(m)"
    proc = subprocess.run([sys.executable, "-c", code, *MODULES], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_scipy_is_in_the_bench_extra_not_the_runtime_dependencies():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("scipy") for d in project["dependencies"])
    assert any(d.startswith("scipy") for d in project["optional-dependencies"]["bench"])
    assert "salttune[bench]" in project["optional-dependencies"]["test"]  # the test extra runs tests/benchmarks/
