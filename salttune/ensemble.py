"""Ensembling snapshots: flip TTA, mean / greedy selection / non-negative stacking, threshold and area tuning.

Every combiner here is linear in the snapshots' probabilities, ``p = clip(b + sum_m w_m p_m, 0, 1)``:
a single snapshot is a one-hot ``w``, the mean is ``1/M``, greedy selection (Caruana et al. 2004: with
replacement, ``size`` rounds, the best prefix of the path) gives pick counts over their total, and the
stacker non-negative ridge coefficients normalised to sum to one (Purucker and Beel 2023). Every combiner is
a ``fit(probs (M, N, H, W) float16, truth (N, H, W) bool) -> Linear``, registered in :data:`COMBINERS`. So
the held-out evaluation, the report and test-time prediction share one code path, and test images stream
through in batches.

Honesty: each combiner, its threshold, its smallest kept salt area and its salt cut-off are fitted by K-fold
cross-validation over the validation images, and scored only on the fold they were not fitted on
(:func:`cross_validate`, one combiner). Choosing among combiners is itself fitted: :func:`fit_auto` picks
one by an inner K-fold on the images it is given and refits it on them, and :func:`cross_validate_choice`
runs it inside each outer fold (``{"score", "iou", "oof_pred", "final", "chosen", "rows", "folds"}``), so its
score never saw the held-out images choose anything; the best of the combiners' own scores would be
optimistic.

Salt-present heads (``model.salt_head``): members with one bring a probability per image that it holds salt
(``(M, N)``, NaN for members without). The ensemble's is the weighted mean over the members that have one,
and an image below the chosen cut-off is predicted empty; the cut-off grid starts with "off" (None), which
is all there is when no member has a head.

References: Caruana et al. 2004, "Ensemble selection from libraries of models"; Huang et al. 2017,
"Snapshot Ensembles"; Purucker and Beel 2023, "CMA-ES for Post Hoc Ensembling in AutoML"; Varma and Simon
2006, "Bias in error estimation when using cross-validation for model selection" (nested CV).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np

from salttune.errors import SalttuneError
from salttune.metric import competition_score, iou_per_image, score_per_image

if TYPE_CHECKING:
    import torch

# The CLI's parser reads COMBINERS for --combiner's choices and help, so torch, scikit-learn and the model
# code are imported inside the functions that need them: ``salttune --help`` stays quick.

__all__ = [
    "Member", "Linear", "Combiner", "COMBINERS", "AUTO", "combiners_for", "THRESHOLDS", "MIN_AREAS", "SALT_CUTOFFS",
    "member_outputs", "combine_salt", "predict_masks", "fit_mean", "fit_greedy", "fit_ridge", "fit_single", "fit_auto",
    "tune_cutoffs", "cross_validate", "cross_validate_choice", "combine", "iter_ensemble",
]

THRESHOLDS = np.round(np.arange(0.30, 0.71, 0.05), 2)
MIN_AREAS = (0, 10, 20, 40, 80, 160)
SALT_CUTOFFS = tuple(float(c) for c in np.round(np.arange(0.1, 0.91, 0.1), 2))  # tried after None (off)


@dataclass(frozen=True)
class Member:
    """One snapshot of one trial; or, with ``models``, several models whose mean probability is the member's
    (a configuration refit on K folds: its fold runs' snapshots)."""

    trial: str
    path: str
    score: float  # its validation score as recorded during training
    models: tuple[str, ...] = ()

    @property
    def paths(self) -> tuple[str, ...]:
        return self.models or (self.path,)


@dataclass(frozen=True)
class Linear:
    """A fitted combiner: weights per member, a bias, and the cut-offs tuned for the competition score."""

    weights: np.ndarray  # (M,)
    bias: float = 0.0
    threshold: float = 0.5
    min_area: int = 0
    info: dict = field(default_factory=dict)
    salt_cutoff: float | None = None  # images whose salt-present probability is below it are predicted empty


def member_outputs(members: Sequence[Member], images: np.ndarray, depths: np.ndarray, device: torch.device, tta: str,
                   batch_size: int = 128, progress: Callable = lambda it, **kw: it) -> tuple[np.ndarray, np.ndarray]:
    """(M, N, H, W) float16 probabilities of every member on ``images``, and (M, N) float32 salt-present
    probabilities (NaN for a member without a salt head)."""
    from salttune.checkpoint import build_from_checkpoint
    from salttune.precision import checkpoint_precision
    from salttune.predict import iter_predictions

    out = np.empty((len(members), *images.shape), np.float16)
    salt = np.full((len(members), len(images)), np.nan, np.float32)
    for k, m in enumerate(progress(members, desc=f"predict (tta={tta})", unit="member")):
        p_sum, s_sum, heads = np.zeros(images.shape, np.float32), np.zeros(len(images), np.float32), 0
        for path in m.paths:  # a member of several models predicts their mean
            model, ckpt = build_from_checkpoint(path)
            model.to(device)
            z = depths if model.config.get("use_depth") else None
            batches = list(iter_predictions(model, images, z, device, batch_size=batch_size, tta=tta,
                                            amp_dtype=checkpoint_precision(ckpt, device)))
            if batches:
                p_sum += np.concatenate([p for p, _ in batches])
            if batches and batches[0][1] is not None:
                s_sum += np.concatenate([s for _, s in batches])
                heads += 1
        out[k] = p_sum / len(m.paths)
        if heads == len(m.paths):
            salt[k] = s_sum / heads
    return out, salt


def combine(probs: np.ndarray, comb: Linear) -> np.ndarray:
    """(M, N, H, W) member probabilities -> (N, H, W) ensemble probability."""
    p = np.tensordot(comb.weights.astype(np.float32), probs.astype(np.float32), axes=(0, 0)) + comb.bias
    return np.clip(p, 0.0, 1.0)


def combine_salt(salt: np.ndarray | None, comb: Linear) -> np.ndarray | None:
    """(M, N) member salt-present probabilities -> (N,): the mean over the members that have a salt head,
    weighted by their combiner weights; None when no member with a head has a positive weight."""
    if salt is None:
        return None
    has = ~np.isnan(salt).any(1) & (comb.weights > 0)  # (M,)
    if not has.any():
        return None
    w = comb.weights[has].astype(np.float32)
    return np.tensordot(w, salt[has], axes=(0, 0)) / w.sum()


def _binarize(p: np.ndarray, threshold: float, min_area: int, salt: np.ndarray | None = None,
              salt_cutoff: float | None = None) -> np.ndarray:
    pred = p > threshold
    if min_area:
        pred[pred.reshape(len(pred), -1).sum(1) < min_area] = False
    if salt is not None and salt_cutoff is not None:
        pred[salt < salt_cutoff] = False
    return pred


def predict_masks(probs: np.ndarray, comb: Linear, salt: np.ndarray | None = None) -> np.ndarray:
    """The combiner's masks: combined probabilities, its threshold, min area and salt cut-off.

    Shape: probs (M, N, H, W), salt (M, N) or None -> (N, H, W) bool.
    """
    return _binarize(combine(probs, comb), comb.threshold, comb.min_area, combine_salt(salt, comb), comb.salt_cutoff)


def tune_cutoffs(p: np.ndarray, truth: np.ndarray, salt: np.ndarray | None = None) -> tuple[float, int, float | None, float]:
    """The (threshold, min_area, salt_cutoff) from the grids that maximise the competition score; and that score.

    Args:
        p: (N, H, W) probabilities.
        truth: (N, H, W) masks.
        salt: (N,) salt-present probabilities, or None: the cut-off stays off (None). A cut-off only wins
            when it scores strictly higher than off.
    """
    cutoffs = [None] if salt is None else [None, *SALT_CUTOFFS]
    emptied = (~truth.reshape(len(truth), -1).any(1)).astype(np.float64)  # (N,) score of an image predicted empty
    best: tuple[float, int, float | None, float] = (0.5, 0, None, -1.0)
    for t in THRESHOLDS:
        pred = p > t
        area = pred.reshape(len(pred), -1).sum(1)
        for a in MIN_AREAS:
            per = score_per_image(pred & (area >= a)[:, None, None], truth)  # (N,)
            for c in cutoffs:
                s = float(per.mean() if c is None else np.where(salt >= c, per, emptied).mean())
                if s > best[3] + 1e-12:
                    best = (float(t), int(a), c, s)
    return best


def fit_single(probs: np.ndarray, truth: np.ndarray) -> Linear:
    """The one member with the best score at threshold 0.5."""
    best = max(range(len(probs)), key=lambda k: competition_score(probs[k] > 0.5, truth))
    w = np.zeros(len(probs))
    w[best] = 1.0
    return Linear(w, info={"member": int(best)})


def fit_mean(probs: np.ndarray, truth: np.ndarray) -> Linear:
    return Linear(np.full(len(probs), 1.0 / len(probs)))


def fit_greedy(probs: np.ndarray, truth: np.ndarray, size: int = 25) -> Linear:
    """Caruana's ensemble selection: forward selection with replacement, keeping the best ensemble on the path.

    Starts empty; each of ``size`` rounds adds (with replacement, so a member may be picked again) the member
    whose addition gives the running mean the best competition score at threshold 0.5 (ties: the lowest
    index). All rounds run; the result is the prefix of picks that scored best (ties: the shortest), its
    weights the members' pick counts over the prefix's length.

    Args:
        probs: (M, N, H, W) member probabilities.
        truth: (N, H, W) masks.
        size: rounds of selection, the most picks an ensemble can hold (AutoGluon's ``ensemble_size``: 25).

    Returns:
        A :class:`Linear` whose ``info`` holds ``picks`` (the member picked each round, all ``size`` rounds),
        ``prefix`` (how many of them the result keeps), ``counts`` (picks per member in the prefix) and
        ``round_scores`` (the score after each round).

    Reference:
        Caruana et al. 2004, "Ensemble selection from libraries of models", sections 2-3 (selection with
        replacement; "select the best ensemble along the path").
    """
    if size < 1:
        raise ValueError(f"size is {size}; greedy selection needs at least one round")
    m = len(probs)
    pf = probs.astype(np.float32)  # (M, N, H, W) once: adding float16 to float32 costs ~10x a float32 add
    total = np.zeros(probs.shape[1:], np.float32)  # (N, H, W) sum of the picked members
    cand = np.empty_like(total)
    picks: list[int] = []
    round_scores: list[float] = []
    for r in range(1, size + 1):
        scores = []
        for k in range(m):
            np.add(total, pf[k], out=cand)
            scores.append(competition_score(cand > 0.5 * r, truth))  # mean > 0.5 without dividing
        k = int(np.argmax(scores))  # the first of equals: the lowest index
        picks.append(k)
        round_scores.append(float(scores[k]))
        total += pf[k]
    prefix = int(np.argmax(round_scores)) + 1  # the first best: the shortest prefix
    counts = np.bincount(picks[:prefix], minlength=m)
    return Linear(counts / prefix, info={"picks": picks, "prefix": prefix, "counts": counts.tolist(),
                                         "round_scores": round_scores})


def fit_ridge(probs: np.ndarray, truth: np.ndarray, alpha: float = 1.0, max_pixels: int = 400_000,
              seed: int = 0) -> Linear:
    """A stacker: per-pixel ridge regression of the truth on the members' probabilities, with non-negative
    coefficients and no intercept, normalised to sum to one (a weighted mean of the members).

    Unconstrained stacker weights overfit the validation images (Purucker and Beel 2023); non-negative weights
    that sum to one keep the result a convex mix, like greedy selection's. ``alpha`` still matters: snapshots
    are highly correlated, and the penalty spreads weight over near-copies instead of the fit's noise choosing
    one. ``max_pixels`` bounds the cost: neighbouring pixels are nearly copies of each other, so a random
    subsample of 400k pixels carries what all of them do at a fraction of the memory and time.

    Args:
        probs: (M, N, H, W) member probabilities.
        truth: (N, H, W) masks (or targets in [0, 1]).
        alpha: ridge penalty.
        max_pixels: most pixels fitted on, drawn at random with ``seed``.

    Returns:
        A :class:`Linear` with bias 0; the mean of the members when every coefficient is 0.

    Reference:
        Purucker and Beel 2023, "CMA-ES for Post Hoc Ensembling in AutoML: A Great Success and Salvageable
        Failure" (weights made non-negative and normalised); Wolpert 1992, "Stacked generalization".
    """
    from sklearn.linear_model import Ridge

    m = len(probs)
    x = probs.reshape(m, -1)  # (M, N*H*W)
    rng = np.random.default_rng(seed)
    idx = rng.choice(x.shape[1], size=min(max_pixels, x.shape[1]), replace=False)
    reg = Ridge(alpha=alpha, positive=True, fit_intercept=False)
    coef = reg.fit(x[:, idx].T.astype(np.float32), truth.reshape(-1)[idx].astype(np.float32)).coef_.astype(np.float64)
    w = coef / coef.sum() if coef.sum() > 0 else np.full(m, 1.0 / m)
    return Linear(w, 0.0, info={"alpha": alpha, "coef": coef.tolist()})


@dataclass(frozen=True)
class Combiner:
    """A way to combine snapshots: its fit function ``(probs (M, N, H, W), truth (N, H, W)) -> Linear`` and
    the label the ensemble's report gives it."""

    fit: Callable[[np.ndarray, np.ndarray], Linear]
    label: str


# ``salttune ensemble --combiner NAME`` picks one; ``auto`` fits all but the single-snapshot baseline and keeps
# the best out of fold. Adding a combiner is one entry here (and its test).
COMBINERS: dict[str, Combiner] = {
    "single": Combiner(fit_single, "best single snapshot"),
    "mean": Combiner(fit_mean, "mean of snapshots"),
    "greedy": Combiner(fit_greedy, "greedy selection"),
    "ridge": Combiner(fit_ridge, "non-negative stacker"),
}
AUTO = "auto"
BASELINE = "single"  # the table always shows it; auto does not choose it


def combiners_for(name: str) -> list[str]:
    """The combiners ``--combiner name`` fits: every one but the baseline for ``auto``, else ``[name]``.

    Raises:
        SalttuneError: ``name`` is neither ``auto`` nor a key of :data:`COMBINERS` (the message lists them).
    """
    if name == AUTO:
        return [n for n in COMBINERS if n != BASELINE]
    if name not in COMBINERS:
        raise SalttuneError(f"--combiner {name!r} is unknown; allowed: {AUTO}, {', '.join(COMBINERS)}")
    return [name]


def _with_cutoffs(comb: Linear, probs: np.ndarray, truth: np.ndarray, salt: np.ndarray | None) -> Linear:
    t, a, c, s = tune_cutoffs(combine(probs, comb), truth, combine_salt(salt, comb))
    return Linear(comb.weights, comb.bias, t, a, {**comb.info, "fit_score": s}, salt_cutoff=c)


def _take(salt: np.ndarray | None, idx: np.ndarray) -> np.ndarray | None:
    """(M, N) salt-present probabilities -> (M, len(idx)) of the images ``idx``; None stays None."""
    return None if salt is None else salt[:, idx]


def _out_of_fold(fit_on: Callable[[np.ndarray], Linear], probs: np.ndarray, truth: np.ndarray, k: int, seed: int,
                 salt: np.ndarray | None) -> tuple[np.ndarray, list[Linear]]:
    """(N, H, W) out-of-fold predictions, and each fold's combiner, of ``fit_on(fitting image indices)``, a
    function that returns a combiner with its cut-offs tuned on those images only."""
    from salttune.split import kfold_splits

    oof = np.zeros(truth.shape, bool)
    fitted = []
    for tr, va in kfold_splits(truth, k=k, seed=seed):
        comb = fit_on(tr)
        salt_va = combine_salt(_take(salt, va), comb)
        oof[va] = _binarize(combine(probs[:, va], comb), comb.threshold, comb.min_area, salt_va, comb.salt_cutoff)
        fitted.append(comb)
    return oof, fitted


def _scored(oof: np.ndarray, truth: np.ndarray) -> dict:
    """``{"score", "iou", "oof_pred"}`` of (N, H, W) out-of-fold predictions."""
    return {"score": float(score_per_image(oof, truth).mean()), "iou": float(iou_per_image(oof, truth).mean()),
            "oof_pred": oof}


def cross_validate(fitter: Callable[[np.ndarray, np.ndarray], Linear], probs: np.ndarray, truth: np.ndarray,
                   k: int = 5, seed: int = 0, salt: np.ndarray | None = None) -> dict:
    """Out-of-fold score of a combiner with tuned cut-offs; and the combiner refitted on all images.

    Args:
        fitter: ``(probs (M, n, H, W), truth (n, H, W)) -> Linear``, e.g. ``COMBINERS[name].fit``.
        salt: (M, N) salt-present probabilities of the members (NaN rows for members without a head), or None;
            the salt cut-off is then chosen on each fold's fitting images like the threshold and min area.

    Returns:
        ``{"score", "iou", "oof_pred": (N, H, W) bool, "final": Linear}``.
    """
    def fit_on(idx: np.ndarray) -> Linear:
        return _with_cutoffs(fitter(probs[:, idx], truth[idx]), probs[:, idx], truth[idx], _take(salt, idx))

    oof, _ = _out_of_fold(fit_on, probs, truth, k, seed, salt)
    return {**_scored(oof, truth), "final": fit_on(np.arange(len(truth)))}


def _choose(names: Sequence[str], probs: np.ndarray, truth: np.ndarray, k: int, seed: int,
            salt: np.ndarray | None) -> tuple[str, dict[str, dict]]:
    """The combiner of ``names`` with the best K-fold score on these images (ties: the first named), and
    every one's :func:`cross_validate` result."""
    results = {n: cross_validate(COMBINERS[n].fit, probs, truth, k=k, seed=seed, salt=salt) for n in names}
    return max(names, key=lambda n: results[n]["score"]), results


def fit_auto(probs: np.ndarray, truth: np.ndarray, names: Sequence[str] | None = None, inner_folds: int = 3,
             seed: int = 0, salt: np.ndarray | None = None) -> Linear:
    """Choose a combiner by K-fold cross-validation on the images given, and refit it on them all.

    Used as the fitter of an outer cross-validation, the choice is part of what is fitted, so the outer score
    estimates the whole "pick the best combiner" procedure; see :func:`cross_validate_choice`, which also
    hands each outer fold's fitting images their salt-present probabilities.

    Args:
        probs: (M, N, H, W) member probabilities.
        truth: (N, H, W) masks.
        names: keys of :data:`COMBINERS` to choose from; None: ``combiners_for("auto")``.
        inner_folds: folds of the choosing cross-validation.
        seed: seed of its folds.
        salt: (M, N) salt-present probabilities of the members on these images, or None.

    Returns:
        The chosen combiner refitted on all the images, cut-offs tuned; ``info`` adds ``chosen`` (its name)
        and ``inner_scores`` ({name: {"score", "iou"}}, out of fold on these images).
    """
    names = combiners_for(AUTO) if names is None else list(names)
    inner_folds = min(inner_folds, len(truth))  # a small fold of a small validation set
    if inner_folds < 2:  # one image cannot cross-validate a choice: the first named, untried
        comb = _with_cutoffs(COMBINERS[names[0]].fit(probs, truth), probs, truth, salt)
        return Linear(comb.weights, comb.bias, comb.threshold, comb.min_area,
                      {**comb.info, "chosen": names[0], "inner_scores": {}}, comb.salt_cutoff)
    chosen, results = _choose(names, probs, truth, inner_folds, seed, salt)
    comb = results[chosen]["final"]
    scores = {n: {"score": r["score"], "iou": r["iou"]} for n, r in results.items()}
    return Linear(comb.weights, comb.bias, comb.threshold, comb.min_area,
                  {**comb.info, "chosen": chosen, "inner_scores": scores}, comb.salt_cutoff)


def cross_validate_choice(names: Sequence[str], probs: np.ndarray, truth: np.ndarray, k: int = 5, seed: int = 0,
                          salt: np.ndarray | None = None, inner_folds: int = 3) -> dict:
    """Nested cross-validation of choosing among ``names``: an honest score of the chosen combiner.

    Each outer fold runs :func:`fit_auto` on its fitting images only (their salt-present probabilities
    included) and predicts its held-out images with the combiner chosen there, so no held-out image takes part
    in a choice. The maximum of the combiners' own K-fold scores would be biased upwards by the choice.

    Args:
        names: keys of :data:`COMBINERS` to choose from (ties: the first named).
        probs: (M, N, H, W) member probabilities.
        truth: (N, H, W) masks.
        k: outer folds; also the folds of the choice on all images.
        seed: seed of the outer and inner folds.
        salt: (M, N) salt-present probabilities of the members, or None.
        inner_folds: folds of each outer fold's choice.

    Returns:
        :func:`cross_validate`'s dict (``score``, ``iou``, ``oof_pred`` of the nested procedure, ``final``)
        plus ``chosen`` (the choice by ``k``-fold CV on all images; ``final`` is its refit on all of them),
        ``rows`` ({name: that name's :func:`cross_validate` result on all images, the figures the final choice
        compared}) and ``folds`` (per outer fold: ``chosen`` and ``inner_scores``, the choice it made on its
        fitting images).
    """
    names = list(names)
    oof, fitted = _out_of_fold(lambda idx: fit_auto(probs[:, idx], truth[idx], names, inner_folds, seed,
                                                    _take(salt, idx)), probs, truth, k, seed, salt)
    chosen, rows = _choose(names, probs, truth, k, seed, salt)
    return {**_scored(oof, truth), "final": rows[chosen]["final"], "chosen": chosen, "rows": rows,
            "folds": [{"chosen": c.info["chosen"], "inner_scores": c.info["inner_scores"]} for c in fitted]}


def iter_ensemble(members: Sequence[Member], comb: Linear, images: np.ndarray, depths: np.ndarray,
                  device: torch.device, tta: str, batch_size: int = 256) -> Iterator[np.ndarray]:
    """Yield (B, H, W) ensemble probabilities batch by batch, with every member's model held once.

    Members with zero weight are not run; every other one predicts each batch on the device
    (:func:`weighted_predictions`). With a salt cut-off, an image whose ensemble salt-present probability is below
    it comes out all 0.
    """
    from salttune.checkpoint import build_from_checkpoint
    from salttune.precision import checkpoint_precision
    from salttune.predict import apply_salt_cutoff

    active = [(k, m) for k, m in enumerate(members) if comb.weights[k] != 0]
    models = []  # (weight, model, dtype): a member of several models gives each its share of the member's weight
    for k, m in active:
        for path in m.paths:
            model, ckpt = build_from_checkpoint(path)
            models.append((comb.weights[k] / len(m.paths), model.to(device).eval(), checkpoint_precision(ckpt, device)))
    weights = Linear(np.array([w for w, _, _ in models], np.float64))
    for p, salt in weighted_predictions(models, images, depths, device, tta, batch_size, bias=comb.bias):
        yield apply_salt_cutoff(p, combine_salt(salt, weights), comb.salt_cutoff)


def weighted_predictions(models: Sequence[tuple[float, "torch.nn.Module", "torch.dtype | None"]], images: np.ndarray,
                         depths: np.ndarray | None, device: torch.device, tta: str, batch_size: int = 256,
                         bias: float = 0.0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per batch: (B, H, W) float32 ``bias + sum of weight x probability`` over ``models`` (clipped to [0, 1]) and
    the (M, B) salt-present probabilities (NaN rows for models without a salt head).

    Each batch goes to the device once and every model predicts it there, under its own autocast dtype (the third
    of its triple, :mod:`salttune.precision`), flip TTA as one pass of 2B images (:func:`salttune.predict.predict_batch`);
    the weighted sum stays on the device and only it comes back.
    """
    import torch

    from salttune.batches import input_batches
    from salttune.predict import predict_batch

    for x, z in input_batches(images, depths, device, batch_size):  # (B, 1, H, W), (B,) or None
        p = torch.full((len(x), *x.shape[2:]), float(bias), device=device)  # (B, H, W)
        salt = np.full((len(models), len(x)), np.nan, np.float32)  # (M, B)
        for k, (w, model, amp_dtype) in enumerate(models):
            pk, sk = predict_batch(model, x, z if model.config.get("use_depth") else None, amp_dtype=amp_dtype, tta=tta)
            p += w * pk
            if sk is not None:
                salt[k] = sk.cpu().numpy()
        yield p.clamp_(0.0, 1.0).cpu().numpy(), salt
