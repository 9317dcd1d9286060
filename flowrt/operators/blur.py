"""Blur with a known kernel: true convolution (the kernel is flipped), same size, edges replicated.

The kernel's centre is at (kh // 2, kw // 2), as scipy.ndimage.convolve places it; kernels are
parsed, checked and factored in ``flowrt.numeric.kernels`` (shared with the numpy engine). A rank-1
kernel (a Gaussian, a box) runs as two 1-D passes and a small general kernel as one 2-D pass,
each a sum of shifted slices with its own adjoint (faster than torch's single-channel conv2d on
the CPU: benchmarks/results/operator_speed.md); a large general kernel runs through the FFT.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from flowrt.numeric.kernels import blur_layout
from .base import Degradation


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


class Blur(Degradation):
    """Convolution of each channel with one kernel (kh, kw) summing to 1; output the input's size."""

    def __init__(self, kernel: np.ndarray):
        layout = blur_layout(kernel)
        self.shape = layout.flipped.shape
        self.pad = layout.pad
        self.kernel = torch.from_numpy(layout.flipped)
        self.separable, self.direct = layout.separable, layout.direct
        self.row_taps, self.col_taps, self.taps = layout.row_taps, layout.col_taps, layout.taps

    def apply(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        padded = F.pad(x.reshape(b * c, 1, h, w), self.pad, mode="replicate")
        if self.separable:
            rows = _ShiftCorrelate.apply(padded, self.row_taps, (padded.shape[-2], w))
            out = _ShiftCorrelate.apply(rows, self.col_taps, (h, w))
        elif self.direct:
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
