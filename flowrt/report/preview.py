"""Small pictures for a page: downscaled previews and data URIs (base64 PNG or JPEG, no external file)."""
from __future__ import annotations

import base64
import io
from typing import Tuple

import numpy as np

PREVIEW_SIDE = 960   # longest side of a before/after preview, in pixels
JPEG_QUALITY = 90    # previews of photos: JPEG keeps pages small, at a quality that hides no restoration detail


def fit(size: Tuple[int, int], side: int) -> Tuple[int, int]:
    """(width, height) scaled down (never up) so that the longer side is at most ``side``."""
    w, h = size
    factor = min(1.0, side / max(w, h))
    return max(1, round(w * factor)), max(1, round(h * factor))


def resized(rgb8: np.ndarray, size: Tuple[int, int]):
    """(H, W, 3) uint8 -> PIL image of ``size`` = (width, height): box filter down, nearest up
    (an upscaled input shows its real pixels next to a super-resolved output)."""
    from PIL import Image

    picture = Image.fromarray(rgb8)
    if picture.size == tuple(size):
        return picture
    shrinking = size[0] < picture.width
    return picture.resize(size, Image.BOX if shrinking else Image.NEAREST)


def data_uri(picture, fmt: str = "JPEG") -> str:
    """A PIL image as a data: URI; fmt 'JPEG' (photos) or 'PNG' (maps, charts)."""
    buffer = io.BytesIO()
    if fmt == "JPEG":
        picture.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
        mime = "image/jpeg"
    else:
        picture.save(buffer, format="PNG", optimize=True)
        mime = "image/png"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def block_mean(values: np.ndarray, side: int) -> np.ndarray:
    """(H, W) float map shrunk (area average) so that its longer side is at most ``side``."""
    from PIL import Image

    h, w = values.shape
    size = fit((w, h), side)
    if size == (w, h):
        return values
    return np.asarray(Image.fromarray(values.astype(np.float32)).resize(size, Image.BOX), np.float64)
