"""Gaussian noise in numpy: y = z + n, n ~ N(0, sigma^2) per pixel and channel; the numpy twin of
``flowrt.operators.noise.GaussianLikelihood``.

    nll(z) = sum over observed values of (z - y)^2 / (2 sigma^2)     (B,) float64 nats
    d nll / dz = weight^2 (z - y) / sigma^2                           like z (the misfit's sign)

Residuals are formed in float64; the gradient comes back in z's dtype.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from flowrt.io.colour import LUMA_601


class GaussianLikelihood:
    """The data term for z (B, 3, h, w) in [0, 1] against y, float (h, w, 3) in [0, 1].

    sigma_255: the noise std on the 0-255 scale (the floor already included). weight: optional
    (h, w), 1 where observed, 0 in holes. greyscale: the observation is one channel (y's first),
    compared with z's luma. noise_given: a noise level was given, so the misfit has an expectation.
    """

    def __init__(self, y: np.ndarray, sigma_255: float, weight: Optional[np.ndarray] = None,
                 greyscale: bool = False, noise_given: bool = False):
        target = np.ascontiguousarray(y, np.float32).transpose(2, 0, 1)[None]
        self.greyscale = greyscale
        self.y = (target[:, :1] if greyscale else target).astype(np.float64)
        self.sigma = sigma_255 / 255.0
        w = np.ones(y.shape[:2], np.float32) if weight is None else np.asarray(weight, np.float32)
        self.weight = w.astype(np.float64)[None, None]
        self.luma = np.array(LUMA_601, np.float64).reshape(1, 3, 1, 1)
        self.noise_given = noise_given

    def _residual(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, np.float64)
        if self.greyscale:
            z = (z * self.luma).sum(1, keepdims=True)
        return (z - self.y) * self.weight

    def nll(self, z: np.ndarray) -> np.ndarray:
        """-log p(y | z), (B,) float64 nats, constants dropped."""
        r = self._residual(z)
        return (r * r).reshape(r.shape[0], -1).sum(1) / (2 * self.sigma ** 2)

    def nll_and_grad(self, z: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(nll (B,) float64, d nll / dz like z in z's dtype)."""
        r = self._residual(z)
        nll = (r * r).reshape(r.shape[0], -1).sum(1) / (2 * self.sigma ** 2)
        grad = r * self.weight / self.sigma ** 2
        if self.greyscale:
            grad = grad * self.luma
        return nll, grad.astype(np.asarray(z).dtype, copy=False)

    def expected_nll(self, z: np.ndarray) -> Optional[np.ndarray]:
        """Half a nat per observed value, (B,) float64; None when no noise level was given."""
        if not self.noise_given:
            return None
        count = float(self.weight.sum()) * self.y.shape[1]
        return np.full(z.shape[0], 0.5 * count)
