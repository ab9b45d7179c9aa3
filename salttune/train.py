"""Training a single model: plain functions with explicit arguments and no globals.

``fit`` runs epochs of ``train_epoch`` then ``evaluate`` on the whole validation set, and after each epoch
hands the metrics and the checkpoint folder to a ``report`` callable: the CLI prints, the search calls
``tune.report``, tests append to a list. Anything else a user wants to watch is a *watcher*, a function
``(model, optimizer) -> dict`` whose values join each epoch's metrics, without touching the loop.

A run's folder and what its files hold: :mod:`salttune.layout` (``RunFiles``, ``EpochMetrics``, ``RunSummary``).
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import yaml
from torch import nn

from salttune.batches import DeviceBatches, LoaderBatches, make_batches, resolve_path
from salttune.checkpoint import load_checkpoint, save_checkpoint
from salttune.config import TrainConfig, config_to_dict
from salttune.errors import SalttuneError
from salttune.fileio import atomic_write_text, write_json
from salttune.heads import build_training_loss, to_float
from salttune.losses import StagedLoss
from salttune.layout import CheckpointFiles, EpochMetrics, RunFiles, RunSummary, Snapshot
from salttune.metric import competition_score, mean_iou
from salttune.model import build_model
from salttune.optim import make_optimizer
from salttune.precision import precision
from salttune.predict import predict_logits
from salttune.schedule import Schedule, make_schedule
from salttune.split import Arrays

__all__ = [
    "NonFiniteLoss", "GPUOutOfMemory", "InjectedFault", "WATCHERS", "seed_everything", "pick_device",
    "TrainingStep", "build_step", "train_epoch", "evaluate", "fit",
]

Report = Callable[[EpochMetrics, Path], None]
# A cosine cycle cut by the end of the run keeps its last weights once its rate has fallen below this share of the
# peak (past about two thirds of the cycle); before that they are dropped when a finished cycle exists.
CUT_CYCLE_LR_SHARE = 0.25
Watcher = Callable[[nn.Module, torch.optim.Optimizer], dict]


class NonFiniteLoss(SalttuneError):
    """The training loss became NaN or infinite; the run ends as failed with this reason."""


class GPUOutOfMemory(SalttuneError):
    """The GPU ran out of memory; the message names the settings to lower."""


class InjectedFault(RuntimeError):
    """An exception asked for by ``faults.raise_at_epoch`` (chaos testing)."""


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and torch; ask torch for deterministic algorithms."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = not deterministic


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise SalttuneError("config key 'device': cuda was asked for but no GPU is visible; use device=auto or cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def layer_stats(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Per-layer weight norm and mean absolute gradient of the last step (a built-in watcher)."""
    out = {}
    for name, p in model.named_parameters():
        if p.ndim > 1:  # convolution weights; skip BN and biases
            out[f"weight_norm/{name}"] = float(p.detach().norm())
            if p.grad is not None:
                out[f"grad_abs_mean/{name}"] = float(p.grad.detach().abs().mean())
    return out


WATCHERS: dict[str, Watcher] = {"layer_stats": layer_stats}


@dataclass(frozen=True)
class TrainingStep:
    """What a training step needs, built once from the config by :func:`build_step`: the epochs change the
    state of these objects, never the objects."""

    device: torch.device
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    loss_fn: StagedLoss  # loss_fn.at(epoch) is the epoch's stage
    batches: LoaderBatches | DeviceBatches
    amp_dtype: torch.dtype | None  # autocast dtype (salttune.precision); None: float32
    scaler: torch.amp.GradScaler | None  # float16 autocast only


def build_step(cfg: TrainConfig, train: Arrays, device: torch.device) -> TrainingStep:
    """Model, precision, loss, optimiser, batches and schedule of ``cfg`` on ``device``: the one way a training step
    is assembled (``fit``, the search's measured epoch and ``bench gpu`` all use it).

    The model's weights are drawn from torch's global generator as it stands: seed first (:func:`seed_everything`)
    for a reproducible run.

    Args:
        cfg: the resolved training config.
        train: the training part the batches draw from.
        device: where the model trains (:func:`pick_device`).
    """
    model = build_model(**{"in_channels": 1, **config_to_dict(cfg.model)}).to(device)
    # Channels-last helps oneDNN on the CPU as well as tensor cores on a GPU (measured: ~1.5x on 2 CPU cores).
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    amp_dtype, needs_scaler = precision(device, cfg.amp)
    scaler = torch.amp.GradScaler("cuda") if needs_scaler else None
    loss_fn = build_training_loss(cfg.loss, cfg.epochs)
    optimizer = make_optimizer(model.parameters(), cfg.optim)  # after the format change: the state follows the weights
    batches = make_batches(cfg, train, device)  # augment.path: on the device, or a DataLoader on the CPU
    schedule = make_schedule(cfg.schedule, optimizer, cfg.optim.lr, math.ceil(len(batches) / cfg.batch_size), cfg.epochs)
    return TrainingStep(device, model, optimizer, schedule, loss_fn, batches, amp_dtype, scaler)


def train_epoch(
    model: nn.Module,
    loader: Iterable,
    loss_fn: Callable,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    *,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    channels_last: bool = False,
    use_depth: bool = False,
    before_step: Callable[[int], None] = lambda step: None,
    progress: Callable[[Iterable], Iterable] = lambda it: it,
) -> dict:
    """One pass over ``loader``: forward, loss, backward, step. Returns mean loss, gradient norm, throughput.

    ``loss_fn(out, y)`` gets the network's whole output (logits, or the protocol dict of a network with extra
    heads, in float32): a :class:`salttune.heads.HeadLoss` trains every head.

    The steps' losses and gradient norms stay on the device until the epoch ends, so the host never waits for
    the device inside the epoch (a float16 scaler's step aside). A non-finite loss is therefore found when the
    epoch ends, up to ``len(loader) - 1`` steps after it happened: the error names the first bad step all the
    same, and ``fit`` saves nothing of an epoch that raises, so only that epoch's time is lost.

    Raises:
        NonFiniteLoss: the loss became NaN or infinite.
    """
    model.train()
    losses, norms, sizes, t0 = [], [], [], time.perf_counter()  # per step; losses and norms on the device
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for step, (x, y, z) in enumerate(progress(loader)):
        before_step(step)
        x = x.to(device, non_blocking=True, memory_format=fmt)
        y, z = y.to(device, non_blocking=True), z.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = model(x, z if use_depth else None)  # (B, 1, H, W) logits, or the heads' dict (salttune.heads)
        loss = loss_fn(to_float(out), y)
        norms.append(_backward_and_step(loss, model, optimizer, scaler))
        losses.append(loss.detach().float())
        sizes.append(len(x))
    # The epoch's one wait for the device, before the clock stops, so the throughput counts all the work queued.
    step_losses, step_norms = torch.stack([torch.stack(losses), torch.stack(norms)]).tolist() if sizes else ([], [])
    seconds = time.perf_counter() - t0
    bad = next((k for k, v in enumerate(step_losses) if not math.isfinite(v)), None)
    if bad is not None:
        raise NonFiniteLoss(f"loss became {step_losses[bad]} at step {bad}; lower optim.lr or change the loss")
    # Summed in Python in step order, as float64: the figures do not depend on where the steps ran.
    total, grad_sq, n = sum(v * b for v, b in zip(step_losses, sizes)), sum(g**2 for g in step_norms), sum(sizes)
    return {"train_loss": total / max(n, 1), "grad_norm": math.sqrt(grad_sq / max(len(sizes), 1)),
            "train_images_per_s": n / seconds}


def _backward_and_step(loss: torch.Tensor, model: nn.Module, optimizer: torch.optim.Optimizer,
                       scaler: torch.amp.GradScaler | None) -> torch.Tensor:
    """Backward and optimiser step (through the float16 scaler when there is one); the total gradient norm, a
    float32 tensor left on the device."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    # Total gradient norm, cheap next to the backward pass; inf max_norm means no clipping.
    norm = nn.utils.clip_grad_norm_(model.parameters(), math.inf).float()
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return norm


def evaluate(
    model: nn.Module,
    part: Arrays,
    loss_fn: Callable,
    device: torch.device,
    *,
    batch_size: int = 64,
    threshold: float = 0.5,
    amp_dtype: torch.dtype | None = None,
    use_depth: bool = False,
) -> dict:
    """Competition score, IoU and loss on the *whole* part (not batch averages), all of the main logits
    (a :class:`salttune.heads.HeadLoss` given the logits alone is its pixel loss)."""
    logits = predict_logits(model, part.images, part.depths if use_depth else None, device, batch_size=batch_size, amp_dtype=amp_dtype)
    target = torch.from_numpy(part.masks).unsqueeze(1).float()
    loss = float(loss_fn(torch.from_numpy(logits).unsqueeze(1), target)) if len(part.ids) else float("nan")
    pred = torch.sigmoid(torch.from_numpy(logits)).numpy() > threshold  # (N, H, W)
    return {"val_score": competition_score(pred, part.masks), "val_iou": mean_iou(pred, part.masks), "val_loss": loss}


def _snapshot_payload(model: nn.Module, cfg: TrainConfig, epoch: int, metrics: dict, cycle: int) -> dict:
    return {
        "kind": "snapshot",
        "model_args": dict(model.config),
        "config": config_to_dict(cfg),
        "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "epoch": epoch,
        "cycle": cycle,
        "metrics": metrics,
    }


def _no_best() -> dict:
    return {"score": -math.inf, "epoch": -1, "metrics": None}


@dataclass
class _Book:
    """The run's bookkeeping, saved in ``state.pt`` after every epoch and restored on resume."""

    snapshots: list[Snapshot] = field(default_factory=list)  # one per cycle
    history: list[EpochMetrics] = field(default_factory=list)  # every epoch's metrics
    cycle_best: dict = field(default_factory=_no_best)  # the open cycle's best epoch
    next_epoch: int = 0
    val_images: int = 0


def fit(
    cfg: TrainConfig,
    train: Arrays,
    val: Arrays,
    out_dir: str | Path,
    report: Report = lambda metrics, ckpt: None,
    *,
    resume_from: str | Path | None = None,
    watchers: Sequence[Watcher] = (),
    progress: bool = False,
) -> RunSummary:
    """Train one model, reporting after every epoch; resume from a checkpoint folder if given.

    Args:
        cfg: the resolved training config.
        train, val: the data parts (see :func:`salttune.split.split_data`).
        out_dir: where config, metrics, summary and checkpoints go.
        report: called after each epoch with the epoch's metrics and the checkpoint folder.
        resume_from: a ``checkpoint`` folder of an earlier run (its ``state.pt`` and snapshots); training
            continues at the epoch after the one it saved.
        watchers: functions ``(model, optimizer) -> dict`` whose values join each epoch's metrics.
        progress: show a progress bar over each epoch's batches.

    Returns:
        The summary: best score and epoch, epochs run, snapshots (path, epoch, score).
    """
    out = Path(out_dir)
    ckpt_dir = RunFiles(out).checkpoint.root
    step = _setup(cfg, train, out)
    book = _restore(step, Path(resume_from), out) if resume_from is not None else _start(out)
    book.val_images = len(val.ids)
    for epoch in range(book.next_epoch, cfg.epochs):
        if _out_of_time(cfg.time_budget_s, book.history, 0.0, 0):
            break  # a resumed run whose budget is already spent
        t0 = time.perf_counter()
        if cfg.faults.raise_at_epoch == epoch + 1:
            raise InjectedFault(f"fault injected by faults.raise_at_epoch={epoch + 1}")
        metrics = _run_epoch(cfg, step, val, epoch, progress)
        for w in watchers:
            metrics.update(w(step.model, step.optimizer))
        _replan(step, _run_length(cfg, book.history, time.perf_counter() - t0), epoch + 1)
        last = epoch + 1 >= step.schedule.run_epochs
        _update_snapshots(cfg, step, book, ckpt_dir, epoch, metrics, last)
        metrics["epoch_seconds"] = time.perf_counter() - t0
        _save_state(cfg, step, book, out, epoch, metrics)
        report(metrics, ckpt_dir)
        if cfg.faults.kill_worker_at_epoch == epoch + 1:
            os.kill(os.getpid(), signal.SIGKILL)  # chaos testing: the worker dies after a completed checkpoint
        if last:
            break
    return _summary(book.history, book.snapshots, cfg, len(train.ids), len(val.ids))


def _setup(cfg: TrainConfig, train: Arrays, out: Path) -> TrainingStep:
    """Write the resolved config, seed everything and build the training step."""
    RunFiles(out).checkpoint.snapshots.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RunFiles(out).config, yaml.safe_dump(config_to_dict(cfg), sort_keys=False), "config")
    device = pick_device(cfg.device)
    seed_everything(cfg.seed, cfg.deterministic or device.type == "cpu")
    return build_step(cfg, train, device)


def _start(out: Path) -> _Book:
    """Fresh bookkeeping; the metrics of an earlier run in ``out`` are dropped."""
    RunFiles(out).metrics.unlink(missing_ok=True)
    return _Book()


def _restore(step: TrainingStep, src: Path, out: Path) -> _Book:
    """Load ``src/state.pt`` into the step, bring its snapshots into ``out`` and rewrite the metrics so far."""
    src, run = CheckpointFiles(src), RunFiles(out)
    state = load_checkpoint(src.state)
    step.model.load_state_dict(state["model"])
    step.optimizer.load_state_dict(state["optimizer"])
    step.schedule.load_state_dict(state["schedule"])
    if "plan" in state:  # the run's length as its time budget had planned it (older checkpoints: the config's)
        step.schedule.run_epochs = state["plan"]["run_epochs"]
        step.loss_fn.set_stage_epochs(state["plan"]["stage_epochs"])
    torch.set_rng_state(state["torch_rng"])
    book = _Book(state["snapshots"], state["history"], state["cycle_best"], state["epoch"] + 1)
    dst = run.checkpoint.snapshots
    if src.snapshots.resolve() != dst.resolve():
        for s in book.snapshots:
            name = Path(s["path"]).name
            payload = load_checkpoint(src.snapshots / name)
            save_checkpoint(dst / name, {k: v for k, v in payload.items() if k != "format"})
    # An append log (a line per epoch, as in _save_state), rewritten in place: the history up to the resumed epoch.
    with open(run.metrics, "w") as f:
        f.writelines(json.dumps(h) + "\n" for h in book.history)
    return book


def _run_epoch(cfg: TrainConfig, step: TrainingStep, val: Arrays, epoch: int, progress: bool) -> dict:
    """Train one epoch, then score the whole validation part: the epoch's metrics (``EpochMetrics`` less
    ``epoch_seconds``, which ``fit`` adds)."""
    loader = step.batches.epoch(epoch)
    if progress:
        from tqdm.auto import tqdm

        def bar(it):
            return tqdm(it, total=len(loader), leave=False, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch")
    else:
        def bar(it):
            return it
    stage_loss = step.loss_fn.at(epoch)  # the stage follows from the epoch alone, so a resumed run agrees
    loss_fn = stage_loss
    if cfg.faults.nan_loss_at_epoch == epoch + 1:
        loss_fn = lambda lg, t: stage_loss(lg, t) * math.nan  # noqa: E731
    try:
        stats = train_epoch(
            step.model, loader, loss_fn, step.optimizer, step.device,
            amp_dtype=step.amp_dtype, scaler=step.scaler, channels_last=cfg.channels_last,
            use_depth=cfg.model.use_depth, before_step=lambda i: step.schedule.before_step(epoch, i),
            progress=bar,
        )
    except torch.OutOfMemoryError:
        step.optimizer.zero_grad(set_to_none=True)
        _free_gpu_memory()
        raise GPUOutOfMemory(
            f"out of GPU memory in epoch {epoch + 1} (batch_size={cfg.batch_size}, model.base_width="
            f"{cfg.model.base_width}); lower batch_size or model.base_width, or give each trial a larger GPU "
            "share (resources.gpu in the search space)") from None
    lr = step.schedule.lr()  # the rate of the epoch's last step
    t_eval = time.perf_counter()
    val_metrics = evaluate(step.model, val, stage_loss, step.device, batch_size=max(cfg.batch_size, 64),
                           threshold=cfg.threshold, amp_dtype=step.amp_dtype, use_depth=cfg.model.use_depth)
    stage = {"loss_stage": step.loss_fn.index(epoch)} if cfg.loss.stages else {}
    return {"epoch": epoch + 1, **stats, **val_metrics, "lr": lr, "cycle": step.schedule.state.cycle,
            "eval_seconds": time.perf_counter() - t_eval, **stage}


def _run_length(cfg: TrainConfig, history: list[dict], this_epoch_s: float) -> int:
    """The run's length in epochs once the epoch being finished is done: ``epochs``, or under ``time_budget_s``
    the epochs that fit in it at the mean epoch so far (at most ``epochs``, at least those done).

    The run ends after the epoch at which this equals the epochs done, which is when another epoch would pass
    the budget (:func:`_out_of_time`).
    """
    done = len(history) + 1
    if cfg.time_budget_s is None:
        return cfg.epochs
    spent = sum(h["epoch_seconds"] for h in history) + this_epoch_s
    fits = done + math.floor((cfg.time_budget_s - spent) / (spent / done))
    return max(done, min(cfg.epochs, fits))


def _replan(step: TrainingStep, run_epochs: int, done: int) -> None:
    """Make the run ``run_epochs`` long: the shares of the run follow (the cosine cycles' ends, the loss stages'
    switches), except a switch or cycle end already passed. So a run under a time budget anneals and reaches its
    last stage by the time its budget ends, however fast its epochs turn out to be."""
    step.schedule.run_epochs = run_epochs
    step.loss_fn.replan(run_epochs, done)


def _out_of_time(budget_s: float | None, history: list[dict], this_epoch_s: float, epochs_now: int) -> bool:
    """Whether another epoch would pass ``budget_s`` seconds of training, judged by the mean epoch so far.

    ``history`` holds the finished epochs (a resumed run's earlier ones too); ``this_epoch_s`` and ``epochs_now``
    add the epoch being finished, if any.
    """
    if budget_s is None or not history and not epochs_now:
        return False
    spent = sum(h["epoch_seconds"] for h in history) + this_epoch_s
    return spent + spent / (len(history) + epochs_now) > budget_s


def _update_snapshots(cfg: TrainConfig, step: TrainingStep, book: _Book, ckpt_dir: Path, epoch: int, metrics: dict,
                      last: bool = False) -> None:
    """Save the epoch as its cycle's snapshot if it is the cycle's best (or, for schedules that keep the
    last, always); close the cycle if the schedule ends it; keep the ``max_snapshots`` best closed snapshots.

    The open cycle's file always holds its snapshot so far, so a crash never loses a finished cycle; it is kept
    beside the best closed ones and evicts none of them until it closes. At the ``last`` epoch of the run the open
    cycle competes with the closed ones, except the mid-cycle weights of a schedule that keeps a cycle's last
    epoch while their rate is still above :data:`CUT_CYCLE_LR_SHARE` of the peak (a cosine cycle cut early), which
    are dropped when a finished cycle exists; a cycle cut late (a time budget ending a run a few epochs early) keeps
    its last weights.
    """
    cycle = step.schedule.state.cycle
    path = CheckpointFiles(ckpt_dir).snapshot(cycle)
    if step.schedule.keeps_last_of_cycle or metrics["val_score"] > book.cycle_best["score"]:
        book.cycle_best = {"score": metrics["val_score"], "epoch": epoch + 1, "metrics": metrics}
        save_checkpoint(path, _snapshot_payload(step.model, cfg, epoch + 1, metrics, cycle))
        book.snapshots = [s for s in book.snapshots if s["cycle"] != cycle] + [
            {"path": str(path), "epoch": epoch + 1, "score": metrics["val_score"], "cycle": cycle}
        ]
    if step.schedule.end_epoch(epoch, metrics["val_score"]):
        book.cycle_best = _no_best()
    open_cycle = step.schedule.state.cycle
    high = step.optimizer.param_groups[0]["lr"] > CUT_CYCLE_LR_SHARE * step.schedule.base_lr
    if last and step.schedule.keeps_last_of_cycle and high and any(s["cycle"] != open_cycle for s in book.snapshots):
        book.snapshots = _drop(book.snapshots, lambda s: s["cycle"] == open_cycle)
    book.snapshots = _keep_best(book.snapshots, cfg.schedule.max_snapshots, None if last else open_cycle)


def _save_state(cfg: TrainConfig, step: TrainingStep, book: _Book, out: Path, epoch: int, metrics: EpochMetrics) -> None:
    """Append the epoch to the history; write ``state.pt`` and ``summary.json``, then the ``metrics.jsonl`` line.

    In that order, so that a run stopped at any moment (Ctrl-C, SIGTERM, a crash) has a checkpoint of every
    epoch ``metrics.jsonl`` lists, and ``--resume`` continues after the last of them.
    """
    book.history.append(metrics)
    run = RunFiles(out)
    save_checkpoint(run.checkpoint.state, {
        "kind": "state", "model_args": dict(step.model.config), "config": config_to_dict(cfg),
        "model": step.model.state_dict(), "optimizer": step.optimizer.state_dict(),
        "schedule": step.schedule.state_dict(), "torch_rng": torch.get_rng_state(), "epoch": epoch,
        "plan": {"run_epochs": step.schedule.run_epochs, "stage_epochs": step.loss_fn.stage_epochs()},
        "metrics": metrics, "history": book.history, "snapshots": book.snapshots, "cycle_best": book.cycle_best,
    })
    write_json(run.summary, _summary(book.history, book.snapshots, cfg, len(step.batches), book.val_images), "summary")
    with open(run.metrics, "a") as f:
        f.write(json.dumps(metrics) + "\n")


def _free_gpu_memory() -> None:
    """Return cached blocks to the driver so the next trial on this GPU can use them."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _drop(snapshots: list[dict], which: Callable[[dict], bool]) -> list[dict]:
    """Delete the files of the snapshots ``which`` picks; return the others."""
    for s in snapshots:
        if which(s):
            Path(s["path"]).unlink(missing_ok=True)
    return [s for s in snapshots if not which(s)]


def _keep_best(snapshots: list[dict], k: int, open_cycle: int | None) -> list[dict]:
    """Keep the ``k`` best-scoring snapshots of closed cycles, and the open cycle's (which counts against none of
    them); delete the other files. ``open_cycle=None`` ranks every snapshot alike (the end of a run)."""
    closed = sorted((s for s in snapshots if s["cycle"] != open_cycle), key=lambda s: s["score"], reverse=True)
    keep = {id(s) for s in closed[:k]} | {id(s) for s in snapshots if s["cycle"] == open_cycle}
    return _drop(snapshots, lambda s: id(s) not in keep)


def _summary(history: list[EpochMetrics], snapshots: list[Snapshot], cfg: TrainConfig, train_images: int,
             val_images: int) -> RunSummary:
    best = max(history, key=lambda m: m["val_score"]) if history else None
    return {
        "best_score": best["val_score"] if best else None,
        "best_iou": best["val_iou"] if best else None,
        "best_epoch": best["epoch"] if best else None,
        "epochs_run": len(history),
        "epochs": cfg.epochs,
        "stopped_by_time_budget": bool(cfg.time_budget_s) and len(history) < cfg.epochs and _out_of_time(cfg.time_budget_s, history, 0.0, 0),
        "snapshots": snapshots,
        "seconds": sum(m["epoch_seconds"] for m in history),
        "train_images": train_images,
        "val_images": val_images,
        "data_path": resolve_path(cfg.augment.path, cfg.augment.names),
    }
