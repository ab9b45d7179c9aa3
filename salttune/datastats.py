"""Measured statistics of a TGS-style dataset, to put a synthetic set beside the real one.

``summarize`` reduces images, masks and depths to one flat dict of plain floats (JSON-ready);
``format_comparison`` prints two such dicts side by side. The statistics cover what a segmentation
model sees: how often and how much salt there is (coverage classes), the grey-level histogram and
per-image contrast, texture (gradients, local standard deviation), how salt differs from its
surroundings (intensity, texture, the reflector on its boundary), the shape of the masks (pieces,
edges touched, position) and the depths.

Reference: TGS Salt Identification Challenge, https://www.kaggle.com/c/tgs-salt-identification-challenge
"""

from __future__ import annotations

import cv2
import numpy as np

from salttune.metric import coverage, coverage_class

__all__ = ["summarize", "format_comparison", "local_std", "pixel_auc"]

_QUANTILES = (5, 25, 50, 75, 95)
_LOCAL_WINDOW = 7  # side of the window for the local standard deviation (texture)


def local_std(images: np.ndarray, window: int = _LOCAL_WINDOW) -> np.ndarray:
    """Standard deviation of the grey level in a ``window`` x ``window`` box around each pixel.

    Shape:
        images: (N, H, W) any numeric; returns (N, H, W) float32.
    """
    out = np.empty(images.shape, dtype=np.float32)
    for i, img in enumerate(images):
        x = img.astype(np.float32)
        m = cv2.blur(x, (window, window), borderType=cv2.BORDER_REFLECT)
        m2 = cv2.blur(x * x, (window, window), borderType=cv2.BORDER_REFLECT)
        out[i] = np.sqrt(np.maximum(m2 - m * m, 0.0))
    return out


def pixel_auc(score: np.ndarray, label: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` as a detector of ``label`` (ties count one half).

    0.5 is chance, 1.0 a perfect ranking. NaN when either class is absent.

    Shape:
        score: any shape, numeric; label: same shape, bool.
    """
    s = np.asarray(score, dtype=np.float64).ravel()
    y = np.asarray(label, dtype=bool).ravel()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    s_sorted = s[order]
    # Average ranks over ties, then the Mann-Whitney U statistic.
    ranks = np.empty(len(s), dtype=np.float64)
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    ends = np.r_[starts[1:], len(s)]
    avg = (starts + ends + 1) / 2.0  # 1-based mean rank of each tie group
    ranks[order] = np.repeat(avg, ends - starts)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of the mask that touch a pixel outside it (8-neighbourhood; the image edge is not a boundary)."""
    m = mask.astype(np.uint8)
    eroded = cv2.erode(m, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return (m - eroded).astype(bool)


def _mean(values) -> float:
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()) if v.size else float("nan")


def _mask_geometry(masks: np.ndarray) -> dict[str, float]:
    """Shape of the non-empty masks: pieces, edges touched, centre of mass, boundary length."""
    nonempty = masks[masks.reshape(len(masks), -1).any(axis=1)]
    if len(nonempty) == 0:
        keys = ("pieces", "touch_top", "touch_bottom", "touch_left", "touch_right", "centroid_y",
                "centroid_x", "boundary_per_side")
        return {f"mask_{k}": float("nan") for k in keys}
    h, w = nonempty.shape[1:]
    pieces = [cv2.connectedComponents(m.astype(np.uint8), connectivity=8)[0] - 1 for m in nonempty]
    ys, xs = np.arange(h)[:, None], np.arange(w)[None, :]
    area = nonempty.sum(axis=(1, 2))
    cy = (nonempty * ys).sum(axis=(1, 2)) / area / (h - 1)
    cx = (nonempty * xs).sum(axis=(1, 2)) / area / (w - 1)
    # Boundary between salt and sediment inside the image, in units of the image side.
    inner = (nonempty[:, 1:, :] != nonempty[:, :-1, :]).sum(axis=(1, 2)) + (
        nonempty[:, :, 1:] != nonempty[:, :, :-1]
    ).sum(axis=(1, 2))
    return {
        "mask_pieces": _mean(pieces),
        "mask_touch_top": _mean(nonempty[:, 0, :].any(axis=1)),
        "mask_touch_bottom": _mean(nonempty[:, -1, :].any(axis=1)),
        "mask_touch_left": _mean(nonempty[:, :, 0].any(axis=1)),
        "mask_touch_right": _mean(nonempty[:, :, -1].any(axis=1)),
        "mask_centroid_y": _mean(cy),
        "mask_centroid_x": _mean(cx),
        "mask_boundary_per_side": _mean(inner / w),
    }


def _salt_vs_sediment(images: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """Intensity and texture inside vs outside salt, on images holding at least 5% of each."""
    cov = coverage(masks)
    both = (cov >= 0.05) & (cov <= 0.95)
    keys = ("salt_mean", "sediment_mean", "salt_std", "sediment_std", "salt_grad", "sediment_grad",
            "boundary_grad", "salt_contrast", "local_std_auc", "intensity_auc")
    if not both.any():
        return {k: float("nan") for k in keys}
    imgs = images[both].astype(np.float32)
    ms = masks[both]
    grad = _grad_magnitude(imgs)
    stats: dict[str, list[float]] = {k: [] for k in keys[:8]}
    aucs_int = []
    for img, m, g in zip(imgs, ms, grad):
        s, o = img[m], img[~m]
        stats["salt_mean"].append(s.mean())
        stats["sediment_mean"].append(o.mean())
        stats["salt_std"].append(s.std())
        stats["sediment_std"].append(o.std())
        stats["salt_grad"].append(g[m].mean())
        stats["sediment_grad"].append(g[~m].mean())
        stats["boundary_grad"].append(g[_boundary(m)].mean())
        stats["salt_contrast"].append(abs(s.mean() - o.mean()) / max(img.std(), 1e-6))
        # Per image, the better of "salt is brighter" and "salt is darker": what a grey threshold can do.
        a = pixel_auc(img, m)
        aucs_int.append(max(a, 1.0 - a))
    out = {k: _mean(v) for k, v in stats.items()}
    # Pooled over images: low local variance as a salt detector (a texture-only classifier).
    out["local_std_auc"] = pixel_auc(-local_std(imgs), ms)
    out["intensity_auc"] = _mean(aucs_int)
    return out


def _grad_magnitude(images: np.ndarray) -> np.ndarray:
    """|d/dx| + |d/dy| by central differences. Shape: (N, H, W) -> (N, H, W) float32."""
    x = images.astype(np.float32)
    gy = np.abs(np.gradient(x, axis=1))
    gx = np.abs(np.gradient(x, axis=2))
    return gx + gy


def summarize(images: np.ndarray, masks: np.ndarray, depths: np.ndarray) -> dict[str, float]:
    """Measure a dataset: coverage, grey levels, texture, salt vs sediment, mask shape, depth.

    Args:
        images: (N, H, W) uint8 grey images.
        masks: (N, H, W) bool salt masks.
        depths: (N,) depths (the ``z`` of depths.csv).

    Returns:
        An ordered dict of plain floats (JSON-ready):

        - ``n``; ``empty_share``, ``blank_share`` (images of one grey level), ``mean_coverage``,
          ``mean_coverage_nonempty``, ``class_00`` .. ``class_10`` (share of each coverage class);
        - grey levels: ``px_mean``, ``px_std``, ``px_q05`` .. ``px_q95`` over all pixels; per image
          ``img_mean_std`` (spread of image means), ``img_std_mean``, ``img_std_q10``/``_q90``,
          ``img_min_mean``, ``img_max_mean``, ``img_kurtosis_q50``/``_q90``, ``img_skew_q10/50/90``;
        - texture: ``grad_x``, ``grad_y`` (mean absolute difference of neighbours), ``roughness_q10/50/90``
          (per image mean gradient over std: high for fine texture, low for blurry), ``lowfreq_q50``
          (share of an image's std at scales above ~10 px);
        - salt vs sediment, on images 5..95% salt: ``salt_*``/``sediment_*`` (mean, std, gradient),
          ``boundary_grad`` (gradient on the mask edge), ``salt_contrast`` (|mean difference| / std),
          ``local_std_auc`` (low 7x7 std as a salt detector), ``intensity_auc`` (best grey threshold);
        - ``mask_*``: pieces, edges touched, centre of mass, edge length per image side;
        - ``depth_min/max/mean/std``, ``depth_mean_empty``, ``depth_mean_salt``, ``corr_depth_coverage``.

    Shape:
        images (N, H, W), masks (N, H, W), depths (N,).
    """
    images = np.asarray(images)
    masks = np.asarray(masks, dtype=bool)
    depths = np.asarray(depths, dtype=np.float64)
    if images.ndim != 3 or masks.shape != images.shape or depths.shape != (len(images),):
        raise ValueError(f"shapes differ: images {images.shape}, masks {masks.shape}, depths {depths.shape}")
    n = len(images)
    flat = images.reshape(n, -1).astype(np.float32)
    cov = coverage(masks)
    classes = np.bincount(coverage_class(masks), minlength=11)[:11] / n
    img_std = flat.std(axis=1)

    out: dict[str, float] = {"n": float(n)}
    out["empty_share"] = float((cov == 0).mean())
    out["blank_share"] = float((img_std == 0).mean())
    out["mean_coverage"] = float(cov.mean())
    out["mean_coverage_nonempty"] = _mean(cov[cov > 0])
    for c in range(11):
        out[f"class_{c:02d}"] = float(classes[c])

    out["px_mean"] = float(flat.mean())
    out["px_std"] = float(flat.std())
    for q, v in zip(_QUANTILES, np.percentile(flat, _QUANTILES)):
        out[f"px_q{q:02d}"] = float(v)
    out["img_mean_std"] = float(flat.mean(axis=1).std())
    out["img_std_mean"] = float(img_std.mean())
    out["img_std_q10"], out["img_std_q90"] = map(float, np.percentile(img_std, (10, 90)))
    out["img_min_mean"] = float(flat.min(axis=1).mean())
    out["img_max_mean"] = float(flat.max(axis=1).mean())
    # Shape of each image's histogram: a few bright reflectors on a flat grey give a high kurtosis.
    textured = img_std > 0
    centred = flat[textured] - flat[textured].mean(axis=1, keepdims=True)
    kurt = (centred**4).mean(axis=1) / img_std[textured] ** 4
    skew = (centred**3).mean(axis=1) / img_std[textured] ** 3
    out["img_kurtosis_q50"] = float(np.median(kurt)) if kurt.size else float("nan")
    out["img_kurtosis_q90"] = float(np.percentile(kurt, 90)) if kurt.size else float("nan")
    for q, v in zip((10, 50, 90), np.percentile(skew, (10, 50, 90)) if skew.size else [np.nan] * 3):
        out[f"img_skew_q{q}"] = float(v)

    x = images.astype(np.float32)
    gx = np.abs(np.diff(x, axis=2)).mean(axis=(1, 2))
    gy = np.abs(np.diff(x, axis=1)).mean(axis=(1, 2))
    out["grad_x"] = float(gx.mean())
    out["grad_y"] = float(gy.mean())
    rough = ((gx + gy) / 2)[textured] / img_std[textured]
    if rough.size:
        for q, v in zip((10, 50, 90), np.percentile(rough, (10, 50, 90))):
            out[f"roughness_q{q}"] = float(v)
    else:
        out.update({f"roughness_q{q}": float("nan") for q in (10, 50, 90)})

    # Share of each image's variation at scales above ~10 px (seismic itself has little; TGS images have some).
    low = [cv2.GaussianBlur(img, (0, 0), 6).std() / s for img, s in zip(x[textured], img_std[textured])]
    out["lowfreq_q50"] = float(np.median(low)) if low else float("nan")

    out.update(_salt_vs_sediment(images, masks))
    out.update(_mask_geometry(masks))

    out["depth_min"] = float(depths.min()) if n else float("nan")
    out["depth_max"] = float(depths.max()) if n else float("nan")
    out["depth_mean"] = _mean(depths)
    out["depth_std"] = float(depths.std()) if n else float("nan")
    out["depth_mean_empty"] = _mean(depths[cov == 0])
    out["depth_mean_salt"] = _mean(depths[cov > 0])
    ok = n > 1 and depths.std() > 0 and cov.std() > 0
    out["corr_depth_coverage"] = float(np.corrcoef(depths, cov)[0, 1]) if ok else float("nan")
    return out


def format_comparison(a: dict[str, float], b: dict[str, float], names: tuple[str, str] = ("real", "synthetic")) -> str:
    """Two ``summarize`` results side by side as a plain-text table, with the difference b - a.

    Keys present in only one dict show ``-`` in the other column.
    """
    keys = list(a) + [k for k in b if k not in a]
    width = max(len(k) for k in keys) if keys else 4

    def cell(d: dict[str, float], k: str) -> str:
        v = d.get(k)
        if v is None:
            return "-"
        return f"{v:.0f}" if k == "n" else f"{v:.4g}"

    lines = [f"{'statistic':<{width}}  {names[0]:>12}  {names[1]:>12}  {'diff':>10}"]
    lines.append("-" * len(lines[0]))
    for k in keys:
        diff = "-"
        if k in a and k in b and np.isfinite(a[k]) and np.isfinite(b[k]):
            diff = f"{b[k] - a[k]:+.4g}"
        lines.append(f"{k:<{width}}  {cell(a, k):>12}  {cell(b, k):>12}  {diff:>10}")
    return "\n".join(lines)
