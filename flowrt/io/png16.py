"""16-bit PNG reading and writing (Pillow reads 48/64-bit PNGs as 8-bit and cannot write them).

Pixels go through libpng (``imagecodecs.png_decode`` / ``png_encode``): bit depth 16, colour
types greyscale (0), RGB (2), grey+alpha (4) and RGBA (6), interlaced or not. imagecodecs does
not carry metadata, so the ICC profile (iCCP) and EXIF (eXIf) chunks are read and written here.
Samples come back as uint16 arrays (H, W, C), C = 1, 2, 3 or 4 (a tRNS chunk becomes alpha).
"""
from __future__ import annotations

import logging
import struct
import zlib
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np

from flowrt.errors import InputError
from flowrt.io.native_stderr import captured_stderr

log = logging.getLogger("flowrt.io.png")

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}
IHDR_END = 8 + 8 + 13 + 4  # signature, IHDR length+type, body, CRC: where extra chunks may go


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


def _header(data: bytes, name: str) -> Tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) from the IHDR chunk."""
    if png_bit_depth(data) == 0:
        raise InputError(f"{name}: corrupt PNG (no header)")
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    return width, height, depth, colour


def _metadata(data: bytes) -> Tuple[Optional[bytes], Optional[bytes]]:
    """(ICC profile, EXIF) from the iCCP and eXIf chunks; damaged ones are skipped, not fatal
    (libpng judges the image data itself)."""
    icc = exif = None
    pos = 8
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc = data[pos + 8 + length:pos + 12 + length]
        if len(crc) < 4 or kind == b"IEND":
            break
        if zlib.crc32(kind + body) == struct.unpack(">I", crc)[0]:
            if kind == b"iCCP":
                icc = _read_iccp(body)
            elif kind == b"eXIf":
                exif = body
        pos += 12 + length
    return icc, exif


def _read_iccp(body: bytes) -> Optional[bytes]:
    try:  # profile name, NUL, compression method byte, zlib stream
        return zlib.decompress(body[body.index(b"\0") + 2:])
    except (ValueError, zlib.error):
        return None  # a broken profile is dropped, not fatal: the pixels are still good


def decode_png16(data: bytes, name: str, check_size: Callable[[str, int, int], None]) -> Png16:
    """Decode a 16-bit PNG held in memory; InputError (one line naming `name`) for anything wrong.

    The size is checked by ``check_size(name, width, height)`` (``flowrt.io.limits.check_pixels``)
    before any pixel is decompressed.
    """
    import imagecodecs

    width, height, depth, colour = _header(data, name)
    if depth != 16 or colour not in CHANNELS:
        raise InputError(f"{name}: unsupported PNG (bit depth {depth}, colour type {colour})")
    if width == 0 or height == 0:
        raise InputError(f"{name}: image has zero size")
    check_size(name, width, height)
    messages: list = []
    try:
        with captured_stderr(messages):  # libpng prints chunk warnings ("iCCP: too short") there
            pixels = imagecodecs.png_decode(data)
    except Exception as exc:  # imagecodecs.PngError (libpng's message) or a memory error
        raise InputError(f"{name}: corrupt or truncated PNG ({str(exc).strip() or type(exc).__name__})") from None
    for message in messages:
        log.debug("%s: %s", name, message)
    pixels = pixels.reshape(height, width, -1)
    # libpng turns a tRNS chunk (one transparent grey or RGB value) into an alpha channel
    if pixels.dtype != np.uint16 or pixels.shape[2] - CHANNELS[colour] not in (0, colour in (0, 2)):
        raise InputError(f"{name}: unsupported PNG (decoded as {pixels.dtype} x {pixels.shape[2]})")
    icc, exif = _metadata(data)
    return Png16(np.ascontiguousarray(pixels), icc, exif)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def encode_png16(pixels: np.ndarray, icc_profile: Optional[bytes] = None, exif: Optional[bytes] = None) -> bytes:
    """uint16 (H, W, C), C in 1-4 -> PNG bytes (libpng, zlib level 6), with iCCP / eXIf chunks.

    exif: raw TIFF-structured EXIF (no b'Exif\\0\\0' prefix), as the eXIf chunk holds it.
    """
    import imagecodecs

    pixels = np.ascontiguousarray(pixels, np.uint16)
    if pixels.ndim != 3 or not 1 <= pixels.shape[2] <= 4:
        raise ValueError(f"encode_png16 expects (H, W, 1-4) uint16, got {pixels.shape}")
    png = imagecodecs.png_encode(pixels[..., 0] if pixels.shape[2] == 1 else pixels, level=6)
    extra = b""
    if icc_profile:  # iCCP must come before IDAT (and PLTE); right after IHDR is always valid
        extra += _chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc_profile))
    if exif:
        extra += _chunk(b"eXIf", exif)
    return png[:IHDR_END] + extra + png[IHDR_END:]
