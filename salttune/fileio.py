"""Atomic file writes: a file appears under its name only when it is complete.

Every file salttune writes that a crash could leave half-written (checkpoints, submissions, records,
leaderboards, ASHA state, summaries, reports) goes through :func:`atomic_path`: the content is written to a
hidden temporary file in the same folder, flushed to disk, then renamed over the target, so a reader sees
the old file or the new one, never a mix. A failed write removes the temporary file and leaves the old one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path
from typing import Any, Iterator

from salttune.errors import SalttuneError

__all__ = ["atomic_path", "atomic_write_text", "write_json"]


def _write_hint(path: Path, e: OSError) -> str:
    """What to do about a failed write, from what actually failed (not always the disk)."""
    if path.is_dir():
        return "it is a folder; give a file name"
    if not path.parent.is_dir():
        return f"the folder {path.parent} does not exist; create it or choose another"
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "free disk space or choose another folder"
    return "check that the folder is writable"


@contextlib.contextmanager
def atomic_path(path: str | Path, what: str = "file", *, mkdir: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed.

    Args:
        path: the file to (re)place.
        what: the kind of file, for the one-line error (``"checkpoint"``, ``"submission"``...).
        mkdir: create the parent folder first.

    Raises:
        SalttuneError: the disk is full or the folder is not writable (one line naming ``path``); the earlier
            file at ``path``, if any, is left as it was.
    """
    path = Path(path)
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # the bytes reach the disk before the name does
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise SalttuneError(f"{path}: cannot write {what} ({e.strerror or e}); {_write_hint(path, e)}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str, what: str = "file") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, what) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, obj: Any, what: str = "file", *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON atomically; values JSON cannot hold (paths, dates) are written as strings."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, default=str), what)
