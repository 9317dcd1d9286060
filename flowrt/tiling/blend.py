"""Weighted blending of overlapping tiles: accumulate ``tile * window`` and normalise.

A tiled restore adds every restored tile, multiplied by a separable window ``wy[i] * wx[j]``,
into float32 accumulators (a weighted image sum ``acc`` of shape (h, w, C) and a weight sum
``wsum`` of shape (h, w)), then divides: ``out = acc / wsum``. The kernels are numba
(``parallel`` for regions of at least ``PARALLEL_MIN_ELEMENTS`` values: rows split across threads;
``nogil``: other Python threads, such as an I/O thread or a second restore, keep running). Rows of one tile never alias, so the parallel loop is race-free;
callers must not accumulate two tiles into the same rows concurrently.

The numpy functions ending in ``_reference`` compute the same thing the obvious way; tests compare
the kernels against them and ``benchmarks/blend_speed.py`` measures the speed-up.
"""
from __future__ import annotations

import numba
import numpy as np

from flowrt.parallel import KERNEL_LOCK

__all__ = [
    "accumulate", "normalise", "accumulate_reference", "normalise_reference",
]


# Small regions (a tile) run on one thread: starting a parallel region costs little on an idle
# machine, but on a busy one (training, ORT or torch threads beside us) each start waits for a core
# and measured 5x slower than the serial loop. Whole-image regions amortise it and go parallel.
PARALLEL_MIN_ELEMENTS = 1 << 23


@numba.njit(nogil=True, cache=True, inline="always")
def _accumulate_row(acc_row, wsum_row, tile_row, wi, wx, wxc):  # pragma: no cover - compiled
    # Rows are flattened (w*C,) so the inner loop is one contiguous, vectorisable pass; wxc is wx
    # repeated C times (the weight of each flattened element).
    for m in range(tile_row.shape[0]):
        acc_row[m] += tile_row[m] * (wi * wxc[m])
    for j in range(wx.shape[0]):
        wsum_row[j] += wi * wx[j]


@numba.njit(parallel=True, nogil=True, cache=True)
def _accumulate_parallel(acc, wsum, tile, wy, wx, wxc, y0, x0):  # pragma: no cover - compiled
    h, wc = tile.shape
    w = wx.shape[0]
    c = wc // w
    for i in numba.prange(h):
        _accumulate_row(acc[y0 + i, x0 * c:x0 * c + wc], wsum[y0 + i, x0:x0 + w], tile[i], wy[i],
                        wx, wxc)


@numba.njit(nogil=True, cache=True)
def _accumulate_serial(acc, wsum, tile, wy, wx, wxc, y0, x0):  # pragma: no cover - compiled
    h, wc = tile.shape
    w = wx.shape[0]
    c = wc // w
    for i in range(h):
        _accumulate_row(acc[y0 + i, x0 * c:x0 * c + wc], wsum[y0 + i, x0:x0 + w], tile[i], wy[i],
                        wx, wxc)


@numba.njit(nogil=True, cache=True, inline="always")
def _normalise_row(acc_row, wsum_row, out_row):  # pragma: no cover - compiled
    for j in range(acc_row.shape[0]):
        inv = np.float32(1.0) / wsum_row[j]
        for k in range(acc_row.shape[1]):
            out_row[j, k] = acc_row[j, k] * inv


@numba.njit(parallel=True, nogil=True, cache=True)
def _normalise_parallel(acc, wsum, out):  # pragma: no cover - compiled
    for i in numba.prange(acc.shape[0]):
        _normalise_row(acc[i], wsum[i], out[i])


@numba.njit(nogil=True, cache=True)
def _normalise_serial(acc, wsum, out):  # pragma: no cover - compiled
    for i in range(acc.shape[0]):
        _normalise_row(acc[i], wsum[i], out[i])


def _parallel(elements: int) -> bool:
    return elements >= PARALLEL_MIN_ELEMENTS and numba.get_num_threads() > 1


def _check_accumulate_args(acc, wsum, tile, wy, wx, y0, x0) -> None:
    h, w = tile.shape[:2]
    if acc.dtype != np.float32 or wsum.dtype != np.float32 or tile.dtype != np.float32:
        raise TypeError("acc, wsum and tile must be float32")
    if acc.ndim != 3 or tile.ndim != 3 or wsum.shape != acc.shape[:2] or tile.shape[2] != acc.shape[2]:
        raise ValueError(f"shapes do not match: acc {acc.shape}, wsum {wsum.shape}, tile {tile.shape}")
    if wy.shape != (h,) or wx.shape != (w,):
        raise ValueError(f"window lengths {wy.shape}, {wx.shape} do not match tile {tile.shape}")
    if y0 < 0 or x0 < 0 or y0 + h > acc.shape[0] or x0 + w > acc.shape[1]:
        raise ValueError(f"tile at ({y0}, {x0}) of size {h}x{w} falls outside {acc.shape[:2]}")


def accumulate(acc: np.ndarray, wsum: np.ndarray, tile: np.ndarray,
               wy: np.ndarray, wx: np.ndarray, y0: int, x0: int) -> None:
    """Add a windowed tile into the accumulators, in place (numba; rows in parallel when large).

    acc: float32 (H, W, C), wsum: float32 (H, W); tile: float32 (h, w, C); wy: (h,), wx: (w,)
    window factors (positive, any scale). Afterwards, for the box [y0, y0+h) x [x0, x0+w):
    ``acc += tile * wy[:, None, None] * wx[None, :, None]`` and ``wsum += wy[:, None] * wx[None, :]``.
    ``tile`` may be a strided view (it is then copied); ``acc`` and ``wsum`` must be C-contiguous.
    """
    wy = np.ascontiguousarray(wy, dtype=np.float32)
    wx = np.ascontiguousarray(wx, dtype=np.float32)
    _check_accumulate_args(acc, wsum, tile, wy, wx, y0, x0)
    if not (acc.flags.c_contiguous and wsum.flags.c_contiguous):
        raise ValueError("acc and wsum must be C-contiguous")
    h, w, c = tile.shape
    tile_rows = np.ascontiguousarray(tile).reshape(h, w * c)
    acc_rows = acc.reshape(acc.shape[0], acc.shape[1] * c)
    if _parallel(tile.size):
        with KERNEL_LOCK:
            _accumulate_parallel(acc_rows, wsum, tile_rows, wy, wx, np.repeat(wx, c), int(y0), int(x0))
    else:
        _accumulate_serial(acc_rows, wsum, tile_rows, wy, wx, np.repeat(wx, c), int(y0), int(x0))


def normalise(acc: np.ndarray, wsum: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Return ``acc / wsum[..., None]`` as float32 (h, w, C) (numba; rows in parallel when large).

    Every weight must be > 0 (the tiling windows never reach 0). ``out`` (float32, same shape as
    ``acc``) is filled and returned when given, else a new array is.
    """
    if acc.dtype != np.float32 or wsum.dtype != np.float32 or wsum.shape != acc.shape[:2]:
        raise ValueError(f"acc float32 (h, w, C) and wsum float32 (h, w) expected, got "
                         f"{acc.dtype}{acc.shape}, {wsum.dtype}{wsum.shape}")
    if out is None:
        out = np.empty(acc.shape, np.float32)
    elif out.shape != acc.shape or out.dtype != np.float32:
        raise ValueError(f"out must be float32 {acc.shape}, got {out.dtype}{out.shape}")
    if _parallel(acc.size):
        with KERNEL_LOCK:
            _normalise_parallel(acc, wsum, out)
    else:
        _normalise_serial(acc, wsum, out)
    return out


def accumulate_reference(acc: np.ndarray, wsum: np.ndarray, tile: np.ndarray,
                         wy: np.ndarray, wx: np.ndarray, y0: int, x0: int) -> None:
    """numpy version of :func:`accumulate` (same arguments, same result up to float rounding)."""
    h, w = tile.shape[:2]
    weight = np.outer(wy, wx).astype(np.float32)
    acc[y0:y0 + h, x0:x0 + w] += tile * weight[:, :, None]
    wsum[y0:y0 + h, x0:x0 + w] += weight


def normalise_reference(acc: np.ndarray, wsum: np.ndarray) -> np.ndarray:
    """numpy version of :func:`normalise`."""
    return (acc / wsum[:, :, None]).astype(np.float32)
