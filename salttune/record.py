"""The experiment record: what ran, on what code, data and machine, and what came out.

Every ``train``, ``search`` and ``ensemble`` run writes ``record.json`` beside its results *before* it starts
(status ``running``) and completes it when it ends (``completed``, ``failed`` with the reason, or
``interrupted`` after Ctrl-C or SIGTERM). A dirty work tree's diff is saved as ``git.diff`` next to it.
``salttune history`` reads these files and nothing else.

A command enters :func:`recorded_run` only after its checks pass, so a refused command leaves an earlier
record as it was. A record never loses an earlier one of the same folder: a resumed run (``resumed: true``)
or one written over with ``--force`` keeps the earlier runs' outcomes in ``earlier``, oldest first (status,
times, command, result, error, config), so a run interrupted at epoch 3 and resumed to the end reads
``status: completed, resumed: true, earlier: [{status: interrupted, ...}]``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import signal
import subprocess
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

from salttune.errors import SalttuneError
from salttune.fileio import atomic_write_text, write_json
from salttune.layout import GIT_DIFF, RECORD, SearchFiles

__all__ = ["folder_fingerprint", "machine_info", "git_info", "package_versions", "recorded_run", "find_records",
           "load_record", "data_folder", "sigterm_interrupts"]

# What an earlier record of the same folder leaves in the new record's ``earlier`` list.
_EARLIER_KEYS = ("status", "started", "ended", "seconds", "argv", "result", "error", "config")
_PACKAGES = ("salttune", "torch", "ray", "optuna", "numpy", "scikit-learn", "albumentations", "pandas", "opencv-python-headless")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def folder_fingerprint(folder: str | Path) -> dict:
    """SHA-256 over the relative paths and bytes of every file of a data folder, with counts and size."""
    folder = Path(folder)
    h, n, size = hashlib.sha256(), 0, 0
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            data = p.read_bytes()
            h.update(str(p.relative_to(folder)).encode() + b"\0" + len(data).to_bytes(8, "little") + data)
            n, size = n + 1, size + len(data)
    return {"path": str(folder.resolve()), "sha256": h.hexdigest(), "files": n, "bytes": size}


def git_info(repo: str | Path | None = None) -> dict:
    """Commit, branch and dirtiness of the code's git work tree (the salttune source by default)."""
    repo = Path(repo) if repo else Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=20, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
    except (subprocess.SubprocessError, OSError):
        return {"commit": None, "dirty": None, "note": "not a git work tree (installed package)"}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "branch": git("rev-parse", "--abbrev-ref", "HEAD").strip(), "dirty": bool(status.strip()),
            "diff": git("diff", "HEAD") if status.strip() else ""}


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info = {"host": platform.node(), "os": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1) if hasattr(os, "sysconf") else None,
            "gpus": []}
    with contextlib.suppress(Exception):
        import torch

        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


class _Run:
    """Handle given to the body of :func:`recorded_run` to add results before the record is completed."""

    def __init__(self, rec: dict):
        self.rec = rec
        self.outcome = "completed"  # the body may set "interrupted" or "failed" for a run that returns normally

    def result(self, **values: Any) -> None:
        self.rec.setdefault("result", {}).update(values)


def _earlier(path: Path) -> list[dict]:
    """The earlier runs recorded at ``path`` (its own ``earlier`` list, then itself); [] if none or unreadable."""
    try:
        old = load_record(path) if path.is_file() else None
    except SalttuneError:
        return []  # an unreadable record holds nothing to keep
    if not isinstance(old, dict):
        return []
    return [*old.get("earlier", []), {k: old.get(k) for k in _EARLIER_KEYS if k in old}]


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises ``KeyboardInterrupt`` as Ctrl-C (SIGINT) does.

    So a run stopped by ``kill`` or a batch system ends like a Ctrl-C: the record says ``interrupted``, atomic
    writes remove their temporary files, and the command exits 130 with one line. Outside the main thread
    (where Python cannot set handlers) it does nothing.
    """
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def recorded_run(run_dir: str | Path, *, kind: str, name: str, config: dict, seed: int | None = None,
                 data: str | Path | None = None, space: dict | None = None, argv: list[str] | None = None,
                 resumed: bool = False) -> Iterator[_Run]:
    """Write ``run_dir/record.json`` now, and complete it with the outcome when the block ends.

    Enter it only once the command's checks have passed: it replaces the folder's record at once (keeping
    the earlier record's outcome in ``earlier``).

    Args:
        resumed: the run continues an earlier one in ``run_dir`` (``record.json`` says ``resumed: true``).

    Exceptions propagate unchanged; the record says ``failed`` with the reason, or ``interrupted`` (a
    ``KeyboardInterrupt``: Ctrl-C, or SIGTERM inside :func:`sigterm_interrupts`).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    git = git_info()
    diff = git.pop("diff", "")
    if diff:
        atomic_write_text(run_dir / GIT_DIFF, diff, "git diff")
        git["diff_file"] = GIT_DIFF
    rec = {"name": name, "kind": kind, "status": "running", "started": _now(), "ended": None, "seconds": None,
           "argv": argv, "seed": seed, "config": config, "space": space, "git": git,
           "data": folder_fingerprint(data) if data is not None and Path(data).is_dir() else ({"path": str(data)} if data else None),
           "packages": package_versions(), "machine": machine_info(), "result": {}, "resumed": resumed}
    path = run_dir / RECORD
    earlier = _earlier(path)
    if earlier:
        rec["earlier"] = earlier
    write_json(path, rec, "run record")
    t0 = time.time()
    run = _Run(rec)
    try:
        yield run
        rec["status"] = run.outcome
    except KeyboardInterrupt:
        rec["status"] = "interrupted"
        raise
    except BaseException as e:
        rec["status"] = "failed"
        rec["error"] = f"{type(e).__name__}: {e}".splitlines()[0][:500]
        raise
    finally:
        rec["ended"], rec["seconds"] = _now(), round(time.time() - t0, 1)
        with contextlib.suppress(SalttuneError):  # a full disk must not hide the run's own error
            write_json(path, rec, "run record")


def load_record(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SalttuneError(f"{path}: unreadable run record ({e}); delete it or restore it") from None


def find_records(results: str | Path) -> list[tuple[Path, dict]]:
    """Every run record under ``results`` (three levels deep), newest first; unreadable ones are skipped."""
    results = Path(results)
    if not results.is_dir():
        raise SalttuneError(f"{results}: results folder does not exist; runs write there (or give --results DIR)")
    out = []
    for pattern in (RECORD, f"*/{RECORD}", f"*/*/{RECORD}"):
        for p in results.glob(pattern):
            with contextlib.suppress(SalttuneError):
                out.append((p.parent, load_record(p)))
    return sorted(out, key=lambda r: r[1].get("started") or "", reverse=True)


def data_folder(run_dir: str | Path) -> str | None:
    """The data folder a run used, as its ``search.json`` (a search) or ``record.json`` recorded it; else ``None``."""
    for f in (SearchFiles(run_dir).info, Path(run_dir) / RECORD):
        if f.is_file():
            data = json.loads(f.read_text()).get("data")
            data = data.get("path") if isinstance(data, dict) else data  # record.json: the folder's fingerprint
            if data:
                return data
    return None
