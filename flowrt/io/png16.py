"""16-bit PNG reading and writing (Pillow reads 48/64-bit PNGs as 8-bit and cannot write them).

Only what flowrt needs: bit depth 16, colour types greyscale (0), RGB (2), grey+alpha (4) and
RGBA (6), interlaced or not, with the ICC profile (iCCP) and EXIF (eXIf) chunks. Samples come
back as uint16 arrays (H, W, C), C = 1, 2, 3 or 4.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Optional

import numpy as np

from flowrt.errors import InputError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


@dataclass
class Png16:
    pixels: np.ndarray  # uint16 (H, W, C)
    icc_profile: Optional[bytes]
    exif: Optional[bytes]  # raw TIFF-structured EXIF, as in the eXIf chunk


def png_bit_depth(data: bytes) -> int:
    """The bit depth a PNG's header declares (0 if the header is unreadable)."""
    if data[:8] != SIGNATURE or len(data) < 29 or data[12:16] != b"IHDR":
        return 0
    return data[24]


def _chunks(data: bytes, name: str):
    """Yield (type, payload) for each chunk, checking CRCs."""
    pos = 8
    while pos + 12 <= len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        kind = data[pos + 4:pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise InputError(f"{name}: truncated PNG")
        body = data[pos + 8:pos + 8 + length]
        if zlib.crc32(kind + body) != struct.unpack(">I", data[end - 4:end])[0]:
            raise InputError(f"{name}: corrupt PNG (bad checksum in a {kind.decode('latin-1')} chunk)")
        yield kind, body
        if kind == b"IEND":
            return
        pos = end
    raise InputError(f"{name}: truncated PNG (no end chunk)")


def _unfilter(raw: np.ndarray, height: int, width: int, bpp: int) -> np.ndarray:
    """Undo PNG row filters: raw (height * (1 + width * bpp),) uint8 -> (height, width * bpp)."""
    rows = raw.reshape(height, 1 + width * bpp)
    out = np.zeros((height, width * bpp), np.uint8)
    prev = np.zeros(width * bpp, np.int32)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:].astype(np.int32)
        if kind == 0:
            cur = line
        elif kind == 1:  # Sub: a running sum per byte lane
            cur = np.cumsum(line.reshape(width, bpp), axis=0).reshape(-1) & 0xFF
        elif kind == 2:
            cur = (line + prev) & 0xFF
        elif kind in (3, 4):
            cur = _unfilter_sequential(line, prev, bpp, int(kind))
        else:
            raise ValueError("bad filter type")
        out[y] = cur
        prev = cur.astype(np.int32)
    return out


def _unfilter_sequential(line: np.ndarray, prev: np.ndarray, bpp: int, kind: int) -> np.ndarray:
    """Average (3) and Paeth (4) depend on the pixel to the left: decoded with numba."""
    from flowrt.io._png_kernels import unfilter_avg_paeth

    return unfilter_avg_paeth(line, prev, bpp, kind)


def _decode_pixels(idat: bytes, width: int, height: int, channels: int, interlaced: bool, name: str):
    bpp = 2 * channels
    passes = ADAM7 if interlaced else ((0, 0, 1, 1),)
    sizes = [(-(-(height - y0) // dy), -(-(width - x0) // dx)) for x0, y0, dx, dy in passes]
    expected = sum(h * (1 + w * bpp) for h, w in sizes if h > 0 and w > 0)
    try:
        raw = zlib.decompressobj().decompress(idat, expected + 1)
    except zlib.error:
        raise InputError(f"{name}: corrupt PNG (bad compressed data)") from None
    if len(raw) < expected:
        raise InputError(f"{name}: truncated PNG (image data ends early)")
    buf = np.frombuffer(raw, np.uint8)
    out = np.zeros((height, width, channels), np.uint16)
    pos = 0
    for (x0, y0, dx, dy), (h, w) in zip(passes, sizes):
        if h <= 0 or w <= 0:
            continue
        n = h * (1 + w * bpp)
        try:
            rows = _unfilter(buf[pos:pos + n], h, w, bpp)
        except ValueError:
            raise InputError(f"{name}: corrupt PNG (bad row filter)") from None
        out[y0::dy, x0::dx] = rows.view(">u2").reshape(h, w, channels)
        pos += n
    return out


def decode_png16(data: bytes, name: str, max_pixels: Optional[int]) -> Png16:
    """Decode a 16-bit PNG held in memory; InputError (naming `name`) for anything wrong."""
    chunks = _chunks(data, name)
    kind, ihdr = next(chunks, (None, b""))
    if kind != b"IHDR" or len(ihdr) != 13:
        raise InputError(f"{name}: corrupt PNG (no header)")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    if depth != 16 or colour not in CHANNELS:
        raise InputError(f"{name}: unsupported PNG (bit depth {depth}, colour type {colour})")
    if width == 0 or height == 0:
        raise InputError(f"{name}: image has zero size")
    if max_pixels is not None and width * height > max_pixels:
        raise InputError(f"{name}: image of {width}x{height} pixels exceeds the decompression-bomb "
                         f"limit of {max_pixels} pixels")
    idat, icc, exif = [], None, None
    for kind, body in chunks:
        if kind == b"IDAT":
            idat.append(body)
        elif kind == b"iCCP":
            icc = _read_iccp(body)
        elif kind == b"eXIf":
            exif = body
    pixels = _decode_pixels(b"".join(idat), width, height, CHANNELS[colour], interlace == 1, name)
    return Png16(pixels, icc, exif)


def _read_iccp(body: bytes) -> Optional[bytes]:
    try:
        return zlib.decompress(body[body.index(b"\0") + 2:])
    except (ValueError, zlib.error):
        return None  # a broken profile is dropped, not fatal: the pixels are still good


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def encode_png16(pixels: np.ndarray, icc_profile: Optional[bytes] = None, exif: Optional[bytes] = None) -> bytes:
    """uint16 (H, W, C), C in 1-4 -> PNG bytes (Sub filter on every row, zlib level 6)."""
    height, width, channels = pixels.shape
    colour = {1: 0, 3: 2, 2: 4, 4: 6}[channels]
    rows = pixels.astype(">u2").view(np.uint8).reshape(height, width, 2 * channels).astype(np.int16)
    filtered = rows.copy()
    filtered[:, 1:] -= rows[:, :-1]  # Sub: difference with the same byte lane one pixel left
    body = np.concatenate([np.ones((height, 1), np.uint8),
                           (filtered.reshape(height, -1) & 0xFF).astype(np.uint8)], axis=1)
    out = [SIGNATURE, _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0))]
    if icc_profile:
        out.append(_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc_profile)))
    if exif:
        out.append(_chunk(b"eXIf", exif))
    out.append(_chunk(b"IDAT", zlib.compress(body.tobytes(), 6)))
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)
