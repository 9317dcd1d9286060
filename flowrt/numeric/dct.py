"""The orthonormal 8-point DCT-II, the one DCT matrix: JPEG's block transform (coefficients =
D @ block @ D.T, ``flowrt.numeric.jpeg``, ``flowrt.pipeline.jpeg_detect``) and the grouped denoiser's
patch transform (``flowrt.denoise.kernels``, in float32). Light: numpy only.
"""
from __future__ import annotations

import numpy as np

BLOCK = 8


def dct_matrix(dtype=np.float64) -> np.ndarray:
    """(8, 8) in ``dtype``: row k is the k-th basis vector, D D^T = I (to the dtype's rounding)."""
    n = np.arange(BLOCK)
    d = np.cos((2 * n[None, :] + 1) * n[:, None] * np.pi / 16) * np.sqrt(2 / 8)
    d[0] /= np.sqrt(2)
    return d.astype(dtype)
