"""Synthetic seismic images with salt masks, written in the Kaggle TGS layout.

Each image is a small forward model of a seismic section, calibrated on 1,000 real TGS training images
(``salttune stats --data REAL --compare SYNTH`` puts the two side by side):

1. Salt is a smooth random field cut at the level that gives a coverage drawn from the real coverage
   distribution: tops (domes), flanks, bases, blobs and diagonal edges with rugose, wavy outlines. A high
   cut leaves a sliver at an edge or corner, a low one a near-full image.
2. Sediments are beds of random impedance along a "geologic time" field that is tilted, folded, shuffled
   (chaos), faulted and dragged up against the salt. Their reflectivity is taken along the bed normals.
3. Bodies (salt, a transparent zone in some salt-free images, the water column) replace the beds: inside
   only weak chaotic reflections, on the edge one strong, sharp reflection (positive where the wave enters
   from above or the side, negative at a base, weaker on steep flanks), beds below salt are dimmed. The
   mask edge runs just outside the crest of that reflection, where annotators drew it on the real images.
4. A 2-D Ricker wavelet images the reflectivity; then band-limited noise, vertical migration streaks and a
   slow grey drift inside salt, a low-frequency drift, a lateral gain and a random polarity. The canvas is
   resampled to 101x101 with its own vertical and lateral zoom (blurry or vertically streaked crops, as
   many real ones are) and stretched to 0..255 per image, as the real images are.
5. Depth, salt presence, all-black images and water columns follow the depth dependence of the sample.

Why one module of ~490 lines: the five steps above are one forward model whose constants were calibrated
together against the real sample; split across files they would read as independent parts, which they are not.

Every image has its own seed (``SeedSequence.spawn``), so a process pool writes the same bytes as a
serial run. Reference: TGS Salt Identification Challenge, https://www.kaggle.com/c/tgs-salt-identification-challenge
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from salttune.errors import SalttuneError
from salttune.fileio import atomic_write_text
from salttune.rle import rle_encode

__all__ = ["SIZE", "Sample", "synth_sample", "generate"]

SIZE = 101  # side of a TGS image in pixels

# --- Calibration, measured on the 1,000 real training images of the TGS sample ---------------------
# Depth histogram, 50-wide bins from 50 to 960 (the real z range is 50..959).
_DEPTH_COUNTS = np.array([18, 35, 41, 46, 50, 57, 68, 78, 92, 81, 90, 61, 78, 78, 55, 45, 13, 11, 3], float)
_DEPTH_EDGES = np.r_[np.arange(50, 1000, 50), 960]
# Share of images without salt by depth (100-wide bins centred at 50, 150, ..., 950), lightly smoothed.
_BIN_Z = np.arange(50, 1000, 100)
_EMPTY_P = np.array([0.90, 0.70, 0.53, 0.29, 0.27, 0.29, 0.29, 0.44, 0.55, 0.50])
# Share of all-black images and of images with a water column, by depth (same bins).
_BLANK_P = np.array([0.30, 0.08, 0.07, 0.016, 0.002, 0.002, 0.002, 0.002, 0.002, 0.002])
_WATER_P = np.array([0.07, 0.07, 0.07, 0.06, 0.012, 0.012, 0.012, 0.005, 0.0, 0.0])
# Coverage of non-empty masks at percentiles 0, 5, ..., 100 (inverse CDF).
_COVERAGE_KNOTS = np.array([0.0001, 0.0072, 0.0168, 0.036, 0.0886, 0.1227, 0.1577, 0.2224, 0.2735, 0.3348,
                            0.3958, 0.4421, 0.4909, 0.5607, 0.6266, 0.6814, 0.7468, 0.8296, 0.9227, 0.9712, 1.0])
_MIN_PERIOD = 2.6  # shortest wavelet period on the canvas, in pixels


@dataclass(frozen=True)
class Sample:
    """One synthetic image. Shape: image (101, 101) uint8; mask (101, 101) bool."""

    image: np.ndarray
    mask: np.ndarray
    depth: int


# --- Random fields -----------------------------------------------------------------------------------
def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_t: float, sigma_x: float) -> np.ndarray:
    """Gaussian-filtered white noise scaled to unit standard deviation. Shape: ``shape`` float32."""
    x = rng.standard_normal(shape).astype(np.float32)
    x = cv2.GaussianBlur(x, (0, 0), sigmaX=max(sigma_x, 0.1), sigmaY=max(sigma_t, 0.1), borderType=cv2.BORDER_REFLECT)
    return x / max(float(x.std()), 1e-6)


def _by_depth(z: float, table: np.ndarray) -> float:
    return float(np.interp(z, _BIN_Z, table))


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(x, (0, 0), sigma)


# --- Salt geometry -----------------------------------------------------------------------------------
def _salt_field(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A smooth field whose upper level sets are salt shapes, in image coordinates. Shape: ``shape``."""
    nt, nx = shape
    t = ((np.arange(nt, dtype=np.float32) + 0.5) / nt - 0.5)[:, None]  # rows are depth, downwards
    x = ((np.arange(nx, dtype=np.float32) + 0.5) / nx - 0.5)[None, :]
    kind = rng.choice(["top", "flank", "base", "blob", "diagonal"], p=[0.26, 0.46, 0.06, 0.05, 0.17])
    if kind == "blob":
        x0, t0 = rng.uniform(-0.6, 0.6, 2)
        a, b = np.exp(rng.normal(0, 0.35, 2))
        g = -np.sqrt(((x - x0) / a) ** 2 + ((t - t0) / b) ** 2)
    else:  # an edge with its normal at angle phi (90 degrees: salt below), bent by a curvature
        base = {"top": 90.0, "flank": rng.choice([0.0, 180.0]), "base": 270.0, "diagonal": rng.uniform(0, 360)}
        phi = np.deg2rad(base[kind] + rng.normal(0, 22))
        along = -np.sin(phi) * x + np.cos(phi) * t
        g = np.cos(phi) * x + np.sin(phi) * t - rng.normal(0.4, 1.0) * along**2
    # Wavy at the scale of the image, rugose at a few pixels.
    g = g + rng.uniform(0.0, 0.12) * _smooth_noise(rng, shape, nt / 6, nx / 6)
    g = g + rng.uniform(0.0, 0.03) * _smooth_noise(rng, shape, *rng.uniform(1.5, 3.0, 2))
    return g.astype(np.float32)


def _tidy(mask: np.ndarray) -> np.ndarray:
    """Drop specks (< 6 px or < 10% of the largest piece) and fill holes, as an annotator would."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= min(max(6, 0.1 * areas.max()), areas.max())) + 1
    mask = np.isin(labels, keep)
    count, labels = cv2.connectedComponents((~mask).astype(np.uint8), connectivity=4)
    for k in range(1, count):  # sediment pieces that do not reach the edge are holes
        hole = labels == k
        if not (hole[0].any() or hole[-1].any() or hole[:, 0].any() or hole[:, -1].any()):
            mask = mask | hole
    return mask


def _draw_bodies(
    rng: np.random.Generator, shape: tuple[int, int], with_salt: bool, inset: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The salt mask at 101x101 and the salt / transparent-zone regions on the canvas.

    The field is cut at the 101x101 resolution so that the mask has the drawn coverage. The body on
    the canvas lies ``inset`` canvas pixels inside the mask: on real images the mask edge runs just
    outside the bright top-of-salt reflection, not through its crest.
    Returns (mask (101, 101) bool, salt ``shape`` float32 in 0..1, pseudo like salt or None).
    """
    mask = np.zeros((SIZE, SIZE), bool)
    salt = np.zeros(shape, np.float32)
    if not with_salt and rng.random() >= 0.12:
        return mask, salt, None
    field = _salt_field(rng, shape)
    fine = cv2.resize(field, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    cov = float(np.interp(rng.random(), np.linspace(0, 1, len(_COVERAGE_KNOTS)), _COVERAGE_KNOTS))
    level = float(np.quantile(fine, 1.0 - cov))
    gt, gx = np.gradient(field)
    inside = (field - level) / (np.hypot(gt, gx) + 1e-6)  # signed distance to the edge, canvas pixels
    region = np.clip(0.5 + inside - inset, 0, 1).astype(np.float32)  # anti-aliased edge
    if not with_salt:  # a transparent zone without salt: a hard negative
        return mask, salt, region
    mask = _tidy(fine > level)
    if not mask.any():
        mask[np.unravel_index(np.argmax(fine), fine.shape)] = True
    return mask, region, None


# --- Sediments -----------------------------------------------------------------------------------------
def _geologic_time(
    rng: np.random.Generator, shape: tuple[int, int], period: float, salt: np.ndarray
) -> tuple[np.ndarray, float]:
    """Relative geologic time tau on the canvas: beds are its level sets. Returns (tau, chaos).

    Beds dip, fold, are shuffled by a smooth random displacement (chaos), offset by faults and dragged
    up against salt. Shape: tau ``shape`` float32.
    """
    nt, nx = shape
    t = np.arange(nt, dtype=np.float32)[:, None]
    x = np.arange(nx, dtype=np.float32)[None, :]
    dip_deg = rng.normal(0, 20) if rng.random() < 0.35 else rng.uniform(-85, 85)
    tau = t + np.tan(np.deg2rad(np.clip(dip_deg, -85, 85))) * x
    for _ in range(rng.integers(0, 3)):  # folds, growing or shrinking with depth
        amp = rng.normal(0, 0.045) * nt * (1 + rng.normal(0, 0.8) * (t / nt - 0.5))
        tau = tau + amp * np.sin(2 * np.pi * x / (rng.uniform(0.8, 4.0) * nx) + rng.uniform(0, 2 * np.pi))
    chaos = float(rng.choice([0.0, 0.3, 0.8, 1.5], p=[0.4, 0.3, 0.2, 0.1]))
    if chaos:
        tau = tau + chaos * period * _smooth_noise(rng, shape, rng.uniform(1, 3) * period, rng.uniform(3, 12))
    for _ in range(rng.binomial(2, 0.12)):  # faults: a throw across a steep line
        ang = np.deg2rad(rng.uniform(55, 88) * rng.choice([-1, 1]))
        side = (x - rng.uniform(0.2, 0.8) * nx) * np.sin(ang) - (t - nt / 2) * np.cos(ang)
        tau = tau + rng.uniform(1, 3) * period * rng.choice([-1, 1]) * (side > 0)
    if (salt >= 0.5).any() and rng.random() < 0.6:  # drag: beds bend up against the salt
        dist = cv2.distanceTransform((salt < 0.5).astype(np.uint8), cv2.DIST_L2, 3)
        tau = tau + rng.uniform(0.05, 0.3) * nt * np.exp(-dist / (rng.uniform(0.05, 0.3) * nt))
    return tau.astype(np.float32), chaos


def _bed_reflectivity(rng: np.random.Generator, tau: np.ndarray, thickness: float, grading: float) -> np.ndarray:
    """Reflectivity of layered sediments along the bed normals. Shape: like ``tau``.

    The log-impedance is a sequence of beds of random value (a few very bright), each graded (a ramp of
    slope ``grading``), so that the jumps at bed bases are one-signed and the image can be skewed.
    """
    lo, hi = float(tau.min()), float(tau.max())
    grid = np.arange(lo - 4, hi + 4, 0.25, dtype=np.float32)
    pos = grid - grid[0]
    bounds = np.cumsum(rng.gamma(1.5, thickness / 1.5, size=int((hi - lo + 8) / max(thickness, 0.5) * 3) + 8))
    k = np.searchsorted(bounds, pos)
    v = rng.standard_normal(len(bounds) + 1)
    v = v + np.where(rng.random(len(v)) < 0.02, rng.normal(0, 1.5, len(v)), 0.0)
    edges = np.r_[0.0, bounds]
    frac = np.clip((pos - edges[k]) / (edges[np.minimum(k + 1, len(bounds))] - edges[k] + 1e-6), 0, 1)
    log_imp = cv2.GaussianBlur((v[k] + grading * frac).astype(np.float32)[:, None], (0, 0), 0.1, sigmaY=2.0)[:, 0]
    series = np.gradient(log_imp, 0.25)  # reflectivity per unit of geologic time
    gt, gx = np.gradient(tau)
    slope = np.clip(np.hypot(gt, gx), 0, 3)  # |grad tau|: thinned beds reflect more per pixel
    return (np.interp(tau, grid, series) * slope).astype(np.float32)


# --- Seismic imaging -------------------------------------------------------------------------------------
def _ricker(period: float) -> np.ndarray:
    """Ricker wavelet of the given dominant period in pixels, as a (K, 1) vertical filter."""
    half = int(np.ceil(1.1 * period))
    a = (np.pi * np.arange(-half, half + 1, dtype=np.float32) / period) ** 2
    k = (1 - 2 * a) * np.exp(-a)
    return (k / np.abs(k).sum()).astype(np.float32)[:, None]


def _wavelet_2d(period: float, lateral: float) -> np.ndarray:
    """2-D Ricker (a Laplacian of Gaussian) whose cut across a flat bed is a Ricker of ``period``.

    It images beds of any dip, as migration does; ``lateral`` stretches it sideways.
    Shape: (2h+1, 2w+1) float32, zero mean.
    """
    h, w = int(np.ceil(1.1 * period)), int(np.ceil(1.1 * period * lateral))
    t = np.arange(-h, h + 1, dtype=np.float32)[:, None]
    x = np.arange(-w, w + 1, dtype=np.float32)[None, :]
    a = (np.pi / period) ** 2 * (t**2 + (x / lateral) ** 2)
    k = (1 - a) * np.exp(-a)
    k = k - k.mean()
    return (k / np.abs(k).sum()).astype(np.float32)


def _edge_reflectivity(soft: np.ndarray, flank: float) -> np.ndarray:
    """Reflectivity on the edge of a body: positive where the wave enters it from above or the side,
    negative at its base; steep flanks reflect ``flank`` (0..1) times as strongly as flat tops.
    Shape: like ``soft``."""
    gt, gx = np.gradient(soft)
    mag = np.hypot(gt, gx)
    steep = np.abs(gx) / (mag + 1e-9)  # 0 on a flat top or base, 1 on a vertical flank
    return (mag * (1 - (1 - flank) * steep) * np.where(gt >= -0.35 * mag, 1.0, -1.0)).astype(np.float32)


def _water_column(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """1 above a gently dipping, slightly curved sea floor, 0 below. Shape: ``shape`` float32."""
    nt, nx = shape
    t, x = np.arange(nt)[:, None], np.arange(nx)[None, :]
    sea = (rng.uniform(0.1, 0.95) * nt + np.tan(np.deg2rad(rng.normal(0, 8))) * (x - nx / 2) * nt / nx
           + rng.normal(0, 0.3) * nt * ((x / nx - 0.5) ** 2))
    return np.clip(0.5 + sea - t, 0, 1).astype(np.float32)  # anti-aliased sea floor


@dataclass(frozen=True)
class _Scale:
    """How one image samples the earth: canvas size and wavelet periods in canvas pixels."""

    shape: tuple[int, int]  # canvas (rows, columns); resampled to 101x101 at the end
    period: float  # dominant period of the bed reflections
    edge_period: float  # of body edges: one sharp interface, without the low-frequency tuning of thin beds
    stretched: bool  # a crop stretched 2-5x vertically


def _draw_scale(rng: np.random.Generator, z: float) -> _Scale:
    """The period in output pixels grows with depth; part of it is zoom (a blurry crop), lateral and
    vertical zoom differ a little, and a tenth of the crops are stretched vertically."""
    period_out = float(np.clip(np.exp(rng.normal(np.log(9.5 + 12 * (z - 50) / 910), 0.45)), _MIN_PERIOD, 36))
    zoom_x = float(np.exp(rng.uniform(0, np.log(np.clip(period_out / _MIN_PERIOD, 1.0, 3.5)))))
    stretch = float(np.exp(rng.normal(0, 0.15)))
    stretched = bool(rng.random() < 0.1)
    if stretched:  # crossing steep events become a vertical herringbone, as on some real images
        stretch = rng.uniform(2.0, 5.0)
        period_out = max(period_out, _MIN_PERIOD * zoom_x * stretch)
    zoom_t = float(np.clip(zoom_x * stretch, 1.0, max(1.0, period_out / _MIN_PERIOD)))
    period = period_out / zoom_t  # >= _MIN_PERIOD
    edge_period = max(_MIN_PERIOD, period * rng.uniform(0.45, 0.8))
    return _Scale((int(round(SIZE / zoom_t)), int(round(SIZE / zoom_x))), period, edge_period, stretched)


def _sediments(rng: np.random.Generator, sc: _Scale, salt: np.ndarray) -> tuple[np.ndarray, bool]:
    """Reflectivity of the beds on the canvas, and whether they are sparse (thick graded beds: one-signed
    bright reflectors on a quiet grey). Shape: ``sc.shape`` float32."""
    shape, period = sc.shape, sc.period
    tau, chaos = _geologic_time(rng, shape, period, salt)
    sparse = bool(rng.random() < 0.08)
    thickness = period * (rng.uniform(0.8, 2.0) if sparse else rng.uniform(0.12, 0.6))
    refl = _bed_reflectivity(rng, tau, thickness, rng.normal(0, 2.0 if sparse else 0.7))
    if sc.stretched or rng.random() < 0.08:  # conflicting dips (migration swings): a crossing bed set
        t = np.arange(shape[0], dtype=np.float32)[:, None]
        x = np.arange(shape[1], dtype=np.float32)[None, :]
        cross = t + x * np.tan(np.deg2rad(rng.uniform(20, 70))) * rng.choice([-1, 1])
        cross = cross + 0.5 * period * _smooth_noise(rng, shape, period, 6)
        refl = refl + rng.uniform(0.5, 1.0) * _bed_reflectivity(rng, cross, thickness, 0.0)
    # Reflectors brighten and fade along their length; chaotic sections break them into segments.
    length = rng.uniform(2, 10) if chaos < 0.8 else rng.uniform(1, 3)
    refl = refl * np.abs(1 + rng.uniform(0.1, 0.5) * _smooth_noise(rng, shape, period / 3, length))
    return refl.astype(np.float32), sparse


def _render(rng: np.random.Generator, z: float, with_salt: bool) -> tuple[np.ndarray, np.ndarray]:
    """Draw one section. Returns the (101, 101) float32 amplitude and the (101, 101) bool mask."""
    sc = _draw_scale(rng, z)
    shape, period = sc.shape, sc.period
    # The mask edge runs just outside the crest of the edge reflection, as on the real images.
    mask, salt, pseudo = _draw_bodies(rng, shape, with_salt, inset=rng.uniform(0.1, 0.25) * sc.edge_period)
    refl, sparse = _sediments(rng, sc, salt)
    lateral = rng.uniform(0.7, 1.4)
    wavelet, edge_wavelet = _wavelet_2d(period, lateral), _wavelet_2d(sc.edge_period, lateral)

    def image(r: np.ndarray, w: np.ndarray = wavelet) -> np.ndarray:
        return cv2.filter2D(r, -1, w, borderType=cv2.BORDER_REFLECT)

    # Bodies replace the beds inside them: (region, edge peak, internal std), in units of the beds' std.
    bodies = []
    if salt.any():
        below = (np.maximum.accumulate(salt, axis=0) > 0.5) & (salt < 0.5)  # sub-salt shadow
        refl = refl * (1 - rng.uniform(0.1, 0.7) * _blur(below.astype(np.float32), 2.0))
        faint = rng.random() < 0.2
        edge = rng.uniform(1.0, 2.0) if faint else float(np.exp(rng.normal(np.log(4.5), 0.5)))
        bodies.append((salt, edge, rng.uniform(0.03, 0.25)))
    if pseudo is not None:  # a transparent zone keeps a little of the beds
        bodies.append((pseudo, rng.normal(0, 1.0), rng.uniform(0.1, 0.6)))
    water = np.zeros(shape, np.float32)
    if not with_salt and rng.random() < _by_depth(z, _WATER_P) / max(_by_depth(z, _EMPTY_P), 1e-3):
        water = _water_column(rng, shape)
        bodies.append((water, -rng.uniform(4, 10), 0.0))  # the sea floor: a strong peak seen from above

    keep = np.ones(shape, np.float32)
    for region, _, _ in bodies:
        keep = keep * (1 - _blur(region, 0.7) * (0.85 if region is pseudo else 1.0))
    amp = image(refl * keep)
    sig = float(image(refl).std()) + 1e-6  # the beds' amplitude as if they filled the canvas
    for region, edge, inner in bodies:
        soft = _blur(region, 0.7)
        edge_amp = image(_edge_reflectivity(soft, rng.uniform(0.2, 0.7)), edge_wavelet)
        amp = amp + edge_amp * (edge * sig / (float(np.abs(edge_amp).max()) + 1e-9))
        if inner:  # weak chaotic reflections inside
            chaotic = image(_smooth_noise(rng, shape, rng.uniform(0.3, 1.2) * period / 2, rng.uniform(1, 6)))
            amp = amp + inner * sig * soft * chaotic / (float(chaotic.std()) + 1e-9)

    # Noise: white noise through a lateral blur and a vertical Ricker (band-limited speckle).
    noise = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), rng.uniform(0.3, 1.2), sigmaY=0.1)
    noise = image(noise, _ricker(period))
    level = float(np.exp(rng.normal(np.log(0.2 if sparse else 0.6), 0.5)))
    noise = noise * (level * sig / (float(noise.std()) + 1e-9))
    if salt.any():  # quieter salt, with vertical migration streaks and a slow drift of the grey level
        inside = _blur(salt, 1.0)
        noise = noise * (1 - rng.uniform(0.1, 0.8) * inside)
        streaks = _smooth_noise(rng, shape, rng.uniform(4, 15), rng.uniform(0.5, 1.5))
        drift = _smooth_noise(rng, shape, *(rng.uniform(1 / 12, 1 / 5, 2) * shape))
        amp = amp + inside * sig * (rng.uniform(0.03, 0.25) * streaks + rng.uniform(0.03, 0.15) * drift)
    amp = amp + noise
    if rng.random() < 0.2:  # chaotic facies: isotropic, blobby speckle dominates
        speckle = image(rng.standard_normal(shape).astype(np.float32))
        calm = 1 - rng.uniform(0.5, 1.0) * _blur(salt, 1.0)  # salt stays quieter
        amp = amp + rng.uniform(1.0, 3.0) * sig * calm * speckle / (float(speckle.std()) + 1e-9)
    # Low frequencies: real TGS images keep a slow drift of the grey level that a wavelet would remove.
    low = _smooth_noise(rng, shape, *(rng.uniform(1 / 10, 1 / 4, 2) * shape))
    amp = amp + sig * float(np.exp(rng.normal(np.log(0.2), 0.5))) * low
    amp = amp * np.exp(rng.uniform(0, 0.15) * _smooth_noise(rng, shape, shape[0] / 4, shape[1] / 4))
    amp = amp * (1 - water)  # the water column is silent
    if rng.random() < 0.12:  # surveys differ in polarity: then the top of salt is a trough
        amp = -amp
    return cv2.resize(amp, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC), mask


def _to_uint8(amp: np.ndarray) -> np.ndarray:
    """Stretch to 0..255 per image, as the real images are."""
    lo, hi = float(amp.min()), float(amp.max())
    if hi - lo < 1e-9:
        return np.zeros(amp.shape, np.uint8)
    return np.round((amp - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def synth_sample(seed: np.random.SeedSequence | int) -> Sample:
    """Draw one image, its salt mask and its depth from the seed alone (same seed, same arrays)."""
    rng = np.random.default_rng(seed)
    k = int(rng.choice(len(_DEPTH_COUNTS), p=_DEPTH_COUNTS / _DEPTH_COUNTS.sum()))
    z = int(rng.integers(_DEPTH_EDGES[k], _DEPTH_EDGES[k + 1]))
    p_empty = _by_depth(z, _EMPTY_P)
    with_salt = rng.random() >= p_empty
    if not with_salt and rng.random() < _by_depth(z, _BLANK_P) / p_empty:
        return Sample(np.zeros((SIZE, SIZE), np.uint8), np.zeros((SIZE, SIZE), bool), z)
    amp, mask = _render(rng, z, with_salt)
    return Sample(_to_uint8(amp), mask, z)


# --- Writing a dataset -----------------------------------------------------------------------------------
def _unique_ids(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct ids of 10 lowercase hex digits, like Kaggle's (``'75efad62c1'``)."""
    ids: dict[str, None] = {}  # insertion-ordered, so the draw order fixes the ids
    while len(ids) < n:
        for v in rng.integers(0, 16**10, size=n - len(ids), dtype=np.int64):
            ids.setdefault(f"{int(v):010x}", None)
    return list(ids)


def _imwrite(path: Path, array: np.ndarray) -> None:
    if not cv2.imwrite(str(path), array):
        raise SalttuneError(f"{path}: could not write the PNG; check that the folder is writable and has space")


def _make_one(task: tuple[str, str, np.random.SeedSequence, bool]) -> tuple[int, str]:
    """Draw one sample, write its image (and mask) PNG, return (depth, RLE of the mask)."""
    folder, image_id, seed, write_mask = task
    s = synth_sample(seed)
    root = Path(folder)
    _imwrite(root / "images" / f"{image_id}.png", cv2.merge([s.image, s.image, s.image]))  # RGB, R=G=B
    if write_mask:
        # The real quirk: non-empty masks are 16-bit {0, 65535}, empty ones 8-bit zeros.
        png = (s.mask.astype(np.uint16) * 65535) if s.mask.any() else np.zeros(s.mask.shape, np.uint8)
        _imwrite(root / "masks" / f"{image_id}.png", png)
    return s.depth, rle_encode(s.mask)


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one process per core already
    # Ctrl-C reaches every process of the terminal's group: the parent alone stops the pool (it cancels what
    # is left and waits for the images in hand); a worker dying of it mid-task would leave the pool hanging.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _write_csv(path: Path, header: str, rows: list[tuple[str, object]]) -> None:
    # Atomic: an interrupted run leaves no half CSV, and no CSV at all before every image is written.
    atomic_write_text(path, header + "\n" + "".join(f"{a},{b}\n" for a, b in rows), "CSV")


def generate(
    out: str | Path,
    n_train: int = 4000,
    n_test: int = 18000,
    seed: int = 0,
    progress: bool = True,
    workers: int | None = None,
) -> None:
    """Write a synthetic dataset in the Kaggle TGS layout.

    Writes ``train/images/<id>.png`` (8-bit RGB, R=G=B), ``train/masks/<id>.png`` (16-bit {0, 65535};
    8-bit zeros when empty), ``test/images/<id>.png``, ``train.csv`` and ``test_truth.csv``
    (``id,rle_mask``), and ``depths.csv`` (``id,z`` for train then test). The same seed gives
    byte-identical files whatever the number of workers.

    Args:
        out: folder to write into (created; existing files of the same names are overwritten).
        n_train, n_test: numbers of training and test images.
        seed: the one seed everything is drawn from.
        progress: show a progress bar on stderr.
        workers: processes to use; None for all cores, 1 for a serial run in this process.

    Raises:
        SalttuneError: a negative count, or a folder that cannot be written.
    """
    if n_train < 0 or n_test < 0 or n_train + n_test == 0:
        raise SalttuneError(f"synth: n_train={n_train}, n_test={n_test}; give counts >= 0, not both 0")
    out = Path(out)
    id_seq, train_seq, test_seq = np.random.SeedSequence(seed).spawn(3)
    ids = _unique_ids(np.random.default_rng(id_seq), n_train + n_test)
    train_ids, test_ids = ids[:n_train], ids[n_train:]
    try:
        for sub in ("train/images", "train/masks", "test/images"):
            (out / sub).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SalttuneError(f"{out}: cannot create the dataset folders ({e.strerror}); choose another --out") from None
    tasks = [(str(out / "train"), i, s, True) for i, s in zip(train_ids, train_seq.spawn(n_train))]
    tasks += [(str(out / "test"), i, s, False) for i, s in zip(test_ids, test_seq.spawn(n_test))]

    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(1, int(workers))
    bar = tqdm(total=len(tasks), desc="synth", unit="img", file=sys.stderr, disable=not progress)
    results: list[tuple[int, str]] = []
    if workers == 1 or len(tasks) < 64:
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)  # as in the workers, so serial and parallel runs compute alike
        try:
            for task in tasks:
                results.append(_make_one(task))
                bar.update()
        finally:
            cv2.setNumThreads(threads)
    else:
        # fork where there is one: "spawn" re-imports the caller's __main__, which fails for stdin and
        # re-runs unguarded scripts. Children only compute and write files.
        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init) as pool:
            for r in pool.map(_make_one, tasks, chunksize=max(1, min(64, len(tasks) // (4 * workers)))):
                results.append(r)
                bar.update()
    bar.close()

    depths, rles = [r[0] for r in results], [r[1] for r in results]
    _write_csv(out / "train.csv", "id,rle_mask", list(zip(train_ids, rles[:n_train])))
    _write_csv(out / "test_truth.csv", "id,rle_mask", list(zip(test_ids, rles[n_train:])))
    _write_csv(out / "depths.csv", "id,z", list(zip(ids, depths)))
