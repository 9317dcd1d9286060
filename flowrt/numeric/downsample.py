"""Pillow's bicubic downsampling by an integer factor, and its adjoint: the one implementation (the
torch engine reaches it through ``flowrt.operators.bridge``), with Pillow's weights
(``flowrt.numeric.resampling``) as two dense matrices, rows R (H // s, H) and columns C (W // s, W),
so both passes are BLAS products (faster than a gather of the taps, forward and backward):

    apply(x) = R @ x @ C.T   (B, C, H, W) -> (B, C, H // s, W // s)        vjp(g) = R.T @ g @ C
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from flowrt.numeric.resampling import downsampled_size, pillow_downsample_matrix


class BicubicDownsample:
    """(B, C, H, W) -> (B, C, H // s, W // s), Pillow's bicubic resize, in the input's dtype;
    InputError (at construction) for a bad factor or an image too small for it."""

    def __init__(self, in_hw: Tuple[int, int], factor: int):
        out_h, out_w = downsampled_size(in_hw, factor)
        self.factor = int(factor)
        self.in_hw = tuple(in_hw)
        self._rows = pillow_downsample_matrix(in_hw[0], out_h)
        self._cols = pillow_downsample_matrix(in_hw[1], out_w)
        self._cast = {}

    def out_size(self, h: int, w: int) -> Tuple[int, int]:
        return h // self.factor, w // self.factor

    def _matrices(self, dtype) -> Tuple[np.ndarray, np.ndarray]:
        if dtype not in self._cast:
            self._cast[dtype] = (self._rows.astype(dtype), np.ascontiguousarray(self._cols.T.astype(dtype)))
        return self._cast[dtype]

    def apply(self, x: np.ndarray) -> np.ndarray:
        if tuple(x.shape[-2:]) != self.in_hw:
            raise ValueError(f"downsampling built for {self.in_hw}, got {tuple(x.shape[-2:])}")
        rows, cols_t = self._matrices(x.dtype)
        return rows @ (x @ cols_t)

    def vjp(self, g: np.ndarray) -> np.ndarray:
        """The adjoint of ``apply``: (B, C, H // s, W // s) -> (B, C, H, W)."""
        rows, cols_t = self._matrices(g.dtype)
        return rows.T @ (g @ cols_t.T)
