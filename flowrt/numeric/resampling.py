"""1-D resampling weights, for resizing an image one axis at a time.

* Pillow's bicubic downsampling (``Image.resize(..., BICUBIC)``), the chain's degradation: for
  output pixel i the cubic kernel (a = -0.5) is centred at (i + 0.5) * scale in input coordinates,
  widened by the scale when shrinking (an anti-aliasing low-pass), truncated at the image edge and
  renormalised to sum 1 (precompute_coeffs in Pillow's Resample.c): ``flowrt.numeric.downsample``.
* torch's ``F.interpolate(..., align_corners=False)`` upsampling, bilinear (hole filling) and
  bicubic (a = -0.75, taps clamped at the edge: the start's enlargement), so the numpy chain's
  starting estimate is the torch chain's.

Matrices are dense (out, in) float64: y = M @ x along an axis, and M.T is the adjoint.
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np

from flowrt.errors import InputError

BICUBIC_SUPPORT = 2.0
BICUBIC_A = -0.5          # Pillow's cubic
TORCH_BICUBIC_A = -0.75   # torch's upsample_bicubic2d


def _bicubic(x: np.ndarray, a: float = BICUBIC_A) -> np.ndarray:
    """Keys' cubic convolution kernel with parameter a (Pillow's bicubic_filter for a = -0.5)."""
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1, near, np.where(x < 2, far, 0.0))


def pillow_resize_weights(in_size: int, out_size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Pillow's bicubic taps for one axis: (index (out, K) int64, weight (out, K) float64).

    Unused taps have weight 0 and index 0. Mirrors precompute_coeffs in Pillow's Resample.c.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = BICUBIC_SUPPORT * filterscale
    taps = int(math.ceil(support)) * 2 + 1
    index = np.zeros((out_size, taps), np.int64)
    weight = np.zeros((out_size, taps), np.float64)
    for i in range(out_size):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)  # int() truncates like the C cast
        hi = min(int(center + support + 0.5), in_size)
        js = np.arange(lo, hi)
        w = _bicubic((js - center + 0.5) / filterscale)
        total = w.sum()
        index[i, :len(js)] = js
        weight[i, :len(js)] = w / total if total != 0 else w
    return index, weight


def downsampled_size(in_hw: Tuple[int, int], factor) -> Tuple[int, int]:
    """(H // factor, W // factor) for an image (H, W); InputError for a factor that is not a whole
    number >= 1 or leaves no pixel."""
    if factor < 1 or int(factor) != factor:
        raise InputError(f"scale must be a whole number >= 1, got {factor}")
    h, w = in_hw
    if h // factor < 1 or w // factor < 1:
        raise InputError(f"a {w}x{h} image is too small to downsample by {factor}")
    return h // int(factor), w // int(factor)


def _dense(index: np.ndarray, weight: np.ndarray, in_size: int) -> np.ndarray:
    """(out, in) matrix with weight[i, k] added at column index[i, k]."""
    m = np.zeros((index.shape[0], in_size), np.float64)
    np.add.at(m, (np.repeat(np.arange(index.shape[0]), index.shape[1]), index.ravel()), weight.ravel())
    return m


def pillow_downsample_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out, in) float64: Pillow's bicubic resize of one axis from in_size to out_size samples."""
    return _dense(*pillow_resize_weights(in_size, out_size), in_size)


def torch_upsample_matrix(in_size: int, out_size: int, mode: str) -> np.ndarray:
    """(out, in) float64: ``F.interpolate(size=..., mode=mode, align_corners=False)`` along one axis.

    Source coordinate (i + 0.5) * in / out - 0.5; 'bilinear' clamps it at 0 and blends its two
    neighbours (the second clamped to the last sample); 'bicubic' blends four with torch's a = -0.75,
    indices clamped to [0, in - 1].
    """
    i = np.arange(out_size, dtype=np.float64)
    src = (i + 0.5) * (in_size / out_size) - 0.5
    if mode == "bilinear":
        src = np.maximum(src, 0.0)
        lo = np.floor(src).astype(np.int64)
        hi = lo + (lo < in_size - 1)
        frac = src - lo
        return _dense(np.stack([lo, hi], 1), np.stack([1 - frac, frac], 1), in_size)
    if mode != "bicubic":
        raise ValueError(f"mode must be bilinear or bicubic, not {mode!r}")
    lo = np.floor(src).astype(np.int64)
    t = src - lo
    offsets = np.arange(-1, 3)
    weight = _bicubic(t[:, None] - offsets[None, :], TORCH_BICUBIC_A)
    index = np.clip(lo[:, None] + offsets[None, :], 0, in_size - 1)
    return _dense(index, weight, in_size)
