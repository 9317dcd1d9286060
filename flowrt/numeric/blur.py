"""Blur with a known kernel: true convolution (the kernel is flipped), output the input's size, edges
replicated, and its adjoint; the one implementation, which the torch engine reaches through
``flowrt.operators.bridge``. The kernel's centre is at (kh // 2, kw // 2), as scipy.ndimage.convolve
places it; ``flowrt.numeric.kernels.blur_layout`` parses and factors it: a rank-1 kernel (a Gaussian,
a box) runs as two 1-D passes, a small general one tap by tap (a numba kernel), a large one through
the real FFT.

    apply(x) (B, C, H, W) -> (B, C, H, W)        vjp(g) (B, C, H, W) -> (B, C, H, W) = apply's transpose
"""
from __future__ import annotations

from typing import Tuple

import numba
import numpy as np

from flowrt.numeric.kernels import Taps, blur_layout, parse_blur
from flowrt.numeric.padding import edge_pad_vjp


def correlate(x: np.ndarray, taps: Taps, out_hw: Tuple[int, int]) -> np.ndarray:
    """'valid' correlation with fixed taps: out[..., i, j] = sum k[a, b] x[..., i + a, j + b], (..., h, w),
    in x's dtype, the taps summed in their order."""
    shifts, weights = _tap_arrays(taps, x.dtype)
    planes = np.ascontiguousarray(x).reshape((-1,) + x.shape[-2:])
    out = np.zeros((planes.shape[0],) + tuple(out_hw), x.dtype)
    _correlate(planes, shifts, weights, out)
    return out.reshape(x.shape[:-2] + tuple(out_hw))


def correlate_vjp(g: np.ndarray, taps: Taps, in_hw: Tuple[int, int]) -> np.ndarray:
    """The transpose of ``correlate``: every output's gradient scattered back through the same shifts,
    (..., in_hw). Computed as a correlation of g, zero-padded by the largest shifts, with the
    shifts reflected: out[p, q] = sum k[a, b] g[p - a, q - b]."""
    top, left = max(a for a, _, _ in taps), max(b for _, b, _ in taps)
    h, w = g.shape[-2:]
    padded = np.zeros(g.shape[:-2] + (in_hw[0] + top, in_hw[1] + left), g.dtype)
    padded[..., top:top + h, left:left + w] = g
    return correlate(padded, tuple((top - a, left - b, k) for a, b, k in taps), in_hw)


def _tap_arrays(taps: Taps, dtype) -> Tuple[np.ndarray, np.ndarray]:
    """(shifts (T, 2) int64, weights (T,) in dtype) of a tap list."""
    return (np.array([(a, b) for a, b, _ in taps], np.int64).reshape(-1, 2),
            np.array([k for _, _, k in taps], dtype))


# Each output row is summed tap by tap in a fresh buffer (which aliases nothing, so the inner loop
# along the row vectorises): about twice as fast as numpy's shifted slices, with no temporary per tap.
@numba.njit(nogil=True, cache=True)
def _correlate(x, shifts, weights, out):  # pragma: no cover - compiled
    h, w = out.shape[1], out.shape[2]
    acc = np.empty(w, out.dtype)
    for n in range(out.shape[0]):
        for i in range(h):
            acc[:] = 0
            for t in range(weights.shape[0]):
                k, src = weights[t], x[n, i + shifts[t, 0], shifts[t, 1]:shifts[t, 1] + w]
                for j in range(w):
                    acc[j] += k * src[j]
            out[n, i, :] = acc


class Blur:
    """Convolution of each channel with one kernel (kh, kw) summing to 1; output the input's size.
    Computes in the input's dtype; InputError (at construction) for an unusable kernel."""

    def __init__(self, kernel: np.ndarray):
        self.layout = blur_layout(kernel)

    def out_size(self, h: int, w: int) -> Tuple[int, int]:
        return h, w

    def _padded(self, x: np.ndarray) -> np.ndarray:
        left, right, top, bottom = self.layout.pad
        return np.pad(x, [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)], mode="edge")

    def apply(self, x: np.ndarray) -> np.ndarray:
        h, w = x.shape[-2:]
        padded, lay = self._padded(x), self.layout
        if lay.separable:
            rows = correlate(padded, lay.row_taps, (padded.shape[-2], w))
            return correlate(rows, lay.col_taps, (h, w))
        if lay.direct:
            return correlate(padded, lay.taps, (h, w))
        return _fft_correlate(padded, lay.flipped, (h, w))

    def vjp(self, g: np.ndarray) -> np.ndarray:
        """The adjoint of ``apply`` at any point (it is linear): (B, C, H, W) -> (B, C, H, W)."""
        h, w = g.shape[-2:]
        lay = self.layout
        left, right, top, bottom = lay.pad
        padded_hw = (h + top + bottom, w + left + right)
        if lay.separable:
            rows = correlate_vjp(g, lay.col_taps, (padded_hw[0], w))
            padded = correlate_vjp(rows, lay.row_taps, padded_hw)
        elif lay.direct:
            padded = correlate_vjp(g, lay.taps, padded_hw)
        else:
            padded = _fft_correlate_vjp(g, lay.flipped, padded_hw)
        return edge_pad_vjp(padded, lay.pad)


def _fft_correlate(padded: np.ndarray, kernel: np.ndarray, out_hw: Tuple[int, int]) -> np.ndarray:
    """'valid' correlation of (..., H + kh - 1, W + kw - 1) with (kh, kw) via the real FFT (no wrap-around)."""
    shape = padded.shape[-2:]
    kernel = kernel[::-1, ::-1].astype(padded.dtype)  # numpy's FFT keeps float32 in float32
    full = np.fft.irfft2(np.fft.rfft2(padded, s=shape) * np.fft.rfft2(kernel, s=shape), s=shape)
    kh, kw = kernel.shape
    return full[..., kh - 1:kh - 1 + out_hw[0], kw - 1:kw - 1 + out_hw[1]].astype(padded.dtype)


def _fft_correlate_vjp(g: np.ndarray, kernel: np.ndarray, padded_hw: Tuple[int, int]) -> np.ndarray:
    """The transpose of ``_fft_correlate``: the full convolution of g with the kernel, (..., padded_hw)."""
    spectrum = np.fft.rfft2(kernel.astype(g.dtype), s=padded_hw)
    full = np.fft.irfft2(np.fft.rfft2(g, s=padded_hw) * spectrum, s=padded_hw)
    return full.astype(g.dtype)


# the registry's interface (flowrt.numeric.degradations): --blur SPEC -> kernel -> Blur stage
def parse_option(spec: str) -> np.ndarray:
    """--blur's value -> the (kh, kw) float32 kernel (``kernels.parse_blur``: gaussian:S or a file)."""
    return parse_blur(spec)


def stage_for(kernel: np.ndarray) -> "Blur":
    return Blur(kernel)


def describe(kernel: np.ndarray) -> str:
    return f"deblur with a {kernel.shape[1]}x{kernel.shape[0]} kernel"
