"""The PNG row filters that run pixel by pixel (Average, Paeth), compiled with numba.

Kept apart so that importing flowrt.io.png16 does not import numba until such a row turns up.
"""
from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def unfilter_avg_paeth(line: np.ndarray, prev: np.ndarray, bpp: int, kind: int) -> np.ndarray:
    """line, prev: int32 byte rows; kind 3 = Average, 4 = Paeth (PNG spec section 9.2)."""
    out = np.empty(line.shape[0], np.int32)
    for i in range(line.shape[0]):
        left = out[i - bpp] if i >= bpp else 0
        up = prev[i]
        if kind == 3:
            pred = (left + up) >> 1
        else:
            corner = prev[i - bpp] if i >= bpp else 0
            p = left + up - corner
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
            if pa <= pb and pa <= pc:
                pred = left
            elif pb <= pc:
                pred = up
            else:
                pred = corner
        out[i] = (line[i] + pred) & 0xFF
    return out
