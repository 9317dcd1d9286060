"""Gaussian noise: the observation y = z + n, n ~ N(0, sigma^2) per pixel and channel; the one
implementation (the torch engine reaches it through ``flowrt.operators.bridge``).

    nll(z) = sum over observed values of (z - y)^2 / (2 sigma^2)     (B,) float64 nats
    d nll / dz = weight^2 (z - y) / sigma^2                           like z (the misfit's sign)

sigma is given on the 0-255 scale by users and kept in [0, 1] units here; the noise floor is already
in it (``flowrt.numeric.observation``), so a noiseless chain still has a finite, well-scaled data
term. Residuals are formed in z's dtype (one pass each way over float32 images) and summed in float64.
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
        target = np.ascontiguousarray(np.asarray(y, np.float32).transpose(2, 0, 1))[None]
        self.greyscale = greyscale
        self.y = target[:, :1] if greyscale else target
        self.sigma = sigma_255 / 255.0
        w = np.ones(y.shape[:2], np.float32) if weight is None else np.asarray(weight, np.float32)
        self.weight = w[None, None]
        self.holes = weight is not None and not bool((w == 1).all())
        self.luma = np.array(LUMA_601, np.float64).reshape(1, 3, 1, 1)
        self.noise_given = noise_given

    def _residual(self, z: np.ndarray) -> np.ndarray:
        """weight (z - y), (B, 1 or 3, h, w) in z's dtype."""
        z = np.asarray(z)
        if self.greyscale:
            z = (z * self.luma.astype(z.dtype)).sum(1, keepdims=True)
        r = z - self.y.astype(z.dtype, copy=False)
        if self.holes:
            r *= self.weight.astype(z.dtype, copy=False)
        return r

    def _nll_of(self, r: np.ndarray) -> np.ndarray:
        return np.square(r).reshape(r.shape[0], -1).sum(1, dtype=np.float64) / (2 * self.sigma ** 2)

    def curvature_weights(self) -> None:
        """The same curvature at every observed pixel (``flowrt.numeric.base.Likelihood``)."""
        return None

    def nll(self, z: np.ndarray) -> np.ndarray:
        """-log p(y | z), (B,) float64 nats, constants dropped."""
        return self._nll_of(self._residual(z))

    def nll_and_grad(self, z: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(nll (B,) float64, d nll / dz like z in z's dtype)."""
        r = self._residual(z)
        nll = self._nll_of(r)
        grad = r * r.dtype.type(1 / self.sigma ** 2)
        if self.holes:
            grad *= self.weight.astype(r.dtype, copy=False)
        if self.greyscale:
            grad = grad * self.luma.astype(r.dtype)
        return nll, grad

    def expected_nll(self, z: np.ndarray) -> Optional[np.ndarray]:
        """Half a nat per observed value, (B,) float64; None when no noise level was given."""
        if not self.noise_given:
            return None
        count = float(self.weight.sum()) * self.y.shape[1]
        return np.full(z.shape[0], 0.5 * count)
