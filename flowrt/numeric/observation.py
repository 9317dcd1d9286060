"""What every forward model is told about its observation, checked in one place for both engines.

The noise floor (NOISE_FLOOR_255, added in quadrature to sigma: 8-bit rounding and model mismatch,
so a noiseless chain still has a finite, well-scaled data term), the observed image y (float32
(h, w, 3) in [0, 1]), the mask of observed pixels (bool (h, w), True = observed; in a mask *file*
white marks the holes) and the upscaling factor. ``flowrt.operators`` (torch) and
``flowrt.numeric.chain`` (numpy) both build their chains from a ``ChainSpec``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from flowrt.errors import InputError
from flowrt.io.jpeg_coefficients import JpegInfo

NOISE_FLOOR_255 = 1.0  # std on 0-255: 8-bit rounding (0.29) plus operator mismatch
MAX_SCALE = 16


def effective_sigma_255(sigma: Optional[float]) -> float:
    """sqrt(sigma^2 + floor^2) on the 0-255 scale; InputError for negative or non-finite sigma."""
    if sigma is None:
        return NOISE_FLOOR_255
    if not math.isfinite(sigma) or sigma < 0:
        raise InputError(f"sigma must be a finite number >= 0 (0-255 scale), got {sigma}")
    return math.hypot(float(sigma), NOISE_FLOOR_255)


def read_mask(path: str, hw: Tuple[int, int]) -> np.ndarray:
    """Read a mask image (white = missing) -> bool (H, W), True = observed; InputError on a size mismatch."""
    from flowrt.io.image_file import read_image

    image = read_image(path)
    if (image.rgb.shape[0], image.rgb.shape[1]) != tuple(hw):
        raise InputError(f"{path}: the mask is {image.size[0]}x{image.size[1]} but the image is {hw[1]}x{hw[0]}")
    grey = image.rgb.mean(axis=2)
    return grey < 0.5


def check_mask(mask: np.ndarray, hw: Tuple[int, int]) -> np.ndarray:
    """Validate a bool mask (H, W) against the observed size; InputError if it is wrong or hides everything."""
    m = np.asarray(mask)
    if m.ndim != 2 or m.shape != tuple(hw):
        raise InputError(f"the mask is {m.shape[::-1] if m.ndim == 2 else m.shape} but the image is {hw[1]}x{hw[0]}")
    m = m.astype(bool)
    if not m.any():
        raise InputError("the mask hides every pixel: nothing is observed")
    return m


def check_observed(y: np.ndarray) -> np.ndarray:
    """The observed image as float32 (h, w, 3) clipped to [0, 1]; InputError for a wrong shape or NaN/inf."""
    y = np.asarray(y, np.float32)
    if y.ndim != 3 or y.shape[2] != 3 or y.shape[0] == 0 or y.shape[1] == 0:
        raise InputError(f"the observed image must be (H, W, 3), got {y.shape}")
    if not np.isfinite(y).all():
        raise InputError("the observed image holds NaN or infinite values")
    return np.ascontiguousarray(np.clip(y, 0, 1))


def check_scale(scale) -> int:
    """The upscaling factor as an int 1..MAX_SCALE; InputError otherwise."""
    if int(scale) != scale or not 1 <= int(scale) <= MAX_SCALE:
        raise InputError(f"scale must be a whole number from 1 to {MAX_SCALE}, got {scale}")
    return int(scale)


@dataclass(frozen=True)
class ChainSpec:
    """A checked observation model: observed float32 (h, w, 3) clipped to [0, 1] (the start's source);
    y the same unclipped (the Gaussian data term's target, as given); keep bool (h, w), True = observed;
    restored (H, W) = (h * scale, w * scale); sigma_255 the effective noise std (floor included);
    noise_given: a noise level was given (the misfit then has an expectation); mask: the user's
    mask (None when none was given); jpeg: the file's quantisation or None."""
    observed: np.ndarray
    y: np.ndarray
    keep: np.ndarray
    restored: Tuple[int, int]
    scale: int
    sigma_255: float
    noise_given: bool
    mask: Optional[np.ndarray]
    jpeg: Optional[JpegInfo]
    greyscale: bool


def chain_spec(y: np.ndarray, *, sigma: Optional[float] = None, jpeg: Optional[JpegInfo] = None, scale: int = 1,
               mask: Optional[np.ndarray] = None, greyscale: bool = False) -> ChainSpec:
    """Check what ``build_forward_model`` was told (see there); InputError for anything inconsistent."""
    observed = check_observed(y)
    h, w = observed.shape[:2]
    scale = check_scale(scale)
    sigma_255 = effective_sigma_255(sigma)
    keep = np.ones((h, w), bool) if mask is None else check_mask(mask, (h, w))
    if jpeg is not None and (jpeg.height, jpeg.width) != (h, w):
        raise InputError(f"the JPEG is {jpeg.width}x{jpeg.height} but the observed image is {w}x{h}")
    return ChainSpec(observed, np.asarray(y, np.float32), keep, (h * scale, w * scale), scale, sigma_255, bool(sigma),
                     None if mask is None else keep, jpeg, greyscale)
