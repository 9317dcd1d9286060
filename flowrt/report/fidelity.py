"""Fidelity to a clean reference: PSNR and SSIM of 8-bit RGB images, for ``flowrt compare --reference``.

Definitions match the benchmarks' (``benchmarks/metrics.py``): PSNR in dB for data range 1 (inf for
identical images); SSIM as scikit-image's ``structural_similarity`` (7x7 uniform window, sample
covariance, K1 = 0.01, K2 = 0.03, data range 1, the mean over the positions where the window fits,
averaged over the colour channels), computed here with numpy alone (scikit-image is no runtime
dependency).
"""
from __future__ import annotations

import numpy as np

__all__ = ["psnr", "ssim"]

_WIN = 7


def _unit(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) / 255.0 if image.dtype == np.uint8 else np.asarray(image, np.float64)


def psnr(reference: np.ndarray, image: np.ndarray) -> float:
    """dB; reference and image (H, W, C) uint8 or float in [0, 1], of one shape."""
    error = float(np.mean((_unit(reference) - _unit(image)) ** 2))
    return float("inf") if error == 0 else 10.0 * np.log10(1.0 / error)


def _box_mean(plane: np.ndarray) -> np.ndarray:
    """Mean over every 7x7 window that fits inside ``plane`` (H-6, W-6)."""
    total = np.cumsum(np.cumsum(np.pad(plane, ((1, 0), (1, 0))), axis=0), axis=1)
    sums = total[_WIN:, _WIN:] - total[:-_WIN, _WIN:] - total[_WIN:, :-_WIN] + total[:-_WIN, :-_WIN]
    return sums / (_WIN * _WIN)


def _ssim_plane(x: np.ndarray, y: np.ndarray) -> float:
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    n = _WIN * _WIN
    mx, my = _box_mean(x), _box_mean(y)
    vx = (_box_mean(x * x) - mx * mx) * n / (n - 1)
    vy = (_box_mean(y * y) - my * my) * n / (n - 1)
    cov = (_box_mean(x * y) - mx * my) * n / (n - 1)
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def ssim(reference: np.ndarray, image: np.ndarray) -> float:
    """Mean SSIM over channels; both (H, W, C) with H, W >= 7."""
    x, y = _unit(reference), _unit(image)
    return float(np.mean([_ssim_plane(x[..., c], y[..., c]) for c in range(x.shape[2])]))
