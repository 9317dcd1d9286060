"""Downsampling by an integer factor s, the way Pillow's ``Image.resize((w // s, h // s), BICUBIC)`` does.

Pillow resamples each axis separately. For output pixel i it centres the cubic kernel
(a = -0.5) at (i + 0.5) * scale in input coordinates, widens its support by the scale when
shrinking (an anti-aliasing low-pass), truncates it at the image edge and renormalises the
weights to sum 1. Those weights (``flowrt.numeric.resampling``, shared with the numpy engine) are
computed once in float64 and applied here as a gather plus weighted sum along each axis, which is
differentiable and costs O(size * taps).
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from flowrt.numeric.resampling import downsampled_size, pillow_resize_weights
from .base import Degradation


class BicubicDownsample(Degradation):
    """(B, C, H, W) -> (B, C, H // s, W // s), Pillow's bicubic resize."""

    def __init__(self, in_hw: Tuple[int, int], factor: int):
        out_h, out_w = downsampled_size(in_hw, factor)
        self.factor = int(factor)
        self.in_hw = tuple(in_hw)
        rows, cols = pillow_resize_weights(in_hw[0], out_h), pillow_resize_weights(in_hw[1], out_w)
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
