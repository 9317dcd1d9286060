"""A fast transform-domain Gaussian denoiser: the MAP's starting point for noisy observations.

Two passes over every overlapping 8x8 patch (stride 1), in an orthonormal opponent colour space
where white noise of std sigma per RGB channel stays white with the same std:

1. hard thresholding: the patch's 2-D DCT coefficients below ``threshold * sigma`` are zeroed
   (the DC term is kept), and the patches are averaged back, each weighted by 1 / (number of
   coefficients kept), so flat patches, which are estimated best, count most;
2. empirical Wiener filtering: the noisy coefficients are shrunk by p^2 / (p^2 + sigma^2), p the
   first pass's coefficient, and averaged back weighted by 1 / sum(shrink^2).

This is BM3D's two-stage recipe without the block matching: far cheaper, and a start close
enough to the answer that the flow prior's MAP needs a fraction of the iterations it needs from
the noisy image (benchmarks/results/map_start/). The DCT is applied separably (8 + 64 taps per
coefficient row instead of 64), and the image is processed in bands of rows so that memory
stays bounded: a band's 64 coefficient planes are the largest tensors alive.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

PATCH = 8
HARD_THRESHOLD = 2.7     # in multiples of sigma; the classical choice for 8x8 DCT hard thresholding
BAND_ROWS = 128          # rows restored per band (memory: about 64 * (BAND_ROWS + 2 * PATCH) * W floats)

# Orthonormal opponent colour transform (rows: luma-like mean, red-blue, green-magenta).
_OPPONENT = torch.tensor([
    [1 / math.sqrt(3), 1 / math.sqrt(3), 1 / math.sqrt(3)],
    [1 / math.sqrt(2), 0.0, -1 / math.sqrt(2)],
    [1 / math.sqrt(6), -2 / math.sqrt(6), 1 / math.sqrt(6)],
], dtype=torch.float64)


def dct_matrix(n: int = PATCH) -> Tensor:
    """(n, n) orthonormal DCT-II matrix: row k is the k-th basis vector (float64)."""
    k = torch.arange(n, dtype=torch.float64)
    m = math.sqrt(2.0 / n) * torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n))
    m[0] /= math.sqrt(2.0)
    return m


class _PatchDct:
    """Every overlapping n x n patch's 2-D DCT: (B, 1, H, W) <-> (B, n*n, H-n+1, W-n+1), channel k*n + l.

    The analysis is one convolution with the n*n basis images (oneDNN runs it faster than the
    separable pair); the synthesis (its adjoint) is separable, where the transposed convolution
    with n*n outputs summed into one plane is the slow direction.
    """

    def __init__(self, n: int, dtype: torch.dtype, device: torch.device):
        m = dct_matrix(n).to(dtype=dtype, device=device)
        self.n = n
        self.vertical = m[:, None, :, None]     # (n, 1, n, 1): coefficient k along rows
        self.horizontal = m[:, None, None, :]   # (n, 1, 1, n): coefficient l along columns
        self.basis = (self.vertical[:, None] * self.horizontal[None]).reshape(n * n, 1, n, n).contiguous()

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.basis)

    def adjoint(self, c: Tensor) -> Tensor:
        """The transpose of ``forward``: overlap-adds every patch's inverse DCT, (B, 1, H, W)."""
        b = c.shape[0]
        h = F.conv_transpose2d(c.reshape(b * self.n, self.n, *c.shape[-2:]), self.horizontal)
        h = h.reshape(b, self.n, *h.shape[-2:])
        return F.conv_transpose2d(h, self.vertical)

    def overlap_count(self, weights: Tensor) -> Tensor:
        """Overlap-add of a per-patch weight (B, 1, h, w) over each patch's n x n pixels."""
        ones = torch.ones(1, 1, self.n, self.n, dtype=weights.dtype, device=weights.device)
        return F.conv_transpose2d(weights, ones)


def _hard_threshold(coef: Tensor, _pilot: Optional[Tensor], sigma: float) -> Tuple[Tensor, Tensor]:
    kept = torch.where(coef.abs() > HARD_THRESHOLD * sigma, coef, 0.0)
    kept[:, 0] = coef[:, 0]                 # the patch mean is never thresholded
    count = (kept != 0).sum(1, keepdim=True, dtype=coef.dtype).clamp_min(1.0)
    return kept, 1.0 / count


def _wiener(coef: Tensor, pilot: Optional[Tensor], sigma: float) -> Tuple[Tensor, Tensor]:
    p2 = pilot * pilot
    gain = p2 / (p2 + sigma * sigma)
    gain[:, 0] = 1.0
    return coef * gain, 1.0 / (gain * gain).sum(1, keepdim=True)


def _filter_channel(noisy: Tensor, pilot: Optional[Tensor], sigma: float, shrink, dct: _PatchDct) -> Tensor:
    """One pass over one channel (B, 1, H, W), band by band; ``shrink(coef, pilot_coef, sigma)``
    returns (shrunk coefficients, per-patch weight); pilot None: the pass needs none."""
    n, (h, w) = dct.n, noisy.shape[-2:]
    pad = n - 1
    mode = "reflect" if min(h, w) > pad else "replicate"
    noisy_p = F.pad(noisy, (pad, pad, pad, pad), mode=mode)
    pilot_p = None if pilot is None else F.pad(pilot, (pad, pad, pad, pad), mode=mode)
    out = torch.empty_like(noisy)
    for r0 in range(0, h, BAND_ROWS):
        r1 = min(h, r0 + BAND_ROWS)
        # patches whose top row lies in [r0, r1 + pad) of the padded image cover output rows r0..r1-1
        rows = slice(r0, r1 + 2 * pad)
        pilot_coef = None if pilot_p is None else dct.forward(pilot_p[..., rows, :])
        coef, weight = shrink(dct.forward(noisy_p[..., rows, :]), pilot_coef, sigma)
        num = dct.adjoint(coef * weight)
        den = dct.overlap_count(weight)
        out[..., r0:r1, :] = (num / den)[..., pad:pad + r1 - r0, pad:pad + w]
    return out


def dct_denoise(y: Tensor, sigma: float, *, greyscale: bool = False) -> Tensor:
    """Denoise y, (B, 3, H, W) in [0, 1], corrupted by white Gaussian noise of std ``sigma`` (in
    [0, 1] units, > 0) per channel; returns (B, 3, H, W) clamped to [0, 1], same dtype and device.

    greyscale: the three channels hold one grey image (one noise draw shared by all three), which is
    denoised once as a single channel.
    """
    if y.dim() != 4 or y.shape[1] != 3:
        raise ValueError(f"expected (B, 3, H, W), got {tuple(y.shape)}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    dct = _PatchDct(PATCH, y.dtype, y.device)
    if greyscale:
        channels = [y.mean(1, keepdim=True)]
    else:
        opp = _OPPONENT.to(dtype=y.dtype, device=y.device)
        z = torch.einsum("ij,bjhw->bihw", opp, y)
        channels = [z[:, c:c + 1] for c in range(3)]
    with torch.no_grad():
        done = []
        for ch in channels:
            pilot = _filter_channel(ch, None, sigma, _hard_threshold, dct)
            done.append(_filter_channel(ch, pilot, sigma, _wiener, dct))
    if greyscale:
        return done[0].expand(-1, 3, -1, -1).clamp(0, 1).contiguous()
    z = torch.cat(done, 1)
    return torch.einsum("ji,bjhw->bihw", _OPPONENT.to(dtype=y.dtype, device=y.device), z).clamp(0, 1)
