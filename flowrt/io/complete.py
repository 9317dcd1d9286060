"""Is an existing output whole? What ``flowrt batch --skip-existing`` asks before it trusts a file.
Every format flowrt writes is recognised: PNG, JPEG, TIFF, WebP and BMP.

flowrt's own writes are atomic, so a damaged output comes from elsewhere: a copy cut short, another
tool, a disk that filled up under it. The checks read the file's structure, not its pixels, so they
cost little even for a streamed TIFF far larger than memory: a PNG's chunks walked and CRC-checked up
to IEND; a JPEG's header parsed and its end-of-image marker present; a TIFF's first page parsed and
every strip or tile inside the file; a WebP's RIFF size and a BMP's declared file size equal to the
file's.
"""
from __future__ import annotations

import os
import struct
import zlib
from typing import Union

__all__ = ["is_complete_image"]

_PNG = b"\x89PNG\r\n\x1a\n"


def is_complete_image(path: Union[str, os.PathLike]) -> bool:
    """True if ``path`` is a whole PNG, JPEG, TIFF, WebP or BMP (see the module docstring); never raises."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if head.startswith(_PNG):
                return _png_complete(fh)
            if head.startswith(b"\xff\xd8\xff"):
                return _jpeg_complete(fh, path)
            if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
                return _tiff_complete(path)
            if head[:4] == b"RIFF":
                return _webp_complete(fh, head)
            if head[:2] == b"BM":
                return _bmp_complete(fh, head)
    except Exception:  # noqa: BLE001 - any failure to read it means: not a file to trust
        return False
    return False


def _webp_complete(fh, head: bytes) -> bool:
    """RIFF....WEBP whose RIFF size is the file's size (less the 8-byte RIFF header) and whose
    header Pillow parses."""
    size = fh.seek(0, os.SEEK_END)
    fh.seek(8)
    if fh.read(4) != b"WEBP" or struct.unpack("<I", head[4:8])[0] + 8 != size:
        return False
    return _pillow_size_ok(fh)


def _bmp_complete(fh, head: bytes) -> bool:
    """BM whose header's file size is the file's size and whose pixel data fits in it."""
    size = fh.seek(0, os.SEEK_END)
    fh.seek(0)
    header = fh.read(14)
    if len(header) < 14:
        return False
    declared, offset = struct.unpack("<I", header[2:6])[0], struct.unpack("<I", header[10:14])[0]
    return declared == size and offset < size and _pillow_size_ok(fh)


def _pillow_size_ok(fh) -> bool:
    from PIL import Image
    fh.seek(0)
    with Image.open(fh) as im:
        return im.size[0] > 0 and im.size[1] > 0


def _png_complete(fh) -> bool:
    """Every chunk whole with a matching CRC, IHDR first, IEND last."""
    first = True
    while True:
        frame = fh.read(8)
        if len(frame) < 8:
            return False
        length, kind = struct.unpack(">I4s", frame)
        if first and kind != b"IHDR":
            return False
        first = False
        crc = zlib.crc32(kind)
        left = length
        while left:
            block = fh.read(min(left, 1 << 20))
            if not block:
                return False
            crc = zlib.crc32(block, crc)
            left -= len(block)
        stored = fh.read(4)
        if len(stored) < 4 or struct.unpack(">I", stored)[0] != crc & 0xFFFFFFFF:
            return False
        if kind == b"IEND":
            return True


def _jpeg_complete(fh, path) -> bool:
    fh.seek(-2, os.SEEK_END)
    if fh.read(2) != b"\xff\xd9":
        return False
    from PIL import Image
    with Image.open(path) as im:  # the header parses and names a size
        return im.size[0] > 0 and im.size[1] > 0


def _tiff_complete(path) -> bool:
    import numpy as np
    import tifffile
    size = os.path.getsize(path)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        offsets = np.asarray(page.dataoffsets, np.int64)
        counts = np.asarray(page.databytecounts, np.int64)
        return bool(offsets.size and offsets.size == counts.size and (counts > 0).all()
                    and (offsets + counts).max() <= size)
