"""One driver per search: ``results/NAME/search.lock``, taken atomically, released at exit.

Two drivers of the same search (the same name and storage) would both tell one Optuna study, rewrite one
leaderboard and one ASHA state, and resume the same Tune experiment: the files would end up a mix of both.
So a driver creates ``search.lock`` with ``O_CREAT | O_EXCL`` (the file system lets exactly one creator
win), writes its pid and host into it, and deletes it when it ends, however it ends short of SIGKILL.

A lock left behind by a driver that was killed is *stale*: when its host is this machine and its pid runs
no more, the next driver takes it over with a warning. A lock from another host cannot be checked from
here; the message says to delete it once that driver is known to be gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from salttune.errors import SalttuneError
from salttune.layout import SearchFiles

__all__ = ["lock_owner", "refuse_if_running", "search_lock"]

FRESH_S = 10.0  # an unreadable lock younger than this is being written by its owner right now


def lock_owner(folder: Path) -> dict | None:
    """The owner recorded in ``folder/search.lock`` ({pid, host, started}), ``{}`` if unreadable, None if absent."""
    try:
        owner = json.loads(SearchFiles(folder).lock.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _stale(owner: dict, path: Path) -> bool:
    """Whether the lock's driver is surely gone: on this host and no such process, or unreadable and old."""
    if not owner:
        with contextlib.suppress(OSError):
            return time.time() - path.stat().st_mtime > FRESH_S
        return False
    return owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int) and not _alive(owner["pid"])


def _held(path: Path, owner: dict) -> SalttuneError:
    who = (f"pid {owner.get('pid')} on {owner.get('host')}, since {owner.get('started')}" if owner
           else "its owner is writing it")
    return SalttuneError(f"{path}: this search is already running ({who}); wait for it to end or stop it, "
                         f"or, if that process is gone, delete {path} and run again")


def refuse_if_running(folder: Path) -> None:
    """Raise if a live driver holds the search in ``folder`` (a check before anything starts; see :func:`search_lock`)."""
    path = SearchFiles(folder).lock
    owner = lock_owner(folder)
    if owner is not None and not _stale(owner, path):
        raise _held(path, owner)


@contextlib.contextmanager
def search_lock(folder: Path) -> Iterator[Path]:
    """Hold ``folder/search.lock`` for the block; a stale lock is taken over with a warning.

    Raises:
        SalttuneError: another live driver holds it (one line naming the lock file and what to do).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = SearchFiles(folder).lock
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(2):  # the second pass follows the removal of a stale lock
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = lock_owner(folder) or {}
            if not _stale(owner, path):
                raise _held(path, owner) from None
            print(f"warning: {path}: taking over the lock of a search that ended without releasing it "
                  f"({'pid ' + str(owner.get('pid')) + ' is gone' if owner else 'unreadable'})", file=sys.stderr)
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    else:
        raise _held(path, lock_owner(folder) or {})
    try:
        yield path
    finally:
        if lock_owner(folder) == me:  # never delete a lock another driver took over meanwhile
            path.unlink(missing_ok=True)
