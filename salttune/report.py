"""``salttune report``: one self-contained HTML page of a search (or a single training run).

Sections: learning curves of every trial (where ASHA stopped one is marked), the best score against trials
run, parameter importance (Optuna's evaluator, when the study is there) with a slice view per parameter,
the best model on validation images (truth outlined green, prediction red; best and worst cases; the score
by coverage class), and the ensemble's table and stacker weights when ``salttune ensemble`` has run.
Images are embedded as PNG data URIs, so the page opens in any browser from anywhere.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path

import numpy as np

from salttune import leaderboard as lb
from salttune.errors import SalttuneError
from salttune.fileio import atomic_write_text
from salttune.layout import REPORT, RunFiles, SearchFiles, read_summary
from salttune.record import data_folder

__all__ = ["trial_histories", "write_report"]

_RUN = "run"  # the state of a single training run's one "trial"
_COLOURS = {lb.FINISHED: "#1f77b4", lb.PRUNED: "#d62728", lb.FAILED: "#7f7f7f", lb.UNFINISHED: "#ff7f0e",
            lb.STOPPED: "#9467bd", _RUN: "#1f77b4"}


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut by a crash ends the history
    return rows


def trial_histories(run_dir: Path) -> list[dict]:
    """``[{"label", "state", "params", "best_score", "history": [{"epoch", "val_score", ...}], ...}]``."""
    search, run = SearchFiles(run_dir), RunFiles(run_dir)
    board = search.leaderboard
    if board.is_file():
        out = []
        rows = lb.read_leaderboard(board)
        if not rows:
            raise SalttuneError(f"{board}: no trials (header only); report the search once a trial has run")
        for row in rows:
            result = search.trial(row["trial_id"]).result
            hist = [{"epoch": r["epoch"], "val_score": r.get("val_score")} for r in _read_jsonl(result) if "epoch" in r] if result.is_file() else []
            trial = row.get("trial") or ""
            out.append({"label": f"trial {trial}" if trial else row["trial_id"], "order": float(trial) if trial else len(out),
                        "state": row["state"], "best_score": lb.best_score(row),
                        "params": {k: _number(v) for k, v in lb.parameters(row).items()},
                        "snapshots": lb.snapshots(row), "reason": row.get("reason") or "", "history": hist})
        return out
    metrics = run.metrics
    if metrics.is_file():
        hist = _read_jsonl(metrics)
        if not hist:
            raise SalttuneError(f"{metrics}: no epochs recorded yet; report the run once an epoch has finished")
        snapshots = read_summary(run.summary)["snapshots"] if run.summary.is_file() else []
        return [{"label": run_dir.name, "order": 0, "state": _RUN, "params": {}, "reason": "",
                 "best_score": max((h["val_score"] for h in hist), default=None),
                 "snapshots": [s["path"] for s in snapshots], "history": hist}]
    raise SalttuneError(f"{run_dir}: neither {board.name} (a search) nor {metrics.name} (a training run); give a run's folder")


def _number(text: str) -> float | str:
    """A parameter's cell as a number where it is one (for the slice plots' axes)."""
    try:
        return float(text)
    except ValueError:
        return text


def _curves(trials: list[dict]) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2))
    seen = set()
    for t in trials:
        pts = [(h["epoch"], h["val_score"]) for h in t["history"] if h.get("val_score") is not None]
        if not pts:
            continue
        x, y = zip(*pts)
        c = _COLOURS.get(t["state"], "#2ca02c")
        ax.plot(x, y, color=c, alpha=0.75, lw=1.2, label=t["state"] if t["state"] not in seen else None)
        seen.add(t["state"])
        if t["state"] in (lb.PRUNED, lb.FAILED):  # where ASHA (or a failure) ended the trial
            ax.plot(x[-1], y[-1], marker="x", color=c, ms=8, mew=2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation score")
    ax.set_title("Learning curves (x: stopped by ASHA or failed)")
    ax.grid(alpha=0.3)
    if seen:
        ax.legend(loc="lower right")
    return _png(fig)


def _progress(trials: list[dict]) -> str:
    import matplotlib.pyplot as plt

    done = sorted((t for t in trials if t["best_score"] is not None), key=lambda t: float(t["order"]))
    fig, ax = plt.subplots(figsize=(8, 3.5))
    if done:
        scores = [t["best_score"] for t in done]
        ax.scatter(range(1, len(done) + 1), scores, c=[_COLOURS.get(t["state"], "k") for t in done], s=25, zorder=3)
        ax.step(range(1, len(done) + 1), np.maximum.accumulate(scores), where="post", color="k", label="best so far")
        ax.legend(loc="lower right")
    ax.set_xlabel("trials run")
    ax.set_ylabel("best validation score")
    ax.set_title("Search progress")
    ax.grid(alpha=0.3)
    return _png(fig)


def _slices(trials: list[dict]) -> str | None:
    import matplotlib.pyplot as plt

    params = sorted({k for t in trials for k in t["params"]})
    done = [t for t in trials if t["best_score"] is not None]
    if not params or not done:
        return None
    cols = min(3, len(params))
    rows = math.ceil(len(params) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax, p in zip(axes.flat, params):
        pts = [(t["params"][p], t["best_score"], _COLOURS.get(t["state"], "k")) for t in done if p in t["params"]]
        values = [v for v, _, _ in pts]
        if all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values):
            x = np.array(values, float)
            ax.scatter(x, [s for _, s, _ in pts], c=[c for _, _, c in pts], s=20)
            if len(x) and x.min() > 0 and x.max() / x.min() > 50:
                ax.set_xscale("log")
        else:
            cats = sorted({str(v) for v in values})
            ax.scatter([cats.index(str(v)) for v in values], [s for _, s, _ in pts], c=[c for _, _, c in pts], s=20)
            ax.set_xticks(range(len(cats)), cats, rotation=20, fontsize=7)
        ax.set_title(p, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(params):]:
        ax.axis("off")
    fig.suptitle("Slice view: each trial's best score against each parameter")
    fig.tight_layout()
    return _png(fig)


def _importance(run_dir: Path) -> tuple[str | None, str]:
    db = SearchFiles(run_dir).study
    if not db.is_file():
        return None, "No Optuna study in this folder."
    try:
        from salttune.search.study import param_importances

        imp = param_importances(db)
    except Exception as e:  # too few finished trials, or a study without parameters
        return None, f"Parameter importance unavailable: {html.escape(str(e).splitlines()[0] if str(e) else type(e).__name__)}"
    if not imp:
        return None, "Parameter importance needs at least two finished trials with parameters."
    import matplotlib.pyplot as plt

    names = list(imp)[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(names) + 1))
    ax.barh(names, [imp[n] for n in names], color="#1f77b4")
    ax.set_xlabel("importance (fANOVA, Optuna)")
    ax.set_title("Parameter importance")
    return _png(fig), ""


def _best_model(trials: list[dict], data_dir: str | None, n: int = 12) -> str:
    import torch

    from salttune.checkpoint import build_from_checkpoint, load_checkpoint
    from salttune.data import load_dataset
    from salttune.metric import coverage_class, iou_per_image, score_per_image
    from salttune.predict import predict_proba
    from salttune.preview import GREEN, RED, draw_tile, tile_sheet
    from salttune.split import Split, split_data

    ranked = sorted((t for t in trials if t["best_score"] is not None and t["snapshots"]), key=lambda t: -t["best_score"])
    if not ranked or not data_dir:
        return "<p>No finished trial with a snapshot (or no data folder recorded): nothing to draw yet.</p>"
    snaps = [(load_checkpoint(p).get("metrics", {}).get("val_score", -1), p) for p in ranked[0]["snapshots"] if Path(p).is_file()]
    if not snaps:
        return "<p>The best trial's snapshot files are not on this machine.</p>"
    _, path = max(snaps)
    model, ckpt = build_from_checkpoint(path)
    cfg = ckpt["config"]
    _, val, _ = split_data(load_dataset(data_dir, with_test=False), Split.of(cfg))
    depths = val.depths if model.config.get("use_depth") else None
    pred = predict_proba(model, val.images, depths, torch.device("cpu")) > cfg.get("threshold", 0.5)
    scores, ious = score_per_image(pred, val.masks), iou_per_image(pred, val.masks)
    salty = np.flatnonzero(val.masks.reshape(len(val.masks), -1).any(1) | pred.reshape(len(pred), -1).any(1))
    order = salty[np.argsort(-scores[salty] - 1e-3 * ious[salty], kind="stable")]
    best, worst = order[:n], order[::-1][:n]

    def sheet(idx):
        tiles = [draw_tile(val.images[i], [(val.masks[i], GREEN), (pred[i], RED)], 2, f"{scores[i]:.2f}") for i in idx]
        import cv2

        ok, buf = cv2.imencode(".png", tile_sheet(tiles, cols=6))
        return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode()

    classes = coverage_class(val.masks)
    rows = "".join(
        f"<tr><td>{'empty' if c == 0 else f'{(c - 1) * 10}-{c * 10}%'}</td><td>{(classes == c).sum()}</td>"
        f"<td>{scores[classes == c].mean():.4f}</td><td>{ious[classes == c].mean():.4f}</td></tr>"
        for c in np.unique(classes))
    return (f"<p>Snapshot <code>{html.escape(path)}</code> (epoch {ckpt.get('epoch')}) on the {len(val.ids)} validation "
            f"images: score <b>{scores.mean():.4f}</b>, IoU {ious.mean():.4f}. Truth outlined in green, prediction in red; "
            f"the number is the image's competition score.</p>"
            f"<h3>Best cases</h3>{_img(sheet(best), 'best validation cases')}"
            f"<h3>Worst cases</h3>{_img(sheet(worst), 'worst validation cases')}"
            f"<h3>Score by coverage class</h3><table><tr><th>coverage</th><th>images</th><th>score</th><th>IoU</th></tr>{rows}</table>")


def _ensemble(run_dir: Path) -> str:
    files = SearchFiles(run_dir).ensemble
    rep, w = files.report_json, files.weights
    if not rep.is_file():
        return "<p>No ensemble yet: run <code>salttune ensemble --top N</code>.</p>"
    r = json.loads(rep.read_text())
    def fmt(v, se=None):
        return "-" if v is None else f"{v:.4f}" + (f" ± {se:.4f}" if se is not None else "")

    rows = "".join(f"<tr><td>{html.escape(x['name'])}</td><td>{x['tta']}</td><td>{x['score']:.4f}</td>"
                   f"<td>{fmt(x.get('holdout'), x.get('holdout_se'))}</td><td>{x['iou']:.4f}</td></tr>" for x in r["rows"])
    last = (r.get("rounds") or [{}])[-1]
    cv_images = last.get("images", f"{r['validation_images']} validation images")
    if r.get("holdout") is not None:
        head = (f"<p><b>Holdout score {fmt(r['holdout'], r['holdout_se'])}</b> over {r['holdout_images']} images set aside "
                f"before the search (no trial trained or validated on them, nothing was chosen on them); cross-validated "
                f"{r['cv_score']:.4f} over {html.escape(cv_images)}.</p>")
    else:
        head = (f"<p>No holdout: the figures are cross-validated over {html.escape(cv_images)}, which chose the trials "
                "(optimistic); set data.holdout_fraction in the space.</p>")
    before = ""
    if len(r.get("rounds") or []) > 1:
        a, b = r["rounds"][0], r["rounds"][-1]
        before = (f"<p>Pseudo-labelling: {a['pseudo']['kept']} test images; holdout "
                  f"{fmt(a['holdout'], a['holdout_se'])} before, {fmt(b['holdout'], b['holdout_se'])} after.</p>")
    out = (head + before + f"<p>{r['snapshots']} snapshots of the top {r['top']} trials; chosen: <b>{html.escape(r['chosen'])}</b> "
           f"({r['folds']}-fold CV).</p>"
           f"<table><tr><th>model</th><th>TTA</th><th>cross-validated</th><th>holdout</th><th>IoU</th></tr>{rows}</table>")
    if w.is_file():
        import matplotlib.pyplot as plt

        ws = json.loads(w.read_text())
        members = ws["members"]
        fig, ax = plt.subplots(figsize=(8, 0.3 * len(members) + 1))
        ax.barh([f"{m['trial']} / {Path(m['snapshot']).stem}" for m in members][::-1], [m["weight"] for m in members][::-1])
        ax.set_xlabel(f"weight ({ws['combiner']}; bias {ws['bias']:.3f}, threshold {ws['threshold']}, min area {ws['min_area']})")
        ax.set_title("Stacker weights per snapshot")
        out += _img(_png(fig), "stacker weights")
    return out


# Stamps how many images decoded onto <body>, so a headless browser (and the tests) can check the page.
_CHECK = """<script>window.addEventListener('load',()=>{const a=[...document.images];
document.body.dataset.imagesLoaded=a.filter(i=>i.complete&&i.naturalWidth>0).length+'/'+a.length;});</script>"""

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
img{max-width:100%;display:block;margin:.5em 0}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}
code{font-size:90%}.note{color:#666}"""


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``run_dir/report.html`` (or ``out``) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SalttuneError(f"{run_dir}: no such run folder; give a search name or a run folder in results/")
    trials = trial_histories(run_dir)
    is_search = SearchFiles(run_dir).leaderboard.is_file()
    data_dir = data_folder(run_dir)
    counts = {s: sum(t["state"] == s for t in trials) for s in sorted({t["state"] for t in trials})}
    best = max((t["best_score"] for t in trials if t["best_score"] is not None), default=None)
    parts = [f"<h1>salttune report: {html.escape(run_dir.name)}</h1>",
             f"<p class=note>{'Search' if is_search else 'Training run'} in <code>{html.escape(str(run_dir.resolve()))}</code>; "
             f"data <code>{html.escape(str(data_dir))}</code>. Trials: "
             + ", ".join(f"{n} {s}" for s, n in counts.items())
             + (f". Best validation score <b>{best:.4f}</b>." if best is not None else ".") + "</p>",
             "<h2>Learning curves</h2>", _img(_curves(trials), "learning curves")]
    if is_search:
        parts += ["<h2>Search progress</h2>", _img(_progress(trials), "best score against trials run")]
        imp, note = _importance(run_dir)
        parts += ["<h2>Parameter importance</h2>", _img(imp, "parameter importance") if imp else f"<p class=note>{note}</p>"]
        sl = _slices(trials)
        if sl:
            parts.append(_img(sl, "slice view"))
        failed = [t for t in trials if t["state"] == lb.FAILED]
        if failed:
            parts.append("<h3>Failed trials</h3><ul>" + "".join(f"<li>{html.escape(t['label'])}: {html.escape(t['reason'])}</li>" for t in failed) + "</ul>")
    parts += ["<h2>Best model on validation images</h2>", _best_model(trials, data_dir)]
    if is_search:
        parts += ["<h2>Ensemble</h2>", _ensemble(run_dir)]
    page = (f"<!doctype html><html><head><meta charset=utf-8><title>salttune report: {html.escape(run_dir.name)}</title>"
            f"<style>{_STYLE}</style>{_CHECK}</head><body>{''.join(parts)}</body></html>")
    return atomic_write_text(Path(out) if out else run_dir / REPORT, page, "report")
