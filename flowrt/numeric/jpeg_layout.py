"""How a JPEG encoder lays an image out, and what a file's coefficients say: shared by both engines.

An encoder maps RGB (0-255) to JFIF YCbCr, averages chroma over its subsampling footprint
(4:2:0: 2x2), pads each plane to whole MCUs by edge replication, shifts by -128, takes the
orthonormal 8x8 DCT of every block and stores k = round(c / q). ``JpegLayout`` holds, per
component, that footprint, the quantised coefficients k and tables q, the coefficient noise std
(the pixel noise sigma carried into that domain, floored at NOISE_FLOOR_255) and which blocks are
observed. ``flowrt.numeric.jpeg`` computes the coefficients of a candidate image from it.
"""
from __future__ import annotations

import math
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from flowrt.errors import InputError
from flowrt.io.colour import LUMA_LEVEL_SHIFT, YCBCR_JFIF  # noqa: F401 - LUMA_LEVEL_SHIFT re-exported
from flowrt.io.jpeg_coefficients import JpegInfo
from flowrt.numeric.dct import BLOCK
from flowrt.numeric.observation import NOISE_FLOOR_255

YCBCR = np.array(YCBCR_JFIF, np.float64)
EXPECTED_NLL_SEED = 0  # the misfit's Monte Carlo draws are the same every call, in both engines


def noise_gain(component: int, pooled: int, components: int) -> float:
    """Std of one coefficient per unit of i.i.d. RGB pixel noise (orthonormal DCT keeps it)."""
    row = YCBCR[component] if components == 3 else YCBCR[0]
    return float(np.linalg.norm(row)) / math.sqrt(pooled)


def edge_pad(plane: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """(..., h, w) -> (..., H, W) with H >= h, W >= w, the last row and column repeated."""
    h, w = plane.shape[-2:]
    pad = [(0, 0)] * (plane.ndim - 2) + [(0, size[0] - h), (0, size[1] - w)]
    return np.pad(plane, pad, mode="edge")


def pool_mean(plane: np.ndarray, footprint: Tuple[int, int]) -> np.ndarray:
    """(..., H, W) -> (..., H / ph, W / pw): the mean of each ph x pw footprint (sides divisible)."""
    ph, pw = footprint
    if (ph, pw) == (1, 1):
        return plane
    h, w = plane.shape[-2:]
    return plane.reshape(plane.shape[:-2] + (h // ph, ph, w // pw, pw)).mean(axis=(-3, -1))


class JpegLayout:
    """A JPEG file's blocks for an image of its size (H, W).

    pool[c]: (rows, columns) of pixels averaged into one sample of component c; k[c] (by, bx, 8, 8)
    and q[c] (8, 8) float32; std[c] the coefficient noise std (0-255 scale); valid[c] (by, bx)
    float32, 1 for a block whose pixels are all observed (a block touching a hole is left out: the
    hole's content in the file is not the scene's; a pooled chroma block may get a fraction).
    """

    def __init__(self, info: JpegInfo, sigma_255: Optional[float] = None, observed: Optional[np.ndarray] = None):
        self.hw = (info.height, info.width)
        self.hmax = max(h for h, _ in info.sampling)
        self.vmax = max(v for _, v in info.sampling)
        self.pool: List[Tuple[int, int]] = []
        for h, v in info.sampling:
            if self.hmax % h or self.vmax % v:
                raise InputError(f"unsupported JPEG chroma sampling {info.sampling}; use --jpeg off")
            self.pool.append((self.vmax // v, self.hmax // h))
        self.components = len(info.sampling)
        if self.components not in (1, 3):
            raise InputError(f"a JPEG with {self.components} components is not YCbCr; use --jpeg off")
        self.k = [c.astype(np.float32) for c in info.coefficients()]
        self.q = [q.astype(np.float32) for q in info.quant]
        sigma = 0.0 if sigma_255 is None else float(sigma_255)
        self.noise_given = sigma > 0
        self.std = [math.hypot(sigma * noise_gain(c, ph * pw, self.components), NOISE_FLOOR_255)
                    for c, (ph, pw) in enumerate(self.pool)]
        self.valid = [self._valid_blocks(observed, c) for c in range(self.components)]

    def padded_size(self) -> Tuple[int, int]:
        """The image's size padded to whole MCUs."""
        mh, mw = BLOCK * self.vmax, BLOCK * self.hmax
        return -(-self.hw[0] // mh) * mh, -(-self.hw[1] // mw) * mw

    def padding_copies(self) -> np.ndarray:
        """(H, W) float64: how many samples of the MCU-padded image each pixel fills (1 inside; the
        last row and column, copied into the padding, more; the corner their product). The data
        term's curvature at a pixel grows in proportion to its count (the padding P has P^T P =
        diag(counts), and the DCT is orthonormal), which the splitting's data step has to know
        (``flowrt.solve.splitting``): one global step sized for the corner stalls everywhere else."""
        (h, w), (ph, pw) = self.hw, self.padded_size()
        rows, cols = np.ones(h), np.ones(w)
        rows[-1] += ph - h
        cols[-1] += pw - w
        return np.outer(rows, cols)

    def coded_size(self, c: int) -> Tuple[int, int]:
        """(rows, columns) of component c's samples the file's blocks cover."""
        by, bx = self.k[c].shape[:2]
        return BLOCK * by, BLOCK * bx

    def planes(self, image: np.ndarray, c: int) -> np.ndarray:
        """(..., H, W) -> component c's plane: MCU-padded, pooled, cropped to the coded blocks."""
        plane = pool_mean(edge_pad(image, self.padded_size()), self.pool[c])
        rows, cols = self.coded_size(c)
        return plane[..., :rows, :cols]

    def _valid_blocks(self, observed: Optional[np.ndarray], c: int) -> np.ndarray:
        by, bx = self.k[c].shape[:2]
        if observed is None:
            return np.ones((by, bx), np.float32)
        plane = self.planes(np.asarray(observed, np.float64), c)
        return plane.reshape(by, BLOCK, bx, BLOCK).min(axis=(1, 3)).astype(np.float32)


def standard_normal_draws(shapes: Sequence[Tuple[int, ...]], draws: int) -> Iterator[List[np.ndarray]]:
    """``draws`` lists of float64 standard normal arrays, one per shape, from EXPECTED_NLL_SEED: the
    noise both engines add to a candidate's coefficients when estimating the expected misfit."""
    rng = np.random.default_rng(EXPECTED_NLL_SEED)
    for _ in range(draws):
        yield [rng.standard_normal(shape) for shape in shapes]
