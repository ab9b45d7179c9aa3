"""salttune's modules import one another one way: no import cycle, counting imports inside functions and under
``TYPE_CHECKING`` too (a cycle there still ties the modules together: neither can be read, tested or moved alone)."""

import ast
from pathlib import Path

import salttune

ROOT = Path(salttune.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(path: Path, module: str) -> set[str]:
    """Every module name an ``import`` or ``from ... import`` anywhere in the file may load (``from a import b``:
    ``a`` and ``a.b``, since ``b`` may be a submodule)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ".".join([*package[:len(package) - node.level + 1], *([node.module] if node.module else [])]) \
                if node.level else node.module
            out |= {base, *(f"{base}.{a.name}" for a in node.names)}
    return out


def import_graph() -> dict[str, set[str]]:
    """salttune module -> the salttune modules it imports (a package's ``__init__``, loaded with every submodule, is
    left out of its submodules' edges)."""
    modules = _modules()
    return {m: {t for t in _imports(p, m) if t in modules and t != m and not m.startswith(t + ".")}
            for m, p in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while (w := stack.pop()) != v:
                group.append(w)
            if group:
                out.append(sorted([v, *group]))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_checker_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_imports_inside_functions_and_type_checking():
    graph = import_graph()
    assert "salttune.search.catalog" in graph["salttune.search.space"]  # module level
    assert "salttune.search.sampler" in graph["salttune.search.algorithms"]  # inside a function
    assert "salttune.config" in graph["salttune.heads"]  # under TYPE_CHECKING


def test_salttune_has_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_config_and_the_search_space_import_no_builder():
    """The config reads the registries (losses, model, optim, schedule); the builders never read the config. The
    space reads the algorithms' declared entries; the builders of searchers and schedulers are above it."""
    graph = import_graph()
    for builder in ("salttune.losses", "salttune.model", "salttune.optim", "salttune.schedule"):
        assert "salttune.config" not in graph[builder], builder
    for above in ("salttune.search.algorithms", "salttune.search.sampler", "salttune.search.asha", "salttune.search.budget",
                  "salttune.search.resume"):
        assert above not in graph["salttune.search.space"], above
    assert graph["salttune.search.catalog"] == set() and graph["salttune.search.duration"] == set()
