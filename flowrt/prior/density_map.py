"""Where an image's code length goes: a per-pixel bits/dim map under the flow prior.

The flow's log-density is a sum of terms that each live on one level's grid:

  * level l (0 = finest) works on the image squeezed l+1 times, an (H/2^(l+1), W/2^(l+1)) grid;
  * there, ActNorm and the 1x1 convolution add the same log-det at every position, an affine
    coupling adds sum_c log_s[c, i, j] at position (i, j), a split adds -sum_c log_sd[c, i, j],
    and the half it factors out (all channels, at the last level) adds sum_c log N(eps[c, i, j]).

Each level's per-position map is brought back to the image grid by spreading every position evenly
over the 2^(l+1) x 2^(l+1) pixels it was squeezed from, and the levels are summed. So no term is
approximated, the map only blurs coarse terms over their blocks, and its mean over pixels equals the
image's bits/dim (``FlowModel.bits_per_dim``; the tests pin this).

Bits/dim per pixel = -log p(pixel's share) / (3 ln 2) + 8, the 8 being the 8-bit discretisation
(the same convention as ``flow.nll_to_bpd``). Higher = less likely under the prior; a noisy or
damaged region is expensive, but an over-smoothed one is cheap (lower is not always better).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from flowrt.prior.layers import AffineCoupling, FlowSequence
from flowrt.prior.scoring import DEFAULT_DEQUANT, DEFAULT_SEED, centre_crop_to_multiple, dequantize

DEFAULT_TILE = 512   # pixels per tile side: bounds memory on large images (the map is computed per tile)


@dataclass(frozen=True)
class BitsMap:
    """bits: (H', W') float64 bits/dim per pixel of the centre crop (H', W' multiples of 2^levels);
    top, left: where that crop sits in the (height, width) image. bits.mean() is the crop's bits/dim
    (the mean of the tiles' bits/dim when it was computed in tiles)."""
    bits: np.ndarray
    top: int
    left: int
    height: int
    width: int

    @property
    def bits_per_dim(self) -> float:
        return float(self.bits.mean())


def bits_map(model, rgb8: np.ndarray, *, dequant: str = DEFAULT_DEQUANT, seed: int = DEFAULT_SEED,
             tile: int = DEFAULT_TILE) -> BitsMap:
    """Per-pixel bits/dim of an (H, W, 3) uint8 image under a torch ``FlowModel``.

    The image is centre-cropped to multiples of ``model.multiple`` (as ``flowrt score`` does) and
    scored in tiles of about ``tile`` pixels (rounded to the multiple); the prior is not pixel-local,
    so a tiled map differs a little near tile borders from a whole one: an image within one tile has
    ``flowrt score``'s bits/dim exactly, a larger one the mean of its tiles'. dequant: 'uniform'
    (fixed-seed noise, the default everywhere) or 'mid' (v = 1/2), as ``flowrt.prior.scoring.dequantize``.
    """
    m = int(model.multiple)
    crop = centre_crop_to_multiple(rgb8, m)
    h, w = crop.shape[:2]
    x = torch.from_numpy(dequantize(crop, dequant, seed))
    side = max(m, int(math.ceil(tile / m)) * m)
    out = np.empty((h, w), np.float64)
    with torch.no_grad():
        for y0 in range(0, h, side):
            for x0 in range(0, w, side):
                part = x[:, :, y0:y0 + side, x0:x0 + side]
                out[y0:y0 + side, x0:x0 + side] = nats_map(model, part)[0].double().numpy()
    bits = -out / (3 * math.log(2.0)) + 8.0
    return BitsMap(bits, (rgb8.shape[0] - h) // 2, (rgb8.shape[1] - w) // 2, rgb8.shape[0], rgb8.shape[1])


def nats_map(model, x):
    """(B, 3, H, W) float in [0, 1] -> (B, H, W) log-density in nats per pixel (its 3 dims together).

    Summed over pixels it is ``model.log_prob(x)``.
    """
    maps = []
    _level(model.root, x - 0.5, 0, maps)
    total = 0
    for depth, per_position in maps:
        f = 2 ** (depth + 1)
        total = total + per_position.repeat_interleave(f, 1).repeat_interleave(f, 2) / (f * f)
    return total


def _level(level, x, depth: int, maps: list) -> None:
    """Append (depth, (B, h, w) nats) for ``level`` and, recursively, its inner levels."""
    h, _ = level.squeeze(x)
    h, per_position = _steps(level.steps, h)
    if level.inner is None:
        maps.append((depth, per_position + _log_normal(h)))
        return
    h1, eps, split_term = _split(level.split, h)
    maps.append((depth, per_position + split_term + _log_normal(eps)))
    _level(level.inner, h1, depth + 1, maps)


def _steps(sequence, h):
    """Run a FlowSequence (nested: steps of ActNorm, 1x1 conv, coupling); (output, (B, h, w) log-det)."""
    total = h.new_zeros(h.shape[0], h.shape[2], h.shape[3])
    for layer in sequence.layers:
        if isinstance(layer, FlowSequence):
            h, part = _steps(layer, h)
        elif isinstance(layer, AffineCoupling):
            h, part = _coupling(layer, h)
        else:  # ActNorm, InvConv1x1: the same log-det at every position
            positions = h.shape[2] * h.shape[3]
            h, logdet = layer(h)
            part = (logdet / positions)[:, None, None].expand_as(total)
        total = total + part
    return h, total


def _coupling(layer, h):
    # Mirrors AffineCoupling.forward, keeping log_s per position instead of summing it away.
    x_a, x_b = h[:, :layer.c_a], h[:, layer.c_a:]
    shift, log_s = layer._shift_log_scale(x_a)
    return torch.cat([x_a, x_b * log_s.exp() + shift], 1), log_s.sum(1)


def _split(layer, h):
    # Mirrors Split.forward: (kept half, factored-out eps, (B, h, w) log-det).
    h1, h2 = h[:, :layer.c_keep], h[:, layer.c_keep:]
    mean, log_sd = layer._mean_log_sd(h1)
    return h1, (h2 - mean) * (-log_sd).exp(), -log_sd.sum(1)


def _log_normal(u):
    """(B, C, h, w) -> (B, h, w): sum over channels of log N(u; 0, 1)."""
    return (-0.5 * u.pow(2) - 0.5 * math.log(2 * math.pi)).sum(1)

