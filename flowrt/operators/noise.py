"""Gaussian noise: the observation y = z + n, n ~ N(0, sigma^2) per pixel and channel.

sigma is given on the 0-255 scale by users and kept in [0, 1] units here. A floor of
NOISE_FLOOR_255 (added in quadrature; ``flowrt.numeric.observation``) stands for 8-bit rounding
and model mismatch, so a noiseless chain (sigma None) still has a finite, well-scaled data term.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import Tensor

from flowrt.io.colour import LUMA_601
from .base import Likelihood

LUMA = LUMA_601


class GaussianLikelihood(Likelihood):
    """nll(z) = sum over observed pixels of (z - y)^2 / (2 sigma^2), (B,).

    y: float (H, W, 3) in [0, 1]. weight: optional (H, W) array, 1 where observed, 0 in holes.
    greyscale: the observation is one channel (y's first), compared with z's luma, so a grey
    photo's noise is not counted three times.
    """

    def __init__(self, y: np.ndarray, sigma_255: float, weight: Optional[np.ndarray] = None,
                 greyscale: bool = False, noise_given: bool = False):
        target = torch.from_numpy(np.ascontiguousarray(y, np.float32)).permute(2, 0, 1)[None]
        self.greyscale = greyscale
        self.y = target[:, :1] if greyscale else target
        self.sigma = sigma_255 / 255.0
        w = np.ones(y.shape[:2], np.float32) if weight is None else np.asarray(weight, np.float32)
        self.weight = torch.from_numpy(np.ascontiguousarray(w))[None, None]
        self.luma = torch.tensor(LUMA, dtype=torch.float32).view(1, 3, 1, 1)
        self.noise_given = noise_given

    def nll(self, z: Tensor) -> Tensor:
        if self.greyscale:
            z = (z * self.luma).sum(1, keepdim=True)
        r = (z - self.y) * self.weight
        return r.pow(2).flatten(1).sum(1) / (2 * self.sigma ** 2)

    def expected_nll(self, z: Tensor) -> Optional[Tensor]:
        """Half a nat per observed value: E[r^2 / 2 sigma^2] for r ~ N(0, sigma^2)."""
        if not self.noise_given:
            return None
        count = float(self.weight.sum()) * self.y.shape[1]
        return z.new_full((z.shape[0],), 0.5 * count)
