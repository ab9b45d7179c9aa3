"""The ``salttune`` command line: one sub-command per job, each a thin call into a library function.

Modules are imported inside each command so that ``salttune score`` does not pay for importing torch.
A :class:`SalttuneError` (a mistake in a file, field or flag) ends in one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
import time
from pathlib import Path
from typing import Callable

from salttune import __version__
from salttune.errors import SalttuneError

__all__ = ["main", "OneLineParser", "run_command"]

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _cmd_synth(args: argparse.Namespace) -> int:
    from salttune import preview, synth

    if args.out is None and args.preview is None:
        raise SalttuneError("synth: give --out DIR to write a dataset, and/or --preview FILE.png to draw one")
    if args.out is not None:
        out = Path(args.out)
        if out.exists() and any(out.iterdir()) and not args.force:
            raise SalttuneError(f"{out}: folder is not empty; choose a new --out folder or add --force to overwrite")
        from salttune.record import sigterm_interrupts

        with sigterm_interrupts():  # Ctrl-C or SIGTERM: exit 130; files appear only complete, the CSVs last
            synth.generate(out, n_train=args.n_train, n_test=args.n_test, seed=args.seed, progress=not args.quiet,
                           workers=args.workers)
        print(f"wrote {args.n_train} training and {args.n_test} test images to {out}")
    if args.preview is not None:
        source = Path(args.out) if args.out is not None else Path(args.data or "")
        if args.out is None and args.data is None:
            raise SalttuneError("synth --preview: give --out (a new dataset) or --data DIR (an existing one) to draw")
        preview.write_preview(source, Path(args.preview), seed=args.seed)
        print(f"wrote preview {args.preview}")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from salttune.submission import score_files

    result = score_files(args.submission, args.truth, shape=(args.size, args.size))
    if args.json:
        print(json.dumps(result, indent=None))
        return 0
    print(f"score {result['score']:.4f}   IoU {result['iou']:.4f}   images {result['n']}")
    print("coverage class      n   score     IoU")
    for c, v in result["by_coverage"].items():
        name = "empty" if c == "0" else f"{(int(c) - 1) * 10:>3d}-{int(c) * 10}%"
        print(f"{name:>14s} {v['n']:6d}  {v['score']:.4f}  {v['iou']:.4f}")
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    from salttune.data import load_dataset
    from salttune.datastats import format_comparison, summarize

    def stats(folder: str) -> dict:
        d = load_dataset(folder, with_test=False)
        return summarize(d.train_images, d.train_masks, d.train_depths)

    a = stats(args.data)
    if args.compare:
        print(format_comparison(a, stats(args.compare), names=(Path(args.data).name, Path(args.compare).name)))
    else:
        print(json.dumps(a, indent=2))
    return 0


def _print_epoch(metrics: dict, checkpoint_dir: Path) -> None:
    m = metrics
    print(
        f"epoch {m['epoch']:3d}  loss {m['train_loss']:.4f}  val_loss {m['val_loss']:.4f}  "
        f"score {m['val_score']:.4f}  IoU {m['val_iou']:.4f}  lr {m['lr']:.2e}  "
        f"{m['train_images_per_s']:.0f} img/s  {m['epoch_seconds']:.1f}s",
        flush=True,
    )


def _cmd_train(args: argparse.Namespace) -> int:
    import time

    if args.folds is not None:
        return _train_folds(args)

    from salttune.config import config_to_dict, load_config
    from salttune.data import load_dataset
    from salttune.record import recorded_run, sigterm_interrupts
    from salttune.layout import RunFiles, read_summary
    from salttune.resume import resume_config
    from salttune.split import Split, split_data
    from salttune.train import WATCHERS, fit

    out = Path(args.out or f"results/train-{time.strftime('%Y%m%d-%H%M%S')}")
    files = RunFiles(out)
    unknown = [w for w in args.watch or [] if w not in WATCHERS]
    if unknown:
        raise SalttuneError(f"--watch {unknown[0]!r} is unknown; allowed: {', '.join(WATCHERS)}")
    # Every check passes before the run folder is touched: a refused resume leaves the run as it was.
    if args.resume:
        cfg, done = resume_config(out, args.set or [], args.data, args.config)
    else:
        cfg, done = load_config(args.config, args.set or []), 0
        if files.summary.exists() and not args.force:
            raise SalttuneError(f"{out}: already holds a run; add --resume to continue it, --force to overwrite, or choose another --out")
    data = load_dataset(args.data, with_test=False)
    train, val, holdout = split_data(data, Split.of(cfg))
    held = f" ({len(holdout.ids)} held out)" if len(holdout.ids) else ""
    print(f"training on {len(train.ids)} images, validating on {len(val.ids)}{held}; "
          + (f"resuming {out} after epoch {done} of {cfg.epochs}" if args.resume else f"writing {out}"), flush=True)
    with sigterm_interrupts(), recorded_run(out, kind="train", name=out.name, config=config_to_dict(cfg), seed=cfg.seed,
                                            data=args.data, argv=sys.argv, resumed=args.resume) as run:
        if args.resume:
            run.result(resumed_after_epoch=done)
        started = time.time()
        try:
            summary = fit(cfg, train, val, out, _print_epoch, resume_from=files.checkpoint.root if args.resume else None,
                          watchers=[WATCHERS[w] for w in args.watch or []], progress=not args.quiet)
        finally:  # after Ctrl-C too: the record keeps what this run's finished epochs reached (summary.json)
            path = files.summary
            if path.is_file() and path.stat().st_mtime >= started:
                s = read_summary(path)
                run.result(best_score=s["best_score"], best_epoch=s["best_epoch"], epochs_run=s["epochs_run"])
    print(f"best score {summary['best_score']:.4f} at epoch {summary['best_epoch']}; "
          f"{len(summary['snapshots'])} snapshot(s) in {files.checkpoint.snapshots}")
    return 0


def _train_folds(args: argparse.Namespace) -> int:
    """``salttune train --folds K``: one run per fold in ``--out/fold_i``, then ``folds.json`` (see salttune.folds)."""
    import time

    import yaml

    from salttune.config import config_to_dict, load_config
    from salttune.data import load_dataset
    from salttune.folds import finished, fold_config, summarize, train_fold
    from salttune.layout import KFoldFiles, RunFiles
    from salttune.record import recorded_run, sigterm_interrupts
    from salttune.split import Split, split_data

    out = Path(args.out or f"results/train-{time.strftime('%Y%m%d-%H%M%S')}")
    files = KFoldFiles(out)
    base = files.config
    if args.resume:  # the K-fold run's own config; every fold's run keeps its own
        if args.set or args.config:
            raise SalttuneError("--resume --folds continues the K-fold run with its own config; leave out --set and --config")
        if not base.is_file():
            raise SalttuneError(f"{out}: no K-fold run to resume (no config.yaml); train without --resume")
        cfg = load_config(base)
        if cfg.folds != args.folds:
            raise SalttuneError(f"--folds {args.folds}: {out} was trained with {cfg.folds} folds; give --folds {cfg.folds}")
    else:
        cfg = fold_config(load_config(args.config, args.set or []), args.folds, 0)
        if (files.summary.exists() or RunFiles(out).summary.exists() or any(
                files.fold(f).summary.exists() for f in range(args.folds))) and not args.force:
            raise SalttuneError(f"{out}: already holds a run; add --resume to continue it, --force to overwrite, or choose another --out")
    data = load_dataset(args.data, with_test=False)
    train, val, holdout = split_data(data, Split.of(cfg))
    print(f"{args.folds}-fold training on {len(train.ids) + len(val.ids)} images ({len(val.ids)} validate each fold"
          + (f"; {len(holdout.ids)} held out" if len(holdout.ids) else "") + f"); writing {out}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    from salttune.fileio import atomic_write_text

    atomic_write_text(base, yaml.safe_dump(config_to_dict(cfg), sort_keys=False), "config")
    with sigterm_interrupts(), recorded_run(out, kind="train", name=out.name, config=config_to_dict(cfg), seed=cfg.seed,
                                            data=args.data, argv=sys.argv, resumed=args.resume) as run:
        for f in range(args.folds):
            run_dir = files.fold(f).root
            if args.resume and finished(run_dir):
                print(f"fold {f + 1}/{args.folds}: finished earlier, kept", flush=True)
                continue
            print(f"fold {f + 1}/{args.folds}: {run_dir}", flush=True)
            train_fold(fold_config(cfg, args.folds, f), data, run_dir, report=_print_epoch, progress=not args.quiet,
                       fresh=not args.resume)
        summary = summarize(out, args.folds)
        run.result(best_score=summary["mean_score"], sd_score=summary["sd_score"],
                   fold_scores=[r["best_score"] for r in summary["rows"]])
    for r in summary["rows"]:
        print(f"fold {r['fold']}: best score {r['best_score']:.4f} at epoch {r['best_epoch']}")
    print(f"mean {summary['mean_score']:.4f} ± {summary['sd_score']:.4f} (sd over {args.folds} folds); {files.summary}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import torch

    from salttune.checkpoint import build_from_checkpoint
    from salttune.data import load_dataset
    from salttune.precision import checkpoint_precision
    from salttune.predict import iter_proba, write_submission_stream

    out = Path(args.out)
    if out.exists() and not args.force:
        raise SalttuneError(f"{out}: already exists; choose another --out or add --force to overwrite it")
    model, ckpt = build_from_checkpoint(args.checkpoint)
    data = load_dataset(args.data)
    if not data.test_ids:
        raise SalttuneError(f"{args.data}: no test images in test/images; predict needs the test set")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    depths = data.test_depths if model.config.get("use_depth") else None
    batches = iter_proba(model, data.test_images, depths, device, batch_size=args.batch_size, tta=args.tta,
                         salt_cutoff=args.salt_cutoff, amp_dtype=checkpoint_precision(ckpt, device))
    if not args.quiet:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=-(-len(data.test_ids) // args.batch_size), unit="batch", desc="predict")
    threshold = args.threshold if args.threshold is not None else ckpt["config"].get("threshold", 0.5)
    from salttune.record import sigterm_interrupts

    with sigterm_interrupts():  # Ctrl-C or SIGTERM: exit 130, no submission (it appears only complete)
        write_submission_stream(out, data.test_ids, batches, threshold=threshold)
    print(f"wrote {out} ({len(data.test_ids)} images, tta={args.tta}, threshold={threshold})")
    return 0


def _cmd_ensemble(args: argparse.Namespace) -> int:
    search_dir = Path(args.results) / args.search
    if not search_dir.is_dir():
        raise SalttuneError(f"{search_dir}: no such search; give --search NAME of a folder in {args.results}/")
    from salttune.ensemble_job import Pseudo, check_ensemble, final_members, run_ensemble, top_members
    from salttune.layout import EnsembleFiles, SearchFiles
    from salttune.record import data_folder, recorded_run, sigterm_interrupts

    final = final_members(search_dir) if args.top is None else []
    if args.top is None and (not final or args.refit_folds is not None):
        why = "--refit-folds refits trials" if final else f"{search_dir} has no final models (a search with --time-budget trains them)"
        raise SalttuneError(f"--top: give the number of best trials to ensemble, e.g. --top 5 ({why})")
    if final:
        n = len({m.trial for m in final})
        print(f"members: {f'the {n} final models' if n > 1 else 'the final model'} of the search ({len(final)} snapshots), "
              f"trained on every non-holdout image; --top N ensembles the top trials instead")
        if args.combiner == "auto":  # the selection images trained the final models: a mean, not a fit on them
            args.combiner = "mean"
    members = final or top_members(search_dir, args.top)  # fail on a bad request before anything is written
    data = args.data or data_folder(search_dir)
    if not data:
        raise SalttuneError(f"{search_dir}: the search's data folder is not recorded; give --data DIR")
    files = EnsembleFiles(args.out) if args.out else SearchFiles(search_dir).ensemble
    out = files.root
    settings = {"search": args.search, "top": args.top, "tta": args.tta, "combiner": args.combiner, "folds": args.folds,
                "refit_folds": args.refit_folds, "pseudo_confidence": args.pseudo_confidence, "pseudo_share": args.pseudo_share}
    pseudo = Pseudo(args.pseudo_confidence, args.pseudo_share) if args.pseudo_confidence is not None else None
    # Every check passes before the record is written: a refused run leaves an earlier ensemble's record as it was.
    checked = check_ensemble(members, Path(data), out, force=args.force, combiner=args.combiner, folds=args.folds,
                             refit_folds=args.refit_folds, pseudo=pseudo, search_dir=search_dir, address=args.address,
                             final=bool(final))
    with sigterm_interrupts(), recorded_run(out, kind="ensemble", name=f"{args.search}/ensemble", config=settings,
                                            data=data, argv=sys.argv) as run:
        report = run_ensemble(checked, search_dir, Path(data), args.tta, out, progress=not args.quiet)
        run.result(best_score=report["score"], headline=report["headline"], cv_score=report["cv_score"],
                   holdout_se=report["holdout_se"], combiner=report["chosen"], submission=str(files.submission))
    print(files.report_md.read_text())
    print(f"wrote {files.submission} ({report['test_images']} images) in {report['seconds_test']:.1f}s")
    _within_budget(search_dir)
    return 0


def _within_budget(search_dir: Path) -> None:
    """After an ensemble of a budgeted search: one line on whether the whole job kept its time budget."""
    from salttune.search.budget import read_budget

    try:
        budget = read_budget(search_dir)
    except SalttuneError:
        return
    if budget and budget.get("job_ends"):
        over = time.time() - budget["job_ends"]
        print(f"time budget of the search and ensemble ({budget['budget_s']:.0f} s): ended {abs(over):.0f} s "
              f"{'after' if over > 0 else 'before'} its end")


def _cmd_history(args: argparse.Namespace) -> int:
    from salttune.record import find_records

    records = find_records(args.results)
    if args.name:
        match = [(d, r) for d, r in records if r.get("name") == args.name or d.name == args.name or str(d) == args.name]
        if not match:
            names = ", ".join(sorted({r.get("name", d.name) for d, r in records})[:10]) or "none"
            raise SalttuneError(f"no run named {args.name!r} in {args.results}/; runs: {names}")
        d, rec = match[0]
        print(json.dumps({"folder": str(d), **rec}, indent=2, default=str))
        return 0
    if not records:
        print(f"no runs recorded in {args.results}/ yet")
        return 0
    print(f"{'started (UTC)':20s} {'name':28s} {'kind':9s} {'data':16s} {'best':>7s} {'time':>8s}  status")
    for d, r in records:
        best = (r.get("result") or {}).get("best_score")
        secs = r.get("seconds")
        data = Path((r.get("data") or {}).get("path", "-")).name
        print(f"{(r.get('started') or '')[:19]:20s} {str(r.get('name'))[:28]:28s} {r.get('kind', '?'):9s} {data[:16]:16s} "
              f"{(f'{best:.4f}' if isinstance(best, (int, float)) else '-'):>7s} "
              f"{(f'{secs / 60:.1f}m' if secs is not None else '-'):>8s}  {r.get('status')}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from salttune.record import find_records
    from salttune.report import write_report

    if args.name:
        run_dir = Path(args.name) if Path(args.name).is_dir() else Path(args.results) / args.name
    else:
        runs = [d for d, r in find_records(args.results) if r.get("kind") in ("search", "train")]
        if not runs:
            raise SalttuneError(f"no search or training run in {args.results}/ yet; run 'salttune search' first")
        run_dir = runs[0]
    path = write_report(run_dir, args.out)
    print(f"wrote {path}  (open it in a browser: file://{path.resolve()})")
    return 0


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a bad flag reported as one line (its usage is a --help away), like every other error
    (``python -m benchmarks`` uses it too)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


def _add_data_commands(sub) -> None:
    """synth, score, stats: datasets and submissions, no model."""
    s = sub.add_parser("synth", help="write a synthetic seismic dataset in the Kaggle TGS layout")
    s.add_argument("--out", help="folder to write (train/, test/, train.csv, depths.csv, test_truth.csv)")
    s.add_argument("--n-train", type=int, default=4000, help="training images (default 4000)")
    s.add_argument("--n-test", type=int, default=18000, help="test images (default 18000)")
    s.add_argument("--seed", type=int, default=0, help="same seed, byte-identical files (default 0)")
    s.add_argument("--preview", metavar="FILE.png", help="draw a contact sheet of images with mask outlines")
    s.add_argument("--data", help="with --preview and no --out: the dataset folder to draw")
    s.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    s.add_argument("--workers", type=int, help="processes (default: all cores); output is the same for any number")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_synth)

    s = sub.add_parser("score", help="score a submission CSV against a truth CSV (competition metric)")
    s.add_argument("submission", help="id,rle_mask CSV to score")
    s.add_argument("--truth", required=True, help="id,rle_mask CSV with the true masks (e.g. test_truth.csv)")
    s.add_argument("--size", type=int, default=101, help="image side in pixels (default 101)")
    s.add_argument("--json", action="store_true", help='print {"score", "iou", "n", "by_coverage"} as JSON')
    s.set_defaults(func=_cmd_score)

    s = sub.add_parser("stats", help="statistics of a dataset's training images, optionally against another")
    s.add_argument("--data", required=True, help="dataset folder")
    s.add_argument("--compare", help="a second dataset folder to put side by side")
    s.set_defaults(func=_cmd_stats)


def _add_training_commands(sub) -> None:
    """train, predict: one model, no Ray."""
    s = sub.add_parser("train", help="train one model (no Ray): metrics per epoch, checkpoints, snapshots")
    s.add_argument("--data", required=True, help="dataset folder")
    s.add_argument("--config", help="YAML file of training settings (defaults for the rest)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting, e.g. optim.lr=0.001 (repeatable)")
    s.add_argument("--out", help="run folder (default results/train-<time>)")
    s.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint, with the "
                   "run's own config; --set may then change only epochs (more than already trained), num_workers and "
                   "faults.*, other keys are refused; --data must be the run's data")
    s.add_argument("--force", action="store_true", help="overwrite a finished run in --out")
    s.add_argument("--folds", type=int, metavar="K", help="train one model per coverage-stratified fold (K runs in "
                   "--out/fold_i, then folds.json with each fold's and the mean score); --resume keeps finished folds")
    s.add_argument("--watch", action="append", metavar="NAME", help="extra per-epoch variables to log: layer_stats")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_train)

    s = sub.add_parser("predict", help="predict the test images with one checkpoint and write a submission")
    s.add_argument("--checkpoint", required=True, help="a snapshot or state .pt written by salttune")
    s.add_argument("--data", required=True, help="dataset folder with test/images")
    s.add_argument("--out", required=True, help="submission CSV to write")
    s.add_argument("--tta", choices=("none", "flip"), default="flip", help="test-time augmentation (default flip)")
    s.add_argument("--threshold", type=float, help="probability threshold (default: the checkpoint's config)")
    s.add_argument("--salt-cutoff", type=float, help="predict an image empty when the salt head's probability is below "
                                                      "this (model.salt_head only; default: off)")
    s.add_argument("--batch-size", type=int, default=128)
    s.add_argument("--force", action="store_true", help="overwrite --out")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_predict)


def _add_ensemble_command(sub) -> None:
    from salttune.ensemble import AUTO, BASELINE, COMBINERS  # numpy only: the registry --combiner offers

    s = sub.add_parser("ensemble", help="combine the top trials' snapshots of a search into one submission")
    s.add_argument("--search", default="quick", help="search name: the folder results/NAME (default quick)")
    s.add_argument("--top", type=int, help="number of best trials whose snapshots are used (default: the final models "
                   "of a search with --time-budget, which trains them; required otherwise)")
    s.add_argument("--tta", choices=("none", "flip"), default="flip", help="test-time augmentation (default flip)")
    s.add_argument("--combiner", default=AUTO, choices=(AUTO, *COMBINERS), help=f"{AUTO} (the best out of fold of all but "
                   f"{BASELINE}; default), " + ", ".join(f"{n} ({c.label})" for n, c in COMBINERS.items()))
    s.add_argument("--folds", type=int, default=5, help="cross-validation folds over the selection images (default 5)")
    s.add_argument("--refit-folds", type=int, metavar="K", help="train the top configurations again on K coverage-"
                   "stratified folds of every non-holdout image (Ray tasks with the search's resources; kept in "
                   "results/NAME/refit/kK, finished folds reused) and stack their out-of-fold predictions")
    s.add_argument("--pseudo-confidence", type=float, metavar="C", help="with --refit-folds: add the test images the "
                   "ensemble is confident about (pixels at >= C or <= 1-C) to every fold's training images and refit "
                   "once more; the report gives the holdout score before and after (e.g. 0.9)")
    s.add_argument("--pseudo-share", type=float, default=0.99, metavar="S", help="share of an image's pixels that must "
                   "be confident for it to be pseudo-labelled (default 0.99)")
    s.add_argument("--address", help="with --refit-folds: the Ray cluster to run the folds on (default: a local instance)")
    s.add_argument("--data", help="dataset folder (default: the one the search ran on)")
    s.add_argument("--results", default="results", help="results root (default results)")
    s.add_argument("--out", help="output folder (default results/NAME/ensemble)")
    s.add_argument("--force", action="store_true", help="overwrite an earlier ensemble's files")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.set_defaults(func=_cmd_ensemble)


def _add_record_commands(sub) -> None:
    """history, report: what earlier runs did."""
    s = sub.add_parser("history", help="list past runs (newest first) or show one run's record")
    s.add_argument("name", nargs="?", help="a run's name or folder: show its whole record")
    s.add_argument("--results", default="results", help="results root (default results)")
    s.set_defaults(func=_cmd_history)

    s = sub.add_parser("report", help="write results/NAME/report.html: curves, importance, pictures of the best model")
    s.add_argument("name", nargs="?", help="search name or run folder (default: the newest run)")
    s.add_argument("--results", default="results", help="results root (default results)")
    s.add_argument("--out", help="HTML file to write (default results/NAME/report.html)")
    s.set_defaults(func=_cmd_report)


def build_parser() -> argparse.ArgumentParser:
    """``salttune``'s parser: one sub-command per job, each with its own flags."""
    p = OneLineParser(prog="salttune", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"salttune {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_data_commands(sub)
    _add_training_commands(sub)
    from salttune.search import command as search_command  # imports neither Ray nor Optuna until it runs

    search_command.configure_parser(sub.add_parser("search", help="hyperparameter search: Ray Tune + Optuna TPE + ASHA"))
    _add_ensemble_command(sub)
    _add_record_commands(sub)
    return p


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit 2 with one line when :func:`salttune.flags.check_flags` finds a bad flag."""
    from salttune.flags import check_flags

    try:
        check_flags(args)
    except SalttuneError as e:
        parser.exit(2, f"salttune {args.command}: error: {e}\n")


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.showwarning = _one_line_warning  # our warnings are for users: one line, no source location
    parser = build_parser()
    args = parser.parse_args(argv)  # a bad flag: one line, exit 2 (OneLineParser.error)
    _check_args(parser, args)
    return run_command(f"salttune {args.command}", args.func, args)


def run_command(prog: str, func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command's function with the error contract every command line of this project keeps: a user's
    mistake (:class:`SalttuneError`) or a full disk is one line on stderr naming ``prog`` and the fix (exit 2),
    Ctrl-C is one line and exit 130. Programming errors still raise."""
    try:
        return func(args)
    except SalttuneError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        if e.errno not in _DISK_FULL:
            raise
        # Checkpoints and results are written to a temporary name and renamed, so what was written before
        # is intact; the run can continue with --resume once there is room.
        where = f" writing {e.filename}" if e.filename else ""
        print(f"{prog}: error: disk full{where} ({e.strerror}); free space (or choose another --out) "
              "and run again; earlier results are intact", file=sys.stderr)
        return 2

if __name__ == "__main__":
    sys.exit(main())
