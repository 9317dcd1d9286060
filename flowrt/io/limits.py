"""The one pixel limit every reader applies (whole, tiled or streamed), before any pixel is decoded.

It is Pillow's ``Image.MAX_IMAGE_PIXELS`` (read at call time, so a caller or test that changes it
changes every path at once); None switches the check off, as in Pillow.
"""
from __future__ import annotations

from typing import Optional

from flowrt.errors import InputError

__all__ = ["max_pixels", "check_pixels", "bomb_error"]


def max_pixels() -> Optional[int]:
    """The largest width * height any reader decodes (None: unlimited)."""
    from PIL import Image

    return Image.MAX_IMAGE_PIXELS


def bomb_error(name: str, w: int = 0, h: int = 0) -> InputError:
    size = f"of {w}x{h} pixels " if w and h else ""
    return InputError(f"{name}: image {size}exceeds the decompression-bomb limit of {max_pixels()} pixels")


def check_pixels(name: str, w: int, h: int) -> None:
    """InputError for a zero-sized image or one over ``max_pixels()``; w, h as the header declares."""
    if w <= 0 or h <= 0:
        raise InputError(f"{name}: image has zero size")
    limit = max_pixels()
    if limit is not None and w * h > limit:
        raise bomb_error(name, w, h)
