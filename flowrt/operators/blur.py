"""Blur with a known kernel: true convolution (the kernel is flipped), same size, edges replicated.

The kernel's centre is at (kh // 2, kw // 2), as scipy.ndimage.convolve places it. A rank-1
kernel (a Gaussian, a box) runs as two 1-D passes and a small general kernel as one 2-D pass,
each a sum of shifted slices with its own adjoint (on one CPU thread 3-5x faster than
torch's single-channel conv2d, forward and backward); a large general kernel runs through the FFT.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from flowrt.errors import InputError
from .base import Degradation

MAX_KERNEL_SIDE = 257
MAX_GAUSSIAN_STD = 40.0
DIRECT_MAX_TAPS = 64  # non-zero taps above which a non-separable kernel goes through the FFT


def gaussian_kernel(std: float) -> np.ndarray:
    """Normalised 2-D Gaussian of standard deviation `std` pixels, side 2 * ceil(3 std) + 1."""
    radius = max(1, int(math.ceil(3 * std)))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (t / std) ** 2)
    k = np.outer(g, g)
    return (k / k.sum()).astype(np.float32)


def _check_kernel(kernel: np.ndarray, what: str) -> np.ndarray:
    k = np.asarray(kernel, np.float64)
    if k.ndim == 3 and k.shape[2] in (1, 3, 4):
        k = k[..., :3].mean(axis=2) if k.shape[2] >= 3 else k[..., 0]
    if k.ndim != 2 or k.size == 0:
        raise InputError(f"blur kernel {what} must be a 2-D array, got shape {k.shape}")
    if max(k.shape) > MAX_KERNEL_SIDE:
        raise InputError(f"blur kernel {what} is {k.shape[1]}x{k.shape[0]}; at most {MAX_KERNEL_SIDE} a side")
    if not np.isfinite(k).all():
        raise InputError(f"blur kernel {what} holds NaN or infinite values")
    if k.min() < -1e-3 * max(k.max(), 0):
        raise InputError(f"blur kernel {what} has negative weights")
    k = np.clip(k, 0, None)
    if k.sum() <= 0:
        raise InputError(f"blur kernel {what} sums to zero")
    return (k / k.sum()).astype(np.float32)


def parse_blur(spec: str) -> np.ndarray:
    """'gaussian:S' (std S pixels, 0 < S <= 40) or a kernel file (.npy or an image) -> (kh, kw) float32 summing to 1."""
    text = str(spec).strip()
    if text.lower().startswith("gaussian:"):
        try:
            std = float(text.split(":", 1)[1])
        except ValueError:
            raise InputError(f"bad blur spec {spec!r}: expected gaussian:S with S a number of pixels") from None
        if not (0 < std <= MAX_GAUSSIAN_STD):
            raise InputError(f"bad blur spec {spec!r}: the std must be in (0, {MAX_GAUSSIAN_STD}] pixels")
        return gaussian_kernel(std)
    path = Path(text)
    if not path.is_file():
        raise InputError(f"bad blur spec {spec!r}: expected gaussian:S or a kernel file (.npy, .png, .tif)")
    if path.suffix.lower() == ".npy":
        try:
            kernel = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"{path}: not a readable .npy kernel ({exc})") from None
    else:
        from flowrt.io.image_file import read_image

        kernel = read_image(path).rgb
    return _check_kernel(kernel, str(path))


def _rank_one(k: np.ndarray):
    """(column, row) with outer(column, row) == k when k is separable (rel. error < 1e-6), else None."""
    u, s, vt = np.linalg.svd(k.astype(np.float64))
    if s.size > 1 and s[1] > 1e-6 * s[0]:
        return None
    col, row = u[:, 0] * math.sqrt(s[0]), vt[0] * math.sqrt(s[0])
    if col.sum() < 0:
        col, row = -col, -row
    return col.astype(np.float32), row.astype(np.float32)


class _ShiftCorrelate(torch.autograd.Function):
    """'valid' 2-D correlation with fixed taps: out[..., i, j] = sum k[a, b] x[..., i + a, j + b].

    A sum of shifted slices; its backward scatters the gradient back through the same shifts.
    """

    @staticmethod
    def forward(ctx, x: Tensor, taps: tuple, out_hw: tuple) -> Tensor:
        h, w = out_hw
        ctx.taps, ctx.in_hw = taps, x.shape[-2:]
        (a, b, k), rest = taps[0], taps[1:]
        out = x[..., a:a + h, b:b + w] * k
        for a, b, k in rest:
            out.add_(x[..., a:a + h, b:b + w], alpha=k)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        h, w = grad.shape[-2:]
        grad_in = grad.new_zeros(grad.shape[:-2] + tuple(ctx.in_hw))
        for a, b, k in ctx.taps:
            grad_in[..., a:a + h, b:b + w].add_(grad, alpha=k)
        return grad_in, None, None


def _taps(kernel: np.ndarray) -> tuple:
    """((row, col, weight), ...) of the kernel's entries that matter (|w| > 1e-9 max), weights as floats."""
    keep = np.abs(kernel) > 1e-9 * np.abs(kernel).max()
    return tuple((int(a), int(b), float(kernel[a, b])) for a, b in zip(*np.nonzero(keep)))


class Blur(Degradation):
    """Convolution of each channel with one kernel (kh, kw) summing to 1; output the input's size."""

    def __init__(self, kernel: np.ndarray):
        k = _check_kernel(kernel, "")
        self.shape = k.shape
        kh, kw = k.shape
        # true convolution = correlation with the flipped kernel; padding puts the centre at (kh//2, kw//2)
        self.pad = (kw - 1 - kw // 2, kw // 2, kh - 1 - kh // 2, kh // 2)
        flipped = np.ascontiguousarray(k[::-1, ::-1])
        self.kernel = torch.from_numpy(flipped)
        factors = _rank_one(flipped)
        self.separable = factors is not None
        if self.separable:
            self.row_taps = _taps(factors[1][None, :])
            self.col_taps = _taps(factors[0][:, None])
        self.taps = _taps(flipped)

    def apply(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        padded = F.pad(x.reshape(b * c, 1, h, w), self.pad, mode="replicate")
        if self.separable:
            rows = _ShiftCorrelate.apply(padded, self.row_taps, (padded.shape[-2], w))
            out = _ShiftCorrelate.apply(rows, self.col_taps, (h, w))
        elif len(self.taps) <= DIRECT_MAX_TAPS:
            out = _ShiftCorrelate.apply(padded, self.taps, (h, w))
        else:
            out = _fft_correlate(padded, self.kernel.to(x.dtype), (h, w))
        return out.reshape(b, c, h, w)


def _fft_correlate(padded: Tensor, kernel: Tensor, out_hw: Tuple[int, int]) -> Tensor:
    """'valid' correlation of (N, 1, H + kh - 1, W + kw - 1) with (kh, kw) via the real FFT."""
    ph, pw = padded.shape[-2:]
    spectrum = torch.fft.rfft2(padded, s=(ph, pw))
    kernel_spectrum = torch.fft.rfft2(kernel.flip(0, 1), s=(ph, pw))
    full = torch.fft.irfft2(spectrum * kernel_spectrum, s=(ph, pw))
    kh, kw = kernel.shape
    return full[..., kh - 1:kh - 1 + out_hw[0], kw - 1:kw - 1 + out_hw[1]]
