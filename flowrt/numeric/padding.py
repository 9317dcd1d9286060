"""Padding and its adjoints, in one place: the sizes and modes of padding an image to the prior's
multiple (``padding_for``, which both MAP loops use), that padding and its adjoint, the adjoint of
edge replication (the blur's and the JPEG's MCU padding), and the Gaussian smoothing of a start.
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np

from flowrt.numeric.kernels import gaussian_taps

_NUMPY_MODE = {"reflect": "reflect", "replicate": "edge"}  # torch's F.pad modes in np.pad's words


def padding_for(h: int, w: int, multiple: int) -> Tuple[int, int, str]:
    """(rows, columns, mode) to add at the bottom and right so both sides divide by ``multiple``;
    mode 'reflect' when the image is larger than its padding, else 'replicate'."""
    ph, pw = (-h) % multiple, (-w) % multiple
    return ph, pw, "reflect" if ph < h and pw < w else "replicate"


def _pad_last_two(x: np.ndarray, top: int, bottom: int, left: int, right: int, mode: str) -> np.ndarray:
    return np.pad(x, [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)], mode=_NUMPY_MODE[mode])


def pad_to_multiple(x: np.ndarray, multiple: int) -> np.ndarray:
    """Pad (B, C, H, W) at the bottom and right to sides divisible by ``multiple``: reflected
    (without repeating the edge, as torch's 'reflect') when the image is larger than the padding,
    else the edge replicated."""
    ph, pw, mode = padding_for(*x.shape[-2:], multiple)
    if ph == 0 and pw == 0:
        return x
    return _pad_last_two(x, 0, ph, 0, pw, mode)


def pad_to_multiple_vjp(g: np.ndarray, hw, multiple: int) -> np.ndarray:
    """The adjoint of ``pad_to_multiple`` for an image (H, W): the padded (B, C, H', W') gradient
    folded back onto the (B, C, H, W) pixels each padded one copied."""
    h, w = hw
    ph, pw, mode = padding_for(h, w, multiple)
    if mode == "replicate":
        return edge_pad_vjp(g, (0, pw, 0, ph))
    return _reflect_fold(_reflect_fold(g, h, ph, -2), w, pw, -1)


def edge_pad_vjp(g: np.ndarray, pad: Tuple[int, int, int, int]) -> np.ndarray:
    """The transpose of ``np.pad(x, (top, bottom), (left, right), mode='edge')`` over the last two axes,
    pad = (left, right, top, bottom): the padded border's gradient is summed onto the edge rows and
    columns it copied; (..., H + top + bottom, W + left + right) -> (..., H, W)."""
    left, right, top, bottom = pad
    g = g.copy()
    hp, wp = g.shape[-2:]
    g[..., top, :] += g[..., :top, :].sum(-2)
    g[..., hp - bottom - 1, :] += g[..., hp - bottom:, :].sum(-2)
    g[..., :, left] += g[..., :, :left].sum(-1)
    g[..., :, wp - right - 1] += g[..., :, wp - right:].sum(-1)
    return g[..., top:hp - bottom, left:wp - right]


def _reflect_fold(g: np.ndarray, n: int, p: int, axis: int) -> np.ndarray:
    """Along ``axis``, (n + p) -> n: padded entry n - 1 + k (k = 1..p) adds onto entry n - 1 - k."""
    g = np.moveaxis(g, axis, -1)
    out = g[..., :n].copy()
    if p:
        out[..., n - 1 - p:n - 1] += g[..., n:n + p][..., ::-1]
    return np.moveaxis(out, -1, axis)


def gaussian_blur(x: np.ndarray, std: float) -> np.ndarray:
    """Separable Gaussian blur of (B, C, H, W) with reflect padding (replicate on tiny images), in x's dtype."""
    radius = int(math.ceil(3 * std))
    k = gaussian_taps(std, x.dtype)
    mode = "reflect" if min(x.shape[-2:]) > radius else "replicate"
    x = _pad_last_two(x, radius, radius, radius, radius, mode)
    h, w = x.shape[-2] - 2 * radius, x.shape[-1] - 2 * radius
    rows = sum(x[..., :, i:i + w] * k[i] for i in range(2 * radius + 1))
    return sum(rows[..., i:i + h, :] * k[i] for i in range(2 * radius + 1))
