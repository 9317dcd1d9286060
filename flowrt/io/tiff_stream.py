"""TIFF read by regions and written tile by tile, so neither input nor output is ever whole in memory.

``TiffSource`` reads regions of the first page of an 8- or 16-bit TIFF (striped or tiled, classic or
BigTIFF, any compression tifffile decodes with imagecodecs: none, LZW, deflate, PackBits, JPEG (YCbCr
decoded to RGB), zstd...). tifffile's complaints about malformed tags become one flowrt warning.
Uncompressed contiguous data is read row by row with ``pread``; compressed strips or tiles are decoded
on demand and kept in a small LRU cache sized to one band of tiles. The same pixel limit as every other
reader applies (``flowrt.io.limits``), and a strip or tile is decoded only if it holds at most
``MAX_SEGMENT_BYTES``: a single compressed strip of a huge image would otherwise be decoded whole,
so such a file is refused here (the caller then decodes it whole under the pixel limit, or not at all). (A ``memmap`` would be simpler but
its resident file pages count toward RSS and grow with the image; ``pread`` keeps RSS flat.)

``TiffSink`` creates an uncompressed tiled BigTIFF (``OUT.partial``) whose tiles sit at fixed offsets,
then writes each finished block straight to those offsets; ``finish`` fsyncs and renames it to the
final path. A killed run leaves only ``OUT.partial``, which can be reopened to resume.
"""
from __future__ import annotations

import os
from pathlib import Path
from collections import OrderedDict

import numpy as np
import tifffile

from flowrt.io.array_stream import pwrite_rows, quantise, to_unit_float
from flowrt.io.tiff_file import JPEG_COMPRESSIONS, damaged_tags, tifffile_messages
from flowrt.errors import InputError
from flowrt.io.limits import check_pixels
from flowrt.tiling.resume import fsync_dir

__all__ = ["TiffSource", "TiffSink", "is_tiff", "MAX_SEGMENT_BYTES"]

MAX_SEGMENT_BYTES = 64 << 20   # one decoded strip or tile; the default region cache holds about one

_PHOTOMETRIC_CHANNELS = {"MINISBLACK": (1, 2), "RGB": (3, 4)}


def is_tiff(path) -> bool:
    """True if the file starts with a TIFF or BigTIFF signature."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError:
        return False
    return head[:2] in (b"II", b"MM") and head[2:4] in (b"*\0", b"\0*", b"+\0", b"\0+")


def _open_page(path):
    """Open ``path`` with tifffile; return (TiffFile, first page) or raise InputError."""
    with tifffile_messages(str(path)):
        try:
            tif = tifffile.TiffFile(path)
        except Exception as exc:  # tifffile raises many types on damaged files
            raise InputError(f"{path}: not a readable TIFF ({_short(exc)})") from None
        try:
            page = tif.pages.first
            page.shape  # noqa: B018 - forces tifffile to parse the tags now
        except Exception as exc:
            tif.close()
            raise InputError(f"{path}: not a readable TIFF ({_short(exc)})") from None
    return tif, page


def _short(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:160]


def _page_layout(path, page) -> tuple[int, int, int]:
    """(H, W, C) of a page this module can stream, else InputError."""
    if page.dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
        raise InputError(f"{path}: only 8- and 16-bit TIFF is supported, got {page.dtype}")
    photometric = getattr(page.photometric, "name", str(page.photometric))
    if photometric == "YCBCR" and page.compression in JPEG_COMPRESSIONS:
        photometric = "RGB"  # the JPEG codec hands back RGB
    channels = page.samplesperpixel
    if channels not in _PHOTOMETRIC_CHANNELS.get(photometric, ()):
        raise InputError(f"{path}: {photometric} TIFF with {channels} samples is not supported "
                         "(grey, grey+alpha, RGB or RGBA only)")
    if page.imagedepth > 1 or page.planarconfig != 1:
        raise InputError(f"{path}: volumetric or planar TIFF is not supported; save it interleaved")
    if page.imagelength <= 0 or page.imagewidth <= 0:
        raise InputError(f"{path}: image has zero size")
    return int(page.imagelength), int(page.imagewidth), int(channels)


class TiffSource:
    """Regions of a TIFF's first page as float32 in [0, 1]: ``shape`` (H, W, C), ``dtype``,
    ``read(y0, y1, x0, x1)`` -> (y1-y0, x1-x0, C). ``cache_bytes`` bounds the decoded strips/tiles
    kept (settable; ``band_cache_bytes`` sizes it for a tile row)."""

    def __init__(self, path, *, cache_bytes: int = 64 << 20):
        self.path = os.fspath(path)
        self._reported: set = set()  # tifffile messages already logged: one warning each, not per tile
        self._tif, self._page = _open_page(self.path)
        self._fd = -1
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self.cache_bytes, self._cached = cache_bytes, 0
        try:
            with damaged_tags(self.path):
                self._read_layout()
            if not self._contiguous:
                self._check_segment_size()
                self._segment(0)  # fail now, with one line, if the compression cannot be decoded
        except BaseException:
            self.close()
            raise

    def _read_layout(self) -> None:
        """Shape, type and strip/tile geometry from the page's tags, each checked."""
        page = self._page
        self.shape = _page_layout(self.path, page)
        check_pixels(self.path, self.shape[1], self.shape[0], streamed=True, file_size=os.path.getsize(self.path),
                     bytes_per_pixel=self.shape[2] * page.dtype.itemsize)
        self.dtype = page.dtype
        self._check_extent()
        self._segment_shape = ((int(page.tilelength), int(page.tilewidth)) if page.is_tiled
                               else (min(int(page.rowsperstrip or self.shape[0]), self.shape[0]), self.shape[1]))
        if min(self._segment_shape) <= 0:
            raise InputError(f"{self.path}: unreadable TIFF (strips or tiles of size {self._segment_shape})")
        self._across = -(-self.shape[1] // self._segment_shape[1])
        segments = self._across * -(-self.shape[0] // self._segment_shape[0])
        self._contiguous = bool(page.is_contiguous) and page.compression == 1 and not page.is_tiled
        if not self._contiguous and min(len(page.dataoffsets), len(page.databytecounts)) < segments:
            raise InputError(f"{self.path}: unreadable TIFF ({len(page.dataoffsets)} strip or tile offsets "
                             f"for {segments} strips or tiles)")
        self._raw_dtype = page.dtype.newbyteorder(self._tif.byteorder)
        self._fd = os.open(self.path, os.O_RDONLY)

    def _check_segment_size(self) -> None:
        seg_bytes = int(np.prod(self._segment_shape)) * self.shape[2] * self.dtype.itemsize
        if seg_bytes > MAX_SEGMENT_BYTES:
            raise InputError(f"{self.path}: one compressed strip or tile holds {seg_bytes >> 20} MiB of "
                             f"pixels, more than the {MAX_SEGMENT_BYTES >> 20} MiB decoded at once")

    def band_cache_bytes(self, tile_rows: int, tile_cols: int) -> int:
        """Cache size that decodes each strip/tile about once when read tile by tile, band by band.

        Strips span the full width, so a band of them is kept (grows with the width); TIFF tiles
        are kept for two columns of restore tiles only. At least 4 MiB.
        """
        seg_h, seg_w = self._segment_shape
        cols = self.shape[1] if seg_w >= self.shape[1] else 2 * (tile_cols + 2 * seg_w)
        rows = tile_rows + 2 * seg_h
        return max(rows * min(cols, self.shape[1]) * self.shape[2] * self.dtype.itemsize, 4 << 20)

    @property
    def photometric(self) -> str:
        return "rgb" if self.shape[2] >= 3 else "minisblack"

    @property
    def iccprofile(self) -> bytes | None:
        return self._page.iccprofile

    def _check_extent(self) -> None:
        size = os.path.getsize(self.path)
        try:  # a damaged tag can hold text or a wrong count where offsets belong
            ends = np.asarray(self._page.dataoffsets, np.int64) + np.asarray(
                self._page.databytecounts, np.int64)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InputError(f"{self.path}: unreadable TIFF (strip or tile offsets: {_short(exc)})") from None
        if ends.size == 0 or ends.max() > size:
            raise InputError(f"{self.path} is truncated: image data runs to byte "
                             f"{int(ends.max(initial=0))} but the file has {size}")

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """float32 (y1-y0, x1-x0, C) in [0, 1] of input rows [y0, y1), columns [x0, x1)."""
        height, width, channels = self.shape
        if not (0 <= y0 < y1 <= height and 0 <= x0 < x1 <= width):
            raise ValueError(f"region {(y0, y1, x0, x1)} outside image {self.shape}")
        out = np.empty((y1 - y0, x1 - x0, channels), self.dtype)
        if self._contiguous:
            self._read_rows(out, y0, x0)
        else:
            self._read_segments(out, y0, x0)
        return to_unit_float(out)

    def _read_rows(self, out: np.ndarray, y0: int, x0: int) -> None:
        h, w, channels = out.shape
        pixel = channels * self.dtype.itemsize
        start = self._page.dataoffsets[0] + (y0 * self.shape[1] + x0) * pixel
        for r in range(h):
            raw = os.pread(self._fd, w * pixel, start + r * self.shape[1] * pixel)
            if len(raw) != w * pixel:
                raise InputError(f"{self.path} is truncated (short read at row {y0 + r})")
            out[r] = np.frombuffer(raw, self._raw_dtype).reshape(w, channels)

    def _read_segments(self, out: np.ndarray, y0: int, x0: int) -> None:
        seg_h, seg_w = self._segment_shape
        y1, x1 = y0 + out.shape[0], x0 + out.shape[1]
        for down in range(y0 // seg_h, (y1 - 1) // seg_h + 1):
            for across in range(x0 // seg_w, (x1 - 1) // seg_w + 1):
                seg = self._segment(down * self._across + across)
                sy, sx = down * seg_h, across * seg_w
                ya, yb = max(y0, sy), min(y1, sy + seg.shape[0])
                xa, xb = max(x0, sx), min(x1, sx + seg.shape[1])
                out[ya - y0:yb - y0, xa - x0:xb - x0] = seg[ya - sy:yb - sy, xa - sx:xb - sx]

    def _segment(self, index: int) -> np.ndarray:
        """Decoded strip or tile ``index``, cropped to the image: (h, w, C) native dtype."""
        seg = self._cache.get(index)
        if seg is not None:
            self._cache.move_to_end(index)
            return seg
        seg = self._decode(index)
        self._cache[index] = seg
        self._cached += seg.nbytes
        while self._cached > self.cache_bytes and len(self._cache) > 1:
            self._cached -= self._cache.popitem(last=False)[1].nbytes
        return seg

    def _decode(self, index: int) -> np.ndarray:
        page, (seg_h, seg_w) = self._page, self._segment_shape
        sy, sx = (index // self._across) * seg_h, (index % self._across) * seg_w
        h, w = min(seg_h, self.shape[0] - sy), min(seg_w, self.shape[1] - sx)
        offset, count = page.dataoffsets[index], page.databytecounts[index]
        if count == 0:  # a sparse TIFF leaves empty segments out: they are zero
            return np.zeros((h, w, self.shape[2]), self.dtype)
        data = os.pread(self._fd, count, offset)
        try:
            with tifffile_messages(self.path, self._reported):
                decoded = page.decode(data, index, jpegtables=page.jpegtables)[0]
            return np.ascontiguousarray(decoded.reshape(decoded.shape[-3:])[:h, :w])
        except Exception as exc:  # codec errors come in many types
            raise InputError(f"{self.path}: cannot decode image data ({_short(exc)})") from None

    def close(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            os.close(self._fd)
            self._fd = -1
        self._tif.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class TiffSink:
    """An uncompressed tiled BigTIFF (H, W, C) uint8/uint16 filled by ``write_block`` in any order.

    ``TiffSink(path, shape, dtype)`` creates ``path`` (all zero); with ``reopen=True`` it reopens an
    existing one made the same way (for resume), checking its layout. ``tile`` is the TIFF tile side
    (multiple of 16). ``photometric`` 'rgb' or 'minisblack'; a 2nd/4th channel is stored as alpha.
    """

    def __init__(self, path, shape: tuple[int, int, int], dtype, *, reopen: bool = False,
                 tile: int = 256, photometric: str | None = None, iccprofile: bytes | None = None):
        self.path = os.fspath(path)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.tile = tile
        if not reopen:
            self._create(photometric, iccprofile)
        self._offsets = self._tile_offsets()
        self._fd = os.open(self.path, os.O_RDWR)

    def _create(self, photometric, iccprofile) -> None:
        height, width, channels = self.shape
        photometric = photometric or ("rgb" if channels >= 3 else "minisblack")
        shape = (height, width) if channels == 1 else (height, width, channels)
        with tifffile.TiffWriter(self.path, bigtiff=True) as writer:
            writer.write(shape=shape, dtype=self.dtype, tile=(self.tile, self.tile),
                         photometric=photometric, compression=None, metadata=None,
                         extrasamples=("unassalpha",) if channels in (2, 4) else None,
                         iccprofile=iccprofile)

    def _tile_offsets(self) -> np.ndarray:
        """Byte offset of every TIFF tile, after checking the file is the layout we write."""
        _, width, channels = self.shape
        tif, page = _open_page(self.path)
        with tif, damaged_tags(self.path):
            layout_ok = (page.is_tiled and page.compression == 1 and page.tilelength == self.tile
                         and page.tilewidth == self.tile and page.dtype == self.dtype
                         and (page.imagelength, page.imagewidth, page.samplesperpixel) == self.shape
                         and tif.byteorder == "<")
            counts = np.asarray(page.databytecounts)
            offsets = np.asarray(page.dataoffsets, np.int64)
        tile_bytes = self.tile * self.tile * channels * self.dtype.itemsize
        if not layout_ok or (counts != tile_bytes).any() or \
                offsets.max() + tile_bytes > os.path.getsize(self.path):
            raise InputError(f"{self.path} is not a partial output of this run; rerun without --resume")
        return offsets.reshape(-1, -(-width // self.tile))

    def write_block(self, y0: int, x0: int, block: np.ndarray) -> None:
        """Store float32 (h, w, C) in [0, 1] at output (y0, x0), quantised to the file's type."""
        pixels = quantise(block, self.dtype)
        h, w = pixels.shape[:2]
        t = self.tile
        row_bytes = t * self.shape[2] * self.dtype.itemsize
        for down in range(y0 // t, (y0 + h - 1) // t + 1):
            ya, yb = max(y0, down * t), min(y0 + h, (down + 1) * t)
            for across in range(x0 // t, (x0 + w - 1) // t + 1):
                xa, xb = max(x0, across * t), min(x0 + w, (across + 1) * t)
                pwrite_rows(self._fd, int(self._offsets[down, across]), row_bytes,
                            pixels[ya - y0:yb - y0, xa - x0:xb - x0], ya - down * t, xa - across * t)

    def flush(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            os.close(self._fd)
            self._fd = -1

    def finish(self, final_path) -> None:
        """fsync, close and atomically rename to ``final_path``: only now does the output exist. A file
        it replaces must be a regular one, and its permission bits are kept."""
        from flowrt.io.atomic import existing_mode
        self.flush()
        self.close()
        kept = existing_mode(Path(final_path))
        if kept is not None:
            os.chmod(self.path, kept)
        os.replace(self.path, final_path)
        fsync_dir(os.path.dirname(os.path.abspath(final_path)))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
