"""Ensembling snapshots: flip TTA, mean / greedy selection / ridge stacking, threshold and area tuning.

Every combiner here is linear in the snapshots' probabilities, ``p = clip(b + sum_m w_m p_m, 0, 1)``:
a single snapshot is a one-hot ``w``, the mean is ``1/M``, greedy selection (Caruana et al. 2004) gives
counts of picks over their total, and the ridge stacker its coefficients. So the held-out evaluation, the
report and test-time prediction share one code path, and test images stream through in batches.

Honesty: each combiner, its threshold, its smallest kept salt area and its salt cut-off are fitted by K-fold
cross-validation over the validation images, and scored only on the fold they were not fitted on.

Salt-present heads (``model.salt_head``): members with one bring a probability per image that it holds salt
(``(M, N)``, NaN for members without). The ensemble's is the weighted mean over the members that have one,
and an image below the chosen cut-off is predicted empty; the cut-off grid starts with "off" (None), which
is all there is when no member has a head.

References: Caruana et al. 2004, "Ensemble selection from libraries of models"; Huang et al. 2017,
"Snapshot Ensembles".
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
    "member_probs", "member_outputs", "combine_salt", "predict_masks", "fit_mean", "fit_greedy", "fit_ridge", "fit_single", "tune_cutoffs", "cross_validate", "combine", "iter_ensemble",
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
    from salttune.predict import iter_predictions

    out = np.empty((len(members), *images.shape), np.float16)
    salt = np.full((len(members), len(images)), np.nan, np.float32)
    for k, m in enumerate(progress(members, desc=f"predict (tta={tta})", unit="member")):
        p_sum, s_sum, heads = np.zeros(images.shape, np.float32), np.zeros(len(images), np.float32), 0
        for path in m.paths:  # a member of several models predicts their mean
            model, _ = build_from_checkpoint(path)
            model.to(device)
            z = depths if model.config.get("use_depth") else None
            batches = list(iter_predictions(model, images, z, device, batch_size=batch_size, tta=tta))
            if batches:
                p_sum += np.concatenate([p for p, _ in batches])
            if batches and batches[0][1] is not None:
                s_sum += np.concatenate([s for _, s in batches])
                heads += 1
        out[k] = p_sum / len(m.paths)
        if heads == len(m.paths):
            salt[k] = s_sum / heads
    return out, salt


def member_probs(members: Sequence[Member], images: np.ndarray, depths: np.ndarray, device: torch.device, tta: str,
                 batch_size: int = 128, progress: Callable = lambda it, **kw: it) -> np.ndarray:
    """(M, N, H, W) float16 probabilities of every member on ``images``."""
    return member_outputs(members, images, depths, device, tta, batch_size, progress)[0]


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


def fit_greedy(probs: np.ndarray, truth: np.ndarray, rounds: int = 15) -> Linear:
    """Caruana's forward selection with replacement, starting from the best member; stops when no pick helps."""
    m = len(probs)
    counts = np.zeros(m)
    total = np.zeros(probs.shape[1:], np.float32)
    best_score = -1.0
    for r in range(rounds):
        scores = [competition_score((total + probs[k]) / (r + 1) > 0.5, truth) for k in range(m)]
        k = int(np.argmax(scores))
        if scores[k] <= best_score and r > 0:
            break
        best_score = scores[k]
        counts[k] += 1
        total += probs[k]
    return Linear(counts / counts.sum(), info={"picks": int(counts.sum())})


def fit_ridge(probs: np.ndarray, truth: np.ndarray, alpha: float = 1.0, positive: bool = True,
              max_pixels: int = 400_000, seed: int = 0) -> Linear:
    """Per-pixel ridge regression of the truth on the members' probabilities (a subsample of pixels)."""
    from sklearn.linear_model import Ridge

    m = len(probs)
    x = probs.reshape(m, -1)
    rng = np.random.default_rng(seed)
    idx = rng.choice(x.shape[1], size=min(max_pixels, x.shape[1]), replace=False)
    reg = Ridge(alpha=alpha, positive=positive).fit(x[:, idx].T.astype(np.float32), truth.reshape(-1)[idx].astype(np.float32))
    return Linear(reg.coef_.astype(np.float64), float(reg.intercept_), info={"alpha": alpha, "positive": positive})


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
    "ridge": Combiner(fit_ridge, "ridge stacker"),
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


def cross_validate(fitter: Callable[[np.ndarray, np.ndarray], Linear], probs: np.ndarray, truth: np.ndarray,
                   k: int = 5, seed: int = 0, salt: np.ndarray | None = None) -> dict:
    """Out-of-fold score of a combiner with tuned cut-offs; and the combiner refitted on all images.

    Args:
        salt: (M, N) salt-present probabilities of the members (NaN rows for members without a head), or None;
            the salt cut-off is then chosen on each fold's fitting images like the threshold and min area.

    Returns:
        ``{"score", "iou", "oof_pred": (N, H, W) bool, "final": Linear}``.
    """
    from salttune.split import kfold_splits

    oof = np.zeros(truth.shape, bool)
    for tr, va in kfold_splits(truth, k=k, seed=seed):
        salt_tr = None if salt is None else salt[:, tr]
        comb = _with_cutoffs(fitter(probs[:, tr], truth[tr]), probs[:, tr], truth[tr], salt_tr)
        salt_va = None if salt is None else combine_salt(salt[:, va], comb)
        oof[va] = _binarize(combine(probs[:, va], comb), comb.threshold, comb.min_area, salt_va, comb.salt_cutoff)
    final = _with_cutoffs(fitter(probs, truth), probs, truth, salt)
    return {"score": float(score_per_image(oof, truth).mean()), "iou": float(iou_per_image(oof, truth).mean()),
            "oof_pred": oof, "final": final}


def iter_ensemble(members: Sequence[Member], comb: Linear, images: np.ndarray, depths: np.ndarray,
                  device: torch.device, tta: str, batch_size: int = 256) -> Iterator[np.ndarray]:
    """Yield (B, H, W) ensemble probabilities batch by batch, with every member's model held once.

    Members with zero weight are not run. Only one batch of every member's predictions is in memory. With a
    salt cut-off, an image whose ensemble salt-present probability is below it comes out all 0.
    """
    from salttune.checkpoint import build_from_checkpoint
    from salttune.predict import apply_salt_cutoff, iter_predictions

    active = [(k, m) for k, m in enumerate(members) if comb.weights[k] != 0]
    models = []  # (weight, model): a member of several models gives each its share of the member's weight
    for k, m in active:
        for path in m.paths:
            model, _ = build_from_checkpoint(path)
            models.append((comb.weights[k] / len(m.paths), model.to(device).eval()))
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size]
        z = depths[start : start + batch_size]
        p = np.full(x.shape, comb.bias, np.float32)
        salt = np.full((len(models), len(x)), np.nan, np.float32)  # (M', B)
        for k, (w, model) in enumerate(models):
            zz = z if model.config.get("use_depth") else None
            pk, sk = next(iter_predictions(model, x, zz, device, batch_size=len(x), tta=tta))
            p += w * pk
            if sk is not None:
                salt[k] = sk
        s = combine_salt(salt, Linear(np.array([w for w, _ in models], np.float64)))
        yield apply_salt_cutoff(np.clip(p, 0.0, 1.0), s, comb.salt_cutoff)
