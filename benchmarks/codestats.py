"""``python -m benchmarks codestats``: the size and shape of the installed package, the figures issue 23 tracks.

Lines in ``salttune/``, modules over 400 lines, functions over 60 lines, import cycles (strongly connected groups of
the import graph, imports inside functions included, since they load the other module all the same), and how often
each file name of a run or search folder is spelled as a literal. Reads source only; imports nothing of salttune.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

__all__ = ["code_stats", "format_stats"]

MODULE_LINES = 400
FUNCTION_LINES = 60
# a quoted name of a file salttune writes into a run, search or ensemble folder
FILE_LITERAL = re.compile(r"""["']([a-z_]+\.(?:json|jsonl|csv|pt|db|yaml|md|lock))["']""")


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(tree: ast.AST, name: str, is_package: bool) -> set[str]:
    """Every module (and module.attribute) an AST imports, relative imports resolved against ``name``."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: None if is_package else -1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out |= {module} | {f"{module}.{a.name}" for a in node.names}
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, targets = work[-1]
            w = next(targets, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                group = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    group.append(w)
                    if w == v:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return sorted(groups)


def code_stats(root: str | Path = "salttune") -> dict:
    """Figures of the package in ``root``: lines, long modules and functions, import cycles, file-name literals."""
    root = Path(root)
    files = {_module_name(root, f): f for f in sorted(root.rglob("*.py"))}
    sources = {m: f.read_text() for m, f in files.items()}
    graph: dict[str, set[str]] = defaultdict(set)
    long_functions = []
    literals: dict[str, int] = defaultdict(int)
    for m, text in sources.items():
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > FUNCTION_LINES:
                long_functions.append((f"{m}.{node.name}", node.end_lineno - node.lineno + 1))
        # a package's __init__ runs whenever one of its modules is imported: an edge to it is not a cycle of ours
        graph[m] = {t for t in _imported(tree, m, files[m].name == "__init__.py")
                    if t in files and t != m and not m.startswith(t + ".")}
        for name in FILE_LITERAL.findall(text):
            literals[name] += 1
    lines = {m: len(t.splitlines()) for m, t in sources.items()}
    return {
        "lines": sum(lines.values()),
        "modules": len(files),
        "long_modules": sorted(((m, n) for m, n in lines.items() if n > MODULE_LINES), key=lambda x: -x[1]),
        "long_functions": sorted(long_functions, key=lambda x: -x[1]),
        "import_cycles": _cycles(graph),
        "file_literals": dict(sorted(literals.items(), key=lambda x: (-x[1], x[0]))),
    }


def format_stats(stats: dict) -> str:
    """The figures as the lines the closing note's before/after table is read from."""
    out = [f"lines: {stats['lines']} in {stats['modules']} modules",
           f"modules over {MODULE_LINES} lines: {len(stats['long_modules'])}  "
           + ", ".join(f"{m} ({n})" for m, n in stats["long_modules"]),
           f"functions over {FUNCTION_LINES} lines: {len(stats['long_functions'])}  "
           + ", ".join(f"{m} ({n})" for m, n in stats["long_functions"]),
           f"import cycles: {len(stats['import_cycles'])}"]
    out += [f"  {' <-> '.join(group)}" for group in stats["import_cycles"]]
    out.append("file-name literals: " + ", ".join(f"{k} {v}" for k, v in stats["file_literals"].items()))
    return "\n".join(out)
