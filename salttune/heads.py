"""A network's extra heads: the output protocol every network follows, and the loss that trains all heads.

Output protocol: ``model(x, depth)`` returns either the logits, a (B, 1, H, W) tensor, or, for a network
built with extra heads, a dict with the keys of the heads it has::

    {"logits": (B, 1, H, W),            # the main prediction, what is scored and submitted
     "aux":    [(B, 1, H, W), ...],     # deep-supervision logits, already at the input's H, W
     "salt":   (B,)}                    # logit that the image holds any salt

:func:`outputs` turns either form into the dict; every caller that needs more than the logits uses it.

Reference:
    4th-place TGS Salt solution (SeuTao, Kaggle_TGS2018_4th_solution): ``train.py`` trains
    ``loss + 0.05 * class_loss + 0.50 * loss_no_empty`` (the weights ``loss.salt_weight`` and
    ``loss.aux_weight`` default to).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from salttune.losses import CombinedLoss, StagedLoss, build_loss, family_params, parse_stages

if TYPE_CHECKING:
    from salttune.config import LossConfig

__all__ = ["outputs", "to_float", "salt_targets", "head_loss", "HeadLoss", "NOT_FAMILY", "build_loss_from_config",
           "build_stage_losses", "build_training_loss"]

Output = torch.Tensor | dict[str, Any]


def outputs(out: Output) -> dict[str, Any]:
    """A network's output as the protocol dict: a tensor becomes ``{"logits": tensor}``.

    Raises:
        TypeError: a dict without ``"logits"`` or with keys outside the protocol (a programming error).
    """
    if isinstance(out, torch.Tensor):
        return {"logits": out}
    if not isinstance(out, dict) or "logits" not in out or set(out) - {"logits", "aux", "salt"}:
        raise TypeError(f"a network returns logits or a dict with 'logits' and optionally 'aux', 'salt'; got {out!r:.80}")
    return dict(out)


def to_float(out: Output) -> Output:
    """The same output in float32 (autocast gives bfloat16 or float16), in the form it came."""
    if isinstance(out, torch.Tensor):
        return out.float()
    return {k: [a.float() for a in v] if k == "aux" else v.float() for k, v in out.items()}


def salt_targets(targets: torch.Tensor) -> torch.Tensor:
    """1.0 for every image whose mask holds salt, else 0.0. Shape: (B, 1, H, W) -> (B,)."""
    return (targets.flatten(1).amax(1) > 0).to(torch.float32)


def head_loss(out: Output, targets: torch.Tensor, main: Callable, aux_weight: float = 0.5,
              salt_weight: float = 0.05) -> torch.Tensor:
    """``main(logits, t) + aux_weight * mean_i main(aux_i, t) + salt_weight * BCE(salt, t has salt)``.

    The terms of heads the output lacks are left out, so a plain tensor gives ``main(logits, t)``.

    Args:
        out: a network's output (tensor or protocol dict).
        targets: {0, 1} masks.
        main: the pixel loss, ``(logits, targets) -> scalar``; it trains the deep-supervision logits too.
        aux_weight: weight of the mean of the deep-supervision losses.
        salt_weight: weight of the salt-present binary cross-entropy (mean over the batch).

    Shape:
        targets: (B, 1, H, W); output: scalar.
    """
    o = outputs(out)
    loss = main(o["logits"], targets)
    if o.get("aux") and aux_weight:
        loss = loss + aux_weight * torch.stack([main(a, targets) for a in o["aux"]]).mean()
    if "salt" in o and salt_weight:
        salt = o["salt"].float()
        loss = loss + salt_weight * F.binary_cross_entropy_with_logits(salt, salt_targets(targets).to(salt.device))
    return loss


class HeadLoss(nn.Module):
    """:func:`head_loss` with its settings held: ``HeadLoss(main, 0.5, 0.05)(out, targets)``."""

    def __init__(self, main: Callable, aux_weight: float = 0.5, salt_weight: float = 0.05) -> None:
        super().__init__()
        self.main = main
        self.aux_weight = float(aux_weight)
        self.salt_weight = float(salt_weight)

    def forward(self, out: Output, targets: torch.Tensor) -> torch.Tensor:
        return head_loss(out, targets, self.main, self.aux_weight, self.salt_weight)

    def extra_repr(self) -> str:
        return f"aux_weight={self.aux_weight:g}, salt_weight={self.salt_weight:g}"


def build_training_loss(cfg: LossConfig, run_epochs: int) -> StagedLoss:
    """The training loss of a ``LossConfig`` in a run of ``run_epochs``: per stage (one without ``loss.stages``) a
    :class:`HeadLoss` around that stage's pixel loss, shares of the run resolved to epochs; ``.at(epoch)`` gives
    the epoch's."""
    stages = parse_stages(cfg.stages) if cfg.stages else []
    return StagedLoss([HeadLoss(m, cfg.aux_weight, cfg.salt_weight) for m in build_stage_losses(cfg)], stages, run_epochs)


# -- the loss of a LossConfig (salttune.losses does not know the config, which reads its LOSSES) ------------

# LossConfig fields that are not ``<loss>_<argument>`` family settings: the single loss, the extra heads'
# weights and the stages.
NOT_FAMILY = ("name", "weights", "aux_weight", "salt_weight", "stages")


def _family_settings(cfg: LossConfig) -> dict[str, object]:
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name not in NOT_FAMILY}


def build_loss_from_config(cfg: LossConfig) -> CombinedLoss:
    """The pixel loss of a ``LossConfig``: its ``name`` and ``weights``, the family settings routed to its terms
    (:func:`salttune.losses.family_params`).

    ``cfg.stages`` is not read here; :func:`build_stage_losses` builds one loss per stage.
    """
    return build_loss(cfg.name, cfg.weights, **family_params(cfg.name, _family_settings(cfg)))


def build_stage_losses(cfg: LossConfig) -> list[CombinedLoss]:
    """One pixel loss per stage of ``cfg.stages`` (family settings routed to each), or ``[the single loss]`` without."""
    if not cfg.stages:
        return [build_loss_from_config(cfg)]
    settings = _family_settings(cfg)
    return [build_loss(s.spec, s.weights, **family_params(s.spec, settings)) for s in parse_stages(cfg.stages)]
