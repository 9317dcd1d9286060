"""Noise clipped at the ends of the range: its mean, and the map that undoes it.

An image file stores values in [0, 1] (0-255 or 0-65535), so Gaussian noise added to a pixel
near black or white is clipped: the noisy pixel is clip(x + sigma Z, 0, 1), whose mean is not x
but

    f(x) = E[clip(x + sigma Z, 0, 1)] = x (Phi(b) - Phi(a)) + sigma (phi(a) - phi(b)) + 1 - Phi(b),
    a = -x / sigma, b = (1 - x) / sigma,

above x near 0 and below it near 1. A denoiser that averages noisy values (every grouped or
Tweedie estimate does) estimates f(x), not x; f is increasing, so the estimate is mapped back
pixel by pixel through its inverse (Foi, "Clipped noisy images: heteroskedastic modeling and
practical denoising", Signal Processing 2009). The clipping happens per RGB value, so this map
works there too, after the denoiser's colour transform is undone: a per-coefficient correction
learned in the opponent-colour DCT domain cannot tell which RGB value clipped
(benchmarks/results/clipped_noise/).

Rounding to integers is left out: it adds noise of std 1/sqrt(12) of a step, unbiased in the mean.
torch-free: numpy and ``flowrt.numeric.normal``.
"""
from __future__ import annotations

import math

import numpy as np

from flowrt.numeric.normal import HALF_LOG_2PI, log_ndtr

_GRID = 4097   # knots of x in [0, 1] for the inverse: steps of 1/4096, below an 8-bit step / 16


def clipped_mean(x: np.ndarray, sigma: float) -> np.ndarray:
    """f(x) = E[clip(x + sigma Z, 0, 1)], float64 of x's shape; x in [0, 1], sigma ([0, 1] units) > 0.
    f(x) >= x near 0, <= x near 1, within 1e-7 of x further than 6 sigma from both ends."""
    x = np.asarray(x, np.float64)
    a, b = -x / sigma, (1.0 - x) / sigma
    cdf_a, cdf_b = np.exp(log_ndtr(a)), np.exp(log_ndtr(b))
    pdf = lambda t: np.exp(-0.5 * t * t - HALF_LOG_2PI)  # noqa: E731
    return x * (cdf_b - cdf_a) + sigma * (pdf(a) - pdf(b)) + (1.0 - cdf_b)


def unclip(estimate: np.ndarray, sigma: float) -> np.ndarray:
    """x with f(x) = ``estimate`` (any shape, [0, 1]): the inverse of ``clipped_mean`` at noise std
    ``sigma`` ([0, 1] units), by linear interpolation on a grid; estimates below f(0) map to 0 and
    above f(1) to 1. float32 of estimate's shape. sigma <= 0 returns the estimate unchanged."""
    estimate = np.asarray(estimate, np.float32)
    if not (math.isfinite(sigma) and sigma > 0):
        return estimate
    grid = np.linspace(0.0, 1.0, _GRID)
    mean = clipped_mean(grid, float(sigma))
    return np.interp(estimate, mean, grid).astype(np.float32)
