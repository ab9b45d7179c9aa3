"""``salttune ensemble``: the top trials of a search -> an honest score, a report and a Kaggle submission.

Reads ``results/NAME/leaderboard.csv`` (one row per trial, with its snapshots) and does, in order:

1. **Members.** Without ``--refit-folds``: every snapshot of the ``--top`` trials, as trained by the search.
   With ``--refit-folds K``: the ``--top`` trials' configurations trained again on each of K coverage-stratified
   folds of the images outside the holdout (Ray tasks with the search's per-trial resources:
   :mod:`salttune.search.refit`; runs kept in ``results/NAME/refit/kK/``, finished folds reused), so every
   non-holdout image trains models; a member is then a configuration, predicting the mean of its fold runs'
   snapshots.
2. **Selection.** Single members, each combiner and the choice among them (:mod:`salttune.ensemble`), fitted
   by K-fold cross-validation over the *selection images*: the search's validation images, or with refits the
   out-of-fold predictions of every non-holdout image (fold f's models predict fold f). The choice of combiner
   is made inside the cross-validation, so the chosen row's figure is an out-of-fold estimate of the whole
   procedure.
3. **The headline**: the chosen ensemble's score on the *holdout* (``data.holdout_fraction`` of the search,
   set aside before it started: no trial trained or validated on it, nothing above was chosen on it), with its
   standard error over the images; beside it the cross-validated figure and their gap (how optimistic a score
   on images that chose the trials is).
4. The test images stream through the chosen combiner into ``submission.csv``.
5. With ``--pseudo-confidence C`` (needs ``--refit-folds``): the confident test images (:mod:`salttune.pseudo`)
   join the training folds of a second refit (``--out/pseudo-<labels>/``), steps 2-4 run again on it, and the
   report gives the holdout score before and after; ``submission.csv`` is the second round's, the first is kept
   as ``submission_round0.csv``.

Writes into ``--out`` (default ``results/NAME/ensemble``): ``report.md``, ``report.json``, ``weights.json`` and
``submission.csv``. Nothing already there is overwritten without ``--force``, and a refused run writes nothing,
not even its record: :func:`check_ensemble` runs every check first.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from salttune import leaderboard
from salttune.checkpoint import load_checkpoint
from salttune.data import TGSData, load_dataset
from salttune.ensemble import (AUTO, BASELINE, COMBINERS, Member, combiners_for, cross_validate, fit_single, iter_ensemble,
                               member_outputs, predict_masks)
from salttune.errors import SalttuneError
from salttune.fileio import atomic_write_text, write_json
from salttune.layout import CheckpointFiles, EnsembleFiles, KFoldFiles, RunFiles, SearchFiles, read_summary, trial_name
from salttune.metric import score_per_image
from salttune.predict import write_submission_stream
from salttune.split import Arrays, Split, split_data

__all__ = ["Pseudo", "Checked", "top_members", "final_members", "check_ensemble", "run_ensemble"]


def _snapshots_of(row: dict[str, str], search_dir: Path) -> list[str]:
    """The row's snapshots; for a row that lists none, the ``.pt`` files in its checkpoint's ``snapshots/``."""
    paths = leaderboard.snapshots(row)
    if not paths and (row.get("checkpoint_path") or "").strip():
        ckpt = Path(row["checkpoint_path"])
        ckpt = ckpt if ckpt.is_absolute() else search_dir / ckpt
        paths = sorted(str(p) for p in CheckpointFiles(ckpt).snapshots.glob("*.pt"))
    return [p if Path(p).is_absolute() else str(search_dir / p) for p in paths]


def top_members(search_dir: Path, top: int) -> list[Member]:
    """The snapshots of the ``top`` best trials of a search that did not fail and have a score."""
    board_path = SearchFiles(search_dir).leaderboard
    if not board_path.is_file():
        raise SalttuneError(f"{board_path}: no leaderboard; run 'salttune search' first or give the right --search/--results")
    done = [r for r in leaderboard.read_leaderboard(board_path)
            if r["state"] != leaderboard.FAILED and leaderboard.best_score(r) is not None]
    done.sort(key=leaderboard.best_score, reverse=True)
    if len(done) < top:
        raise SalttuneError(
            f"{board_path}: {len(done)} finished trial(s), fewer than --top {top}; lower --top or let the search run more trials"
        )
    members, kept = [], 0
    for row in done:
        if kept == top:
            break
        snaps = _snapshots_of(row, search_dir)
        readable = []
        for p in snaps:
            try:
                meta = load_checkpoint(p)  # a truncated or foreign file fails here with a clear line
            except SalttuneError as e:
                warnings.warn(f"skipping a snapshot of trial {row['trial_id']}: {e}", stacklevel=2)
                continue
            readable.append(Member(str(row["trial_id"]), p, float(meta.get("metrics", {}).get("val_score", np.nan))))
        if not readable:
            warnings.warn(f"skipping trial {row['trial_id']}: none of its {len(snaps)} snapshot(s) can be read; "
                          "the next best trial takes its place", stacklevel=2)
            continue
        members += readable
        kept += 1
    if kept < top:
        raise SalttuneError(f"{board_path}: only {kept} finished trial(s) have readable snapshots, fewer than "
                            f"--top {top}; lower --top or rerun the search")
    return members


def final_members(search_dir: Path) -> list[Member]:
    """The snapshots of a budgeted search's final models (:mod:`salttune.search.final`), one member each; [] when
    the search trained none."""
    from salttune.search.final import final_runs

    members = []
    for run in final_runs(search_dir):
        summary = read_summary(RunFiles(run).summary)
        for snap in summary.get("snapshots", []):
            path = RunFiles(run).checkpoint.snapshots / Path(snap["path"]).name  # wherever the folder now is
            if path.is_file():
                members.append(Member(run.name, str(path), float(snap.get("score", np.nan))))
    return members


def _data_split(members: list[Member]) -> Split:
    """Every member must have been validated on the same images: the same split settings."""
    seen: dict[Split, Member] = {}
    for m in members:
        seen.setdefault(Split.of(load_checkpoint(m.path)["config"]), m)
    if len(seen) > 1:
        (a, ma), (b, mb) = list(seen.items())[:2]
        raise SalttuneError(f"snapshots {ma.path} and {mb.path} were validated on different splits ({a} vs {b}); ensemble one search at a time")
    return next(iter(seen))


@dataclass(frozen=True)
class Pseudo:
    """``--pseudo-confidence`` and ``--pseudo-share`` (see :mod:`salttune.pseudo`)."""

    confidence: float = 0.9
    share: float = 0.99


@dataclass(frozen=True)
class Checked:
    """What :func:`check_ensemble` found usable: the members, their combiners, the data and its parts."""

    members: list[Member]
    combiners: list[str]
    data: TGSData
    split: Split
    val: Arrays
    holdout: Arrays
    folds: int
    refit_folds: int | None = None
    pseudo: Pseudo | None = None
    resources: object = None  # the search's per-trial Resources, for refits
    address: str | None = None
    # a refit trains for the space's own fixed time_budget_s (None: all its epochs), not the time its trial had
    # left before a search's --time-budget deadline (recorded in the snapshot's config)
    time_budget_s: float | None = None
    final: bool = False  # the members are the search's final models (trained on the validation images too)


def check_ensemble(members: list[Member], data_dir: Path, out_dir: Path, *, force: bool = False, combiner: str = "auto",
                   folds: int = 5, refit_folds: int | None = None, pseudo: Pseudo | None = None,
                   search_dir: Path | None = None, address: str | None = None, final: bool = False) -> Checked:
    """Every check of an ensemble run, before it writes anything (its record included).

    Raises:
        SalttuneError: an earlier ensemble's output is in ``out_dir`` and ``force`` is off, an unknown combiner,
            members validated on different splits, a dataset without test images, too few images for ``folds``,
            or pseudo-labelling without refits.
    """
    names = combiners_for(combiner)
    existing = [p for p in EnsembleFiles(out_dir).outputs if p.exists()]
    if existing and not force:
        raise SalttuneError(f"{existing[0]}: already exists; add --force to overwrite or choose another --out")
    if folds < 2:
        raise SalttuneError(f"--folds {folds}: cross-validation needs at least 2 folds")
    if pseudo is not None and refit_folds is None:
        raise SalttuneError("--pseudo-confidence: pseudo-labelled images join the training folds of refit models; "
                            "add --refit-folds K (e.g. 5)")
    if pseudo is not None and not (0.5 < pseudo.confidence < 1 and 0 < pseudo.share <= 1):
        raise SalttuneError(f"--pseudo-confidence {pseudo.confidence:g} / --pseudo-share {pseudo.share:g}: give a "
                            "confidence between 0.5 and 1 (e.g. 0.9) and a share in (0, 1] (e.g. 0.99)")
    split = _data_split(members)
    data = load_dataset(data_dir)
    if not data.test_ids:
        raise SalttuneError(f"{data_dir}: no test images in test/images; the ensemble predicts the test set")
    train, val, holdout = split_data(data, split)
    resources, budget = None, None
    if refit_folds is not None:
        rest = len(train.ids) + len(val.ids)
        if rest < 2 * refit_folds:
            raise SalttuneError(f"--refit-folds {refit_folds}: only {rest} images outside the holdout; give fewer folds")
        resources, budget = _search_resources(search_dir, data_dir)
        selection = rest
    else:
        selection = len(val.ids)
    if selection < folds:
        raise SalttuneError(f"--folds {folds}: only {selection} validation images; give fewer folds")
    return Checked(members, names, data, split, val, holdout, folds, refit_folds, pseudo, resources, address, budget, final)


def _search_resources(search_dir: Path | None, data_dir: Path):
    """The search's per-trial resources and fixed ``time_budget_s`` (its ``space.yaml``); one CPU each and no
    budget for a search without one."""
    from salttune.search.resume import saved_space
    from salttune.search.space import Resources

    if search_dir is None or not SearchFiles(search_dir).space.is_file():
        return Resources(cpu=1.0, gpu=0.0), None
    space = saved_space(search_dir, str(data_dir))
    return space.resources, space.fixed.get("time_budget_s")


@dataclass
class Predicted:
    """Member predictions on the selection images and on the holdout, per TTA mode."""

    members: list[Member]
    images: str  # which images the cross-validated figures are over, in words
    truth: np.ndarray  # (N, H, W)
    probs: dict[str, np.ndarray]  # tta -> (M, N, H, W)
    salts: dict[str, np.ndarray | None]  # tta -> (M, N), None without salt heads
    hold_truth: np.ndarray  # (Nh, H, W)
    hold_ids: list[str]
    hold_probs: dict[str, np.ndarray] = field(default_factory=dict)
    hold_salts: dict[str, np.ndarray | None] = field(default_factory=dict)


def _no_nan(salt: np.ndarray) -> np.ndarray | None:
    return None if np.isnan(salt).all() else salt


def _predict(members: list[Member], sel: list[tuple[list[Member], Arrays]], holdout: Arrays, ttas: list[str],
             device, bar, images: str) -> Predicted:
    """Predictions of ``members`` on the holdout, and on the selection images: each ``(members', part)`` of
    ``sel`` predicts ``part`` with ``members'`` (the members themselves, or their fold-f models on fold f)."""
    truth = np.concatenate([part.masks for _, part in sel])
    pred = Predicted(members, images, truth, {}, {}, holdout.masks, list(holdout.ids))
    for t in ttas:
        outs = [member_outputs(ms, part.images, part.depths, device, t, progress=bar) for ms, part in sel]
        pred.probs[t] = np.concatenate([p for p, _ in outs], axis=1)
        pred.salts[t] = _no_nan(np.concatenate([s for _, s in outs], axis=1))
        hp, hs = member_outputs(members, holdout.images, holdout.depths, device, t, progress=bar)
        pred.hold_probs[t], pred.hold_salts[t] = hp, (_no_nan(hs) if len(holdout.ids) else None)
    return pred


def _snapshot_prediction(checked: Checked, ttas, device, bar) -> Predicted:
    val = checked.val
    seen = " (the final models trained on them: an optimistic figure)" if checked.final else ""
    return _predict(checked.members, [(checked.members, val)], checked.holdout, ttas, device, bar,
                    f"the search's {len(val.ids)} validation images{seen}")


def _refit(checked: Checked, where: Path, data_dir: Path, extra: Arrays | None) -> list[tuple[str, list[list[str]], float]]:
    """Train (or reuse) the top configurations on every fold; returns (trial, [fold f's snapshot paths], mean
    fold score) per configuration whose folds all finished."""
    from salttune.config import config_from_dict
    from salttune.folds import fold_config
    from salttune.search.refit import FoldJob, run_folds

    k = checked.refit_folds
    trials: dict[str, str] = {}
    for m in checked.members:
        trials.setdefault(m.trial, m.path)  # one snapshot per trial carries its configuration
    jobs = []
    for trial, path in trials.items():
        cfg = dataclasses.replace(config_from_dict(load_checkpoint(path)["config"]), time_budget_s=checked.time_budget_s)
        for f in range(k):
            fold_run = KFoldFiles(where / trial_name(trial)).fold(f).root
            jobs.append(FoldJob(f"trial {trial} fold {f + 1}/{k}", fold_config(cfg, k, f), fold_run))
    results = run_folds(jobs, str(Path(data_dir).resolve()), checked.resources, extra=extra, address=checked.address)
    configs = []
    for trial in trials:
        mine = [j for j in jobs if j.out.parent.name == trial_name(trial)]
        failed = [f"{j.name}: {results[j.name]}" for j in mine if not isinstance(results[j.name], dict)]
        if failed:
            warnings.warn(f"trial {trial} left out of the ensemble: {failed[0]}", stacklevel=2)
            continue
        # the snapshot files by name in the fold's folder (as a run's summary lists them), wherever the folder now is
        paths = [[str(RunFiles(j.out).checkpoint.snapshots / Path(s["path"]).name)
                  for s in read_summary(RunFiles(j.out).summary)["snapshots"]] for j in mine]
        configs.append((trial, paths, float(np.mean([results[j.name]["best_score"] for j in mine]))))
    if not configs:
        raise SalttuneError(f"every refit configuration failed; see the reasons above and the runs in {where}")
    return configs


def _refit_prediction(checked: Checked, configs, ttas, device, bar) -> Predicted:
    """Out-of-fold predictions of every non-holdout image (fold f's models on fold f); the holdout with all."""
    k = checked.refit_folds
    members = [Member(t, paths[0][0], score, tuple(p for fold in paths for p in fold)) for t, paths, score in configs]
    sel = []
    for f in range(k):
        _, part, _ = split_data(checked.data, dataclasses.replace(checked.split, folds=k, fold=f))
        sel.append(([Member(t, paths[f][0], score, tuple(paths[f])) for t, paths, score in configs], part))
    n = sum(len(p.ids) for _, p in sel)
    return _predict(members, sel, checked.holdout, ttas, device, bar,
                    f"all {n} non-holdout images, out of fold ({k} folds; they also ranked the search's trials)")


def _holdout(pred: Predicted, comb, tta: str, idx=slice(None)) -> tuple[float, float, list[float]] | None:
    """Mean and standard error of the per-image scores of ``comb`` on the holdout, and the scores (for paired
    comparisons between rows, rounds or runs on the same images); None without a holdout."""
    if not len(pred.hold_truth):
        return None
    salt = pred.hold_salts[tta]
    per = score_per_image(predict_masks(pred.hold_probs[tta][idx], comb, None if salt is None else salt[idx]), pred.hold_truth)
    se = float(per.std(ddof=1) / math.sqrt(len(per))) if len(per) > 1 else math.nan
    return float(per.mean()), se, [round(float(x), 4) for x in per]


def _select(pred: Predicted, names: list[str], folds: int) -> dict:
    """Rows of single members and combiners (cross-validated, and on the holdout), and the chosen combiner."""
    from salttune.ensemble import cross_validate_choice

    rows = []
    ttas = list(pred.probs)

    def row(name, t, r, idx=slice(None)):
        h = _holdout(pred, r["final"], t, idx)
        rows.append({"name": name, "tta": t, "score": r["score"], "iou": r["iou"], "holdout": None if h is None else h[0],
                     "holdout_se": None if h is None else h[1], "holdout_scores": None if h is None else h[2]})
        return r

    def cv(fitter, t, idx=slice(None)):
        salt = pred.salts[t]
        return cross_validate(fitter, pred.probs[t][idx], pred.truth, k=folds, salt=None if salt is None else salt[idx])

    baseline = COMBINERS[BASELINE]
    for t in ttas:
        row(baseline.label, t, cv(baseline.fit, t))
    by_trial: dict[str, list[int]] = {}
    for k, m in enumerate(pred.members):
        by_trial.setdefault(m.trial, []).append(k)
    for trial, idx in by_trial.items():
        for t in ttas:
            row(f"trial {trial}: best snapshot" if len(idx) > 1 or not pred.members[idx[0]].models
                else f"trial {trial}: its {len(pred.members[idx[0]].models)} fold models", t, cv(fit_single, t, idx), idx)
    best_t, salt = ttas[-1], pred.salts[ttas[-1]]
    if len(names) == 1:
        chosen, res = names[0], row(COMBINERS[names[0]].label, best_t, cv(COMBINERS[names[0]].fit, best_t))
        label = rows[-1]["name"]
    else:  # every combiner's own CV figure, then the choice among them made inside each outer fold
        res = cross_validate_choice(names, pred.probs[best_t], pred.truth, k=folds, salt=salt)
        for name in names:
            row(COMBINERS[name].label, best_t, res["rows"][name])
        chosen, label = res["chosen"], f"{AUTO}: {COMBINERS[res['chosen']].label}, chosen inside each fold"
        row(label, best_t, res)
    h = rows[-1]  # the chosen combiner's row
    return {"rows": rows, "chosen": chosen, "chosen_row": label, "final": res["final"], "tta": best_t,
            "score": res["score"], "iou": res["iou"], "holdout": h["holdout"], "holdout_se": h["holdout_se"],
            "holdout_ids": pred.hold_ids, "images": pred.images,
            "selection_images": int(len(pred.truth)), "holdout_images": int(len(pred.hold_truth))}


def _write_test(members: list[Member], sel: dict, data: TGSData, device, path: Path, pseudo: Pseudo | None,
                progress: bool):
    """Stream the test images through the chosen combiner into ``path``; collect the confident ones."""
    from salttune.ensemble import _binarize
    from salttune.pseudo import Collector

    final = sel["final"]
    collector = Collector(data.test_ids, data.test_images, data.test_depths, pseudo.confidence, pseudo.share) if pseudo else None
    batches = iter_ensemble(members, final, data.test_images, data.test_depths, device, sel["tta"])
    if progress:
        batches = _bar(batches, total=-(-len(data.test_ids) // 256), desc="predict test", unit="batch")

    def tapped():
        for p in batches:
            if collector is not None:
                collector.add(p, _binarize(p, final.threshold, final.min_area))
            yield p

    t0 = time.perf_counter()
    write_submission_stream(path, data.test_ids, tapped(), final.threshold, final.min_area)
    return collector, time.perf_counter() - t0


def run_ensemble(checked: Checked, search_dir: Path, data_dir: Path, tta: str, out_dir: Path, *, progress: bool = True) -> dict:
    """The whole ensembling stage on what :func:`check_ensemble` passed; returns the report dict (also
    written to ``report.json``). The submission and reports appear under their names only when complete."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bar = _bar if progress else (lambda it, **kw: it)
    ttas = ["none", "flip"] if tta == "flip" else ["none"]
    out_dir.mkdir(parents=True, exist_ok=True)
    files = EnsembleFiles(out_dir)
    rounds = []
    extra, where = None, SearchFiles(search_dir.resolve()).refit(checked.refit_folds)
    for rnd in range(2 if checked.pseudo else 1):
        t0 = time.perf_counter()
        if checked.refit_folds:
            configs = _refit(checked, where, data_dir, extra)
            pred = _refit_prediction(checked, configs, ttas, device, bar)
        else:
            pred = _snapshot_prediction(checked, ttas, device, bar)
        sel = _select(pred, checked.combiners, checked.folds)
        val_seconds = time.perf_counter() - t0
        last = rnd == (1 if checked.pseudo else 0)
        sub = files.submission if last else files.submission_round0
        collector, test_seconds = _write_test(pred.members, sel, checked.data, device, sub, None if last else checked.pseudo, progress)
        rounds.append({**{k: v for k, v in sel.items() if k not in ("final",)}, "round": rnd, "members": pred.members,
                       "final": sel["final"], "seconds_validation": val_seconds, "seconds_test": test_seconds,
                       "refit": None if not checked.refit_folds else str(where),
                       "pseudo": None if collector is None else collector.summary()})
        if collector is not None and not collector.kept:  # nothing to add: a second round would train the same
            print("pseudo-labels: no test image is confident enough; no second round (lower --pseudo-confidence or "
                  "--pseudo-share)", flush=True)
            files.submission_round0.replace(files.submission)
            break
        if collector is not None:
            extra = collector.arrays()
            where = EnsembleFiles(out_dir.resolve()).pseudo(collector.fingerprint())
            print(f"pseudo-labels: {len(extra.ids)} of {collector.seen} test images are confident "
                  f"(confidence {checked.pseudo.confidence:g} on {checked.pseudo.share:.1%} of pixels); refitting with them", flush=True)
    return _write_reports(checked, rounds, search_dir, data_dir, out_dir)


def _write_reports(checked: Checked, rounds: list[dict], search_dir: Path, data_dir: Path, out_dir: Path) -> dict:
    last = rounds[-1]
    final, members = last["final"], last["members"]
    weights = {"combiner": last["chosen"], "tta": last["tta"], "bias": final.bias, "threshold": final.threshold,
               "min_area": final.min_area, "salt_cutoff": final.salt_cutoff, "members": [
                   {"trial": m.trial, "snapshot": m.path, "models": list(m.paths), "val_score": m.score, "weight": float(w)}
                   for m, w in zip(members, final.weights)]}
    files = EnsembleFiles(out_dir)
    write_json(files.weights, weights, "ensemble weights")
    public = [{k: v for k, v in r.items() if k not in ("members", "final")} for r in rounds]
    report = {"search": str(search_dir), "data": str(data_dir), "top": len({m.trial for m in checked.members}),
              "snapshots": len(checked.members), "members": len(members), "refit_folds": checked.refit_folds,
              "final": checked.final,
              "score": last["holdout"] if last["holdout"] is not None else last["score"],
              "headline": "holdout" if last["holdout"] is not None else "cross-validated",
              "holdout": last["holdout"], "holdout_se": last["holdout_se"], "holdout_images": last["holdout_images"],
              "cv_score": last["score"], "iou": last["iou"], "salt_cutoff": final.salt_cutoff,
              "selection_images": last["selection_images"], "validation_images": last["selection_images"],
              "folds": checked.folds, "rows": last["rows"], "chosen": last["chosen"], "rounds": public,
              "test_images": len(checked.data.test_ids), "seconds_validation": sum(r["seconds_validation"] for r in rounds),
              "seconds_test": sum(r["seconds_test"] for r in rounds)}
    write_json(files.report_json, report, "ensemble report")
    atomic_write_text(files.report_md, _report_md(report, search_dir, final), "ensemble report")
    return report


def _fmt(v: float | None, se: float | None = None) -> str:
    if v is None:
        return "-"
    return f"{v:.4f}" + (f" ± {se:.4f}" if se is not None and not math.isnan(se) else "")


def _headline(r: dict) -> str:
    if r["holdout"] is None:
        return (f"**No holdout** (the search's data.holdout_fraction is 0): the best figure is the cross-validated "
                f"{r['score']:.4f} over {r['images']}, which chose the trials, so it is optimistic. Set "
                "data.holdout_fraction (e.g. 0.2) in the space for a score nothing was tuned on.")
    return (f"**Holdout score {_fmt(r['holdout'], r['holdout_se'])}** (± one standard error over its "
            f"{r['holdout_images']} images, set aside before the search: no trial trained or validated on them and "
            f"nothing here was chosen on them). Cross-validated: {r['score']:.4f} over {r['images']}; "
            f"gap {r['score'] - r['holdout']:+.4f} (how optimistic the cross-validated figure is).")


def _report_md(report: dict, search_dir: Path, final) -> str:
    refit = f", refit on {report['refit_folds']} folds" if report["refit_folds"] else ""
    parts = [f"# Ensemble of the {report['top']} final models of {search_dir.name}\n" if report.get("final") else
             f"# Ensemble of the top {report['top']} trials of {search_dir.name}{refit}\n"]
    for r in report["rounds"]:
        title = "Round 0" if r["pseudo"] is None and r["round"] == 0 else f"Round {r['round']}"
        if report["rounds"][0]["pseudo"] is not None or r["round"]:
            parts.append(f"## {title}" + (" (with pseudo-labels)" if r["round"] else "") + "\n")
        parts.append(_headline(r) + "\n")
        lines = [f"| model | TTA | cross-validated ({r['selection_images']} images) | holdout ({r['holdout_images']} images) | IoU (CV) |",
                 "|---|---|---|---|---|"]
        lines += [f"| {x['name']} | {x['tta']} | {x['score']:.4f} | {_fmt(x['holdout'], x['holdout_se'])} | {x['iou']:.4f} |"
                  for x in r["rows"]]
        parts.append("\n".join(lines) + "\n")
        parts.append(f"Chosen: **{r['chosen_row']}** (TTA {r['tta']}); every combiner, threshold, area and salt cut-off "
                     f"fitted on the other folds ({report['folds']}-fold CV). The holdout column is for reading only: "
                     "nothing was chosen on it.\n")
        if r["pseudo"] is not None:
            p = r["pseudo"]
            parts.append(f"Pseudo-labels: {p['kept']} of {p['test_images']} test images kept ({p['kept_empty']} empty), "
                         f"those with at least {p['share']:.1%} of pixels at probability >= {p['confidence']:g} or "
                         f"<= {1 - p['confidence']:.2g}; added to every refit fold's training images only.\n")
    if report["rounds"][0]["pseudo"] is not None and len(report["rounds"]) == 1:
        parts.append("No test image was confident enough, so there was no second round; submission.csv is round 0's.\n")
    if len(report["rounds"]) > 1:
        a, b = report["rounds"]
        parts.append(f"Holdout before pseudo-labelling {_fmt(a['holdout'], a['holdout_se'])}, after "
                     f"{_fmt(b['holdout'], b['holdout_se'])}. submission.csv is the second round's; "
                     "submission_round0.csv the first's.\n")
    parts.append(f"Threshold {final.threshold}, min area {final.min_area}, salt cut-off {_cutoff_text(final.salt_cutoff)}. "
                 "Weights: weights.json.\n")
    return "\n".join(parts)


def _cutoff_text(cutoff: float | None) -> str:
    return "off" if cutoff is None else f"{cutoff} (images the salt heads give less are predicted empty)"


def _bar(it, **kw):
    from tqdm.auto import tqdm

    return tqdm(it, leave=False, **kw)
