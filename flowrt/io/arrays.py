"""Images handed over in memory (numpy arrays, PIL images) as the ``LoadedImage`` the pipeline
reads, and a restored RGB result back in the caller's layout: the Python API's side of
``flowrt.io.image_file``."""
from __future__ import annotations

from typing import Any

import numpy as np

from flowrt.errors import InputError
from flowrt.io.colour import LUMA_601
from flowrt.io.image_file import LoadedImage, resized_alpha
from flowrt.io.limits import check_pixels

_MODES = {1: "L", 2: "L", 3: "RGB", 4: "RGB"}   # channels -> colour mode (2 and 4 carry alpha)
_PIL_DIRECT = ("L", "LA", "RGB", "RGBA", "I;16")


def _unit_float(array: np.ndarray) -> "tuple[np.ndarray, int]":
    """(float32 in [0, 1], bit depth 8 or 16) from uint8, uint16 or float samples."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255), 8
    if array.dtype == np.uint16:
        return array.astype(np.float32) / np.float32(65535), 16
    if array.dtype.kind == "f":
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise InputError("a float image must hold finite values in [0, 1]")
        return array.astype(np.float32), 8
    raise InputError(f"an image array must be uint8, uint16 or float in [0, 1], not {array.dtype}")


def loaded_from_array(array: Any, name: str = "<array>") -> LoadedImage:
    """A LoadedImage from an (H, W) or (H, W, C) array, C in 1-4 (2 and 4: the last is alpha);
    uint8, uint16 or float in [0, 1]. The result remembers the layout (``like_array`` restores it)."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in _MODES or min(array.shape[:2]) == 0:
        raise InputError(f"an image array must be (H, W) or (H, W, C) with C in 1-4, got shape {array.shape}")
    check_pixels(name, array.shape[1], array.shape[0])   # before any float copy of a huge array
    x, bit_depth = _unit_float(array)
    channels = x.shape[2]
    colour = x[..., :1] if channels <= 2 else x[..., :3]
    rgb = np.ascontiguousarray(np.repeat(colour, 3, axis=2) if channels <= 2 else colour)
    alpha = np.ascontiguousarray(x[..., -1]) if channels in (2, 4) else None
    h, w = rgb.shape[:2]
    return LoadedImage(rgb, alpha, _MODES[channels], bit_depth, "array", None, None, None, (w, h), name=name)


def loaded_from_pil(image: Any) -> LoadedImage:
    """A LoadedImage from a PIL image (its pixels only: pass a JPEG's path to use its own tables)."""
    if image.mode not in _PIL_DIRECT:
        image = image.convert("RGBA" if "transparency" in image.info or "A" in image.mode else "RGB")
    array = np.asarray(image)
    if image.mode == "I;16":
        array = array.astype(np.uint16)
    return loaded_from_array(array, name=getattr(image, "filename", "") or "<PIL image>")


def like_array(rgb: np.ndarray, like: LoadedImage, dtype: Any, squeeze: bool) -> np.ndarray:
    """float (H, W, 3) in [0, 1] -> the layout ``like`` came in: grey (H, W) (or (H, W, 1) unless
    ``squeeze``), RGB (H, W, 3), alpha (resized to H, W) as a last channel; as ``dtype``: uint8
    (0-255), uint16 (0-65535) or a float type (in [0, 1])."""
    planes = np.clip(np.asarray(rgb, np.float32), 0, 1)
    if like.mode == "L":
        planes = (planes @ np.array(LUMA_601, np.float32))[..., None]
    if like.alpha is not None:
        planes = np.concatenate([planes, resized_alpha(like.alpha, *planes.shape[:2])[..., None]], axis=2)
    if squeeze and planes.shape[2] == 1:
        planes = planes[..., 0]
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return planes.astype(dtype)
    top = 255 if dtype == np.uint8 else 65535
    return np.round(planes * top).astype(dtype)
