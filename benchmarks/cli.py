"""``python -m benchmarks NAME [flags]``: one sub-command per benchmark, each with its own flags.

Run from a checkout's root (the benchmarks are not installed with salttune). A run writes its result
(``NAME.json``, plus a README.md that shows every result in the folder) to ``--out``, by default the gitignored
``bench-out/``; ``--reference`` writes into ``results/benchmarks/`` instead and re-renders its README, the
committed figures. A mistake in a flag or a file ends in one line on stderr and exit code 2, as ``salttune`` does.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path
from typing import Callable

from salttune.cli import OneLineParser, run_command
from salttune.errors import SalttuneError

__all__ = ["main", "build_parser", "OUT", "REFERENCE", "CURVES"]

OUT = "bench-out"  # where a run writes by default: gitignored, so a run never rewrites committed figures
REFERENCE = "results/benchmarks"  # the committed reference figures, written only with --reference
CURVES = f"{REFERENCE}/replay/curves.json"  # the committed curve table that replay and confirm read
SPACES = "benchmarks/spaces"
REPLAY_ALGORITHMS = "random,random+asha,tpe+asha"
SEARCH_ALGORITHMS = "tpe+asha,random"
DATA_HELP = "dataset folder in the Kaggle TGS layout (e.g. --data ../shared/tgs_sample)"


# -- flag types: a value out of range is argparse's one-line error ------------------------------------------

def _at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {value}")
        return value
    return parse


def _positive(unit: str, *, zero: bool = False) -> Callable[[str], float]:
    """A finite number above 0 (``zero``: at least 0)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (value >= 0 if zero else value > 0) or not math.isfinite(value):  # NaN fails both
            raise argparse.ArgumentTypeError(f"{value:g}: must be a {'non-negative' if zero else 'positive'} number of "
                                             f"{unit}, e.g. {2 if zero else 60}")
        return value
    return parse


COUNT = _at_least(1)


def _not_a(path: str | None, flag: str, is_dir: bool, wanted: str) -> None:
    """Refuse a folder where a file is wanted (``is_dir``) or the reverse, naming the flag."""
    if path is not None and (Path(path).is_dir() if is_dir else Path(path).is_file()):
        kind, other = ("folder", "file") if is_dir else ("file", "folder")
        raise SalttuneError(f"{path}: is a {kind}, not a {other}; give --{flag} a {wanted}")


def _algorithms(flag_value: str, known) -> list[str]:
    """``--algorithms a,b,c`` as a checked list of names of ``known``."""
    from benchmarks.search import check_algorithms

    return check_algorithms([a.strip() for a in flag_value.split(",") if a.strip()], known)


# -- the benchmarks ----------------------------------------------------------------------------------------

def _train(args: argparse.Namespace, out: Path) -> tuple[str, dict, str | None]:
    from benchmarks.training import bench_train
    from salttune.config import config_from_dict, parse_overrides
    from salttune.data import load_dataset

    d = load_dataset(args.data, with_test=False)
    cfg = config_from_dict(parse_overrides(args.set or []))
    return "train", bench_train(d.train_images, d.train_masks, cfg, steps=args.steps, repeats=args.repeats), None


def _predict(args: argparse.Namespace, out: Path) -> tuple[str, dict, str | None]:
    from benchmarks.training import bench_predict
    from salttune.config import config_from_dict, parse_overrides
    from salttune.data import load_dataset

    d = load_dataset(args.data, with_test=False)
    return "predict", bench_predict(d.train_images[: args.images], config_from_dict(parse_overrides(args.set or []))), None


def _quality(args: argparse.Namespace, out: Path) -> tuple[str, dict, str | None]:
    from benchmarks.quality import bench_quality, load_recipes
    from salttune.config import apply_overrides, parse_overrides

    overrides = parse_overrides(args.set or [])
    recipes = load_recipes(args.recipes, args.only.split(",") if args.only else None)
    recipes = {name: apply_overrides(r, overrides) for name, r in recipes.items()}  # --set: on every recipe
    result = bench_quality(args.data, out / "quality-runs", budget_s=args.budget_s, folds=args.folds, seeds=args.seeds,
                           recipes=recipes, images=args.images_part)
    return "quality", result, None


def _search(args: argparse.Namespace, out: Path) -> tuple[str, dict, str | None]:
    from benchmarks.search import bench_search
    from salttune.search.algorithms import ALGORITHMS

    result = bench_search(args.data, out, args.target, space_file=args.space, trials=args.trials, seeds=args.seeds,
                          sets=args.set or [], algorithms=_algorithms(args.algorithms, ALGORITHMS))
    return "search", result, None


def _scale(args: argparse.Namespace, out: Path) -> tuple[str, dict, str | None]:
    from benchmarks.search import bench_scale

    return "scale", bench_scale(args.data, out, space_file=args.space, trials=args.trials, sets=args.set or []), None


def _protocol(args: argparse.Namespace, out: Path) -> tuple[str, dict, str | None]:
    from benchmarks.protocol import bench_protocol

    result = bench_protocol(args.data, out / "protocol-runs", space=args.space, sets=args.set or [], seeds=args.seeds,
                            top=args.top, refit_folds=args.refit_folds)
    return "protocol", result, None


def _budget(args: argparse.Namespace, out: Path) -> tuple[str, dict, str | None]:
    from benchmarks.budget import bench_budget

    result = bench_budget(args.data, out / "budget-runs", space=args.space, minutes=args.minutes, seeds=args.seed_list,
                          arms=args.arms.split(","), score_only=args.score_only)
    return "budget", result, None


def _replay(args: argparse.Namespace, out: Path) -> tuple[str, dict, str | None]:
    from benchmarks.figures import replay_table
    from benchmarks.replay import bench_replay, variants

    _not_a(args.curves, "curves", True, "curve table written by python -m benchmarks record")
    result = bench_replay(args.curves, algorithms=_algorithms(args.algorithms, variants()), seeds=args.seeds,
                          concurrent=args.concurrent, horizon_full_trials=args.horizon_trials, sets=args.set or [],
                          surrogate=args.surrogate)
    return ("replay" if args.surrogate == "forest" else f"replay-{args.surrogate}"), result, replay_table(result)


def _lcbench(args: argparse.Namespace, out: Path) -> tuple[str, dict, str | None]:
    from benchmarks.lcbench import bench_lcbench, lcbench_table

    _not_a(args.surrogate, "surrogate", False, "folder (YAHPO Gym's lcbench: model.onnx, encoding.json)")
    algorithms = [a.strip() for a in args.algorithms.split(",") if a.strip()]
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    result = bench_lcbench(args.surrogate, tasks=tasks, algorithms=algorithms, seeds=args.seeds, concurrent=args.concurrent,
                           horizon_full_trials=args.horizon_trials, processes=args.processes, startup_epochs=args.startup_epochs)
    return "lcbench", result, lcbench_table(result)


def _confirm(args: argparse.Namespace, out: Path) -> tuple[str, dict, str | None]:
    from benchmarks.confirm import load_live, replay_of_live
    from benchmarks.figures import confirm_table

    _not_a(args.curves, "curves", True, "curve table written by python -m benchmarks record")
    _not_a(args.live, "live", True, "result file of python -m benchmarks search (search.json)")
    result = replay_of_live(load_live(args.live), args.curves, target=args.target, surrogate=args.surrogate)
    return ("confirm" if args.surrogate == "forest" else f"confirm-{args.surrogate}"), result, confirm_table(result)


def _gpu(args: argparse.Namespace, out: Path) -> tuple[str, dict, str | None]:
    """The GPU's sizes (``CUDA_SIZES``) when CUDA is there, else bench_gpu's small CPU defaults; --steps, --repeats,
    --images, --top (members), --concurrent (largest K) and --set batch_size (and any model.* / optim.* setting)
    override them. No data are read: random tensors on the device."""
    import torch

    from benchmarks.gpu import CUDA_SIZES, bench_gpu, gpu_table
    from salttune.config import config_from_dict, parse_overrides

    overrides = parse_overrides(args.set or [])
    cfg = config_from_dict(overrides)
    sizes = dict(CUDA_SIZES) if torch.cuda.is_available() else {"batch_size": cfg.batch_size}
    if "batch_size" in overrides:
        sizes["batch_size"] = cfg.batch_size
    for flag, key in (("steps", "steps"), ("repeats", "repeats"), ("images", "images"), ("top", "members")):
        if getattr(args, flag) is not None:
            sizes[key] = getattr(args, flag)
    if args.concurrent is not None:  # 1, 2, 4, 8 up to it, and itself
        sizes["concurrent"] = sorted({k for k in (1, 2, 4, 8) if k < args.concurrent} | {args.concurrent})
    result = bench_gpu(cfg, **sizes)
    return ("gpu" if result["device_type"] == "cuda" else "gpu-cpu"), result, gpu_table(result)  # a CPU run never overwrites GPU figures


def _record(args: argparse.Namespace) -> int:
    """Turn a finished recording search into the curve table replay and confirm read (a table, not a figure)."""
    from benchmarks.replay import record_curves
    from salttune.fileio import write_json

    out = Path(args.out or (CURVES if args.reference else f"{OUT}/replay/curves.json"))
    _not_a(str(out), "out", True, f"file name to write, e.g. {OUT}/replay/curves.json")
    table = record_curves(args.search)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, table, "curve table")  # atomic: an interrupted write leaves the earlier table whole
    failed = sum(c["failed"] is not None for c in table["curves"])
    print(f"recorded {len(table['curves'])} curves ({failed} failed) of {args.search} in {out}")
    return 0


BENCHMARKS: dict[str, Callable[[argparse.Namespace, Path], tuple[str, dict, str | None]]] = {
    "train": _train, "predict": _predict, "quality": _quality, "search": _search, "scale": _scale,
    "protocol": _protocol, "budget": _budget, "replay": _replay, "confirm": _confirm, "gpu": _gpu,
    "lcbench": _lcbench,
}


def _codestats(args: argparse.Namespace) -> int:
    """Print the package's size and shape (lines, long modules and functions, import cycles, file-name literals)."""
    from benchmarks.codestats import code_stats, format_stats

    if not Path(args.package).is_dir():
        raise SalttuneError(f"{args.package}: no such folder; give --package the folder of a Python package, e.g. salttune")
    stats = code_stats(args.package)
    print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    return 0


def _run(args: argparse.Namespace) -> int:
    """Run one benchmark, save its result with the command and the machine, and render the folder's README."""
    from benchmarks.figures import plot_anytime, render_readme, save_result

    out = Path(args.out or (REFERENCE if args.reference else OUT))
    _not_a(str(out), "out", False, "folder")
    name, result, table = BENCHMARKS[args.name](args, out)
    command = "python -m benchmarks " + " ".join(shlex.quote(a) for a in args.argv)
    wrote = [save_result(out, name, result, command)]
    if args.name == "replay":  # before the README, which shows it
        wrote.append(plot_anytime(result, out / f"{name}_anytime.png"))
    (out / "README.md").write_text(render_readme(out))
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, (list, dict))}, indent=2))
    if table:
        print(table)
    print(f"wrote {', '.join(map(str, wrote))} and {out / 'README.md'}")
    return 0


# -- the parser --------------------------------------------------------------------------------------------

def _add(sub, name: str, help: str, *, data: bool = True, sets: str | None = None) -> argparse.ArgumentParser:
    """A benchmark's sub-parser with the flags every figure-writing benchmark has: --out, --reference, and
    --data / --set where the benchmark reads data or takes overrides."""
    s = sub.add_parser(name, help=help, description=help)
    if data:
        s.add_argument("--data", required=True, help=DATA_HELP)
    if sets:
        s.add_argument("--set", action="append", metavar="KEY=VALUE", help=sets)
    where = s.add_mutually_exclusive_group()
    where.add_argument("--out", help=f"folder for the result, its figures and a README showing them (default {OUT}/)")
    where.add_argument("--reference", action="store_true",
                       help=f"write into {REFERENCE}/ and re-render its README: update the committed reference figures")
    s.set_defaults(func=_run, name=name)
    return s


def build_parser() -> argparse.ArgumentParser:
    """``python -m benchmarks``: one sub-parser per benchmark, each with only its own flags."""
    p = OneLineParser(prog="python -m benchmarks", description="salttune's benchmarks, one sub-command each, run from a "
                      "checkout's root; a run writes its figures to bench-out/ unless --out or --reference says otherwise")
    sub = p.add_subparsers(dest="command", required=True, metavar="BENCHMARK")
    config_sets = "training-config override, e.g. model.base_width=8 (repeatable)"
    space_sets = "search-space override, e.g. asha.max_t=4 (repeatable)"

    s = _add(sub, "train", "images/s of salttune's training epoch against a plain PyTorch loop", sets=config_sets)
    s.add_argument("--steps", type=COUNT, default=8, help="batches per timed epoch (default 8)")
    s.add_argument("--repeats", type=COUNT, default=3, help="interleaved repeats, median reported (default 3)")

    s = _add(sub, "predict", "images/s of prediction without and with flip TTA; peak memory", sets=config_sets)
    s.add_argument("--images", type=COUNT, default=512, help="images to predict (default 512)")

    s = _add(sub, "quality", "training recipes compared out of fold at the same wall-clock budget",
             sets=f"{config_sets}, applied to every recipe")
    s.add_argument("--budget-s", type=_positive("seconds"), default=60.0, help="seconds of training per recipe and fold (default 60)")
    s.add_argument("--folds", type=_at_least(2), default=5, help="coverage-stratified folds (default 5)")
    s.add_argument("--seeds", type=COUNT, default=2, help="fold assignments and training seeds (default 2)")
    s.add_argument("--recipes", help="a YAML file of name: {config overrides} (default: the built-in recipes)")
    s.add_argument("--only", help="a comma-separated subset of the recipes")
    s.add_argument("--images-part", default="all", choices=("all", "choose", "score"),
                   help="all images, or one of two fixed disjoint parts: 'choose' (40%%) to pick a recipe on, "
                        "'score' (60%%) to compare it on (default all)")

    s = _add(sub, "search", "time for real searches of each algorithm to reach a target score", sets=space_sets)
    s.add_argument("--target", type=float, required=True, help="the validation score the searches race to")
    s.add_argument("--algorithms", metavar="A,B,...", default=SEARCH_ALGORITHMS,
                   help=f"the algorithms raced (default {SEARCH_ALGORITHMS})")
    s.add_argument("--space", default=f"{SPACES}/bench.yaml", help=f"the search space (default {SPACES}/bench.yaml)")
    s.add_argument("--trials", type=COUNT, help="trial budget per search (default: the space's)")
    s.add_argument("--seeds", type=COUNT, default=3, help="seeds per algorithm (default 3)")

    s = _add(sub, "scale", "epochs per minute of one search with 1 and 2 concurrent trials", sets=space_sets)
    s.add_argument("--space", default="search_spaces/quick.yaml", help="the search space (default search_spaces/quick.yaml)")
    s.add_argument("--trials", type=COUNT, help="trial budget per search (default: the space's)")

    s = _add(sub, "protocol", "holdout scores of the ways to use the labels: single trial, ensemble, refit, pseudo-labels",
             sets=space_sets)
    s.add_argument("--space", default="search_spaces/quick.yaml", help="the search space (default search_spaces/quick.yaml)")
    s.add_argument("--seeds", type=COUNT, default=1, help="searches (default 1)")
    s.add_argument("--top", type=COUNT, default=3, help="trials ensembled (default 3)")
    s.add_argument("--refit-folds", type=_at_least(2), default=5, help="folds of the refit (default 5)")

    s = _add(sub, "budget", "equal wall-clock: the default trained alone against a budgeted search and its ensemble, "
             "paired on the same held-out images, several holdout seeds")
    s.add_argument("--space", default="search_spaces/laptop.yaml", help="the search space (default search_spaces/laptop.yaml)")
    s.add_argument("--minutes", type=float, default=15.0, help="wall-clock of every arm (default 15)")
    s.add_argument("--seed-list", type=int, nargs="+", default=[0, 1, 2], help="holdout seeds (default 0 1 2)")
    s.add_argument("--arms", default="default,search,noprior", help="arms, comma-separated (default default,search,noprior)")
    s.add_argument("--score-only", action="store_true", help="run nothing: compare the arms already run in --out")

    s = sub.add_parser("record", help="turn a finished recording search into the curve table replay reads",
                       description="turn a finished recording search into the curve table replay and confirm read")
    s.add_argument("--search", required=True, metavar="DIR", help="the folder of the finished recording search (results/NAME)")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--out", metavar="FILE", help=f"the curve table to write (default {OUT}/replay/curves.json)")
    where.add_argument("--reference", action="store_true", help=f"write the committed table, {CURVES}")
    s.set_defaults(func=_record)

    surrogate = dict(default="forest", choices=("forest", "nearest"),
                     help="how a configuration between recorded ones is replayed: forest (random forests' mean curve) "
                          "or nearest (the nearest recorded configuration's real curve); default forest")
    s = _add(sub, "replay", "search algorithms replayed in virtual time on recorded learning curves", data=False,
             sets="override of the recorded search space (concurrent, asha.*, startup_trials...; repeatable)")
    s.add_argument("--curves", metavar="FILE", default=CURVES, help=f"the curve table (default {CURVES})")
    s.add_argument("--algorithms", metavar="A,B,...", default=REPLAY_ALGORITHMS,
                   help=f"those replayed (default {REPLAY_ALGORITHMS}; also the variants of benchmarks/replay.py)")
    s.add_argument("--seeds", type=COUNT, default=20, help="replayed searches per algorithm (default 20)")
    s.add_argument("--concurrent", type=COUNT, help="trials at once (default: the recorded space's)")
    s.add_argument("--horizon-trials", type=_positive("trials"), default=60.0, help="the virtual-time budget, in full "
                   "trials of median length on the concurrent slots (default 60)")
    s.add_argument("--surrogate", **surrogate)

    from benchmarks.lcbench import ALGORITHMS as LC_ALGORITHMS, LCBENCH, STARTUP_EPOCHS, TASKS

    s = _add(sub, "lcbench", "salttune's searchers, random search, random + ASHA and DEHB on YAHPO Gym's LCBench "
             "surrogate, in virtual time", data=False)
    s.add_argument("--surrogate", metavar="DIR", default=LCBENCH, help=f"the surrogate's folder (default {LCBENCH})")
    s.add_argument("--tasks", metavar="T,T,...", default=",".join(TASKS), help="OpenML task ids of LCBench (default: "
                   "the first 10 of the surrogate's)")
    s.add_argument("--algorithms", metavar="A,B,...", default=",".join(LC_ALGORITHMS),
                   help=f"those run (default {','.join(LC_ALGORITHMS)}; also salttune's other algorithms and the "
                   "replay's one-change variants, e.g. bohb, tpe+asha/startup10)")
    s.add_argument("--seeds", type=COUNT, default=30, help="searches per algorithm and task (default 30)")
    s.add_argument("--concurrent", type=COUNT, default=4, help="trials at once (default 4)")
    s.add_argument("--horizon-trials", type=_positive("trials"), default=50.0, help="the virtual-time budget, in "
                   "52-epoch trials of the task's median configuration on the concurrent slots (default 50)")
    s.add_argument("--processes", type=COUNT, default=2, help="worker processes (default 2)")
    s.add_argument("--startup-epochs", type=_positive("epochs", zero=True), default=STARTUP_EPOCHS,
                   help=f"each trial's start-up on the clock, in epochs of the task's median configuration (default "
                   f"{STARTUP_EPOCHS:g}; 0: none, as in published LCBench results)")

    s = _add(sub, "confirm", "the live search races replayed, to check that the replay ranks as reality does", data=False)
    s.add_argument("--live", metavar="FILE", default=f"{REFERENCE}/search.json",
                   help=f"the live races to replay, a result of the search benchmark (default {REFERENCE}/search.json)")
    s.add_argument("--curves", metavar="FILE", default=CURVES, help=f"the curve table (default {CURVES})")
    s.add_argument("--target", type=float, help="the score to time (default: the live races' own)")
    s.add_argument("--surrogate", **surrogate)

    s = _add(sub, "gpu", "training and prediction throughput on the device (CUDA, else the CPU at small sizes)", data=False,
             sets="training-config override, e.g. batch_size=64 (repeatable)")
    s.add_argument("--steps", type=COUNT, help="timed training steps per repeat and per sharing process (default 30 on "
                                               "a GPU, 4 on the CPU)")
    s.add_argument("--repeats", type=COUNT, help="timed repeats (default 5 on a GPU, 3 on the CPU)")
    s.add_argument("--images", type=COUNT, help="images of the timed ensemble prediction (default 18000 on a GPU, 256 on the CPU)")
    s.add_argument("--top", type=COUNT, help="ensemble members of the timed prediction (default 10 on a GPU, 2 on the CPU)")
    s.add_argument("--concurrent", type=COUNT, help="the most training processes sharing the device (K = 1, 2, 4, 8 up "
                                                    "to it; default 8 on a GPU, 2 on the CPU)")

    s = sub.add_parser("codestats", help="the package's lines, modules over 400 and functions over 60 lines, import "
                       "cycles, file-name literals (read from source; prints, writes nothing)")
    s.add_argument("--package", default="salttune", help="the package folder to read (default salttune)")
    s.add_argument("--json", action="store_true", help="print the figures as JSON")
    s.set_defaults(func=_codestats)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # a bad flag: one line, exit 2
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded beside the result
    return run_command(f"python -m benchmarks {args.command}", args.func, args)
