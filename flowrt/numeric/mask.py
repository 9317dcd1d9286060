"""Inpainting: the mask stage (zero where unobserved; its own adjoint) and the push-pull hole filling
that starts the MAP; the one implementation (the torch engine reaches the stage through
``flowrt.operators.bridge``).

Masks are bool (h, w), True = observed, given at the observed (degraded) resolution; in a mask file
white marks the holes (``flowrt.numeric.observation`` reads and checks them). Unobserved pixels are
zeroed by the stage and left out of the data term, so only the prior decides them.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from flowrt.numeric.resampling import torch_upsample_matrix


class Mask:
    """x * mask: zero where unobserved. mask: bool (H, W), True = observed."""

    def __init__(self, mask: np.ndarray):
        self.mask = np.ascontiguousarray(mask, np.float32)

    def out_size(self, h: int, w: int) -> Tuple[int, int]:
        return h, w

    def apply(self, x: np.ndarray) -> np.ndarray:
        return x * self.mask.astype(x.dtype)

    def vjp(self, g: np.ndarray) -> np.ndarray:
        """The adjoint of ``apply`` (a diagonal operator: itself)."""
        return g * self.mask.astype(g.dtype)


def _sum_pool(x: np.ndarray) -> np.ndarray:
    """(..., h, w) -> (..., ceil(h/2), ceil(w/2)): sums over 2x2 cells (a last odd row/column alone)."""
    h, w = x.shape[-2:]
    x = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, h % 2), (0, w % 2)])
    return x.reshape(x.shape[:-2] + ((h + 1) // 2, 2, (w + 1) // 2, 2)).sum(axis=(-3, -1))


def _bilinear(x: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """torch's ``F.interpolate(x, size, mode='bilinear', align_corners=False)`` over the last two axes."""
    rows = torch_upsample_matrix(x.shape[-2], size[0], "bilinear").astype(x.dtype)
    cols = torch_upsample_matrix(x.shape[-1], size[1], "bilinear").astype(x.dtype)
    return rows @ x @ cols.T


def fill_holes(image: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Push-pull hole filling: holes take a smooth blend of the observed pixels around them.

    image: (1, C, H, W); observed: (1, 1, H, W) in {0, 1}. Averages observed pixels down a
    pyramid (2x2 cells) until every cell holds some, then interpolates bilinearly back up into the
    holes; observed pixels are kept. No observed pixel at all: 0.5 everywhere.
    """
    if observed.all():
        return image
    h, w = image.shape[-2:]
    if not observed.any():
        return np.full_like(image, 0.5)
    if h == 1 and w == 1:
        return image
    weight_sum = _sum_pool(observed)
    value_sum = _sum_pool(image * observed)
    has = (weight_sum > 0).astype(image.dtype)
    coarse = fill_holes(value_sum / np.maximum(weight_sum, 1e-12), has)
    return np.where(observed > 0, image, _bilinear(coarse, (h, w)))
