"""Inpainting: a mask of observed pixels, given at the observed (degraded) resolution.

In arrays, True = pixel observed. In a mask *file* white marks the holes to fill (the usual
convention of inpainting tools): a pixel whose grey value is >= 0.5 is missing (reading and checking
masks: ``flowrt.numeric.observation``). Unobserved pixels are zeroed by the stage and left out of the
data term, so only the prior decides them.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Degradation


class Mask(Degradation):
    """x * mask: zero where unobserved. mask: bool (H, W), True = observed."""

    def __init__(self, mask: np.ndarray):
        self.mask = torch.from_numpy(np.ascontiguousarray(mask, np.float32))[None, None]

    def apply(self, x: Tensor) -> Tensor:
        return x * self.mask


def fill_holes(image: Tensor, observed: Tensor) -> Tensor:
    """Push-pull hole filling: holes take a smooth blend of the observed pixels around them.

    image: (1, C, H, W); observed: (1, 1, H, W) in {0, 1}. Averages observed pixels down a
    pyramid until every cell holds some, then interpolates back up into the holes.
    """
    if bool(observed.all()):
        return image
    h, w = image.shape[-2:]
    if not bool(observed.any()):
        return torch.full_like(image, 0.5)
    if h == 1 and w == 1:
        return image
    weight_sum = F.avg_pool2d(observed, 2, ceil_mode=True)
    value_sum = F.avg_pool2d(image * observed, 2, ceil_mode=True)
    has = (weight_sum > 0).to(image.dtype)
    coarse = fill_holes(value_sum / weight_sum.clamp_min(1e-12), has)
    up = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return torch.where(observed > 0, image, up)
