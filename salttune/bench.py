"""Benchmarks that print figures and write them to ``results/benchmarks/``, each against a reference run in
the same process so the ratio holds on a noisy machine.

- ``train``: images/s of salttune's training step (real loader, augmentation, gradient-norm logging)
  against a plain hand-written PyTorch loop on the same network and the same pre-made batches, both as a
  textbook loop and with salttune's channels-last memory format; plus the time of each part the network
  does not need (loading + augmentation, whole-set evaluation).
- ``predict``: images/s of prediction with and without flip TTA, and peak memory.
- ``quality``: the competition score after a fixed epoch budget on a dataset (the real TGS sample), for the
  default config against the plain recipe salttune starts from (plain U-Net, BCE, Adam).

Search efficiency and scaling need Ray and live in :mod:`salttune.search.bench`.
"""

from __future__ import annotations

import json
import resource
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from salttune.augment import build_augment
from salttune.batches import SaltDataset, make_loader
from salttune.config import TrainConfig, config_from_dict, config_to_dict
from salttune.losses import build_loss
from salttune.model import build_model, count_parameters
from salttune.predict import predict_proba
from salttune.record import machine_info, package_versions

__all__ = ["bench_train", "bench_predict", "bench_quality", "save_result", "PLAIN_RECIPE"]

PLAIN_RECIPE = {"model": {"block": "plain"}, "loss": {"name": "bce"}, "optim": {"name": "adam"},
                "schedule": {"name": "none"}, "augment": {"names": []}}


def save_result(out_dir: Path, name: str, result: dict, command: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "command": command, "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
               "machine": machine_info(), "packages": package_versions(), **result}
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _plain_loop(model, opt, batches):
    """The reference: a textbook PyTorch loop, no salttune code."""
    model.train()
    crit = torch.nn.BCEWithLogitsLoss()
    for x, y in batches:
        opt.zero_grad()
        loss = crit(model(x), y)
        loss.backward()
        opt.step()


def _step_extras(m: torch.nn.Module, batch, repeats: int = 20) -> dict:
    """Seconds per step of the parts of salttune's step a plain loop does not have (or does differently),
    timed alone so the figure does not drown in the machine's noise: the gradient-norm logging, and the
    fused Adam step against PyTorch's default one."""
    from salttune.config import OptimConfig
    from salttune.optim import make_optimizer

    x, y = batch
    torch.nn.functional.binary_cross_entropy_with_logits(m(x), y).backward()

    def median_s(f) -> float:
        f()
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t)
        return statistics.median(ts)

    fused = make_optimizer(m.parameters(), OptimConfig(name="adam", lr=1e-9))
    default = torch.optim.Adam(m.parameters(), lr=1e-9)
    return {"grad_norm_s_per_step": median_s(lambda: float(torch.nn.utils.clip_grad_norm_(m.parameters(), float("inf")))),
            "adam_step_s_fused": median_s(fused.step), "adam_step_s_default": median_s(default.step)}


def bench_train(images: np.ndarray, masks: np.ndarray, cfg: TrainConfig, steps: int = 6, repeats: int = 3) -> dict:
    """salttune's training epoch against two plain loops on the same network and the same batches (CPU, float32).

    ``plain``: the textbook loop (default memory format, PyTorch's default Adam), the issue's reference.
    ``plain_channels_last``: the same loop given salttune's memory format, so the ratio against it is what
    salttune's own machinery (live loading and augmentation, checks, gradient-norm logging, fused optimiser)
    costs or saves. The three run interleaved in each repeat; ratios are medians of per-repeat ratios.
    """
    from salttune.config import OptimConfig
    from salttune.optim import make_optimizer
    from salttune.split import Arrays
    from salttune.train import evaluate, train_epoch

    torch.manual_seed(0)
    n = steps * cfg.batch_size
    images, masks = images[:n], masks[:n]
    depths = np.zeros(len(images), np.float32)
    ds = SaltDataset(images, masks, depths, build_augment(cfg.augment.names, cfg.augment.translate, cfg.augment.p), seed=0)
    batches = [(x, y) for x, y, _ in make_loader(ds, cfg.batch_size, True, 0, 0, 0)]
    batches_cl = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in batches]
    loss_fn = build_loss("bce")

    def fresh(channels_last: bool):
        torch.manual_seed(0)
        m = build_model(**config_to_dict(cfg.model))
        return m.to(memory_format=torch.channels_last) if channels_last else m

    def timed(run) -> float:
        t = time.perf_counter()
        run()
        return n / (time.perf_counter() - t)

    def plain():
        m = fresh(False)
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        _plain_loop(m, opt, batches[:1])  # warm-up
        return timed(lambda: _plain_loop(m, opt, batches))

    def plain_channels_last():
        m = fresh(True)
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        _plain_loop(m, opt, batches_cl[:1])
        return timed(lambda: _plain_loop(m, opt, batches_cl))

    def salttune():
        m = fresh(cfg.channels_last)
        opt = make_optimizer(m.parameters(), OptimConfig(name="adam", lr=1e-3))
        _plain_loop(m, opt, (batches_cl if cfg.channels_last else batches)[:1])
        loader = make_loader(ds, cfg.batch_size, True, 0, 1, cfg.num_workers)
        return timed(lambda: train_epoch(m, loader, loss_fn, opt, torch.device("cpu"), channels_last=cfg.channels_last))

    runs = {"plain": plain, "plain_channels_last": plain_channels_last, "salttune": salttune}
    speeds: dict[str, list[float]] = {k: [] for k in runs}
    load = []
    for rep in range(repeats):  # interleaved, in alternating order, so drifts in machine load hit all three alike
        for k in (list(runs) if rep % 2 == 0 else list(runs)[::-1]):
            speeds[k].append(runs[k]())
        t = time.perf_counter()
        for _ in make_loader(ds, cfg.batch_size, True, 0, 2, cfg.num_workers):
            pass
        load.append(time.perf_counter() - t)
    m = fresh(cfg.channels_last)
    extras = _step_extras(m, batches_cl[0] if cfg.channels_last else batches[0])
    val = Arrays([str(i) for i in range(len(images))], images, masks, depths)
    t = time.perf_counter()
    evaluate(m, val, loss_fn, torch.device("cpu"), batch_size=64)
    eval_s = time.perf_counter() - t
    step_s = cfg.batch_size / statistics.median(speeds["salttune"])

    def ratio(ref: str) -> float:
        return statistics.median(a / b for a, b in zip(speeds["salttune"], speeds[ref]))

    return {
        "model": config_to_dict(cfg.model), "parameters": count_parameters(m), "batch_size": cfg.batch_size,
        "images_per_epoch": n, "repeats": repeats, "threads": torch.get_num_threads(),
        "channels_last": cfg.channels_last,
        **{f"{k}_images_per_s": statistics.median(v) for k, v in speeds.items()},
        "ratio": ratio("plain"), "ratio_vs_plain_channels_last": ratio("plain_channels_last"),
        **{f"all_{k}": v for k, v in speeds.items()},
        "loading_and_augmentation_s_per_batch": statistics.median(load) / steps,
        "loading_share_of_step": (statistics.median(load) / steps) / step_s,
        **extras,
        "evaluation_s_per_image": eval_s / n,
    }


def bench_predict(images: np.ndarray, cfg: TrainConfig, batch_size: int = 128) -> dict:
    torch.manual_seed(0)
    model = build_model(**config_to_dict(cfg.model)).eval()
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    cpu = torch.device("cpu")
    predict_proba(model, images[:batch_size], None, cpu, batch_size=batch_size)  # warm-up
    out = {"images": len(images), "model": config_to_dict(cfg.model)}
    for tta in ("none", "flip"):
        t = time.perf_counter()
        predict_proba(model, images, None, cpu, batch_size=batch_size, tta=tta)
        out[f"images_per_s_tta_{tta}"] = len(images) / (time.perf_counter() - t)
    out["peak_rss_mib"] = _peak_rss_mib()
    return out


def bench_quality(data_dir: str, epochs: int, overrides: dict, out_dir: Path, seeds: int = 1,
                  log: Callable[[str], None] = print) -> dict:
    """Default config vs the plain recipe: same data, split and epochs, each training seed run by both.

    A single run's best epoch on a few hundred validation images swings by several points (the plain
    recipe's curve jumps between epochs), so both the best and the last epoch's score are kept, per seed,
    with their means over the seeds.
    """
    from salttune.config import apply_overrides
    from salttune.data import load_dataset
    from salttune.split import split_data
    from salttune.train import fit

    data = load_dataset(data_dir, with_test=False)
    res: dict = {"data": str(data_dir), "epochs": epochs, "seeds": seeds, "overrides": overrides}
    for name, recipe in (("default", {}), ("plain_recipe", PLAIN_RECIPE)):
        runs = []
        for seed in range(seeds):
            cfg = config_from_dict(apply_overrides(apply_overrides(recipe, overrides), {"epochs": epochs, "seed": seed}))
            tr, va = split_data(data, cfg.val_fraction, cfg.split_seed, cfg.max_train_images)
            scores: list[float] = []

            def report(m, c, name=name, seed=seed, scores=scores):
                scores.append(m["val_score"])
                log(f"{name} seed {seed} epoch {m['epoch']}: score {m['val_score']:.4f} iou {m['val_iou']:.4f}")

            t = time.perf_counter()
            summary = fit(cfg, tr, va, out_dir / f"quality-{name}-seed{seed}", report)
            runs.append({"seed": seed, "best_score": summary["best_score"], "best_epoch": summary["best_epoch"],
                         "final_score": scores[-1], "scores": scores, "seconds": time.perf_counter() - t})
        res[name] = {"mean_best_score": statistics.mean(r["best_score"] for r in runs),
                     "mean_final_score": statistics.mean(r["final_score"] for r in runs),
                     "train_images": len(tr.ids), "val_images": len(va.ids), "runs": runs, "config": config_to_dict(cfg)}
    d, p = res["default"], res["plain_recipe"]
    res["best_score_gain"] = d["mean_best_score"] - p["mean_best_score"]
    res["final_score_gain"] = d["mean_final_score"] - p["mean_final_score"]
    res["seeds_default_best_higher"] = sum(a["best_score"] > b["best_score"] for a, b in zip(d["runs"], p["runs"]))
    return res


# What each benchmark compares, printed above its figures.
METHODS = {
    "train": "Images/s of a training epoch of the default model (CPU, float32): salttune's `train_epoch` (live loading "
             "and augmentation, finite-loss check, gradient-norm logging, fused Adam) against a plain PyTorch loop on "
             "the same network and batches, as a textbook loop (`plain`) and in salttune's channels-last memory format "
             "(`plain_channels_last`). Repeats alternate their order; ratios are medians of per-repeat ratios. The "
             "extras are also timed alone (`grad_norm_s_per_step`, `adam_step_s_*`).",
    "predict": "Images/s of prediction with the default model, without and with flip TTA; peak resident memory.",
    "quality": "The competition score on the validation images after the same epochs and split, for each training "
               "seed: the default config against the plain recipe (plain U-Net, BCE, Adam, no schedule, no "
               "augmentation); the best epoch's and the last epoch's score, averaged over the seeds.",
    "search": "Seconds from a search's first trial start until any trial's validation score reaches `target`: TPE + "
              "ASHA against random search without early stopping, same space, trial budget, concurrency and seed; "
              "both stop at the target (`stop_at`). A search that never reaches it counts as its whole time, so its "
              "speed-up is a bound. `median_speedup` is the median over seeds of random's time / TPE + ASHA's.",
    "scale": "Epochs per minute of the same search with 1 and with 2 trials at once.",
}


def _per_seed_table(rows: list[dict]) -> str:
    def cell(r: dict) -> str:
        return f"{r['seconds']:.0f} s{'' if r['reached'] else ' (not reached)'}, {r['trials']} trials, {r['epochs']} epochs, best {r['best']:.3f}"

    lines = ["| seed | TPE + ASHA | random, no early stopping | speed-up |", "|---|---|---|---|"]
    lines += [f"| {r['seed']} | {cell(r['tpe_asha'])} | {cell(r['random_no_es'])} | {r['speedup']:.2f}x |" for r in rows]
    return "\n".join(lines) + "\n"


def _quality_table(r: dict) -> str:
    lines = ["| seed | default: best (epoch) / last | plain recipe: best (epoch) / last |", "|---|---|---|"]
    for a, b in zip(r["default"]["runs"], r["plain_recipe"]["runs"]):
        lines.append(f"| {a['seed']} | {a['best_score']:.4f} ({a['best_epoch']}) / {a['final_score']:.4f} | "
                     f"{b['best_score']:.4f} ({b['best_epoch']}) / {b['final_score']:.4f} |")
    return "\n".join(lines) + "\n"


def render_readme(out_dir: Path) -> str:
    """``results/benchmarks/README.md``: the latest figures, their commands and the machine."""
    parts = ["# Benchmarks\n", "Latest figures measured by `salttune bench`; each JSON file beside this one holds the full "
             "result, the machine and package versions. Re-run a command to compare your hardware.\n"]
    for path in sorted(out_dir.glob("*.json")):
        r = json.loads(path.read_text())
        m = r.get("machine", {})
        parts.append(f"## {r['benchmark']}\n\n`{r['command']}`  \n{r['when']} on {m.get('cpu')} "
                     f"({m.get('cpu_count')} cores, {m.get('memory_gib')} GiB, GPUs: {', '.join(m.get('gpus') or []) or 'none'})\n")
        skip = {"benchmark", "command", "when", "machine", "packages", "all_plain", "all_plain_channels_last", "all_salttune", "config"}
        rows = []

        def walk(d, prefix=""):
            for k, v in d.items():
                if k in skip:
                    continue
                if isinstance(v, dict):
                    walk(v, f"{prefix}{k}.")
                elif not isinstance(v, list):
                    rows.append(f"| {prefix}{k} | {v:.4g} |" if isinstance(v, float) else f"| {prefix}{k} | {v} |")

        walk(r)
        if r["benchmark"] in METHODS:
            parts.append(METHODS[r["benchmark"]] + "\n")
        parts.append("| figure | value |\n|---|---|\n" + "\n".join(rows) + "\n")
        if r.get("per_seed") and "tpe_asha" in r["per_seed"][0]:
            parts.append(_per_seed_table(r["per_seed"]))
        if r["benchmark"] == "quality" and "runs" in r.get("default", {}):
            parts.append(_quality_table(r))
    return "\n".join(parts)
