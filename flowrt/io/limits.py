"""The one pixel limit every reader applies (whole, tiled or streamed), before any pixel is decoded,
and the byte cap on what is read into memory to decode.

Where the limit comes from, first match wins:
1. ``set_max_pixels`` (``--max-pixels N|none``), then the environment variable ``FLOWRT_MAX_PIXELS``:
   one limit for every route; ``none`` switches the check off.
2. Otherwise, a decoded image (held whole in memory) gets Pillow's ``Image.MAX_IMAGE_PIXELS`` (read at
   call time, so a caller or test that changes it changes every decoded path at once), and a streamed
   TIFF, restored region by region in bounded memory, ``STREAMED_MAX_PIXELS`` (a gigapixel). Above
   Pillow's limit the header's claim must also fit the file: a declared size more than
   ``MAX_COMPRESSION_RATIO`` times the file's bytes is a decompression bomb, not a scan (deflate
   cannot compress further than about 1032:1).

Input bytes: a file or pipe read whole to be decoded may hold at most ``max_input_bytes()`` (what the
largest image under the decoded limit could take, uncompressed, 16-bit RGBA, plus headers).
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Iterator, Optional

from flowrt.errors import InputError

__all__ = ["max_pixels", "check_pixels", "bomb_error", "set_max_pixels", "parse_max_pixels",
           "max_input_bytes", "pillow_checks_lifted", "ENV_VAR", "STREAMED_MAX_PIXELS", "MAX_COMPRESSION_RATIO"]

ENV_VAR = "FLOWRT_MAX_PIXELS"
STREAMED_MAX_PIXELS = 1 << 30        # a gigapixel: what the streamed route restores in bounded memory
MAX_COMPRESSION_RATIO = 1100         # deflate's ceiling is about 1032:1; more is not an image
_HEADROOM_BYTES = 64 << 20           # headers, metadata (ICC, EXIF), a poorly compressing codec
_UNSET = object()
_explicit = _UNSET                   # set_max_pixels' value (None = no limit)
_pillow_guard = threading.Lock()


def parse_max_pixels(text, where: str = "--max-pixels") -> Optional[int]:
    """'none' (or 0) -> None (no limit); a positive integer (also 1e9, 1_000_000) -> itself."""
    value = str(text).strip().lower().replace("_", "")
    if value in ("none", "0"):
        return None
    try:
        number = float(value) if "e" in value else int(value)
    except ValueError:
        number = -1
    if not number >= 1 or number != int(number):
        raise InputError(f"{where} must be a positive pixel count or 'none', got {text!r}")
    return int(number)


def set_max_pixels(value) -> None:
    """The limit for every route from now on: an int, None (no limit), or 'default' to go back to the
    environment or the built-in defaults. (``--max-pixels`` calls it.)"""
    global _explicit
    _explicit = _UNSET if value == "default" else (None if value is None else int(value))


def _configured():
    """(limit, True) when set by set_max_pixels or FLOWRT_MAX_PIXELS, else (None, False)."""
    if _explicit is not _UNSET:
        return _explicit, True
    text = os.environ.get(ENV_VAR)
    if text is not None and text.strip():
        return parse_max_pixels(text, ENV_VAR), True
    return None, False


def max_pixels(streamed: bool = False) -> Optional[int]:
    """The largest width * height a reader accepts (None: unlimited); see the module docstring."""
    value, configured = _configured()
    if configured:
        return value
    if streamed:
        return STREAMED_MAX_PIXELS
    from PIL import Image
    return Image.MAX_IMAGE_PIXELS


def _how_to_raise() -> str:
    return f"--max-pixels N (or {ENV_VAR}=N; 'none' for no limit) raises it"


def bomb_error(name: str, w: int = 0, h: int = 0, streamed: bool = False) -> InputError:
    size = f"of {w}x{h} pixels " if w and h else ""
    return InputError(f"{name}: image {size}exceeds the decompression-bomb limit of {max_pixels(streamed)} "
                      f"pixels; {_how_to_raise()}")


def check_pixels(name: str, w: int, h: int, *, streamed: bool = False, file_size: Optional[int] = None,
                 bytes_per_pixel: int = 3) -> None:
    """InputError for a zero-sized image, one over ``max_pixels(streamed)``, or (limit not configured,
    more pixels than Pillow's limit) one whose declared w x h x bytes_per_pixel is more than
    MAX_COMPRESSION_RATIO times ``file_size`` bytes; w, h as the header declares."""
    if w <= 0 or h <= 0:
        raise InputError(f"{name}: image has zero size")
    limit = max_pixels(streamed)
    if limit is not None and w * h > limit:
        raise bomb_error(name, w, h, streamed)
    from PIL import Image
    classic = Image.MAX_IMAGE_PIXELS
    if _configured()[1] or file_size is None or classic is None or w * h <= classic:
        return
    if w * h * bytes_per_pixel > MAX_COMPRESSION_RATIO * max(file_size, 1):
        raise InputError(f"{name}: declares {w}x{h} pixels in a file of {file_size} bytes (compressed over "
                         f"{MAX_COMPRESSION_RATIO}:1): a decompression bomb; {_how_to_raise()}")


def max_input_bytes() -> Optional[int]:
    """The most bytes read into memory to decode one image (None: no cap, when the limit is off)."""
    limit = max_pixels()
    return None if limit is None else limit * 8 + _HEADROOM_BYTES


@contextlib.contextmanager
def pillow_checks_lifted() -> Iterator[None]:
    """Pillow's own bomb check (at Pillow's limit) off for the block when flowrt's configured limit is
    higher: ``check_pixels`` is applied instead, right after ``Image.open``. Pillow's limit is a global,
    so lifting it is serialised (and the usual case, no configured limit, changes nothing)."""
    from PIL import Image
    limit, configured = _configured()
    if not configured or (limit is not None and Image.MAX_IMAGE_PIXELS is not None
                          and limit <= Image.MAX_IMAGE_PIXELS):
        yield
        return
    with _pillow_guard:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved
