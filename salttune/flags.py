"""The command line's flag checks that argparse cannot express, run before any command does work.

Ranges (``--threshold``, ``--size``, ``--workers``...), paths that are a file where a folder is expected or
the reverse, and settings that are legal alone but make no sense with the data (``model.use_depth`` without
``depths.csv``). Each problem is one :class:`SalttuneError` line; ``cli.main`` prints it and exits 2. These
functions read the parsed flags (an ``argparse.Namespace``) because checking flags is all they do.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from salttune.errors import SalttuneError

__all__ = ["check_flags"]


def _at_least(args: argparse.Namespace, names: tuple[str, ...], low: int) -> None:
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value < low:
            raise SalttuneError(f"--{name.replace('_', '-')} must be at least {low}, not {value}")


def _is_file(flag: str, path: str | None, wanted: str) -> None:
    if path is not None and Path(path).is_file():
        raise SalttuneError(f"{path}: is a file, not a folder; give --{flag} a {wanted}")


def _is_folder(flag: str, path: str | None, wanted: str) -> None:
    if path is not None and Path(path).is_dir():
        raise SalttuneError(f"{path}: is a folder, not a file; give --{flag} a {wanted}")


def check_flags(args: argparse.Namespace) -> None:
    """Flag checks argparse cannot express: ranges, and paths that are a file where a folder is expected or the
    reverse. Raises :class:`SalttuneError` before any work starts."""
    cmd = args.command
    _at_least(args, ("n_train", "n_test"), 0)
    _at_least(args, ("workers", "batch_size", "top", "size"), 1)
    if cmd in ("ensemble", "train"):
        _at_least(args, ("folds", "refit_folds"), 2)
    threshold = getattr(args, "threshold", None)
    if threshold is not None and not 0 < threshold < 1:  # also false for NaN
        raise SalttuneError(f"--threshold {threshold:g}: must be between 0 and 1 (exclusive), e.g. 0.5")
    cutoff = getattr(args, "salt_cutoff", None)
    if cutoff is not None and not 0 < cutoff < 1:
        raise SalttuneError(f"--salt-cutoff {cutoff:g}: must be between 0 and 1 (exclusive), e.g. 0.5")
    if cmd in ("synth", "train"):
        _is_file("out", args.out, "folder")
    if cmd in ("predict", "report"):
        _is_folder("out", args.out, "file name to write")
    if cmd in ("predict",) and args.out is not None and not Path(args.out).parent.is_dir():
        raise SalttuneError(f"{Path(args.out).parent}: folder does not exist; create it or give --out in an existing folder")
    if cmd == "synth" and args.preview is not None:
        _is_folder("preview", args.preview, "file name ending in .png")
    if cmd in ("history", "report", "ensemble"):
        _is_file("results", args.results, "folder (the results root)")
    if cmd == "train" and not args.resume:  # a resumed run keeps its own config (salttune/resume.py checks that)
        _check_train_config(args)
    if cmd == "predict" and Path(args.data).is_dir() and not (Path(args.data) / "depths.csv").is_file():
        from salttune.checkpoint import load_checkpoint

        if load_checkpoint(args.checkpoint).get("model_args", {}).get("use_depth"):
            raise SalttuneError(f"{args.checkpoint}: the model was trained with depths (model.use_depth) but {args.data} "
                                "has no depths.csv; add the file with the test images' depths")


def _check_train_config(args: argparse.Namespace) -> None:
    """Settings that are legal alone but make no sense with the data: checked before the data are loaded."""
    import warnings

    from salttune.config import load_config

    with warnings.catch_warnings():  # _cmd_train reads the config again and warns then, once
        warnings.simplefilter("ignore")
        cfg = load_config(args.config, args.set or [])
    from salttune.model import check_model
    from salttune.settings import to_dict

    check_model(**to_dict(cfg.model))  # a bad encoder, weights file or attention fails here, before a file is written
    data = Path(args.data)
    if cfg.model.use_depth and data.is_dir() and not (data / "depths.csv").is_file():
        raise SalttuneError(f"model.use_depth is true but {data} has no depths.csv; add the file or set model.use_depth=false")
