"""Blind estimate of additive Gaussian noise (``--sigma auto``).

Immerkaer's method: the 3x3 kernel [[1,-2,1],[-2,4,-2],[1,-2,1]] annihilates
locally linear image content, so on flat and smoothly shaded regions its output
is noise alone, with std 6 sigma. Edges and texture leak through, so only the
pixels whose local gradient is below a low percentile are used (the flattest
part of the image), and the noise level is read off with a robust MAD rather
than a mean.

Two things the estimate must not be fooled by:
  * channels: the filter runs on each channel and the responses are pooled, so the
    answer is the std of the noise *per channel* whether the channels carry independent
    noise (colour) or the same noise (grey stored as RGB). Filtering the channel mean
    instead divides independent noise by sqrt(3), and a correction for that multiplies
    a grey image's estimate by sqrt(3) (the bug this replaced).
  * clipping: noise on a saturated region is cut off at 0 or 1, and such regions are
    often the flattest of a photo; pixels near a clipped sample are left out.
"""
from __future__ import annotations

import numpy as np

_MAD_TO_STD = 1.4826
# Samples at or beyond these (0-1 scale) count as clipped: half an 8-bit level from the ends.
_CLIP_LOW, _CLIP_HIGH = 0.5 / 255, 254.5 / 255
# Below this fraction of unclipped pixels the clipped ones are used too (better than nothing).
_MIN_UNCLIPPED = 0.05


def _filter3(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Valid-mode 3x3 correlation of a 2-D float array: (H-2, W-2)."""
    h, w = img.shape
    out = np.zeros((h - 2, w - 2), dtype=np.float64)
    for dy in range(3):
        for dx in range(3):
            if kernel[dy, dx]:
                out += kernel[dy, dx] * img[dy:dy + h - 2, dx:dx + w - 2]
    return out


_LAPLACE_DIFF = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
_SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)

# The same kernels as outer products (column taps, row taps): two 3-tap passes instead of nine,
# in float32, keep a clean image's fast path (flowrt.pipeline.plan.nothing_to_do) quick.
_LAPLACE_TAPS = ((1, -2, 1), (1, -2, 1))
_SOBEL_X_TAPS = ((1, 2, 1), (-1, 0, 1))
_SOBEL_Y_TAPS = ((-1, 0, 1), (1, 2, 1))
_BOX_TAPS = ((1, 1, 1), (1, 1, 1))


def _separable3(img: np.ndarray, taps) -> np.ndarray:
    """Valid-mode 3x3 correlation with the kernel outer(column taps, row taps): (H-2, W-2)."""
    column, row = taps
    h, w = img.shape
    rows = sum(np.float32(c) * img[i:i + h - 2] for i, c in enumerate(column) if c)
    return sum(np.float32(r) * rows[:, j:j + w - 2] for j, r in enumerate(row) if r)


def _unclipped(planes: np.ndarray) -> np.ndarray:
    """(H-2, W-2) bool: no sample of the 3x3 window, in any channel, is clipped."""
    clipped = ((planes <= _CLIP_LOW) | (planes >= _CLIP_HIGH)).any(axis=2).astype(np.float32)
    keep = _separable3(clipped, _BOX_TAPS) == 0
    return keep if keep.mean() >= _MIN_UNCLIPPED else np.ones_like(keep)


def estimate_sigma(rgb: np.ndarray, flat_fraction: float = 0.3) -> float:
    """Noise std per channel of an (H, W), (H, W, 1) or (H, W, 3) image in [0, 1], on the 0-255 scale.

    A 4th channel (alpha) is ignored. ``flat_fraction`` of the unclipped pixels with the weakest
    gradient are used. Returns 0 for images too small to tell (under 8x8).
    """
    planes = np.asarray(rgb, dtype=np.float32)
    if planes.ndim == 2:
        planes = planes[..., None]
    planes = planes[..., :3]
    if min(planes.shape[:2]) < 8:
        return 0.0
    mean = planes.mean(axis=2)
    grad2 = _separable3(mean, _SOBEL_X_TAPS) ** 2 + _separable3(mean, _SOBEL_Y_TAPS) ** 2  # squared: same order
    keep = _unclipped(planes)
    flat = keep & (grad2 <= np.quantile(grad2[keep], flat_fraction))
    values = np.concatenate([_separable3(np.ascontiguousarray(planes[..., c]), _LAPLACE_TAPS)[flat]
                             for c in range(planes.shape[2])]).astype(np.float64)
    mad = np.median(np.abs(values - np.median(values)))
    return float(_MAD_TO_STD * mad / 6.0 * 255.0)
