"""Segmentation losses for binary salt masks: pure functions, one name->function dict, one combiner.

Every loss takes ``logits`` and ``targets`` of shape (B, 1, H, W) (``targets`` float in {0, 1}) and
returns a scalar tensor. ``build_loss("bce+lovasz", weights=[1, 0.5])`` returns a weighted sum;
``family_params`` routes ``<loss>_<argument>`` settings to the terms that take them (``lovasz_per_image`` to
every Lovasz term). This module does not know the config: :mod:`salttune.heads` builds the loss of a
``LossConfig``, and the config reads ``LOSSES`` and ``parse_stages`` to validate its names.
A new loss is one function and one ``LOSSES`` entry here (plus its test).

Half-precision logits (from ``torch.autocast``) are upcast to float32 first: the Lovasz gradient is
a cumulative sum over every pixel and the Dice sums likewise, which bfloat16's 8-bit mantissa
cannot carry. float64 stays float64 (for ``gradcheck``).

Reference:
    segmentation_models_pytorch ``losses/_functional.py`` and ``losses/lovasz.py`` (layout and maths).
    Berman, Rannen Triki, Blaschko, "The Lovasz-Softmax loss", CVPR 2018, arXiv:1705.08790.
    Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.
"""

from __future__ import annotations

import math
import inspect
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from salttune.errors import SalttuneError

__all__ = [
    "LOSSES",
    "CombinedLoss",
    "Stage",
    "StagedLoss",
    "parse_stages",
    "resolve_stages",
    "stage_of",
    "bce",
    "build_loss",
    "family_params",
    "dice",
    "focal",
    "lovasz_grad",
    "lovasz_hinge",
    "lovasz_hinge_elu",
    "lovasz_symmetric",
]

LossFn = Callable[..., torch.Tensor]


def _upcast(x: torch.Tensor) -> torch.Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on logits, mean over all pixels.

    Shape:
        logits, targets: (B, 1, H, W); output: scalar.
    """
    return F.binary_cross_entropy_with_logits(_upcast(logits), targets.to(_upcast(logits).dtype))


def focal(
    logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0, alpha: float | None = None
) -> torch.Tensor:
    """Focal loss, mean over all pixels: ``-alpha_t (1 - p_t)**gamma log(p_t)``.

    Args:
        logits: raw scores.
        targets: {0, 1} floats.
        gamma: focusing parameter; 0 gives (alpha-weighted) BCE.
        alpha: weight of the positive class (``1 - alpha`` for negatives); ``None`` weighs both 1.

    Shape:
        logits, targets: (B, 1, H, W); output: scalar.

    Reference:
        Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017, eq. (5);
        segmentation_models_pytorch ``focal_loss_with_logits``.
    """
    logits = _upcast(logits)
    targets = targets.to(logits.dtype)
    logpt = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")  # -log(p_t)
    pt = torch.exp(-logpt)
    loss = (1.0 - pt).pow(gamma) * logpt
    if alpha is not None:
        loss = loss * (alpha * targets + (1.0 - alpha) * (1.0 - targets))
    return loss.mean()


def dice(
    logits: torch.Tensor, targets: torch.Tensor, smooth: float = 1.0, per_image: bool = False
) -> torch.Tensor:
    """Soft Dice loss on sigmoid probabilities: ``1 - (2 |p t| + smooth) / (|p| + |t| + smooth)``.

    Args:
        logits: raw scores.
        targets: {0, 1} floats.
        smooth: added to numerator and denominator; keeps an empty mask predicted empty near loss 0.
        per_image: Dice per image, then the mean; otherwise one Dice over the whole batch.

    Shape:
        logits, targets: (B, 1, H, W); output: scalar.
    """
    probs = torch.sigmoid(_upcast(logits))
    targets = targets.to(probs.dtype)
    dims = (1, 2, 3) if per_image else (0, 1, 2, 3)
    intersection = (probs * targets).sum(dims)  # (B,) or ()
    cardinality = (probs + targets).sum(dims)
    score = (2.0 * intersection + smooth) / (cardinality + smooth)
    return (1.0 - score).mean()


# ----------------------------------------------------------------------------------------------
# Lovasz hinge (Berman et al. 2018), following the authors' reference code (lovasz_losses.py).


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss w.r.t. the sorted errors.

    ``grad[i] = J(S_i) - J(S_{i-1})`` where ``S_i`` holds the ``i+1`` largest errors and
    ``J(S) = |S| / |gt U S|`` is the Jaccard loss when the pixels in ``S`` are wrong (``J({}) = 0``).

    Args:
        gt_sorted: ground truth {0, 1} in the order of decreasing error.

    Shape:
        (P,) -> (P,)

    Reference:
        Berman et al. 2018, Algorithm 1; ``lovasz_grad`` in the authors' code.
    """
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)  # |gt \ S_i|
    union = gts + (1.0 - gt_sorted).cumsum(0)  # |gt U S_i|
    jaccard = 1.0 - intersection / union  # J(S_i); union >= 1 always, so no 0/0
    if gt_sorted.numel() > 1:
        jaccard = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    return jaccard


def _lovasz_flat(
    logits: torch.Tensor, labels: torch.Tensor, activation: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Lovasz hinge of one flat set of pixels; ``activation`` is relu (paper) or elu+1 (TGS)."""
    if labels.numel() == 0:
        return logits.sum() * 0.0
    signs = 2.0 * labels - 1.0
    errors = 1.0 - logits * signs  # (P,) hinge errors, > 0 where the margin is violated
    errors_sorted, perm = torch.sort(errors, dim=0, descending=True)
    grad = lovasz_grad(labels[perm])  # (P,), a constant: the sort order carries no gradient
    return torch.dot(activation(errors_sorted), grad)


def _nonempty(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The images of the batch that hold salt: (B, 1, H, W) -> (B', 1, H, W), B' possibly 0."""
    keep = targets.flatten(1).amax(1) > 0  # (B,)
    return logits[keep], targets[keep]


def _lovasz(
    logits: torch.Tensor,
    targets: torch.Tensor,
    per_image: bool,
    activation: Callable[[torch.Tensor], torch.Tensor],
    nonempty_only: bool = False,
) -> torch.Tensor:
    logits = _upcast(logits)
    targets = targets.to(logits.dtype)
    if nonempty_only:
        full = logits
        logits, targets = _nonempty(logits, targets)
        if len(logits) == 0:  # no image holds salt: 0, still attached to the graph (not the NaN of an empty mean)
            return full.sum() * 0.0
    if per_image:
        losses = [_lovasz_flat(lg.reshape(-1), t.reshape(-1), activation) for lg, t in zip(logits, targets)]
        return torch.stack(losses).mean()
    return _lovasz_flat(logits.reshape(-1), targets.reshape(-1), activation)


def _elu_plus_one(x: torch.Tensor) -> torch.Tensor:
    return F.elu(x) + 1.0


def lovasz_hinge(
    logits: torch.Tensor, targets: torch.Tensor, per_image: bool = True, nonempty_only: bool = False
) -> torch.Tensor:
    """Binary Lovasz hinge loss, a convex surrogate of the Jaccard (IoU) loss.

    ``errors = 1 - logits * (2 t - 1)``, sorted in decreasing order; the loss is
    ``dot(relu(errors_sorted), lovasz_grad(t_sorted))``.

    Empty masks: as in the reference code, an image with no salt gives ``lovasz_grad = [1, 0, ...]``
    (any wrong pixel already makes the IoU 0), so its loss is ``relu(1 + max(logits))``: only the
    single highest logit is penalised, and an image whose logits are all <= -1 costs 0. It never
    pushes the rest of an empty image down; ``lovasz_symmetric`` adds a term that does.

    Args:
        logits: raw scores.
        targets: {0, 1} floats.
        per_image: loss per image, then the mean over the batch; otherwise one loss over all pixels.
        nonempty_only: only the images that hold salt count (as the 4th-place TGS solution trained); a
            batch without any gives 0.

    Shape:
        logits, targets: (B, 1, H, W); output: scalar.

    Reference:
        Berman et al., "The Lovasz-Softmax loss", CVPR 2018, arXiv:1705.08790, eq. (9)-(10);
        ``lovasz_hinge`` in the authors' ``lovasz_losses.py``.
    """
    return _lovasz(logits, targets, per_image, F.relu, nonempty_only)


def lovasz_hinge_elu(
    logits: torch.Tensor, targets: torch.Tensor, per_image: bool = True, nonempty_only: bool = False
) -> torch.Tensor:
    """Lovasz hinge with ``elu(errors) + 1`` in place of ``relu(errors)``.

    Smooth and strictly positive, so pixels already beyond the margin still get a (small)
    gradient; an empty image costs ``elu(1 + max(logits)) + 1 > 0`` (it tends to 0 only as the
    top logit goes to -infinity). Used by several top TGS Salt solutions.

    Shape:
        logits, targets: (B, 1, H, W); output: scalar.
    """
    return _lovasz(logits, targets, per_image, _elu_plus_one, nonempty_only)


def lovasz_symmetric(
    logits: torch.Tensor, targets: torch.Tensor, per_image: bool = True, nonempty_only: bool = False
) -> torch.Tensor:
    """Mean of the Lovasz hinge for salt and for the background: ``(L(x, t) + L(-x, 1 - t)) / 2``.

    The background term treats an empty mask as a full "not salt" mask, so every pixel of an empty
    image contributes (see ``lovasz_hinge`` for why the plain loss barely does). With ``nonempty_only``
    both terms see only the images that hold salt (chosen by ``targets``, before the background flip).

    Shape:
        logits, targets: (B, 1, H, W); output: scalar.
    """
    if nonempty_only:
        kept = _nonempty(logits, targets)
        if len(kept[0]) == 0:
            return _upcast(logits).sum() * 0.0
        logits, targets = kept
    return (lovasz_hinge(logits, targets, per_image) + lovasz_hinge(-logits, 1.0 - targets, per_image)) / 2.0


LOSSES: dict[str, LossFn] = {
    "bce": bce,
    "focal": focal,
    "dice": dice,
    "lovasz": lovasz_hinge,
    "lovasz_elu": lovasz_hinge_elu,
    "lovasz_symmetric": lovasz_symmetric,
}


def _arguments(name: str) -> list[str]:
    """The settings of the loss ``name``: its arguments after ``logits`` and ``targets``."""
    return [p for p in inspect.signature(LOSSES[name]).parameters if p not in ("logits", "targets")]


class CombinedLoss(nn.Module):
    """Weighted sum of named losses; holds settings only, the maths is in the functions above.

    Args:
        names: keys of ``LOSSES``.
        weights: one non-negative weight per name.
        params: per-name keyword arguments, e.g. ``{"focal": {"gamma": 1.0}}``.

    Shape:
        logits, targets: (B, 1, H, W); output: scalar.
    """

    def __init__(
        self,
        names: Sequence[str],
        weights: Sequence[float],
        params: dict[str, dict[str, object]] | None = None,
    ) -> None:
        super().__init__()
        self.names = list(names)
        self.weights = [float(w) for w in weights]
        self.params = {n: dict((params or {}).get(n, {})) for n in self.names}

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        total = 0.0
        for name, weight in zip(self.names, self.weights):
            total = total + weight * LOSSES[name](logits, targets, **self.params[name])
        return total  # type: ignore[return-value]

    def extra_repr(self) -> str:
        terms = []
        for name, weight in zip(self.names, self.weights):
            args = ", ".join(f"{k}={v!r}" for k, v in self.params[name].items())
            terms.append(f"{weight:g}*{name}({args})")
        return " + ".join(terms)


def _split_key(key: str, names: Iterable[str]) -> tuple[str, str] | None:
    """``<name>_<argument>`` -> ``(name, argument)`` for the longest of ``names`` that prefixes ``key``
    (``lovasz_elu_per_image`` belongs to ``lovasz_elu``, not ``lovasz``); None when none does."""
    owners = sorted((n for n in names if key.startswith(n + "_")), key=len, reverse=True)
    return (owners[0], key[len(owners[0]) + 1 :]) if owners else None


def build_loss(spec: str, weights: Sequence[float] | None = None, **params: object) -> CombinedLoss:
    """Build a weighted sum of losses from a spec such as ``"bce+lovasz"`` or ``"focal+dice"``.

    Args:
        spec: loss names from ``LOSSES`` joined by ``+``; each at most once.
        weights: one non-negative weight per term; default 1 each.
        **params: ``<term>_<argument>=value`` routed to the named term, e.g. ``focal_gamma=1.0``,
            ``focal_alpha=None``, ``dice_smooth=0.0``, ``lovasz_elu_per_image=False``.

    Returns:
        A ``CombinedLoss`` module: ``loss(logits, targets) -> scalar``.

    Raises:
        SalttuneError: an unknown term, a repeated term, a wrong number of weights, a negative
            weight, or a parameter that names no term in the spec or no argument of that term.
    """
    names = [n.strip() for n in spec.split("+")]
    for name in names:
        if name not in LOSSES:
            raise SalttuneError(f"unknown loss {name!r} in {spec!r}; valid names: {', '.join(sorted(LOSSES))}")
    if len(set(names)) != len(names):
        raise SalttuneError(f"loss spec {spec!r} repeats a term; give each term once and weigh it instead")
    if weights is None:
        weights = [1.0] * len(names)
    if len(weights) != len(names):
        raise SalttuneError(f"loss spec {spec!r} has {len(names)} term(s) but {len(weights)} weight(s) were given")
    if any(not float(w) >= 0.0 for w in weights):  # `not >=` also catches NaN
        raise SalttuneError(f"loss weights must be >= 0, got {list(weights)}")

    routed: dict[str, dict[str, object]] = {n: {} for n in names}
    for key, value in params.items():
        owner = _split_key(key, names)
        if owner is None:
            raise SalttuneError(f"loss parameter {key!r} names no term of {spec!r}; write <term>_<argument>")
        name, arg = owner
        allowed = _arguments(name)
        if arg not in allowed:
            raise SalttuneError(
                f"loss parameter {key!r}: {name} has no argument {arg!r}; valid: {', '.join(allowed)}"
            )
        routed[name][arg] = value
    return CombinedLoss(names, weights, routed)


def _family(key: str) -> tuple[str, str]:
    """``"lovasz_per_image"`` -> ``("lovasz", "per_image")``, or an error naming the losses."""
    owner = _split_key(key, LOSSES)
    if owner is None:
        raise SalttuneError(f"loss setting {key!r} names no loss; write <loss>_<argument>, losses: {', '.join(sorted(LOSSES))}")
    return owner


def family_params(spec: str, settings: Mapping[str, object]) -> dict[str, object]:
    """Settings named ``<family>_<argument>`` as :func:`build_loss` keywords for the terms of ``spec``.

    A family is a loss and the losses whose names extend it with ``_``: ``lovasz_per_image`` sets
    ``per_image`` of ``lovasz``, ``lovasz_elu`` and ``lovasz_symmetric``; ``dice_per_image`` and
    ``focal_gamma`` set those of ``dice`` and ``focal``. Settings whose family has no term in ``spec`` are
    left out, so one config holds every family's settings whatever loss it names.

    Raises:
        SalttuneError: a setting names no loss, or an argument no loss of its family takes.
    """
    names = [n.strip() for n in spec.split("+")]
    out: dict[str, object] = {}
    for key, value in sorted(settings.items(), key=lambda kv: len(_family(kv[0])[0])):  # narrower families win
        family, arg = _family(key)
        members = [n for n in LOSSES if n == family or n.startswith(family + "_")]
        if not any(arg in _arguments(n) for n in members):
            raise SalttuneError(f"loss setting {key!r}: no {family} loss has an argument {arg!r}")
        out.update({f"{n}_{arg}": value for n in names if n in members and arg in _arguments(n)})
    return out


# ----------------------------------------------------------------------------------------------
# Loss stages: "bce+dice:20,lovasz_symmetric" trains 20 epochs with BCE + Dice, then Lovasz to the end,
# each stage continuing from the weights the last one left; "bce+dice:30%,lovasz_symmetric" gives the first stage
# 30% of the run's epochs, so the same string fits a trial of 8 epochs and a final fit of 80. One string, so one
# categorical search choice.


@dataclass(frozen=True)
class Stage:
    """One loss stage: terms joined by ``+``, a weight per term, and its length: ``epochs``, or ``share`` of the
    run's epochs (:func:`resolve_stages` turns a share into epochs), or neither for the last stage (to the end)."""

    spec: str
    weights: tuple[float, ...]
    epochs: int | None
    share: float | None = None


def _parse_term(term: str, stage: str) -> tuple[str, float]:
    name, _, weight = term.strip().partition("*")
    name = name.strip()
    if name not in LOSSES:
        raise SalttuneError(f"unknown loss {name!r} in stage {stage!r}; valid names: {', '.join(sorted(LOSSES))}")
    if not weight:
        return name, 1.0
    try:
        w = float(weight)
    except ValueError:
        w = math.nan
    if not w >= 0.0:  # `not >=` also catches NaN
        raise SalttuneError(f"weight {weight.strip()!r} of {name!r} in stage {stage!r} is not a number >= 0")
    return name, w


def parse_stages(text: str) -> list[Stage]:
    """Parse ``"terms[:length],...,terms"``; each ``terms`` is ``name[*weight]`` joined by ``+``.

    Every stage but the last gives its length, in epochs (``bce+dice:8``) or as a share of the run
    (``bce+dice:30%``); the last runs to the end of training. A stage given in epochs that starts at or after the
    run's end never trains: that is allowed, so one search choice of stages fits runs of any length. Shares are
    resolved against the run's epochs (:func:`resolve_stages`), so every stage trains in a run of any length.

    Raises:
        SalttuneError: an empty stage, an unknown or repeated term, a bad weight, all weights 0, epochs that are
            not a whole number >= 1, a share outside (0%, 100%) or shares that add up to 100% or more, a stage
            before the last without a length, or a last stage with one.
    """
    parts = [p.strip() for p in text.split(",")]
    stages = []
    for k, part in enumerate(parts):
        last = k == len(parts) - 1
        if not part:
            raise SalttuneError(f"stage {k + 1} of {text!r} is empty; write name[:epochs] separated by commas")
        terms, colon, epochs_text = part.partition(":")
        epochs, share = None, None
        if colon:
            if last:
                raise SalttuneError(f"the last stage {part!r} runs to the end of training; drop ':{epochs_text.strip()}'")
            share = _share(epochs_text.strip(), part) if epochs_text.strip().endswith("%") else None
            if share is None and (not epochs_text.strip().isdigit() or int(epochs_text) < 1):
                raise SalttuneError(f"stage {part!r}: length {epochs_text.strip()!r} is not a whole number of epochs >= 1 "
                                    "nor a share of the run such as 30%")
            epochs = None if share is not None else int(epochs_text)
        elif not last:
            raise SalttuneError(f"stage {part!r} is not the last, so it needs its epochs: write {part}:N")
        named = [_parse_term(t, part) for t in terms.split("+")]
        names = [n for n, _ in named]
        if len(set(names)) != len(names):
            raise SalttuneError(f"stage {part!r} repeats a term; give each term once and weigh it instead")
        if not any(w for _, w in named):
            raise SalttuneError(f"stage {part!r}: every weight is 0, so nothing is learnt; give one above 0")
        stages.append(Stage("+".join(names), tuple(w for _, w in named), epochs, share))
    if sum(s.share or 0.0 for s in stages) >= 1.0 - 1e-9:
        raise SalttuneError(f"the shares of {text!r} add up to 100% or more, so the last stage would never train; "
                            "give the stages before the last less than 100% in all")
    return stages


def _share(text: str, part: str) -> float:
    try:
        share = float(text[:-1]) / 100
    except ValueError:
        share = math.nan
    if not 0.0 < share < 1.0:  # `not` also catches NaN
        raise SalttuneError(f"stage {part!r}: share {text!r} is not a percentage between 0% and 100% (e.g. 30%)")
    return share


def resolve_stages(stages: Sequence[Stage], run_epochs: int) -> list[Stage]:
    """The stages with every share turned into epochs of a run of ``run_epochs``: ``round(share * run_epochs)``,
    at least 1, and, while the run is long enough, short enough that every later stage still trains at least one
    epoch. Stages given in epochs are kept as they are.

    Example: ``bce+dice:30%,lovasz_symmetric`` in a run of 8 epochs trains BCE+Dice for 2 epochs, then Lovasz for 6.
    """
    out, used = [], 0
    for k, s in enumerate(stages):
        if s.share is None:
            out.append(s)
            used += s.epochs or 0
            continue
        later = len(stages) - k - 1  # stages after this one, each owed an epoch
        n = max(1, min(round(s.share * run_epochs), run_epochs - used - later))
        out.append(Stage(s.spec, s.weights, n))
        used += n
    return out


def stage_of(stages: Sequence[Stage], epoch: int) -> int:
    """Index of the stage that trains ``epoch`` (0-based): found from the epoch alone, so a resumed run agrees."""
    end = 0
    for k, stage in enumerate(stages):
        if stage.epochs is None:
            return k
        end += stage.epochs
        if epoch < end:
            return k
    return len(stages) - 1


class StagedLoss(nn.Module):
    """The loss of each epoch: ``at(epoch)`` is the loss of the stage that trains it.

    Args:
        losses: one loss per stage (any callables).
        stages: the parsed stages, one per loss; empty for a single loss used at every epoch.
        run_epochs: the run's length, against which shares of the run are resolved (:func:`resolve_stages`);
            :meth:`replan` changes it.
    """

    def __init__(self, losses: Sequence[Callable], stages: Sequence[Stage] = (), run_epochs: int = 1) -> None:
        super().__init__()
        if len(losses) != max(len(stages), 1):
            raise ValueError(f"{len(losses)} losses for {len(stages)} stages")
        self.losses = list(losses)
        self.given = list(stages)  # as written: shares unresolved
        self.stages = resolve_stages(self.given, run_epochs)

    def replan(self, run_epochs: int, done: int) -> None:
        """Resolve the shares against a run of ``run_epochs`` instead, unless that would move a stage switch the
        first ``done`` epochs have passed: a switch once made stays where it was."""
        new = resolve_stages(self.given, run_epochs)
        if all(stage_of(new, e) == self.index(e) for e in range(done)):
            self.stages = new

    def stage_epochs(self) -> list[int | None]:
        """Each stage's resolved epochs (None: to the end), as ``state.pt`` keeps them; :meth:`set_stage_epochs`
        puts them back."""
        return [s.epochs for s in self.stages]

    def set_stage_epochs(self, epochs: Sequence[int | None]) -> None:
        self.stages = [Stage(s.spec, s.weights, n) for s, n in zip(self.given, epochs)]

    def index(self, epoch: int) -> int:
        return stage_of(self.stages, epoch) if self.stages else 0

    def at(self, epoch: int) -> Callable:
        return self.losses[self.index(epoch)]
