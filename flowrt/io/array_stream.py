"""Sources and sinks for tiled restores of images that are (or end up) whole: numpy arrays and ``.npy``.

``ArraySource``/``ArraySink`` serve decoded PNG/JPEG images held in memory. ``NpySink`` writes the
output blocks straight into a raw ``.npy`` file on disk, so an interrupted restore of a PNG/JPEG keeps
its finished part for ``--resume``. Pixel values: float32 in [0, 1] in and out of the tiler; stored
as uint8/uint16 (value = round(clip(x, 0, 1) * max)) or float32.
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["ArraySource", "ArraySink", "NpySink", "quantise", "to_unit_float", "pwrite_rows"]

_STORED = (np.uint8, np.uint16, np.float32)


def _check_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in [np.dtype(d) for d in _STORED]:
        raise ValueError(f"pixel type must be uint8, uint16 or float32, got {dtype}")
    return dtype


def to_unit_float(pixels: np.ndarray) -> np.ndarray:
    """uint8/uint16 -> float32 in [0, 1] (x / 255 or x / 65535); float32 passes through."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / np.float32(255)
    if pixels.dtype == np.uint16:
        return pixels.astype(np.float32) / np.float32(65535)
    return np.asarray(pixels, np.float32)


def quantise(block: np.ndarray, dtype) -> np.ndarray:
    """float32 in [0, 1] -> ``dtype``: round(clip(x, 0, 1) * 255 or 65535), or a float32 copy."""
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return np.array(block, np.float32)
    top = np.float32(np.iinfo(dtype).max)
    return np.rint(np.clip(block, 0, 1) * top).astype(dtype)


def pwrite_rows(fd: int, offset: int, row_bytes: int, block: np.ndarray, y0: int, x0: int) -> None:
    """Write ``block`` (h, w, C) into a row-major (H, W, C) raster stored at ``offset`` in ``fd``.

    row_bytes: bytes per full raster row (W * C * itemsize). One write per row, or one in all when
    the block spans full rows.
    """
    block = np.ascontiguousarray(block)
    h = block.shape[0]
    if h == 0:
        return
    pixel_bytes = block.shape[2] * block.itemsize
    start = offset + y0 * row_bytes + x0 * pixel_bytes
    if block.shape[1] * pixel_bytes == row_bytes:
        os.pwrite(fd, block.tobytes(), start)
        return
    rows = block.reshape(h, -1)
    for r in range(h):
        os.pwrite(fd, rows[r].tobytes(), start + r * row_bytes)


class ArraySource:
    """A whole image in memory as a tiling source: pixels (H, W, C) uint8/uint16/float32 [0, 1]."""

    def __init__(self, pixels: np.ndarray):
        if pixels.ndim != 3:
            raise ValueError(f"pixels must be (H, W, C), got {pixels.shape}")
        self.pixels = pixels
        self.dtype = _check_dtype(pixels.dtype)
        self.shape = tuple(pixels.shape)

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """float32 (y1-y0, x1-x0, C) in [0, 1]; a copy (restore_tile may write into it)."""
        region = self.pixels[y0:y1, x0:x1]
        return region.astype(np.float32) if region.dtype == np.float32 else to_unit_float(region)

    def close(self) -> None:
        """Nothing to release (the pixels are the caller's); here so every source closes alike."""


class ArraySink:
    """Collects the output in memory: ``.pixels`` (H, W, C) of ``dtype`` (default float32)."""

    def __init__(self, shape: tuple[int, int, int], dtype=np.float32):
        self.shape = tuple(shape)
        self.pixels = np.zeros(self.shape, _check_dtype(dtype))

    def write_block(self, y0: int, x0: int, block: np.ndarray) -> None:
        h, w = block.shape[:2]
        self.pixels[y0:y0 + h, x0:x0 + w] = quantise(block, self.pixels.dtype)

    def flush(self) -> None:
        """Nothing to make durable: an in-memory sink cannot be resumed from."""


class NpySink:
    """The output as a raw ``.npy`` file (H, W, C) of ``dtype``, written block by block.

    ``NpySink(path, shape, dtype)`` creates (or, with ``reopen=True``, reopens after checking shape
    and type) the file; ``flush()`` fsyncs it; ``load()`` returns the whole array once complete.
    """

    def __init__(self, path, shape: tuple[int, int, int], dtype, *, reopen: bool = False):
        self.path = os.fspath(path)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = _check_dtype(dtype)
        self._row_bytes = self.shape[1] * self.shape[2] * self.dtype.itemsize
        if reopen:
            self._offset = self._check_header()
            self._fd = os.open(self.path, os.O_RDWR)
        else:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            self._offset = self._write_header()

    def _write_header(self) -> int:
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": self.shape}
        with os.fdopen(os.dup(self._fd), "wb") as handle:
            np.lib.format.write_array_header_2_0(handle, header)
            offset = handle.tell()
        os.ftruncate(self._fd, offset + self._row_bytes * self.shape[0])
        return offset

    def _check_header(self) -> int:
        with open(self.path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(handle)
            offset = handle.tell()
        size, expected = os.path.getsize(self.path), offset + self._row_bytes * self.shape[0]
        if tuple(shape) != self.shape or dtype != self.dtype or fortran:
            raise ValueError(f"{self.path} holds {dtype}{shape}, not {self.dtype}{self.shape}")
        if size != expected:
            raise ValueError(f"{self.path} has {size} bytes, not the {expected} its header promises "
                             "(truncated or extended)")
        return offset

    def write_block(self, y0: int, x0: int, block: np.ndarray) -> None:
        pwrite_rows(self._fd, self._offset, self._row_bytes, quantise(block, self.dtype), y0, x0)

    def flush(self) -> None:
        os.fsync(self._fd)

    def load(self) -> np.ndarray:
        """The whole output (H, W, C) read back into memory."""
        return np.load(self.path, allow_pickle=False)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
