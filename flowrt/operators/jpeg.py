"""The JPEG data term: the observation is the file's quantised DCT coefficients.

An encoder maps RGB (0-255) to JFIF YCbCr, averages chroma over its subsampling footprint
(4:2:0: 2x2), pads each plane to whole MCUs by edge replication, shifts by -128, takes the
orthonormal 8x8 DCT of every block and stores k = round(c / q). So for a candidate image z the
coefficient c(z) is differentiable in z, and an observed k says only that the true coefficient,
plus the Gaussian noise n (std s) added before compression, lay in [q (k - 1/2), q (k + 1/2)]:

    -log p(k | z) = -log( Phi((q (k + 1/2) - c) / s) - Phi((q (k - 1/2) - c) / s) )

computed stably (and fast: no subnormals, no masking) in log space. s per component is the std the pixel noise sigma takes in that
coefficient domain, floored at NOISE_FLOOR_255 (rounding to 8 bits and integer DCT error).
The layout (footprints, tables, stds, observed blocks) is ``flowrt.numeric.jpeg_layout``'s, shared
with the numpy engine; the constants of the log-CDF are ``flowrt.numeric.normal``'s.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from flowrt.io.jpeg_coefficients import JpegInfo
from flowrt.numeric.jpeg_layout import LUMA_LEVEL_SHIFT, YCBCR, JpegLayout, dct_matrix, standard_normal_draws
from flowrt.numeric.normal import ASYMPTOTIC_BELOW, HALF_LOG_2PI, LN2, SQRT_HALF
from .base import Likelihood


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


class JpegLikelihood(Likelihood):
    """nll(z) for z (B, 3, H, W) in [0, 1] against a JPEG file's coefficients, (B,) nats.

    observed: optional bool (H, W), True = pixel observed; a block any of whose pixels is a hole
    is left out (the hole's content in the file is not the scene's).
    """

    def __init__(self, info: JpegInfo, sigma_255: Optional[float] = None,
                 observed: Optional[np.ndarray] = None):
        layout = JpegLayout(info, sigma_255, observed)
        self.layout = layout
        self.hw, self.pool, self.components = layout.hw, layout.pool, layout.components
        self.k = [torch.from_numpy(k) for k in layout.k]
        self.q = [torch.from_numpy(q) for q in layout.q]
        self.noise_given, self.std = layout.noise_given, layout.std
        self.ycc = torch.from_numpy(YCBCR.astype(np.float32))
        self.dct = torch.from_numpy(dct_matrix().astype(np.float32))
        self.valid = [torch.from_numpy(v) for v in layout.valid]

    def _planes(self, image: Tensor, c: int) -> Tensor:
        """(B, 1, H, W) plane -> edge-padded to whole MCUs, pooled, cropped to the coded blocks."""
        ph, pw = self.layout.padded_size()
        plane = F.pad(image, (0, pw - self.hw[1], 0, ph - self.hw[0]), mode="replicate")
        if self.pool[c] != (1, 1):
            plane = F.avg_pool2d(plane, self.pool[c])
        rows, cols = self.layout.coded_size(c)
        return plane[:, 0, :rows, :cols]

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
        component's std, quantised by the file's tables, scored as nll does (the fixed draws of
        ``standard_normal_draws``, the numpy engine's too)."""
        if not self.noise_given:
            return None
        coefs = self.coefficients(z)
        total = z.new_zeros(z.shape[0])
        for noise in standard_normal_draws([tuple(coef.shape) for coef in coefs], draws):
            ks = [torch.round((coef + self.std[c] * torch.from_numpy(n).to(device=z.device, dtype=z.dtype))
                              / self.q[c].to(z.dtype)) for c, (coef, n) in enumerate(zip(coefs, noise))]
            total = total + self._interval_nll(coefs, ks)
        return total / draws
