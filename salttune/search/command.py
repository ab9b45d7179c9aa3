"""``salttune search``: validate everything, start or join Ray, run (or resume) the search, write the leaderboard.

Files of a search, under ``results/NAME/``: :class:`salttune.layout.SearchFiles`.

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
from salttune.layout import EXPERIMENT, SearchFiles
from salttune.search.budget import read_budget, write_budget
from salttune.search.duration import format_duration, parse_duration
from salttune.search.lock import refuse_if_running, search_lock
from salttune.search.resume import check_asha, check_experiment, check_study, saved_space, search_info
from salttune.search.space import SearchSpace, load_space, space_to_dict

__all__ = ["configure_parser", "run", "plan", "search"]

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
    p.add_argument("--time-budget", metavar="DURATION",
                   help="the time the whole search may take, e.g. 90s, 45m, 2h, 1h30m or seconds: trials, concurrency "
                        "and ASHA's max_t are sized to it from a measured first epoch, and it ends on time (overrides "
                        "the space's time_budget; with --resume: the time the rest may take, required for a search "
                        "started with a budget)")
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
    budget_s: float | None = None  # the seconds this run of the driver may take (a time budget), or None

    @property
    def files(self) -> SearchFiles:
        return SearchFiles(self.local_dir)

    @property
    def tune_storage(self) -> str:
        return f"{self.storage.rstrip('/')}/{self.space.name}"

    @property
    def experiment(self) -> str:
        # A folder of its own: on restore Tune copies every .json/.pkl of its experiment folder to a staging
        # folder and later uploads them back, which would overwrite our asha_state.json with a stale copy.
        return f"{self.tune_storage}/{EXPERIMENT}"


def plan(space_path: str | None, name: str | None, sets: list[str], storage: str | None, data: str | None,
         resume: bool, time_budget: str | None = None) -> Plan:
    """Everything that can be checked before Ray starts.

    Args:
        space_path: the search space YAML (``--space``); optional with ``resume``.
        name: the results folder name (``--name``; default the space's name).
        sets: ``KEY=VALUE`` overrides of the space (``--set``).
        storage: the results root, a folder or a URI (``--storage``; default ``./results``).
        data: the dataset folder (``--data``; overrides the space's ``data.folder``).
        resume: continue the search ``name`` instead of starting one.
        time_budget: the time the search may take (``--time-budget``, e.g. ``2h``; overrides the space's
            ``time_budget``); with ``resume``, the time the rest may take, required when the search had a budget.
    """
    budget = _parse_budget(time_budget)
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
        _check_resume_budget(local, space, budget)
        if space_path:
            given = space_to_dict(load_space(space_path, data=space.data.folder))
            if _unsized({**given, "name": name}, space) != _unsized(space_to_dict(space), space):
                raise SalttuneError(f"{space_path}: differs from the space of the search being resumed ({SearchFiles(local).space}); "
                                    "resume without --space, or start a new --name")
        info = search_info(local)
        if storage is None and info.get("storage"):
            tune_storage = info["storage"]
        resumed = Plan(space, local, tune_storage, True, budget)
        check_asha(local, space, check_study(local, space.name))
        if "://" not in tune_storage:
            check_experiment(Path(resumed.experiment))
        return resumed
    if not space_path:
        raise SalttuneError("give --space FILE (e.g. search_spaces/quick.yaml), or --resume --name NAME")
    space = load_space(space_path, sets, data=data)
    if budget is not None:
        space = dataclasses.replace(space, time_budget=budget)
    name = space.name if name is None else name
    if space.data.folder is None:
        raise SalttuneError(f"{space_path}: key 'data.folder' is not set; give --data DIR (e.g. data/synth)")
    folder = str(Path(space.data.folder).expanduser().resolve())
    space = dataclasses.replace(space, name=name, data=dataclasses.replace(space.data, folder=folder))
    local = root / name
    if local.is_file():
        raise SalttuneError(f"{local}: is a file where the search's folder goes; move it, or choose another --name")
    refuse_if_running(local)
    if local.exists() and any(p != SearchFiles(local).lock for p in local.iterdir()):  # a stale lock alone is no search
        raise SalttuneError(f"{local}: a search named {name!r} is already there; add --resume to continue it, or choose another --name")
    return Plan(space, local, tune_storage, False, space.time_budget)


def _parse_budget(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as e:
        raise SalttuneError(f"--time-budget: {e}") from None


# What a time budget sizes (budget.size_to_budget): a resumed search's space.yaml holds the sized values.
_SIZED = ("trials", "concurrent", "startup_trials", "time_budget")


def _unsized(space: dict, saved: SearchSpace) -> dict:
    """A space as a dict, without what a time budget sized (when the saved search had one), for comparing."""
    if saved.time_budget is None:
        return space
    return {**{k: v for k, v in space.items() if k not in _SIZED},
            "asha": {k: v for k, v in space["asha"].items() if k not in ("max_t", "grace_period")}}


def _check_resume_budget(local: Path, space: SearchSpace, budget: float | None) -> None:
    """A search started with a time budget resumes with a new one (the time the rest may take); one without, without."""
    if space.time_budget is not None and budget is None:
        raise SalttuneError(f"{local}: the search had a time budget ({format_duration(space.time_budget)}); give the time "
                            "the rest may take, e.g. --resume --time-budget 30m")
    if space.time_budget is not None and read_budget(local) is None:
        raise SalttuneError(f"{SearchFiles(local).budget}: the search's time budget is missing; restore it from a backup, or "
                            "start the search again under a new --name")
    if space.time_budget is None and budget is not None:
        raise SalttuneError(f"--time-budget: the search in {local} started without one, and its trials and epochs are "
                            "set; resume it without --time-budget, or start a new --name with it")


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
    atomic_write_text(plan.files.space, yaml.safe_dump(space_to_dict(plan.space), sort_keys=False), "resolved space")
    info = {"data": plan.space.data.folder, "fingerprint": fingerprint, "storage": plan.storage, "source": plan.space.source,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "ray": ray.__version__, "optuna": optuna.__version__}
    write_json(plan.files.info, info, "search record")


def run(args: argparse.Namespace) -> int:
    """The ``salttune search`` handler: the flags, unpacked into :func:`plan` and :func:`search`."""
    from salttune.search.session import check_address, check_dashboard_host

    check_address(args.address)
    check_dashboard_host(args.dashboard_host)
    return search(plan(args.space, args.name, list(args.set or []), args.storage, args.data, args.resume,
                       args.time_budget),
                  address=args.address, dashboard_host=args.dashboard_host)


def search(plan: Plan, address: str | None = None, dashboard_host: str = "127.0.0.1") -> int:
    """Run (or resume) a planned search; returns the exit code.

    Args:
        plan: from :func:`plan`.
        address: join this Ray cluster (host:port or 'auto'); None starts a local instance.
        dashboard_host: the address the local Ray dashboard binds to.
    """
    started = time.time()  # a time budget counts from here: data, Ray, the measurement, the trials, the leaderboard
    with search_lock(plan.local_dir):  # one driver per search: the second refuses in one line
        return _search(plan, address, dashboard_host, started)


def _search(plan: Plan, address: str | None, dashboard_host: str, started: float) -> int:
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
        budget = None
        if plan.budget_s is not None:
            plan, clock, job = _budget(plan, started, resources, train, val, holdout)
        if not plan.resume:
            _write_plan(plan, fingerprint)
        if plan.budget_s is not None:  # a resume keeps the record that sampling had ended (Tune's searcher stays finished)
            ended = (read_budget(plan.local_dir) or {}).get("sampling_ended") if plan.resume else None
            budget = write_budget(plan.local_dir, plan.budget_s, *clock, sampling_ended=ended, job=job)
        explore = budget is None or bool(budget.get("explore_s"))  # a budget too small to explore trains the prior only
        held = f" ({len(holdout.ids)} held out: no trial sees them)" if len(holdout.ids) else ""
        if explore:
            print(f"search {plan.space.name}: {plan.space.trials} trials, up to {plan.space.asha.max_t} epochs each, "
                  f"{plan.space.concurrent} at a time, {len(train.ids)} training / {len(val.ids)} validation images"
                  f"{held}; results in {plan.local_dir}")
            print(f"  Optuna study: optuna-dashboard sqlite:///{plan.files.study}")
        else:
            print(f"search {plan.space.name}: no trials, {len(train.ids) + len(val.ids)} images for the final models"
                  f"{held}; results in {plan.local_dir}")
        from salttune.record import recorded_run

        with recorded_run(plan.local_dir, kind="search", name=plan.space.name, config=space_to_dict(plan.space),
                          seed=plan.space.seed, data=plan.space.data.folder, space=space_to_dict(plan.space),
                          argv=sys.argv) as record:
            if explore:
                results = _fit(_tuner(plan, resources, train, val, budget["deadline"] if budget else None,
                                      budget["epoch_s"] if budget else None))
                code, best, rows = _finish(plan, results, budget)
            else:
                from salttune.leaderboard import write_leaderboard

                code, best, rows = 0, None, []
                write_leaderboard([], plan.files.leaderboard)
            if code == 0 and budget is not None and budget.get("final_models"):
                _final(plan, rows, resources, budget)
            record.result(best_score=best, exit_code=code, resumed=plan.resume)
            record.outcome = {0: "completed", 130: "interrupted"}.get(code, "failed")
        return code
    finally:
        ray.shutdown()


def _budget(plan: Plan, started: float, resources, train, val, holdout) -> tuple[Plan, tuple[float, float, float], dict]:
    """A fresh search sized to its time budget from a measured first epoch; a resumed one keeps its sizing and
    its measured epoch. Returns the plan, the trials' (deadline, seconds per epoch, sampling cut-off) and the rest
    of the job's plan for ``budget.json`` (the final models' deadline and epochs, the ensemble's reserve)."""
    import ray

    from salttune.data import test_image_count
    from salttune.search.budget import (cutoff_s, end_reserve, fits_at_once, measure_epoch, plan_job,
                                        size_to_budget, sizing_line)

    end = started + plan.budget_s - end_reserve(plan.budget_s)
    if plan.resume:
        saved = read_budget(plan.local_dir)
        epoch_s = saved["epoch_s"]
        # the rest of the budget split as the search's own plan split it: the ensemble's reserve, then the shares
        explore, final = saved.get("explore_s", 1.0), saved.get("final_s", 0.0)
        rest = max(0.0, end - time.time() - saved.get("ensemble_s", 0.0))
        deadline = time.time() + rest * explore / max(1e-9, explore + final)
        job = {k: saved[k] for k in ("explore_s", "final_s", "ensemble_s", "final_models", "final_epochs", "final_slots")
               if k in saved}
        job.update(final_deadline=deadline + rest * final / max(1e-9, explore + final), job_ends=started + plan.budget_s)
        print(f"time budget {format_duration(plan.budget_s)} for the rest of the search: its trials end by "
              f"{time.strftime('%H:%M:%S', time.localtime(deadline))}")
        return plan, (deadline, epoch_s, cutoff_s(plan.space, epoch_s)), job
    print(f"time budget {format_duration(plan.budget_s)}: timing one epoch of a typical trial...", flush=True)
    epoch_s, predict_s = measure_epoch(plan.space, train, val, resources)
    slots = fits_at_once(resources, ray.cluster_resources())
    n_test = test_image_count(plan.space.data.folder)
    sizes = dict(train_images=len(train.ids), fit_images=len(train.ids) + len(val.ids),
                 predicted_images=3 * (len(val.ids) + len(holdout.ids)) + 2 * n_test,
                 snapshots=_snapshots_per_model(plan.space), final_share=plan.space.final_share,
                 min_final_epochs=plan.space.asha.max_t, depth_epochs=plan.space.final_min_epochs)
    whole, machine_epoch_s = _whole_machine(resources, slots), None
    if whole is not None:  # whether to explore at all depends on it: one model on the whole machine, its epoch timed
        print(f"time budget {format_duration(plan.budget_s)}: timing one epoch on the whole machine ({whole.cpu:g} CPU, "
              f"{whole.gpu:g} GPU)...", flush=True)
        machine_epoch_s, _ = measure_epoch(plan.space, train, val, whole)
    job = plan_job(end - time.time(), epoch_s, predict_s, slots, machine_epoch_s=machine_epoch_s, **sizes)
    deadline = time.time() + job.explore_s
    sized = size_to_budget(plan.space, job.explore_s, epoch_s, slots) if job.explore_s else plan.space
    ends = f"; the trials end by {time.strftime('%H:%M:%S', time.localtime(deadline))}" if job.explore_s else ""
    ends += f"; an epoch on the whole machine took {machine_epoch_s:.1f} s" if machine_epoch_s else ""
    print(f"{sizing_line(plan.space, sized, plan.budget_s, job.explore_s, epoch_s, slots, job)}{ends}")
    record = {**dataclasses.asdict(job), "final_deadline": deadline + job.final_s, "job_ends": started + plan.budget_s,
              "predict_s": predict_s, "machine_epoch_s": machine_epoch_s}
    return dataclasses.replace(plan, space=sized), (deadline, epoch_s, cutoff_s(sized, epoch_s)), record


def _whole_machine(resources, slots: int):
    """The resources of every slot at once when one node holds them all (and a GPU share adds up to one GPU at
    most): what one final model takes when there is no exploring; None when there is one slot or no such node."""
    import ray

    from salttune.search.space import Resources

    if slots < 2:
        return None
    node_cpus = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=0)
    whole = Resources(cpu=resources.cpu * slots, gpu=resources.gpu * slots)
    if whole.cpu > node_cpus or (0 < resources.gpu < 1 and whole.gpu > 1) or resources.gpu >= 1:
        return None
    return whole


def _snapshots_per_model(space: SearchSpace) -> int:
    """Snapshots a final model of the typical configuration keeps, for pricing the ensemble's predictions."""
    from salttune.search.budget import typical_point
    from salttune.search.space import trial_config

    s = trial_config(space, typical_point(space)).schedule
    if s.name == "cosine_snapshots":
        return min(s.max_snapshots, s.cycles or s.max_snapshots)
    return s.max_snapshots if s.name == "snapshot_plateau" else 1


class _TuneAdvice(logging.Filter):
    """Drops Tune's lines for Python users after Ctrl-C ("Resume experiment with: Tuner.restore(...)", "Trials did
    not complete: [...]"); :func:`_finish` prints the command that resumes the search instead. Also drops "Failed to
    fetch metrics" for trials stopped before their first epoch: the leaderboard lists them, with why."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Experiment has been interrupted", "Trials did not complete",
                                               "Failed to fetch metrics"))


def _fit(tuner):
    """``tuner.fit()``. The first Ctrl-C (SIGINT) is Tune's: it stops the trials, saves the experiment and returns."""
    logs = [logging.getLogger(name) for name in ("ray.tune.tune", "ray.tune.analysis.experiment_analysis")]
    advice = _TuneAdvice()
    for log in logs:
        log.addFilter(advice)
    try:
        return tuner.fit()
    finally:
        for log in logs:
            log.removeFilter(advice)


def _final(plan: Plan, rows: list[dict], resources, budget: dict) -> None:
    """The final models of the plan (:mod:`salttune.search.final`), then the time the ensemble has."""
    from salttune.search.final import train_final

    k = budget.get("final_slots", 1)  # the trials' resources each final model takes
    each = dataclasses.replace(resources, cpu=resources.cpu * k, gpu=resources.gpu * k)
    results = train_final(plan.space, rows, plan.local_dir, each, budget["final_models"], budget["final_epochs"],
                          budget["final_deadline"])
    done = sum(isinstance(r, dict) for r in results.values())
    left = budget["job_ends"] - time.time()
    print(f"final models: {done} of {len(results)} trained, in {plan.files.final}; {format_duration(max(0.0, left))} "
          f"of the budget left for  salttune ensemble --search {plan.space.name}  (reserved "
          f"{format_duration(budget['ensemble_s'])})", flush=True)


def _tuner(plan: Plan, resources, train, val, deadline: float | None, epoch_s: float | None = None):
    from ray import tune
    from ray.tune.stopper import CombinedStopper

    from salttune.search.algorithms import build_algorithm
    from salttune.search.monitor import FailureReasons, ProgressTable
    from salttune.search.retention import CheckpointRetention
    from salttune.search.stopping import Deadline, SampleUntil, StopAt
    from salttune.search.trainable import train_trial, trial_dirname

    space = plan.space
    trainable = tune.with_resources(tune.with_parameters(train_trial, space=space, train=train, val=val, deadline=deadline,
                                                         epoch_s=epoch_s),
                                    {"cpu": resources.cpu, "gpu": resources.gpu})
    if plan.resume:
        # Tune restores the searcher (with the Optuna study) and the callbacks' state from the experiment;
        # the scheduler comes back from tuner.pkl (ASHA with empty rungs: it reloads asha_state.json itself).
        print(f"resuming {plan.experiment}")
        return tune.Tuner.restore(plan.experiment, trainable=trainable, resume_unfinished=True,
                                  resume_errored=False, restart_errored=False)
    searcher, scheduler = build_algorithm(space, plan.local_dir)
    reasons = FailureReasons(searcher)
    stoppers = [StopAt(space.metric, space.mode, space.stop_at)] if space.stop_at is not None else []
    search_alg, concurrent = searcher, space.concurrent
    if deadline is not None:  # Tune limits the concurrency through this wrapper, which also stops sampling in time
        search_alg, concurrent = SampleUntil(searcher, space.concurrent, plan.files.budget), None
        stoppers.append(Deadline(plan.files.budget))
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=search_alg, scheduler=scheduler,  # the searcher (and ASHA) carry the metric and mode
            num_samples=space.trials, max_concurrent_trials=concurrent, trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=EXPERIMENT, storage_path=plan.tune_storage,
            # Tune keeps every checkpoint; CheckpointRetention deletes the older ones safely (see retention.py).
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
            failure_config=tune.FailureConfig(max_failures=space.max_failures),
            callbacks=[reasons, ProgressTable(space, reasons), CheckpointRetention(grace=5 * float(os.environ["TUNE_GLOBAL_CHECKPOINT_S"]))],
            stop=(CombinedStopper(*stoppers) if len(stoppers) > 1 else stoppers[0]) if stoppers else None,
            verbose=0,
        ),
    )


def _finish(plan: Plan, results, budget: dict | None = None) -> tuple[int, float | None, list[dict]]:
    """Write the leaderboard, settle the study, print the outcome; returns (exit code, best score, rows).

    Under a time budget (``budget``, as :func:`salttune.search.budget.write_budget` wrote it), trials that ended
    short of ``max_t`` because of it (they stopped themselves, the driver stopped them, or the deadline cut them)
    are ``stopped``, and trials never sampled because the deadline came are no interruption.
    """
    from salttune.leaderboard import INTERRUPTED, STOPPED, write_leaderboard
    from salttune.search.asha import read_state
    from salttune.search.leaderboard import leaderboard_rows
    from salttune.search.retention import prune_finished
    from salttune.search.sampler import mark_interrupted, settle_stopped
    from salttune.search.stopping import reached

    sp = plan.space
    prune_finished(results, plan.experiment)
    stopped = set((read_state(plan.files.asha_state) or {}).get("stopped", {}))
    rows = leaderboard_rows(results, sp, stopped=stopped)
    scores = [r["best_score"] for r in rows if r["best_score"] is not None]
    best = (max(scores) if sp.mode == "max" else min(scores)) if scores else None
    done = sp.stop_at is not None and best is not None and reached(best, sp.stop_at, sp.mode)
    if done:  # the trials stop_at cut short are not an interrupted search
        reason = f"the search reached stop_at {sp.stop_at}"
        for r in rows:
            if r["state"] == INTERRUPTED:
                r["state"], r["reason"] = STOPPED, reason
        settle_stopped(plan.files.study, sp.name, reason)
    over = False  # the time budget ended the sampling
    if budget is not None:
        budget = read_budget(plan.local_dir)  # again: the sampler records there when it stopped for the deadline
        cut = time.time() >= budget["deadline"]
        over = cut or "sampling_ended" in budget
        ended = {(r.metrics or {}).get("trial_id") for r in results if (r.metrics or {}).get("done")}
        for r in rows:  # Tune marks a trial "done" when it ended itself or was stopped after an epoch
            if r["state"] == INTERRUPTED and (r["trial_id"] in ended or cut):
                when = f"after epoch {r['epochs_run']}" if r["epochs_run"] else "before its first epoch"
                r["state"], r["reason"] = STOPPED, f"stopped by the time budget {when}"
        if cut:  # the deadline's stop_all ends trials without telling the searcher
            settle_stopped(plan.files.study, sp.name, "stopped by the time budget")
    interrupted = [r for r in rows if r["state"] == INTERRUPTED]
    resume = f"continue it with  salttune search --resume --name {sp.name}" + (
        f" --storage {plan.storage}" if plan.storage != str(Path('results').resolve()) else "")
    short = len(rows) < sp.trials and not over  # fewer trials than sized, and not for the deadline
    if not done and (interrupted or short):  # Ctrl-C, or the driver stopped before the budget
        for r in interrupted:
            r["reason"] = f"the search was interrupted after epoch {r['epochs_run']}; --resume continues it"
        mark_interrupted(plan.files.study, sp.name, "salttune search --resume continues it")
    path = write_leaderboard(rows, plan.files.leaderboard)
    print(f"leaderboard: {path}")
    for row in rows[:5]:
        score = f"{row['best_score']:.4f}" if row["best_score"] is not None else "-"
        print(f"  {row['rank']:>3}. trial {row['trial']:<4} {row['state']:<10} {sp.metric} {score}  "
              f"epochs {row['epochs_run']}/{sp.asha.max_t}  {row['reason']}")
    if done:
        print(f"the search reached stop_at: {sp.metric} {best:.4f} (stop_at {sp.stop_at}); it started "
              f"{len(rows)} of {sp.trials} trials")
        return 0, best, rows
    if interrupted or short:
        print(f"search interrupted: {resume}" + (" --time-budget DURATION" if budget is not None else ""))
        return 130, best, rows
    if over:
        finished = sum(r["state"] == "finished" for r in rows)
        print(f"the time budget {format_duration(budget['budget_s'])} ended the search: it started {len(rows)} of "
              f"{sp.trials} trials, {finished} ran all {sp.asha.max_t} epochs")
    if all(r["state"] == "failed" for r in rows):
        print(f"salttune search: error: every trial failed; see the reasons in {path}", file=sys.stderr)
        return 1, best, rows
    return 0, best, rows

