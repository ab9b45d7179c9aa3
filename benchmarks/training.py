"""Training and prediction benchmarks, each against a reference run in the same process so the ratio holds
on a noisy machine.

- ``train``: images/s of salttune's training step (its batches and augmentation, gradient-norm logging)
  against a plain hand-written PyTorch loop on the same network and the same pre-made batches, both as a
  textbook loop and with salttune's channels-last memory format; salttune's step on each data path (the
  device path ``augment.path`` picks, and the DataLoader + albumentations path); plus the time of each part
  the network does not need (making a batch on each path, whole-set evaluation).
- ``predict``: images/s of prediction with and without flip TTA, and peak memory.

Recipe quality is in :mod:`benchmarks.quality`, search efficiency and scaling in :mod:`benchmarks.search`; :mod:`benchmarks.figures` writes them all.
"""

from __future__ import annotations

import resource
import statistics
import time

import numpy as np
import torch

from salttune.augment import build_augment
from salttune.batches import LoaderBatches, SaltDataset, make_batches, make_loader
from salttune.config import TrainConfig, config_to_dict
from salttune.losses import build_loss
from salttune.model import build_model, count_parameters
from salttune.predict import predict_proba

__all__ = ["bench_train", "bench_predict", "PLAIN_RECIPE"]

PLAIN_RECIPE = {"model": {"block": "plain"}, "loss": {"name": "bce"}, "optim": {"name": "adam"},
                "schedule": {"name": "none"}, "augment": {"names": []}}


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

    cpu = torch.device("cpu")
    part = Arrays([str(i) for i in range(len(images))], images, masks, depths)
    configured = make_batches(cfg, part, cpu)  # the path augment.path picks (auto: on the device when it can)
    loader_path = LoaderBatches(images, masks, depths, build_augment(cfg.augment.names, cfg.augment.translate, cfg.augment.p),
                                batch_size=cfg.batch_size, seed=0, num_workers=cfg.num_workers)

    def salttune_on(data):
        def run():
            m = fresh(cfg.channels_last)
            opt = make_optimizer(m.parameters(), OptimConfig(name="adam", lr=1e-3))
            _plain_loop(m, opt, (batches_cl if cfg.channels_last else batches)[:1])
            loader = data.epoch(1)
            return timed(lambda: train_epoch(m, loader, loss_fn, opt, cpu, channels_last=cfg.channels_last))
        return run

    runs = {"plain": plain, "plain_channels_last": plain_channels_last, "salttune": salttune_on(configured)}
    if configured.path != "loader":
        runs["salttune_loader_path"] = salttune_on(loader_path)
    speeds: dict[str, list[float]] = {k: [] for k in runs}
    load, load_configured = [], []
    for rep in range(repeats):  # interleaved, in alternating order, so drifts in machine load hit all alike
        for k in (list(runs) if rep % 2 == 0 else list(runs)[::-1]):
            speeds[k].append(runs[k]())
        for data, times in ((loader_path, load), (configured, load_configured)):
            t = time.perf_counter()
            for _ in data.epoch(2):
                pass
            times.append(time.perf_counter() - t)
    m = fresh(cfg.channels_last)
    extras = _step_extras(m, batches_cl[0] if cfg.channels_last else batches[0])
    t = time.perf_counter()
    evaluate(m, part, loss_fn, cpu, batch_size=64)
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
        "data_path": configured.path,
        **({"ratio_vs_loader_path": ratio("salttune_loader_path")} if "salttune_loader_path" in runs else {}),
        **{f"all_{k}": v for k, v in speeds.items()},
        "loading_and_augmentation_s_per_batch": statistics.median(load) / steps,  # the DataLoader + albumentations path
        "data_path_s_per_batch": statistics.median(load_configured) / steps,  # the path salttune trains with
        "loading_share_of_step": (statistics.median(load_configured) / steps) / step_s,
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
