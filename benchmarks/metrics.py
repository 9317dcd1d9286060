"""Image quality metrics: PSNR, SSIM (scikit-image) and MS-SSIM (Wang, Simoncelli, Bovik 2003).

All functions take two (H, W, 3) images with values in [0, 1] (float) or uint8 (divided by 255)
and return a float, higher is better. The reference comes first.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import correlate1d

# Wang et al.'s exponents for scales 1 (finest) .. 5; they sum to 1.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_WINDOW_SIZE = 11
_WINDOW_SIGMA = 1.5
_K1, _K2 = 0.01, 0.03


def as_unit_float(image: np.ndarray) -> np.ndarray:
    """uint8 -> float64 / 255; float arrays are returned as float64 unchanged."""
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    return np.asarray(image, dtype=np.float64)


def psnr(reference: np.ndarray, image: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for data range 1 (inf for identical images)."""
    error = np.mean((as_unit_float(reference) - as_unit_float(image)) ** 2)
    return float("inf") if error == 0 else float(10.0 * np.log10(1.0 / error))


def ssim(reference: np.ndarray, image: np.ndarray) -> float:
    """scikit-image's structural_similarity, data_range 1, over the colour channels (its
    default 7x7 uniform window), the usual quick SSIM."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(as_unit_float(reference), as_unit_float(image),
                                       data_range=1.0, channel_axis=-1))


def _gaussian_window() -> np.ndarray:
    offsets = np.arange(_WINDOW_SIZE) - (_WINDOW_SIZE - 1) / 2
    window = np.exp(-offsets ** 2 / (2 * _WINDOW_SIGMA ** 2))
    return window / window.sum()


def _filter_valid(plane: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable 2-D correlation keeping only positions where the window fits inside."""
    half = len(window) // 2
    out = correlate1d(correlate1d(plane, window, axis=0), window, axis=1)
    return out[half:plane.shape[0] - half, half:plane.shape[1] - half]


def ssim_terms(reference: np.ndarray, image: np.ndarray) -> tuple[float, float]:
    """(mean SSIM, mean contrast-structure term) of two 2-D planes in [0, 1], Gaussian window
    11x11, sigma 1.5, over the 'valid' region (both planes at least 11x11)."""
    window = _gaussian_window()
    c1, c2 = _K1 ** 2, _K2 ** 2
    mu_x, mu_y = _filter_valid(reference, window), _filter_valid(image, window)
    var_x = _filter_valid(reference * reference, window) - mu_x ** 2
    var_y = _filter_valid(image * image, window) - mu_y ** 2
    cov = _filter_valid(reference * image, window) - mu_x * mu_y
    contrast_structure = (2 * cov + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x ** 2 + mu_y ** 2 + c1)
    return float(np.mean(luminance * contrast_structure)), float(np.mean(contrast_structure))


def _halve(plane: np.ndarray) -> np.ndarray:
    """2x2 mean then subsample, edge-replicating an odd last row/column (as the reference
    MATLAB code's symmetric imfilter with ones(2)/4 does)."""
    if plane.shape[0] % 2:
        plane = np.concatenate([plane, plane[-1:]], axis=0)
    if plane.shape[1] % 2:
        plane = np.concatenate([plane, plane[:, -1:]], axis=1)
    return 0.25 * (plane[0::2, 0::2] + plane[1::2, 0::2] + plane[0::2, 1::2] + plane[1::2, 1::2])


def ms_ssim_scales(height: int, width: int, max_scales: int = 5) -> int:
    """How many scales fit: the coarsest must still hold the 11x11 window, so 5 scales need
    sides >= 176; a 128x128 crop gets 4 and anything under 22 pixels gets 1."""
    scales, side = 1, min(height, width)
    while scales < max_scales and side // 2 ** scales >= _WINDOW_SIZE:
        scales += 1
    return scales


def ms_ssim_plane(reference: np.ndarray, image: np.ndarray, scales: int) -> float:
    """MS-SSIM of two 2-D planes in [0, 1] over ``scales`` scales.

    prod_{j<M} cs_j^{w_j} * ssim_M^{w_M} with Wang et al.'s weights; with fewer than 5 scales
    the first ``scales`` weights are renormalised to sum to 1. Negative terms (anti-correlated
    planes) are clipped to 0 so the fractional powers stay real.
    """
    weights = np.asarray(MS_SSIM_WEIGHTS[:scales])
    weights = weights / weights.sum()
    value = 1.0
    for index in range(scales):
        mean_ssim, mean_cs = ssim_terms(reference, image)
        term = mean_ssim if index == scales - 1 else mean_cs
        value *= max(term, 0.0) ** weights[index]
        reference, image = _halve(reference), _halve(image)
    return float(value)


def ms_ssim(reference: np.ndarray, image: np.ndarray) -> float:
    """MS-SSIM of two (H, W, 3) images: the mean of the per-channel (R, G, B) values, with the
    scale count adapted to the image size (see ``ms_ssim_scales``)."""
    reference, image = as_unit_float(reference), as_unit_float(image)
    if reference.shape != image.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {image.shape}")
    if min(reference.shape[:2]) < _WINDOW_SIZE:
        raise ValueError(f"MS-SSIM needs sides >= {_WINDOW_SIZE}, got {reference.shape[:2]}")
    scales = ms_ssim_scales(*reference.shape[:2])
    return float(np.mean([ms_ssim_plane(reference[..., c], image[..., c], scales)
                          for c in range(reference.shape[2])]))
