"""The JPEG data term: the observation is the file's quantised DCT coefficients.

An encoder maps RGB (0-255) to JFIF YCbCr, averages chroma over its subsampling footprint
(4:2:0: 2x2), pads each plane to whole MCUs by edge replication, shifts by -128, takes the
orthonormal 8x8 DCT of every block and stores k = round(c / q). So for a candidate image z the
coefficient c(z) is differentiable in z, and an observed k says only that the true coefficient,
plus the Gaussian noise n (std s) added before compression, lay in [q (k - 1/2), q (k + 1/2)]:

    -log p(k | z) = -log( Phi((q (k + 1/2) - c) / s) - Phi((q (k - 1/2) - c) / s) )

computed stably (and fast: no subnormals, no masking) in log space. s per component is the std the pixel noise sigma takes in that
coefficient domain, floored at NOISE_FLOOR_255 (rounding to 8 bits and integer DCT error).
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from flowrt.errors import InputError
from flowrt.io.jpeg_coefficients import JpegInfo
from .base import Likelihood
from .noise import NOISE_FLOOR_255

# JFIF full-range RGB -> YCbCr rows (offsets of 128 on chroma cancel the -128 level shift)
YCBCR = np.array([[0.299, 0.587, 0.114],
                  [-0.168736, -0.331264, 0.5],
                  [0.5, -0.418688, -0.081312]], np.float64)
LUMA_LEVEL_SHIFT = 128.0
LN2 = math.log(2.0)
SQRT_HALF = math.sqrt(0.5)
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
ASYMPTOTIC_BELOW = -8.0


def dct_matrix() -> np.ndarray:
    """Orthonormal 8-point DCT-II: coefficients = D @ block @ D.T (JPEG's FDCT)."""
    n = np.arange(8)
    d = np.cos((2 * n[None, :] + 1) * n[:, None] * np.pi / 16) * np.sqrt(2 / 8)
    d[0] /= np.sqrt(2)
    return d


def log_ndtr(x: Tensor) -> Tensor:
    """log Phi(x), the standard normal log-CDF: erfc above x = -8, its asymptotic series below.

    Absolute error < 1e-6. Both branches run on clamped inputs (finite everywhere, so where()
    passes no NaN gradient) and never produce subnormal floats, which cost ~40x on x86 CPUs.
    """
    near = torch.log(0.5 * torch.special.erfc(x.clamp(min=ASYMPTOTIC_BELOW) * -SQRT_HALF))
    t = x.clamp(max=ASYMPTOTIC_BELOW)
    r = 1.0 / (t * t)
    # Phi(t) = phi(t) / |t| * (1 - 1/t^2 + 3/t^4 - 15/t^6 + 105/t^8 ...) as t -> -inf
    tail = -0.5 * t * t - torch.log(-t) - HALF_LOG_2PI + torch.log1p(r * (-1 + r * (3 + r * (-15 + 105 * r))))
    return torch.where(x > ASYMPTOTIC_BELOW, near, tail)


def log1mexp(d: Tensor) -> Tensor:
    """log(1 - exp(d)) for d < 0, accurate at both ends and NaN-free in both branches' gradients.

    Below d = -80 the answer is 0 to float precision; clamping there keeps exp() off subnormals.
    """
    near = torch.log(-torch.expm1(d.clamp(min=-LN2)))
    far = torch.log1p(-torch.exp(d.clamp(min=-80.0, max=-LN2)))
    return torch.where(d > -LN2, near, far)


def log_interval_prob(center: Tensor, half_width: Tensor, mean: Tensor, std) -> Tensor:
    """log P(|mean + std * N(0, 1) - center| < half_width), elementwise.

    The probability is symmetric about the centre, so the interval is reflected to lie at
    t = -|center - mean| / std <= 0, where its mass is in the lower tail and log Phi is accurate:
    log(Phi(b) - Phi(a)) = log Phi(b) + log(1 - Phi(a) / Phi(b)), a = t - h, b = t + h.
    """
    t = -(center - mean).abs() / std
    h = half_width / std
    log_a, log_b = log_ndtr(t - h), log_ndtr(t + h)
    tiny = torch.finfo(log_a.dtype).tiny ** 0.5
    return log_b + log1mexp((log_a - log_b).clamp(max=-tiny))


def _noise_gain(component: int, pooled: int, components: int) -> float:
    """Std of one coefficient per unit of i.i.d. RGB pixel noise (orthonormal DCT keeps it)."""
    row = YCBCR[component] if components == 3 else YCBCR[0]
    return float(np.linalg.norm(row)) / math.sqrt(pooled)


class JpegLikelihood(Likelihood):
    """nll(z) for z (B, 3, H, W) in [0, 1] against a JPEG file's coefficients, (B,) nats.

    observed: optional bool (H, W), True = pixel observed; a block any of whose pixels is a hole
    is left out (the hole's content in the file is not the scene's).
    """

    def __init__(self, info: JpegInfo, sigma_255: Optional[float] = None,
                 observed: Optional[np.ndarray] = None):
        self.hw = (info.height, info.width)
        self.hmax = max(h for h, _ in info.sampling)
        self.vmax = max(v for _, v in info.sampling)
        self.pool: List[Tuple[int, int]] = []
        for h, v in info.sampling:
            if self.hmax % h or self.vmax % v:
                raise InputError(f"unsupported JPEG chroma sampling {info.sampling}; use --jpeg off")
            self.pool.append((self.vmax // v, self.hmax // h))
        self.components = len(info.sampling)
        if self.components not in (1, 3):
            raise InputError(f"a JPEG with {self.components} components is not YCbCr; use --jpeg off")
        coefs = info.coefficients()
        self.k = [torch.from_numpy(c.astype(np.float32)) for c in coefs]
        self.q = [torch.from_numpy(q.astype(np.float32)) for q in info.quant]
        sigma = 0.0 if sigma_255 is None else float(sigma_255)
        self.noise_given = sigma > 0
        self.std = [math.hypot(sigma * _noise_gain(c, ph * pw, self.components), NOISE_FLOOR_255)
                    for c, (ph, pw) in enumerate(self.pool)]
        self.ycc = torch.from_numpy(YCBCR.astype(np.float32))
        self.dct = torch.from_numpy(dct_matrix().astype(np.float32))
        self.valid = [torch.from_numpy(v) for v in self._valid_blocks(observed)]

    def _padded_size(self) -> Tuple[int, int]:
        mh, mw = 8 * self.vmax, 8 * self.hmax
        return -(-self.hw[0] // mh) * mh, -(-self.hw[1] // mw) * mw

    def _planes(self, image: Tensor, c: int) -> Tensor:
        """(B, 1, H, W) plane -> edge-padded to whole MCUs, pooled, cropped to the coded blocks."""
        ph, pw = self._padded_size()
        plane = F.pad(image, (0, pw - self.hw[1], 0, ph - self.hw[0]), mode="replicate")
        if self.pool[c] != (1, 1):
            plane = F.avg_pool2d(plane, self.pool[c])
        by, bx = self.k[c].shape[:2]
        return plane[:, 0, :8 * by, :8 * bx]

    def _valid_blocks(self, observed: Optional[np.ndarray]) -> List[np.ndarray]:
        out = []
        for c, k in enumerate(self.k):
            if observed is None:
                out.append(np.ones(k.shape[:2], np.float32))
                continue
            m = torch.from_numpy(np.asarray(observed, np.float32))[None, None]
            pooled = -F.max_pool2d(-self._planes(m, c)[:, None], 8)  # min over each block
            out.append(pooled[0, 0].numpy().astype(np.float32))
        return out

    def coefficients(self, z: Tensor) -> List[Tensor]:
        """Unquantised DCT coefficients of z per component, (B, by, bx, 8, 8), 0-255 scale."""
        if tuple(z.shape[-2:]) != self.hw:
            raise ValueError(f"JPEG term built for {self.hw}, got {tuple(z.shape[-2:])}")
        ycc = torch.einsum("ij,bjhw->bihw", self.ycc.to(z.dtype), z * 255.0)
        ycc = ycc.clone()
        ycc[:, 0] = ycc[:, 0] - LUMA_LEVEL_SHIFT
        out = []
        for c in range(self.components):
            plane = self._planes(ycc[:, c:c + 1], c)
            b, h, w = plane.shape
            blocks = plane.reshape(b, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)
            d = self.dct.to(z.dtype)
            out.append(d @ blocks @ d.T)
        return out

    def _interval_nll(self, coefs: List[Tensor], ks: List[Tensor]) -> Tensor:
        """-log P(quantised index k | coefficients), summed over the observed blocks, (B,) nats."""
        total = coefs[0].new_zeros(coefs[0].shape[0])
        for c, (coef, k) in enumerate(zip(coefs, ks)):
            q = self.q[c].to(coef.dtype)
            logp = log_interval_prob(q * k, 0.5 * q, coef, self.std[c])
            total = total - (logp * self.valid[c][..., None, None].to(coef.dtype)).flatten(1).sum(1)
        return total

    def nll(self, z: Tensor) -> Tensor:
        return self._interval_nll(self.coefficients(z), [k.to(z.dtype) for k in self.k])

    def expected_nll(self, z: Tensor, draws: int = 2) -> Optional[Tensor]:
        """Monte Carlo over the model's own story: coefficients of z plus Gaussian noise of each
        component's std, quantised by the file's tables, scored as nll does (fixed seed)."""
        if not self.noise_given:
            return None
        generator = torch.Generator(device=z.device).manual_seed(0)
        coefs = self.coefficients(z)
        total = z.new_zeros(z.shape[0])
        for _ in range(draws):
            ks = [torch.round((coef + self.std[c] * torch.randn(coef.shape, generator=generator, device=z.device,
                                                                  dtype=z.dtype)) / self.q[c].to(z.dtype))
                  for c, coef in enumerate(coefs)]
            total = total + self._interval_nll(coefs, ks)
        return total / draws
