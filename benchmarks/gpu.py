"""What one device does for salttune: ``python -m benchmarks gpu`` (on CUDA) or ``gpu-cpu`` (the same code, smaller, on
the CPU, so CI runs it).

Measured, all with data already on the device (random tensors; the loader is not timed here, ``bench train``
times it):

1. **Training images/s** of the config's network and of an encoder network (smp U-Net, ``model.encoder``,
   random weights): salttune's own step as :func:`salttune.train.build_step` assembles it (the config's
   optimiser, first loss stage and precision, :mod:`salttune.precision`), channels-last, run by
   :func:`salttune.train.train_epoch`; median of timed repeats after warm-up steps.
2. **Share of the peak**: the FLOPs of one training step (forward + backward, counted by
   ``torch.utils.flop_counter.FlopCounterMode``) per image, times images/s, over the device's measured matmul
   peak in the dtype the step computes in (bf16 or fp16 on CUDA, float32 on the CPU).
3. **Trials sharing the device**: K = 1, 2, 4, 8 processes (``spawn``) each training the config's network on the
   same device, started together after their warm-up; total images/s per K and its ratio to K = 1.
4. **Ensemble prediction**: N images x M members with flip TTA through
   :func:`salttune.ensemble.weighted_predictions`, every member on each batch (as ``salttune ensemble`` runs them,
   in the precision the config trains in), and the time that projects to the competition's 18,000 test images x 10
   members.

Reference: ``results/benchmarks/gpu/README.md`` (the first probe on an H100, which this replaces).
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing as mp
import os
import queue
import statistics
import time
import traceback
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from salttune.config import TrainConfig, config_to_dict
from salttune.precision import precision, precision_name
from salttune.split import Arrays
from salttune.train import TrainingStep, build_step, train_epoch

__all__ = ["CUDA_SIZES", "bench_gpu", "peak_tflops", "step_flops", "train_throughput", "sharing", "ensemble_prediction",
           "gpu_table"]

# The sizes `python -m benchmarks gpu` uses on a GPU (the function defaults are the CPU's, small enough for CI).
CUDA_SIZES: dict[str, Any] = {"batch_size": 128, "steps": 30, "warmup": 5, "repeats": 5, "peak_n": 8192,
                              "concurrent": (1, 2, 4, 8), "images": 18000, "members": 10, "predict_batch_size": 256}
PROJECTED_IMAGES, PROJECTED_MEMBERS = 18000, 10  # the TGS test set, and a 10-member ensemble
_PRECISION_LABELS = {None: "float32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast, loss scaling"}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def _training_flags(cfg: TrainConfig) -> Iterator[None]:
    """Seed and set the determinism flags as :func:`salttune.train.fit` does for ``cfg``; restore them after, so
    a caller (a test session) keeps its own."""
    from salttune.train import seed_everything

    saved = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(), \
        torch.backends.cudnn.benchmark
    seed_everything(cfg.seed, cfg.deterministic)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.benchmark = saved[2]


def peak_tflops(device: torch.device, n: int, repeats: int = 5, iters: int = 5, dtype: torch.dtype | None = None) -> float:
    """The device's matmul peak in TFLOP/s: ``iters`` products of two (n, n) matrices of ``dtype`` (None: float32)
    per timed block, 2 n^3 FLOPs each, median over ``repeats`` blocks after two warm-up products.

    On a GPU this is cuBLAS near the card's dense peak. On the CPU it is only the BLAS's matmul: MKL on an AMD
    EPYC with AVX-512 reached 0.11 TFLOP/s on one thread where oneDNN's convolutions (an smp ResNet-34 U-Net
    step) did 0.15, so a CPU share of the peak can pass 1; it checks the arithmetic, it is no efficiency figure.
    """
    dtype = dtype or torch.float32
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    for _ in range(2):
        a @ b
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        for _ in range(iters):
            a @ b
        _sync(device)
        times.append(time.perf_counter() - t)
    return 2 * n**3 * iters / statistics.median(times) / 1e12


def _batches(device: torch.device, batch_size: int, count: int, size: int, seed: int) -> list[tuple[torch.Tensor, ...]]:
    """``count`` random batches made on ``device``: images (B, 1, size, size) float in [0, 1], channels-last;
    masks (B, 1, size, size) in {0, 1}; depths (B,) zeros (unused by a network without ``use_depth``)."""
    g = torch.Generator(device=device).manual_seed(seed)
    out = []
    for _ in range(count):
        x = torch.rand(batch_size, 1, size, size, device=device, generator=g).contiguous(memory_format=torch.channels_last)
        y = (torch.rand(batch_size, 1, size, size, device=device, generator=g) > 0.5).float()
        out.append((x, y, torch.zeros(batch_size, device=device)))
    return out


def _trainer(model_args: dict, cfg: TrainConfig, device: torch.device, *, batch_size: int, images: int,
             size: int) -> TrainingStep:
    """Salttune's training step (:func:`salttune.train.build_step`) for ``model_args``'s network, channels-last,
    over ``images`` random training images of side ``size``, ``batch_size`` a batch."""
    model = dataclasses.replace(cfg.model, **{k: v for k, v in model_args.items() if k != "in_channels"})
    net_cfg = dataclasses.replace(cfg, model=model, channels_last=True, batch_size=batch_size)
    return build_step(net_cfg, _training_part(cfg.seed, images, size), device)


def _train(step: TrainingStep, batches) -> float:
    """Seconds of salttune's training epoch (the first loss stage) over ``batches``, the device synchronised at
    both ends."""
    _sync(step.device)
    t = time.perf_counter()
    train_epoch(step.model, batches, step.loss_fn.at(0), step.optimizer, step.device, amp_dtype=step.amp_dtype,
                scaler=step.scaler, channels_last=True)
    _sync(step.device)
    return time.perf_counter() - t


def step_flops(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn, batch: tuple, device: torch.device,
               amp_dtype: torch.dtype | None = None) -> int:
    """FLOPs of one training step of ``model`` on ``batch`` (forward + backward: FlopCounterMode counts the
    matmuls and convolutions, not the optimiser's element-wise update), counted on the real step; the count
    depends on the shapes alone, not on the autocast dtype."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        train_epoch(model, [batch], loss_fn, optimizer, device, amp_dtype=amp_dtype, channels_last=True)
    return counter.get_total_flops()


def train_throughput(model_args: dict, cfg: TrainConfig, device: torch.device, *, batch_size: int, steps: int,
                     warmup: int, repeats: int, size: int = 101) -> dict:
    """Images/s of salttune's training step on ``model_args``'s network with the batches on ``device``.

    Each repeat times ``steps`` steps (one :func:`salttune.train.train_epoch` over resident batches) after
    ``warmup`` untimed ones; the figure is the median over ``repeats``. FLOPs per image: one step counted by
    :func:`step_flops` (after the warm-up, untimed), divided by the batch size.
    """
    from salttune.model import count_parameters

    step = _trainer(model_args, cfg, device, batch_size=batch_size, images=steps * batch_size, size=size)
    batches = _batches(device, batch_size, steps, size, seed=cfg.seed)
    _train(step, batches[: max(warmup, 1)])
    flops = step_flops(step.model, step.optimizer, step.loss_fn.at(0), batches[0], device, step.amp_dtype)
    speeds = [steps * batch_size / _train(step, batches) for _ in range(repeats)]
    # The same step fed as a trial feeds it: the training set's batches made by the path augment.path picks
    # (on the device: gathered and augmented there; on the loader path: albumentations on the CPU, then copied).
    data = step.batches
    _train(step, data.epoch(0))
    fed = [steps * batch_size / _train(step, data.epoch(r + 1)) for r in range(repeats)]
    return {"network": model_args.get("network", "unet"), "parameters": count_parameters(step.model),
            "images_per_s": statistics.median(speeds), "all_images_per_s": speeds,
            "data_path": data.path, "images_per_s_with_data": statistics.median(fed), "all_images_per_s_with_data": fed,
            "flops_per_image": flops / batch_size}


def _training_part(seed: int, n: int, size: int) -> Arrays:
    """``n`` random uint8 images (size, size) with random masks, all at 500 m: a training part for the bench."""
    rng = np.random.default_rng(seed)
    return Arrays([str(i) for i in range(n)], rng.integers(0, 256, (n, size, size), dtype=np.uint8),
                  rng.random((n, size, size)) > 0.5, np.full(n, 500.0))


# --- trials sharing one device -------------------------------------------------------------------------------------

def _share_worker(rank: int, device_name: str, model_args: dict, cfg: TrainConfig, batch_size: int, size: int,
                  jobs: Any, status: Any, go: Sequence[Any]) -> None:
    """One training process of :func:`sharing`, until the parent ends it. For each job ``(round, threads, steps,
    warmup)``: a fresh network, its warm-up steps, then ``("ready", rank)``; on the round's ``go`` event the timed
    steps, then ``("done", rank, start, end, images)`` in wall-clock seconds (comparable across processes)."""
    try:
        device = torch.device(device_name)
        with _training_flags(cfg):
            while True:
                rnd, threads, steps, warmup = jobs.get()
                torch.set_num_threads(threads)
                step = _trainer(model_args, cfg, device, batch_size=batch_size, images=batch_size, size=size)
                batches = _batches(device, batch_size, steps, size, seed=cfg.seed + rank)
                _train(step, batches[: max(warmup, 1)])
                status.put(("ready", rank))
                go[rnd].wait()
                start = time.time()
                _train(step, batches)
                status.put(("done", rank, start, time.time(), steps * batch_size))
                del step, batches
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        status.put(("error", rank, traceback.format_exc()))


def _next(status: Any, procs: list, timeout_s: float) -> tuple:
    """The next worker message; raises when a worker failed, died, or nothing came within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            msg = status.get(timeout=1.0)
        except queue.Empty:
            dead = [p.exitcode for p in procs if not p.is_alive()]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"sharing worker exited with code {dead[0]}" if dead else
                                   f"no sharing worker reported within {timeout_s:.0f} s") from None
            continue
        if msg[0] == "error":
            raise RuntimeError(f"sharing worker {msg[1]} failed:\n{msg[2]}")
        return msg


def sharing(model_args: dict, cfg: TrainConfig, device: torch.device, *, concurrent: Sequence[int], batch_size: int,
            steps: int, warmup: int, size: int = 101, threads: int | None = None, timeout_s: float = 600.0) -> dict:
    """Total training images/s of K processes training at once on ``device``, for each K in ``concurrent``.

    ``max(concurrent)`` processes are spawned once (``multiprocessing`` 'spawn': each its own interpreter, and on
    CUDA its own context, as Ray's trial workers are). In the round for K, the first K each build a fresh
    network, take ``warmup`` untimed steps, report ready, and on one event all start ``steps`` timed steps of
    :func:`salttune.train.train_epoch`. Total images/s = K * steps * batch_size / (last end - first start).
    Each process uses ``threads`` CPU threads, by default ``max(1, os.cpu_count() // K)`` so that K processes
    share the cores rather than oversubscribe them (``threads=2``: every process two, as a Ray trial given two
    CPUs).
    """
    ks = sorted(set(concurrent))
    ctx = mp.get_context("spawn")
    status = ctx.Queue()
    jobs = [ctx.Queue() for _ in range(max(ks))]
    go = [ctx.Event() for _ in ks]
    procs = [ctx.Process(target=_share_worker, args=(r, str(device), model_args, cfg, batch_size, size, jobs[r], status, go),
                         daemon=True) for r in range(max(ks))]
    for p in procs:
        p.start()
    rows: dict[str, dict] = {}
    try:
        for rnd, k in enumerate(ks):
            n_threads = threads or max(1, (os.cpu_count() or 1) // k)
            for r in range(k):
                jobs[r].put((rnd, n_threads, steps, warmup))
            for _ in range(k):
                _next(status, procs, timeout_s)  # ("ready", rank)
            go[rnd].set()
            done = [_next(status, procs, timeout_s) for _ in range(k)]
            span = max(d[3] for d in done) - min(d[2] for d in done)
            rows[str(k)] = {"total_images_per_s": sum(d[4] for d in done) / span, "threads_per_process": n_threads,
                            "per_process_images_per_s": [d[4] / (d[3] - d[2]) for d in sorted(done, key=lambda d: d[1])]}
    finally:  # the workers hold nothing to save: stopped at once, not left to tear down torch (seconds each)
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()
    base = rows[str(ks[0])]["total_images_per_s"] if ks[0] == 1 else None
    for row in rows.values():
        row["ratio_to_1"] = None if base is None else row["total_images_per_s"] / base
    return rows


# --- ensemble prediction -------------------------------------------------------------------------------------------

def ensemble_prediction(model_args: dict, device: torch.device, *, images: int, members: int, batch_size: int,
                        size: int = 101, seed: int = 0, amp: bool = True) -> dict:
    """Seconds to predict ``images`` random uint8 images with ``members`` networks (random weights, channels-last)
    and flip TTA, as ``salttune ensemble`` predicts the test set (:func:`salttune.ensemble.weighted_predictions`:
    each batch of ``batch_size`` images goes to the device once, every member predicts it there in the precision
    of networks trained with ``amp``, flip TTA as one pass, the weighted mean stays on the device). One batch
    through every member first, untimed.
    ``projected_18000x10_s`` scales the time linearly to 18,000 images x 10 members."""
    from salttune.ensemble import weighted_predictions
    from salttune.model import build_model

    dtype = precision(device, amp).dtype
    models = []
    for m in range(members):
        torch.manual_seed(seed + m)
        models.append((1.0 / members, build_model(**model_args).to(device).to(memory_format=torch.channels_last).eval(),
                       dtype))
    data = np.random.default_rng(seed).integers(0, 256, (images, size, size), dtype=np.uint8)  # (N, H, W)

    def run(part: np.ndarray) -> None:
        for _ in weighted_predictions(models, part, None, device, "flip", batch_size):
            pass

    run(data[:batch_size])  # warm-up
    t = time.perf_counter()
    run(data)
    seconds = time.perf_counter() - t
    return {"images": images, "members": members, "batch_size": batch_size, "tta": "flip", "seconds": seconds,
            "member_images_per_s": images * members / seconds,
            "projected_18000x10_s": seconds * (PROJECTED_IMAGES * PROJECTED_MEMBERS) / (images * members)}


# --- the whole benchmark -------------------------------------------------------------------------------------------

def bench_gpu(cfg: TrainConfig | None = None, device: str | None = None, *, batch_size: int = 16, steps: int = 4,
              warmup: int = 1, repeats: int = 3, peak_n: int = 1024, concurrent: Sequence[int] = (1, 2),
              images: int = 256, members: int = 2, predict_batch_size: int = 64, size: int = 101,
              encoder: bool = True, share_threads: int | None = None) -> dict:
    """Everything in the module doc on one device; the defaults are the CPU's (``CUDA_SIZES`` the GPU's).

    Args:
        cfg: the training config: its network (``model.*``, in_channels 1), optimiser, first loss stage, seed and
            determinism (default ``TrainConfig()``).
        device: ``"cuda"`` or ``"cpu"`` (default: cuda when available).
        batch_size, steps, warmup, repeats: training throughput: images per step, timed steps per repeat (and
            per process when sharing), untimed steps before, timed repeats (median reported).
        peak_n: side of the square matrices of the peak measurement.
        concurrent: the K of the sharing test (1 should be among them, for the ratios).
        share_threads: CPU threads of each sharing process (default ``os.cpu_count() // K``; :func:`sharing`).
        images, members, predict_batch_size: ensemble prediction: N, M, images per batch.
        size: image side (101 in TGS; tests use less).
        encoder: also measure the encoder network: ``cfg.model`` with ``network=smp_unet``, ``encoder_weights``
            None (needs segmentation_models_pytorch).

    Returns:
        A dict of plain data: device, torch version, peak, per-network training figures, sharing table,
        prediction figures and the sizes used.
    """
    from salttune.heads import build_training_loss
    from salttune.model import check_model
    from salttune.record import machine_info

    cfg = cfg or TrainConfig()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    nets = {"default": {**config_to_dict(cfg.model), "in_channels": 1}}
    if encoder:
        nets["encoder"] = {**nets["default"], "network": "smp_unet", "encoder_weights": None}
    for args in nets.values():  # an unknown encoder or a missing smp fails here, before minutes of measuring
        check_model(**args)
    sizes = {"batch_size": batch_size, "steps": steps, "warmup": warmup, "repeats": repeats, "peak_n": peak_n,
             "concurrent": list(concurrent), "images": images, "members": members,
             "predict_batch_size": predict_batch_size, "size": size, "share_threads": share_threads}
    dtype = precision(dev, cfg.amp).dtype  # what the timed steps compute in, as a trial's
    with _training_flags(cfg):
        peak = peak_tflops(dev, peak_n, dtype=dtype)
        training = {}
        for name, args in nets.items():
            r = train_throughput(args, cfg, dev, batch_size=batch_size, steps=steps, warmup=warmup, repeats=repeats, size=size)
            r["achieved_tflops"] = r["flops_per_image"] * r["images_per_s"] / 1e12
            r["share_of_peak"] = r["achieved_tflops"] / peak
            training[name] = r
        predicting = ensemble_prediction(nets["default"], dev, images=images, members=members,
                                         batch_size=predict_batch_size, size=size, seed=cfg.seed, amp=cfg.amp)
    if dev.type == "cuda":
        torch.cuda.empty_cache()  # the memory this process cached goes back to the sharing processes
    shared = sharing(nets["default"], cfg, dev, concurrent=concurrent, batch_size=batch_size, steps=steps,
                     warmup=warmup, size=size, threads=share_threads)
    stages = build_training_loss(cfg.loss, cfg.epochs).stages  # the bench trains the first stage's loss
    return {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else machine_info()["cpu"],
            "device_type": dev.type, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "precision": _PRECISION_LABELS[dtype], "deterministic": cfg.deterministic,
            "peak_dtype": precision_name(dtype), "peak_tflops": peak,
            "encoder": nets.get("encoder", {}).get("encoder"), "loss": stages[0].spec if stages else cfg.loss.name,
            "optimizer": cfg.optim.name, "training": training, "sharing": shared, "prediction": predicting,
            "sizes": sizes}


def gpu_table(r: dict) -> str:
    """The ``gpu`` result as three short markdown tables: training, sharing, prediction."""
    lines = [f"{r['device']} ({r['precision']}), matmul peak {r['peak_tflops']:.3g} TFLOP/s ({r['peak_dtype']})", "",
             "| network | images/s (batches resident) | images/s (batches made by the data path) | GFLOP per image | TFLOP/s | share of peak |",
             "|---|---|---|---|---|---|"]
    for name, t in r["training"].items():
        lines.append(f"| {name} ({t['network']}) | {t['images_per_s']:.4g} | {t['images_per_s_with_data']:.4g} ({t['data_path']}) | "
                     f"{t['flops_per_image'] / 1e9:.3g} | {t['achieved_tflops']:.3g} | {t['share_of_peak']:.2%} |")
    lines += ["", "| trials at once | total images/s | vs one trial |", "|---|---|---|"]
    for k, row in r["sharing"].items():
        ratio = "-" if row["ratio_to_1"] is None else f"{row['ratio_to_1']:.2f}x"
        lines.append(f"| {k} | {row['total_images_per_s']:.4g} | {ratio} |")
    p = r["prediction"]
    lines += ["", f"Ensemble prediction, flip TTA: {p['images']} images x {p['members']} members in {p['seconds']:.3g} s; "
                  f"projected 18,000 x 10: {p['projected_18000x10_s']:.3g} s"]
    return "\n".join(lines) + "\n"
