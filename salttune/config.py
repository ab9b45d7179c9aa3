"""Typed, frozen training configuration, built once at the edge from YAML and ``--set key=value``.

Keys are dotted section paths (``model.block``, ``optim.lr``, ``loss.name``); the search spaces use the same
names. Every unknown key, wrong type or out-of-range value raises :class:`SalttuneError` with one line
naming the key and what is allowed. The resolved config is written next to every run.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from salttune.errors import SalttuneError
from salttune.settings import apply_overrides, build, key_error, parse_overrides, read_yaml_mapping
from salttune.settings import opt as _opt
from salttune.settings import to_dict as config_to_dict

__all__ = [
    "ModelConfig", "LossConfig", "OptimConfig", "ScheduleConfig", "AugmentConfig", "FaultConfig", "TrainConfig",
    "config_from_dict", "config_to_dict", "load_config", "parse_overrides", "apply_overrides",
]


def _block_names():
    from salttune.unet import BLOCKS

    return sorted(BLOCKS)


def _init_names():
    from salttune.unet import INITS

    return sorted(INITS)


def _network_names():
    from salttune.model import NETWORKS

    return list(NETWORKS)


def _input_modes():
    from salttune.geometry import INPUT_MODES

    return list(INPUT_MODES)


def _augment_names():
    from salttune.augment import AUGMENTATIONS

    return sorted(AUGMENTATIONS)


def _optimizer_names():
    from salttune.optim import OPTIMIZERS

    return list(OPTIMIZERS)


def _schedule_names():
    from salttune.schedule import SCHEDULES

    return list(SCHEDULES)


@dataclass(frozen=True)
class ModelConfig:
    # A network takes the keys its builder names and ignores the others (salttune/model.py): base_width, depth,
    # block, dropout, init are the home-made U-Net's; encoder, encoder_weights, decoder_attention the smp networks'.
    network: str = _opt("unet", choices=_network_names, doc="unet (home-made) or an smp network (needs salttune[encoders])")
    # 8, not 16: on 2 CPU cores a quarter of the channels trains ~2.3x the epochs in the same time, and that won
    # out of fold at equal time (results/benchmarks/quality/README.md). GPU spaces search wider networks.
    base_width: int = _opt(8, lo=1, hi=512, doc="channels of the first level")
    depth: int = _opt(4, lo=1, hi=6, doc="number of down-samplings")
    block: str = _opt("residual", choices=_block_names)
    dropout: float = _opt(0.0, lo=0.0, hi=0.9)
    use_depth: bool = _opt(False, doc="add the image depth z as an input channel")
    init: str = _opt("he_normal", choices=_init_names)
    deep_supervision: bool = _opt(False, doc="a logit per decoder level, trained with loss.aux_weight")
    salt_head: bool = _opt(False, doc="an image-level 'holds salt' logit, trained with loss.salt_weight")
    encoder: str = _opt("resnet34", doc="smp networks: the encoder (resnet18/34/50, se_resnext50_32x4d, efficientnet-b0...)")
    encoder_weights: str | None = _opt(None, doc="smp networks: null, imagenet (needs the network) or an encoder state-dict file")
    decoder_attention: str | None = _opt(None, choices=("scse",), doc="smp_unet, smp_unetplusplus: scSE attention in the decoder")
    input_size: int | None = _opt(None, lo=8, hi=1024, doc="side of the square the network sees (null: the image as it is)")
    input_mode: str = _opt("pad", choices=_input_modes, doc="how images reach input_size: pad (reflection, centred) or resize (bilinear)")


@dataclass(frozen=True)
class LossConfig:
    # BCE with half-weighted symmetric Lovasz: measured on synthetic data (800 images, 6 epochs, width 8), it
    # learns steadily from scratch (0.50), where BCE+Lovasz 1:1 stays near 0.10: the plain Lovasz hinge barely
    # penalises salt predicted on empty images, which the competition metric scores 0.
    name: str = _opt("bce+lovasz_symmetric", doc="terms joined by '+', e.g. bce+lovasz, focal+dice")
    weights: tuple[float, ...] | None = _opt((1.0, 0.5), lo=0.0, doc="one weight per term (None: 1 each)")
    # The fields below are <loss>_<argument> settings, routed to the terms of `name` that take them;
    # `lovasz_*` applies to every Lovasz term (lovasz, lovasz_elu, lovasz_symmetric). See losses.family_params.
    focal_gamma: float = _opt(2.0, lo=0.0, hi=10.0)
    # None weighs salt and background pixels alike; RetinaNet's 0.25 down-weights the positive class, here salt.
    focal_alpha: float | None = _opt(None, lo=0.0, hi=1.0, doc="weight of salt pixels in the focal loss (1 - alpha for the rest)")
    dice_per_image: bool = _opt(False, doc="Dice per image then the mean (false: one Dice over the batch)")
    lovasz_per_image: bool = _opt(True, doc="Lovasz terms per image then the mean (false: over the batch)")
    lovasz_nonempty_only: bool = _opt(False, doc="Lovasz terms over the images that hold salt only (4th place TGS)")
    # Extra heads (model.deep_supervision, model.salt_head): weights from the 4th-place TGS solution (SeuTao,
    # Kaggle_TGS2018_4th_solution train.py: `loss + 0.05 * class_loss + 0.50 * loss_no_empty`).
    aux_weight: float = _opt(0.5, lo=0.0, hi=100.0, doc="weight of the mean deep-supervision loss")
    salt_weight: float = _opt(0.05, lo=0.0, hi=100.0, doc="weight of the salt-present BCE")
    # BCE+Dice first, then Lovasz (as the 1st and 4th TGS places did): out of fold at equal time it beat the single
    # BCE + Lovasz loss (results/benchmarks/quality/README.md). Naming loss.name without loss.stages trains that
    # loss throughout (config_from_dict).
    stages: str = _opt("bce+dice:8,lovasz_symmetric",
                       doc="loss stages 'name[:epochs],...', e.g. 'bce+dice:20,lovasz_symmetric'; terms may carry "
                           "weights (bce*1+lovasz*0.5); '' uses loss.name and loss.weights throughout")


@dataclass(frozen=True)
class OptimConfig:
    name: str = _opt("adam", choices=_optimizer_names)
    lr: float = _opt(3e-3, lo=1e-7, hi=10.0)
    weight_decay: float = _opt(0.0, lo=0.0, hi=1.0)
    momentum: float = _opt(0.9, lo=0.0, hi=0.999, doc="SGD only")
    nesterov: bool = _opt(False, doc="SGD only")


@dataclass(frozen=True)
class ScheduleConfig:
    name: str = _opt("plateau", choices=_schedule_names)
    factor: float = _opt(0.7, lo=0.01, hi=0.99, doc="learning-rate cut when the validation score stalls")
    patience: int = _opt(3, lo=0, hi=1000, doc="epochs without improvement before a cut (plateau)")
    # 0.002 is 2/5 of one image of 200 (the score of an image moves in tenths); smaller gains do not count.
    min_delta: float = _opt(0.002, lo=0.0, hi=1.0, doc="plateau: a score must beat the best by more than this to count as better")
    min_lr: float = _opt(1e-6, lo=0.0, hi=1.0)
    snapshot_patience: int = _opt(5, lo=1, hi=1000, doc="snapshot_plateau: stalled epochs before a snapshot and restart")
    cycle_epochs: int = _opt(10, lo=1, hi=1000, doc="cosine_snapshots: length of one cosine cycle")
    cycles: int | None = _opt(None, lo=1, hi=100, doc="cosine_snapshots: split the run into this many equal cycles, so "
                              "the lengths follow the run's epochs (replaces cycle_epochs); null: cycles of cycle_epochs")
    max_snapshots: int = _opt(5, lo=1, hi=100, doc="snapshots kept (best by score)")


@dataclass(frozen=True)
class AugmentConfig:
    names: tuple[str, ...] = _opt(("hflip", "translate"), choices=_augment_names)
    translate: float = _opt(0.1, lo=0.0, hi=0.5, doc="largest shift as a share of the image side")
    p: float = _opt(0.5, lo=0.0, hi=1.0, doc="probability of each augmentation")
    path: str = _opt("auto", choices=("auto", "device", "loader"),
                     doc="device: the training set on the training device, batches augmented there as tensors; loader: "
                         "a DataLoader, albumentations per sample on the CPU; auto: device when every name has a device version")


@dataclass(frozen=True)
class FaultConfig:
    """Deliberate faults, to check that a run or a search survives them (chaos testing). All off by default.

    ``kill_worker_at_epoch`` SIGKILLs the training process right after that epoch's checkpoint, once: a
    resumed run starts after it. The other two strike whenever that epoch is trained.
    """

    nan_loss_at_epoch: int | None = _opt(None, lo=1, doc="the loss becomes NaN in this epoch")
    raise_at_epoch: int | None = _opt(None, lo=1, doc="an exception is raised at the start of this epoch")
    kill_worker_at_epoch: int | None = _opt(None, lo=1, doc="the process is killed after this epoch's checkpoint")


@dataclass(frozen=True)
class TrainConfig:
    seed: int = _opt(0, lo=0)
    epochs: int = _opt(30, lo=1, hi=10000)
    batch_size: int = _opt(16, lo=1, hi=4096, doc="16: twice the steps of 32 for the same images (measured: results/benchmarks/quality)")
    val_fraction: float = _opt(0.2, lo=0.01, hi=0.9)
    split_seed: int = _opt(0, lo=0, doc="seed of the train/validation split (fixed across a search's trials)")
    # Set aside first (salttune/split.py): no training, validation or selection sees these images, so the score
    # on them (salttune ensemble's headline) was tuned on nothing.
    holdout_fraction: float = _opt(0.0, lo=0.0, hi=0.5, hi_open=True,
                                   doc="share of the images held out from everything (0: none); the ensemble scores on them")
    holdout_seed: int = _opt(0, lo=0, doc="seed of the holdout, separate so that folds and val_fraction never move it")
    folds: int | None = _opt(None, lo=2, hi=50, doc="validate on fold `fold` of this many coverage-stratified folds "
                                                   "(instead of val_fraction); salttune train --folds K trains them all")
    fold: int = _opt(0, lo=0, hi=49, doc="which fold validates when folds is set")
    time_budget_s: float | None = _opt(None, lo=1.0, doc="stop after the epoch past which another would not fit in this many seconds of training")
    max_train_images: int | None = _opt(None, lo=1, doc="use only this many training images (quick runs)")
    num_workers: int = _opt(0, lo=0, hi=64, doc="data-loader worker processes")
    device: str = _opt("auto", choices=("auto", "cpu", "cuda"))
    amp: bool = _opt(True, doc="bf16/fp16 mixed precision on a GPU (ignored on the CPU)")
    channels_last: bool = _opt(True, doc="channels-last memory format (faster on GPUs and on the CPU)")
    deterministic: bool = _opt(True, doc="deterministic algorithms (always on for the CPU)")
    # Open at both ends: at 0 every pixel is salt, at 1 none is, whatever the model says.
    threshold: float = _opt(0.5, lo=0.0, hi=1.0, lo_open=True, hi_open=True, doc="probability above which a pixel is salt")
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    faults: FaultConfig = field(default_factory=FaultConfig)


def _check_consistency(cfg: TrainConfig) -> TrainConfig:
    from salttune.losses import LOSSES

    terms = cfg.loss.name.split("+")
    bad = [t for t in terms if t not in LOSSES]
    if bad:
        raise key_error("loss.name", f"unknown term {bad[0]!r} in {cfg.loss.name!r}; allowed terms: {', '.join(sorted(LOSSES))} joined by '+'")
    if cfg.loss.weights is not None and len(cfg.loss.weights) != len(terms):
        raise key_error("loss.weights", f"{len(cfg.loss.weights)} weights for {len(terms)} terms of {cfg.loss.name!r}; give one per term")
    if cfg.loss.stages:
        from salttune.losses import parse_stages

        try:
            parse_stages(cfg.loss.stages)
        except SalttuneError as e:
            raise key_error("loss.stages", str(e)) from None
    if cfg.augment.path == "device":
        from salttune.augment import device_names

        cpu_only = [n for n in cfg.augment.names if n not in device_names()]
        if cpu_only:
            raise key_error("augment.path", f"device, but {cpu_only[0]!r} has no device version (those that do: "
                                            f"{', '.join(device_names())}); use augment.path=auto or loader, or drop {cpu_only[0]}")
    if cfg.folds is not None and cfg.fold >= cfg.folds:
        raise key_error("fold", f"{cfg.fold} is not a fold of folds={cfg.folds}; give 0 to {cfg.folds - 1}")
    if cfg.loss.weights is not None and not any(cfg.loss.weights):
        raise key_error("loss.weights", f"{list(cfg.loss.weights)} are all zero, so the loss is 0 and nothing is learnt; "
                                        "give at least one weight above 0")
    return cfg


def _warn_unmeant(cfg: TrainConfig) -> None:
    """Warn (one line each) about settings that are legal but surely not what was meant."""
    if cfg.schedule.min_lr > cfg.optim.lr:
        warnings.warn(f"schedule.min_lr={cfg.schedule.min_lr:g} is above optim.lr={cfg.optim.lr:g}: the first cut would "
                      "raise the rate; give a min_lr below the learning rate")
    defaults = OptimConfig()
    if cfg.optim.name != "sgd":
        for key in ("momentum", "nesterov"):
            if getattr(cfg.optim, key) != getattr(defaults, key):
                warnings.warn(f"optim.{key} is set but optim.name is {cfg.optim.name}, which ignores it (SGD only)")


def config_from_dict(data: dict | None) -> TrainConfig:
    """Build and validate a :class:`TrainConfig` from a nested dict (missing keys take their defaults).

    The default loss weights and stages belong to the default loss: naming another ``loss.name`` without
    ``loss.weights`` weighs each of its terms 1, and naming ``loss.name`` or ``loss.weights`` without
    ``loss.stages`` trains that loss throughout (no stages).
    """
    data = dict(data or {})
    loss = data.get("loss")
    if isinstance(loss, dict) and "name" in loss and "weights" not in loss and loss["name"] != LossConfig.name:
        loss = data["loss"] = {**loss, "weights": None}
    if isinstance(loss, dict) and ("name" in loss or "weights" in loss) and "stages" not in loss:
        data["loss"] = {**loss, "stages": ""}
    return _check_consistency(build(TrainConfig, data))


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a YAML config file (optional), apply ``--set`` overrides, validate. The edge of the program."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        data = read_yaml_mapping(path, "config file does not exist; give the path of a YAML file",
                                 "expected a mapping of config keys at the top level")
        if not data:
            warnings.warn(f"{path}: holds no settings (empty or only comments); the defaults are used")
    try:
        cfg = config_from_dict(apply_overrides(data, parse_overrides(list(overrides))))
    except SalttuneError as e:
        raise SalttuneError(f"{path}: {e}" if path is not None else str(e)) from None
    _warn_unmeant(cfg)
    return cfg
