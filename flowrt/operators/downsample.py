"""Downsampling by an integer factor s, the way Pillow's ``Image.resize((w // s, h // s), BICUBIC)`` does.

Pillow resamples each axis separately. For output pixel i it centres the cubic kernel
(a = -0.5) at (i + 0.5) * scale in input coordinates, widens its support by the scale when
shrinking (an anti-aliasing low-pass), truncates it at the image edge and renormalises the
weights to sum 1. Here those weights are computed once in float64 and applied as a gather plus
weighted sum along each axis, which is differentiable and costs O(size * taps).
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np
import torch
from torch import Tensor

from flowrt.errors import InputError
from .base import Degradation

BICUBIC_SUPPORT = 2.0
BICUBIC_A = -0.5


def _bicubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5, as Pillow's bicubic_filter."""
    x = np.abs(x)
    a = BICUBIC_A
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1, near, np.where(x < 2, far, 0.0))


def pillow_resize_weights(in_size: int, out_size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Pillow's bicubic taps for one axis: (index (out, K) int64, weight (out, K) float64).

    Unused taps have weight 0 and index 0. Mirrors precompute_coeffs in Pillow's Resample.c.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = BICUBIC_SUPPORT * filterscale
    taps = int(math.ceil(support)) * 2 + 1
    index = np.zeros((out_size, taps), np.int64)
    weight = np.zeros((out_size, taps), np.float64)
    for i in range(out_size):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)  # int() truncates like the C cast
        hi = min(int(center + support + 0.5), in_size)
        js = np.arange(lo, hi)
        w = _bicubic((js - center + 0.5) / filterscale)
        total = w.sum()
        index[i, :len(js)] = js
        weight[i, :len(js)] = w / total if total != 0 else w
    return index, weight


class BicubicDownsample(Degradation):
    """(B, C, H, W) -> (B, C, H // s, W // s), Pillow's bicubic resize."""

    def __init__(self, in_hw: Tuple[int, int], factor: int):
        if factor < 1 or int(factor) != factor:
            raise InputError(f"scale must be a whole number >= 1, got {factor}")
        h, w = in_hw
        if h // factor < 1 or w // factor < 1:
            raise InputError(f"a {w}x{h} image is too small to downsample by {factor}")
        self.factor = int(factor)
        self.in_hw = (h, w)
        rows, cols = pillow_resize_weights(h, h // factor), pillow_resize_weights(w, w // factor)
        self.row_index, self.row_weight = torch.from_numpy(rows[0]), torch.from_numpy(rows[1]).float()
        self.col_index, self.col_weight = torch.from_numpy(cols[0]), torch.from_numpy(cols[1]).float()

    def out_size(self, h: int, w: int) -> Tuple[int, int]:
        return h // self.factor, w // self.factor

    def apply(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != self.in_hw:
            raise ValueError(f"downsampling built for {self.in_hw}, got {tuple(x.shape[-2:])}")
        # columns: (B, C, H, W) -> gather (B, C, H, w, K) -> weighted sum -> (B, C, H, w)
        x = (x[..., self.col_index] * self.col_weight).sum(-1)
        # rows, on the transposed image
        x = (x.transpose(-1, -2)[..., self.row_index] * self.row_weight).sum(-1)
        return x.transpose(-1, -2)
