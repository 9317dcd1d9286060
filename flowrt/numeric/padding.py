"""Image-shaped helpers of the numpy MAP loop: padding to the prior's multiple and its adjoint, and
the Gaussian smoothing of a start; the numpy twins of ``pad_to_multiple`` and ``gaussian_blur`` in
``flowrt.solve.solver`` (same sizes and modes: ``flowrt.solve.schedule.padding_for``).
"""
from __future__ import annotations

import math

import numpy as np

from flowrt.solve.schedule import padding_for

_NUMPY_MODE = {"reflect": "reflect", "replicate": "edge"}  # torch's F.pad modes in np.pad's words


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
    return _fold(_fold(g, h, ph, mode, -2), w, pw, mode, -1)


def _fold(g: np.ndarray, n: int, p: int, mode: str, axis: int) -> np.ndarray:
    """Along ``axis``, (n + p) -> n: padded entry n - 1 + k (k = 1..p) adds onto entry n - 1 - k
    ('reflect') or onto entry n - 1 ('replicate')."""
    g = np.moveaxis(g, axis, -1)
    out = g[..., :n].copy()
    if p:
        extra = g[..., n:n + p]
        if mode == "reflect":
            out[..., n - 1 - p:n - 1] += extra[..., ::-1]
        else:
            out[..., n - 1] += extra.sum(-1)
    return np.moveaxis(out, -1, axis)


def gaussian_blur(x: np.ndarray, std: float) -> np.ndarray:
    """Separable Gaussian blur of (B, C, H, W) with reflect padding (replicate on tiny images), in x's dtype."""
    radius = int(math.ceil(3 * std))
    t = np.arange(-radius, radius + 1).astype(x.dtype)
    k = np.exp(-0.5 * (t / x.dtype.type(std)) ** 2)
    k = k / k.sum()
    mode = "reflect" if min(x.shape[-2:]) > radius else "replicate"
    x = _pad_last_two(x, radius, radius, radius, radius, mode)
    h, w = x.shape[-2] - 2 * radius, x.shape[-1] - 2 * radius
    rows = sum(x[..., :, i:i + w] * k[i] for i in range(2 * radius + 1))
    return sum(rows[..., i:i + h, :] * k[i] for i in range(2 * radius + 1))
