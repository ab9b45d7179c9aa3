"""codestats: lines, long modules and functions, import cycles and file-name literals of a small package on disk."""

from pathlib import Path

from benchmarks.codestats import code_stats


def _write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_figures_of_a_small_package(tmp_path):
    pkg = tmp_path / "pkg"
    _write(pkg, "__init__.py", "")
    _write(pkg, "a.py", "from pkg import b\nSUMMARY = 'summary.json'\n")
    _write(pkg, "b.py", "def f():\n    from pkg.a import SUMMARY  # inside a function: still a cycle\n    return 'summary.json'\n")
    _write(pkg, "c.py", "import pkg.a\n" + "def long():\n" + "    x = 1\n" * 61)  # 62 lines
    _write(pkg, "sub/__init__.py", "from pkg.sub import d\n")  # a package importing its own module: not a cycle
    _write(pkg, "sub/d.py", "from pkg.sub import e\nSTATE = \"state.pt\"\n")
    _write(pkg, "sub/e.py", "from ..a import SUMMARY\n")  # relative import resolved
    stats = code_stats(pkg)
    assert stats["modules"] == 7
    assert stats["lines"] == 0 + 2 + 3 + 63 + 1 + 2 + 1
    assert stats["long_functions"] == [("pkg.c.long", 62)]
    assert stats["long_modules"] == []
    assert stats["import_cycles"] == [["pkg.a", "pkg.b"]]
    assert stats["file_literals"] == {"summary.json": 2, "state.pt": 1}

