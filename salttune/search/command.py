"""``salttune search``: validate everything, start or join Ray, run (or resume) the search, write the leaderboard.

Files of a search, under ``results/NAME/`` (``--storage DIR`` moves the whole folder; with ``--storage s3://...``
the trials go to the bucket and the files marked * stay in ``results/NAME/`` on the driver)::

    space.yaml         * the resolved search space (read back by --resume)
    search.json        * data fingerprint, storage, versions
    optuna.db          * the Optuna study (optuna-dashboard sqlite:///results/NAME/optuna.db)
    asha_state.json    * ASHA's rungs and stop decisions (restored by --resume; algorithms with ASHA only)
    leaderboard.csv    * one row per trial, best first
    search.lock        * the running driver's pid and host (one driver per search; gone when it ends)
    trials/            Tune's experiment: tuner.pkl, experiment_state-*.json, searcher-state-*.pkl (for --resume)
      trial_<id>/      one trial: result.json, progress.csv, checkpoint_NNNNNN/ (state.pt, snapshots/)

Ray and Optuna are imported inside :func:`search`, so ``salttune --help`` does not pay for them.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
from pathlib import Path

import yaml

from salttune.errors import SalttuneError
from salttune.fileio import atomic_write_text, write_json
from salttune.search.algorithms import ASHA_FILE, STUDY_FILE
from salttune.search.lock import LOCK, refuse_if_running, search_lock
from salttune.search.resume import INFO_FILE, SPACE_FILE, check_asha, check_experiment, check_study, saved_space, search_info
from salttune.search.space import SearchSpace, load_space, space_to_dict

__all__ = ["configure_parser", "run", "plan", "search"]

EXPERIMENT = "trials"  # Tune's experiment folder inside results/NAME
STATE_PERIOD_S = 2  # seconds between Tune's experiment-state saves (the TUNE_GLOBAL_CHECKPOINT_S default)


def configure_parser(p: argparse.ArgumentParser) -> None:
    """Add the ``search`` flags to a (sub)parser and make :func:`run` its handler."""
    p.add_argument("--space", metavar="FILE", help="search space YAML, e.g. search_spaces/quick.yaml (required unless --resume)")
    p.add_argument("--name", help="results folder name under the results root (default: the space's name)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override the space: trials=4, asha.max_t=3, data.max_train_images=200, space.PARAM={...}, "
                        "or a training-config key such as model.base_width=8 (goes to fixed); repeatable")
    p.add_argument("--address", help="join this Ray cluster (host:port or 'auto') instead of starting a local instance")
    p.add_argument("--resume", action="store_true", help="continue the interrupted search results/NAME")
    p.add_argument("--storage", metavar="PATH_OR_URI",
                   help="results root that every node can reach (a shared folder or s3://bucket/prefix); default ./results")
    p.add_argument("--data", metavar="DIR", help="dataset folder (overrides the space's data.folder)")
    p.add_argument("--dashboard-host", default="127.0.0.1", metavar="HOST",
                   help="address the local Ray dashboard binds to (default 127.0.0.1; anything else exposes it, "
                        "behind Ray's token, to the network: prefer an SSH tunnel)")
    p.set_defaults(func=run)


@dataclasses.dataclass(frozen=True)
class Plan:
    """A search checked and placed, before Ray starts."""

    space: SearchSpace
    local_dir: Path  # optuna.db, leaderboard, ASHA state, resolved space
    storage: str  # Tune's storage_path: an absolute folder or a URI
    resume: bool

    @property
    def tune_storage(self) -> str:
        return f"{self.storage.rstrip('/')}/{self.space.name}"

    @property
    def experiment(self) -> str:
        # A folder of its own: on restore Tune copies every .json/.pkl of its experiment folder to a staging
        # folder and later uploads them back, which would overwrite our asha_state.json with a stale copy.
        return f"{self.tune_storage}/{EXPERIMENT}"


def plan(space_path: str | None, name: str | None, sets: list[str], storage: str | None, data: str | None,
         resume: bool) -> Plan:
    """Everything that can be checked before Ray starts.

    Args:
        space_path: the search space YAML (``--space``); optional with ``resume``.
        name: the results folder name (``--name``; default the space's name).
        sets: ``KEY=VALUE`` overrides of the space (``--set``).
        storage: the results root, a folder or a URI (``--storage``; default ``./results``).
        data: the dataset folder (``--data``; overrides the space's ``data.folder``).
        resume: continue the search ``name`` instead of starting one.
    """
    remote = storage is not None and "://" in storage
    if storage is not None and not remote:
        _check_storage(storage)
    if data is not None and Path(data).expanduser().is_file():
        raise SalttuneError(f"--data {data}: is a file; give the dataset folder (the one holding train/ and train.csv)")
    if name is not None:
        _check_name(name)
    root = Path("results").resolve() if storage is None or remote else Path(storage).expanduser().resolve()
    tune_storage = storage if remote else str(root)
    if resume:
        if sets:
            raise SalttuneError("--set cannot change a search being resumed; resume it as it was, or start a new --name")
        name = name or (load_space(space_path).name if space_path else None)
        if name is None:
            raise SalttuneError("--resume: give --name NAME (or the --space file) of the search to continue")
        local = root / name
        refuse_if_running(local)
        space = saved_space(local, data)
        if space_path:
            given = space_to_dict(load_space(space_path, data=space.data.folder))
            if {**given, "name": name} != space_to_dict(space):
                raise SalttuneError(f"{space_path}: differs from the space of the search being resumed ({local / SPACE_FILE}); "
                                    "resume without --space, or start a new --name")
        info = search_info(local)
        if storage is None and info.get("storage"):
            tune_storage = info["storage"]
        resumed = Plan(space, local, tune_storage, True)
        check_asha(local, space, check_study(local, space.name))
        if "://" not in tune_storage:
            check_experiment(Path(resumed.experiment))
        return resumed
    if not space_path:
        raise SalttuneError("give --space FILE (e.g. search_spaces/quick.yaml), or --resume --name NAME")
    space = load_space(space_path, sets, data=data)
    name = space.name if name is None else name
    if space.data.folder is None:
        raise SalttuneError(f"{space_path}: key 'data.folder' is not set; give --data DIR (e.g. data/synth)")
    folder = str(Path(space.data.folder).expanduser().resolve())
    space = dataclasses.replace(space, name=name, data=dataclasses.replace(space.data, folder=folder))
    local = root / name
    if local.is_file():
        raise SalttuneError(f"{local}: is a file where the search's folder goes; move it, or choose another --name")
    refuse_if_running(local)
    if local.exists() and any(p.name != LOCK for p in local.iterdir()):  # a stale lock alone is no search
        raise SalttuneError(f"{local}: a search named {name!r} is already there; add --resume to continue it, or choose another --name")
    return Plan(space, local, tune_storage, False)


def _check_name(name: str) -> None:
    if not name or any(c in name for c in "/\\ ") or name.startswith("."):
        raise SalttuneError(f"--name {name!r}: not a usable folder name; use letters, digits, '-' and '_'")


def _check_storage(storage: str) -> None:
    """A local ``--storage``: a folder (made if missing), not a file, nor below one."""
    path = Path(storage).expanduser()
    if not storage.strip():
        raise SalttuneError("--storage '': give a results folder (default ./results) or a URI such as s3://bucket/prefix")
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            raise SalttuneError(f"--storage {storage}: {p} is a file; give a folder for the results (default ./results)")


def _load_data(plan: Plan):
    from salttune.data import dataset_fingerprint, load_dataset
    from salttune.split import SPLIT_KEYS, Split, split_data

    d = plan.space.data
    data = load_dataset(d.folder, with_test=False)
    train, val, holdout = split_data(data, Split(**{k: getattr(d, k) for k in SPLIT_KEYS}))
    return train, val, holdout, dataset_fingerprint(data)


def _write_plan(plan: Plan, fingerprint: str) -> None:
    import optuna
    import ray

    plan.local_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(plan.local_dir / SPACE_FILE, yaml.safe_dump(space_to_dict(plan.space), sort_keys=False), "resolved space")
    info = {"data": plan.space.data.folder, "fingerprint": fingerprint, "storage": plan.storage, "source": plan.space.source,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "ray": ray.__version__, "optuna": optuna.__version__}
    write_json(plan.local_dir / INFO_FILE, info, "search record")


def run(args: argparse.Namespace) -> int:
    """The ``salttune search`` handler: the flags, unpacked into :func:`plan` and :func:`search`."""
    from salttune.search.session import check_address, check_dashboard_host

    check_address(args.address)
    check_dashboard_host(args.dashboard_host)
    return search(plan(args.space, args.name, list(args.set or []), args.storage, args.data, args.resume),
                  address=args.address, dashboard_host=args.dashboard_host)


def search(plan: Plan, address: str | None = None, dashboard_host: str = "127.0.0.1") -> int:
    """Run (or resume) a planned search; returns the exit code.

    Args:
        plan: from :func:`plan`.
        address: join this Ray cluster (host:port or 'auto'); None starts a local instance.
        dashboard_host: the address the local Ray dashboard binds to.
    """
    with search_lock(plan.local_dir):  # one driver per search: the second refuses in one line
        return _search(plan, address, dashboard_host)


def _search(plan: Plan, address: str | None, dashboard_host: str) -> int:
    train, val, holdout, fingerprint = _load_data(plan)
    if plan.resume:
        if search_info(plan.local_dir).get("fingerprint") not in (None, fingerprint):
            raise SalttuneError(f"{plan.space.data.folder}: not the data this search started with (fingerprint differs); "
                                "give the original folder with --data")

    # Tune saves the experiment state (what --resume reads) every this many seconds; its default, "auto",
    # can wait minutes. A fresh state is what lets a killed search resume its trials where they were.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", str(STATE_PERIOD_S))
    from salttune.search.session import dashboard_help, prepare_auth, start_ray, usable_resources

    notes = prepare_auth(address)  # before Ray is imported
    import ray

    if address is None and dashboard_host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: the Ray dashboard binds to {dashboard_host}, reachable from the network (token authentication "
              "stays on); the default 127.0.0.1 with an SSH tunnel is safer", file=sys.stderr)
    url = start_ray(address, dashboard_host)
    try:
        print(dashboard_help(url, local=address is None))
        resources, more = usable_resources(plan.space.resources, local=address is None)
        for line in notes + more:
            print(line)
        if plan.resume:  # checked before the record is touched: a refused resume keeps the earlier record
            from ray import tune

            if not tune.Tuner.can_restore(plan.experiment):
                raise SalttuneError(f"{plan.experiment}: the search stopped before Ray saved any state; "
                                    f"delete {plan.local_dir} and start it again")
        else:
            _write_plan(plan, fingerprint)
        print(f"search {plan.space.name}: {plan.space.trials} trials, up to {plan.space.asha.max_t} epochs each, "
              f"{plan.space.concurrent} at a time, {len(train.ids)} training / {len(val.ids)} validation images"
              f"{f' ({len(holdout.ids)} held out: no trial sees them)' if len(holdout.ids) else ''}; "
              f"results in {plan.local_dir}")
        print(f"  Optuna study: optuna-dashboard sqlite:///{plan.local_dir / STUDY_FILE}")
        from salttune.record import recorded_run

        with recorded_run(plan.local_dir, kind="search", name=plan.space.name, config=space_to_dict(plan.space),
                          seed=plan.space.seed, data=plan.space.data.folder, space=space_to_dict(plan.space),
                          argv=sys.argv) as record:
            results = _fit(_tuner(plan, resources, train, val))
            code, best = _finish(plan, results)
            record.result(best_score=best, exit_code=code, resumed=plan.resume)
            record.outcome = {0: "completed", 130: "interrupted"}.get(code, "failed")
        return code
    finally:
        ray.shutdown()


class _TuneAdvice(logging.Filter):
    """Drops Tune's lines for Python users after Ctrl-C ("Resume experiment with: Tuner.restore(...)", "Trials did
    not complete: [...]"); :func:`_finish` prints the command that resumes the search instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Experiment has been interrupted", "Trials did not complete"))


def _fit(tuner):
    """``tuner.fit()``. The first Ctrl-C (SIGINT) is Tune's: it stops the trials, saves the experiment and returns."""
    tune_log = logging.getLogger("ray.tune.tune")
    advice = _TuneAdvice()
    tune_log.addFilter(advice)
    try:
        return tuner.fit()
    finally:
        tune_log.removeFilter(advice)


def _tuner(plan: Plan, resources, train, val):
    from ray import tune

    from salttune.search.algorithms import build_algorithm
    from salttune.search.monitor import FailureReasons, ProgressTable
    from salttune.search.retention import CheckpointRetention
    from salttune.search.stopping import StopAt
    from salttune.search.trainable import train_trial, trial_dirname

    space = plan.space
    trainable = tune.with_resources(tune.with_parameters(train_trial, space=space, train=train, val=val),
                                    {"cpu": resources.cpu, "gpu": resources.gpu})
    if plan.resume:
        # Tune restores the searcher (with the Optuna study) and the callbacks' state from the experiment;
        # the scheduler comes back from tuner.pkl (ASHA with empty rungs: it reloads asha_state.json itself).
        print(f"resuming {plan.experiment}")
        return tune.Tuner.restore(plan.experiment, trainable=trainable, resume_unfinished=True,
                                  resume_errored=False, restart_errored=False)
    searcher, scheduler = build_algorithm(space, plan.local_dir)
    reasons = FailureReasons(searcher)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=scheduler,  # the searcher (and ASHA) carry the metric and mode
            num_samples=space.trials, max_concurrent_trials=space.concurrent, trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=EXPERIMENT, storage_path=plan.tune_storage,
            # Tune keeps every checkpoint; CheckpointRetention deletes the older ones safely (see retention.py).
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
            failure_config=tune.FailureConfig(max_failures=space.max_failures),
            callbacks=[reasons, ProgressTable(space, reasons), CheckpointRetention(grace=5 * float(os.environ["TUNE_GLOBAL_CHECKPOINT_S"]))],
            stop=StopAt(space.metric, space.mode, space.stop_at) if space.stop_at is not None else None,
            verbose=0,
        ),
    )


def _finish(plan: Plan, results) -> tuple[int, float | None]:
    from salttune.leaderboard import INTERRUPTED, STOPPED, write_leaderboard
    from salttune.search.asha import read_state
    from salttune.search.leaderboard import leaderboard_rows
    from salttune.search.retention import prune_finished
    from salttune.search.sampler import mark_interrupted, settle_stopped
    from salttune.search.stopping import reached

    sp = plan.space
    prune_finished(results, plan.experiment)
    stopped = set((read_state(plan.local_dir / ASHA_FILE) or {}).get("stopped", {}))
    rows = leaderboard_rows(results, sp, stopped=stopped)
    scores = [r["best_score"] for r in rows if r["best_score"] is not None]
    best = (max(scores) if sp.mode == "max" else min(scores)) if scores else None
    done = sp.stop_at is not None and best is not None and reached(best, sp.stop_at, sp.mode)
    if done:  # the trials stop_at cut short are not an interrupted search
        reason = f"the search reached stop_at {sp.stop_at}"
        for r in rows:
            if r["state"] == INTERRUPTED:
                r["state"], r["reason"] = STOPPED, reason
        settle_stopped(plan.local_dir / STUDY_FILE, sp.name, reason)
    interrupted = [r for r in rows if r["state"] == INTERRUPTED]
    resume = f"continue it with  salttune search --resume --name {sp.name}" + (
        f" --storage {plan.storage}" if plan.storage != str(Path('results').resolve()) else "")
    if not done and (interrupted or len(rows) < sp.trials):  # Ctrl-C, or the driver stopped before the budget
        for r in interrupted:
            r["reason"] = f"the search was interrupted after epoch {r['epochs_run']}; --resume continues it"
        mark_interrupted(plan.local_dir / STUDY_FILE, sp.name, "salttune search --resume continues it")
    path = write_leaderboard(rows, plan.local_dir / "leaderboard.csv")
    print(f"leaderboard: {path}")
    for row in rows[:5]:
        score = f"{row['best_score']:.4f}" if row["best_score"] is not None else "-"
        print(f"  {row['rank']:>3}. trial {row['trial']:<4} {row['state']:<10} {sp.metric} {score}  "
              f"epochs {row['epochs_run']}/{sp.asha.max_t}  {row['reason']}")
    if done:
        print(f"the search reached stop_at: {sp.metric} {best:.4f} (stop_at {sp.stop_at}); it started "
              f"{len(rows)} of {sp.trials} trials")
        return 0, best
    if interrupted or len(rows) < sp.trials:
        print(f"search interrupted: {resume}")
        return 130, best
    if all(r["state"] == "failed" for r in rows):
        print(f"salttune search: error: every trial failed; see the reasons in {path}", file=sys.stderr)
        return 1, best
    return 0, best

