"""What ``salttune search --resume`` reads from ``results/NAME``, checked before Ray starts.

A resume reads ``space.yaml`` (the resolved space), ``search.json`` (data fingerprint, storage), ``optuna.db``
(the study), ``asha_state.json`` (ASHA's rungs, algorithms with ASHA) and Tune's experiment in ``trials/``
(``tuner.pkl``, ``experiment_state-*.json``). Each one missing, of the wrong kind (a folder for a file or the
reverse) or damaged is one :class:`SalttuneError` line naming it and the fix, instead of a traceback from
deep inside Ray or SQLAlchemy. No Ray or Optuna here: the study is read with :mod:`sqlite3`.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from salttune.errors import SalttuneError
from salttune.layout import SearchFiles
from salttune.search.catalog import ALGORITHMS
from salttune.search.space import SearchSpace, load_space

__all__ = ["saved_space", "search_info", "check_study", "check_asha", "check_experiment", "read_asha_state"]

_FIX = "restore it from a backup, or start the search again under a new --name"


def _file(path: Path, what: str) -> Path:
    if path.is_dir():
        raise SalttuneError(f"{path}: is a folder, but the search's {what} should be a file here; {_FIX}")
    if not path.is_file():
        raise SalttuneError(f"{path}: the search's {what} is missing; {_FIX}")
    return path


def saved_space(local: Path, data: str | None) -> SearchSpace:
    """The resolved space the search started with (``--data`` may move its data folder)."""
    path = SearchFiles(local).space
    if not path.exists() and not path.is_symlink():
        raise SalttuneError(f"{local}: no search to resume there (no {path.name}); check --name and --storage")
    _file(path, "resolved space")
    try:
        return load_space(path, data=data)
    except SalttuneError as e:
        problem = str(e).removeprefix(f"{path}: ").split("; ")[0]
        raise SalttuneError(f"{path}: the search's resolved space is damaged ({problem}); {_FIX}") from None


def search_info(local: Path) -> dict:
    """``search.json``: the data fingerprint and the storage the search started with."""
    path = _file(SearchFiles(local).info, "record of its data and storage")
    try:
        info = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise SalttuneError(f"{path}: damaged (not JSON); {_FIX}") from None
    if not isinstance(info, dict) or not {"fingerprint", "storage"} <= set(info) or not isinstance(info["storage"], str):
        raise SalttuneError(f"{path}: not a search record (it needs 'fingerprint' and 'storage'); {_FIX}")
    return info


def _study(path: Path, name: str) -> sqlite3.Connection:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = {n for (n,) in con.execute("select study_name from studies")}
    except sqlite3.DatabaseError as e:
        con.close()
        raise SalttuneError(f"{path}: damaged Optuna study ({e}); {_FIX}") from None
    if name not in names:
        con.close()
        raise SalttuneError(f"{path}: holds no study named {name!r} (it has {', '.join(sorted(names)) or 'none'}); {_FIX}")
    return con


def check_study(local: Path, name: str) -> int:
    """The study in ``optuna.db`` can be read; returns the highest epoch any trial reported to it."""
    path = _file(SearchFiles(local).study, "Optuna study")
    con = _study(path, name)
    try:
        (top,) = con.execute("select max(v.step) from trial_intermediate_values v join trials t on t.trial_id = v.trial_id "
                             "join studies s on s.study_id = t.study_id where s.study_name = ?", (name,)).fetchone()
    except sqlite3.DatabaseError as e:
        raise SalttuneError(f"{path}: damaged Optuna study ({e}); {_FIX}") from None
    finally:
        con.close()
    return int(top or 0)


def read_asha_state(path: str | Path) -> dict | None:
    """ASHA's saved rungs and stop decisions (:mod:`salttune.search.asha`), or None before the first save.

    Raises:
        SalttuneError: the file is damaged (one line naming it and the fix).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        state = None
    if not (isinstance(state, dict) and isinstance(state.get("rungs"), dict) and isinstance(state.get("stopped"), dict)
            and all(isinstance(r, dict) for r in state["rungs"].values())):
        raise SalttuneError(f"{path}: damaged ASHA state (expected JSON with 'rungs' and 'stopped'); {_FIX}")
    return state


def check_asha(local: Path, space: SearchSpace, top_epoch: int) -> None:
    """``asha_state.json`` can be read, and exists once some trial passed ASHA's first rung."""
    if not ALGORITHMS[space.algorithm].stops_early:
        return
    path = SearchFiles(local).asha_state
    if not path.exists() and top_epoch < space.asha.grace_period:
        return  # no trial reached a rung yet: nothing to have saved
    _file(path, "ASHA state (its rungs and stop decisions)")
    read_asha_state(path)


def check_experiment(experiment: Path) -> None:
    """Tune's experiment folder (local storage only): ``tuner.pkl`` and the newest experiment state readable."""
    what = "Tune experiment (trials/)"
    if experiment.is_file():
        raise SalttuneError(f"{experiment}: is a file, but the search's {what} should be a folder here; {_FIX}")
    if not experiment.is_dir():
        raise SalttuneError(f"{experiment}: the search's {what} is missing (it stopped before Ray saved its state, or the "
                            f"folder was deleted); restore it, or delete {experiment.parent} and start the search again")
    tuner = _file(experiment / "tuner.pkl", "Tune state (trials/tuner.pkl)")
    head = tuner.read_bytes()
    if len(head) < 2 or head[:1] != b"\x80" or head[-1:] != b".":  # a pickle starts with PROTO and ends with STOP
        raise SalttuneError(f"{tuner}: damaged (not a complete pickle); {_FIX}")
    states = sorted(experiment.glob("experiment_state-*.json"))
    if states:
        try:
            json.loads(states[-1].read_text())
        except (ValueError, UnicodeDecodeError):
            raise SalttuneError(f"{states[-1]}: damaged (not JSON); {_FIX}") from None
