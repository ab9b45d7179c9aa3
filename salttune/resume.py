"""``salttune train --resume``: the checks that decide, before anything is written, whether a run can continue.

A resumed run continues with its *own* config, the one saved in ``checkpoint/state.pt`` beside the weights
(``config.yaml`` holds the same). ``--set`` may change only the settings in :data:`CHANGEABLE`, which do not
change what was trained so far:

- ``epochs``: train longer (more than the epochs already run);
- ``num_workers``: data-loader processes (every sample's augmentation is seeded by (seed, epoch, index), so
  the batches are the same for any number);
- ``faults.*``: the chaos-testing switches.

Any other key (model, loss, optimiser, schedule, augmentation, batch size, data split, seed, device...) is
refused in one line naming it, unless its value is the one the run already has. ``--config`` is refused:
the run's own config is the config. Nothing here writes a file.
"""

from __future__ import annotations

from pathlib import Path

from salttune.checkpoint import load_checkpoint
from salttune.config import TrainConfig, config_from_dict, config_to_dict
from salttune.errors import SalttuneError
from salttune.layout import RunFiles
from salttune.record import folder_fingerprint, load_record
from salttune.settings import apply_overrides, flatten, parse_overrides

__all__ = ["CHANGEABLE", "resume_config"]

CHANGEABLE = ("epochs", "num_workers", "faults.")  # a key, or a section ending in "."


def _changeable(key: str) -> bool:
    return any(key == c or (c.endswith(".") and key.startswith(c)) for c in CHANGEABLE)


def resume_config(run_dir: str | Path, sets: list[str], data: str | Path, config_file: str | None = None) -> tuple[TrainConfig, int]:
    """The config a resumed run continues with, and the number of epochs it has already trained.

    Args:
        run_dir: the run folder (``--out``), holding ``checkpoint/state.pt``.
        sets: the ``--set KEY=VALUE`` items given with ``--resume``.
        data: the ``--data`` folder; it must be the one the run was trained on (its ``record.json``
            fingerprint), since the validation split is drawn from it.
        config_file: the ``--config`` given with ``--resume`` (refused).

    Raises:
        SalttuneError: one line naming what prevents the resume; nothing has been written.
    """
    run_dir, files = Path(run_dir), RunFiles(run_dir)
    if config_file is not None:
        raise SalttuneError(f"--config {config_file}: a resumed run keeps its own config ({files.config}); "
                            f"leave out --config (--set may change {', '.join(_names())})")
    state_file = files.checkpoint.state
    if not state_file.is_file():
        raise SalttuneError(f"{run_dir}: no {state_file.relative_to(run_dir).as_posix()} to resume; "
                            "train without --resume or give the run's --out")
    state = load_checkpoint(state_file)
    saved, done = state["config"], int(state["epoch"]) + 1
    overrides, old = parse_overrides(sets), flatten(saved)
    _refuse_fixed(overrides, old)  # the keys as given first: a new loss.name must not fail on the old loss.weights
    cfg = config_from_dict(apply_overrides(saved, overrides))  # rejects unknown keys and bad values
    _refuse_fixed(config_to_dict(cfg), old)  # the values as built (coerced)
    if cfg.epochs <= done:
        how = (f"--set epochs={cfg.epochs}: the run has already trained {done} epoch(s)" if cfg.epochs != saved.get("epochs")
               else f"{run_dir}: the run has already trained all {done} epoch(s)")
        raise SalttuneError(f"{how}; give --set epochs=N with N > {done} to train longer")
    _check_same_data(run_dir, Path(data))
    return cfg, done


def _refuse_fixed(settings: dict, old: dict) -> None:
    """Refuse a setting outside :data:`CHANGEABLE` whose value differs from the run's (``old``, flattened)."""
    for key, value in flatten(settings).items():
        if key in old and value != old[key] and not _changeable(key):
            raise SalttuneError(f"--set {key}={value}: cannot change when resuming (the run has {old[key]}); "
                                f"--resume may change only {', '.join(_names())}; start a new run with another --out")


def _names() -> list[str]:
    return [c + "*" if c.endswith(".") else c for c in CHANGEABLE]


def _check_same_data(run_dir: Path, data: Path) -> None:
    """Refuse a data folder whose contents differ from the one the run's record fingerprinted."""
    record = RunFiles(run_dir).record
    try:
        before = (load_record(record).get("data") or {}).get("sha256") if record.is_file() else None
    except SalttuneError:
        before = None  # an unreadable record cannot say; the run's own checkpoint is what resumes
    if before and data.is_dir() and folder_fingerprint(data)["sha256"] != before:
        raise SalttuneError(f"{data}: not the data this run was trained on (its fingerprint in {record} differs); "
                            "give the original folder with --data")
