"""Blind estimate of additive Gaussian noise (``--sigma auto``).

Immerkaer's method: the 3x3 kernel [[1,-2,1],[-2,4,-2],[1,-2,1]] annihilates
locally linear image content, so on flat and smoothly shaded regions its output
is noise alone, with std 6 sigma. Edges and texture leak through, so only the
pixels whose local gradient is below a low percentile are used (the flattest
part of the image), and the noise level is read off with a robust MAD rather
than a mean.
"""
from __future__ import annotations

import numpy as np

_MAD_TO_STD = 1.4826


def _filter3(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Valid-mode 3x3 correlation of a 2-D float array: (H-2, W-2)."""
    h, w = img.shape
    out = np.zeros((h - 2, w - 2), dtype=np.float64)
    for dy in range(3):
        for dx in range(3):
            if kernel[dy, dx]:
                out += kernel[dy, dx] * img[dy:dy + h - 2, dx:dx + w - 2]
    return out


_LAPLACE_DIFF = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
_SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)


def estimate_sigma(rgb: np.ndarray, flat_fraction: float = 0.3) -> float:
    """Noise std of an (H, W, 3) or (H, W) image in [0, 1], returned on the 0-255 scale.

    ``flat_fraction`` of the pixels with the weakest gradient are used. Returns 0
    for images too small to tell (under 8x8).
    """
    img = np.asarray(rgb, dtype=np.float64)
    if img.ndim == 3:
        img = img.mean(axis=2) if img.shape[2] > 1 else img[..., 0]
        # averaging three channels of independent noise divides its std by sqrt(3)
        channel_gain = np.sqrt(3.0) if np.asarray(rgb).shape[2] == 3 else 1.0
    else:
        channel_gain = 1.0
    if min(img.shape) < 8:
        return 0.0
    response = _filter3(img, _LAPLACE_DIFF)
    grad = np.hypot(_filter3(img, _SOBEL_X), _filter3(img, _SOBEL_X.T))
    flat = grad <= np.quantile(grad, flat_fraction)
    values = response[flat]
    mad = np.median(np.abs(values - np.median(values)))
    sigma = _MAD_TO_STD * mad / 6.0 * channel_gain
    return float(sigma * 255.0)
