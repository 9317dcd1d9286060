"""Open an input once and decide once how it is restored: whole, tiled in memory, or streamed.

The first stage of the pipeline (load -> plan -> restore -> write). Everything later reads pixels
through the ``Source`` this returns, so no later stage opens the file again or re-decides the
route. A TIFF whose output is a TIFF and that is tiled is *streamed*: only its header is read here
and regions are decoded on demand; every other input is decoded whole, once.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol, Tuple

import numpy as np

from flowrt.errors import InputError
from flowrt.io.formats import TIFF_SUFFIXES


class Route(enum.Enum):
    """How one image is restored; decided once by ``open_source``."""
    WHOLE = "whole"          # one MAP over the decoded image
    TILED = "tiled"          # decoded image, tiles blended in memory (a .npy partial when OUT is a file)
    STREAMED = "streamed"    # TIFF to TIFF by regions, never whole in memory


class PixelSource(Protocol):
    """What the tiler reads from: shape (H, W, C) and read(y0, y1, x0, x1) -> float32 (h, w, C) in [0, 1]."""
    shape: Tuple[int, int, int]

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray: ...

    def close(self) -> None: ...


@dataclass
class Source:
    """One opened input. image: the decoded LoadedImage (None when streamed); pixels: what the
    tiler reads (the decoded RGB, or the open TiffSource with its own channel count); size:
    (width, height); tile: output pixels per tile side, 0 = restore whole."""
    in_path: str
    name: str
    format: str
    size: Tuple[int, int]
    greyscale: bool
    route: Route
    tile: int
    pixels: PixelSource
    image: Optional[object] = None   # flowrt.io.image_file.LoadedImage

    @property
    def jpeg(self):
        """The file's own JPEG coefficients (JpegInfo) for a decoded JPEG, else None."""
        return None if self.image is None else self.image.jpeg

    def read_rgb(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """float32 (y1-y0, x1-x0, 3) in [0, 1]: grey replicated, alpha dropped."""
        region = self.pixels.read(y0, y1, x0, x1)
        channels = region.shape[2]
        if channels == 3:
            return region
        return np.repeat(region[:, :, :1], 3, axis=2) if channels <= 2 else region[:, :, :3]

    def close(self) -> None:
        self.pixels.close()

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _streamable(in_path: str, out_path: str, tile_request: Optional[int]) -> bool:
    from flowrt.io.tiff_stream import is_tiff
    return (tile_request != 0 and "-" not in (in_path, out_path)
            and Path(out_path).suffix.lower() in TIFF_SUFFIXES and is_tiff(in_path))


def open_source(in_path: str, out_path: str, scale: int, tiling) -> Source:
    """Open ``in_path`` for a restore into ``out_path`` at ``scale`` with ``tiling``
    (flowrt.pipeline.run.TilingOptions); InputError for an unreadable input."""
    in_path, out_path = str(in_path), str(out_path)
    if _streamable(in_path, out_path, tiling.tile):
        streamed = _open_streamed(in_path, scale, tiling)
        if streamed is not None:
            return streamed
    from flowrt.io.array_stream import ArraySource
    from flowrt.io.image_file import read_image
    image = read_image(in_path)
    return from_image(image, in_path, tiling.tile_side(image.size[1] * scale, image.size[0] * scale),
                      pixels=ArraySource(image.rgb))


def from_image(image, in_path: str = "<array>", tile: int = 0, pixels: Optional[PixelSource] = None) -> Source:
    """A Source over an already decoded LoadedImage (whole unless ``tile``)."""
    from flowrt.io.array_stream import ArraySource
    w, h = image.size
    route = Route.TILED if tile else Route.WHOLE
    return Source(in_path, image.name, image.format, (w, h), image.mode == "L", route, tile,
                  pixels or ArraySource(image.rgb), image)


def _open_streamed(in_path: str, scale: int, tiling) -> Optional[Source]:
    """A streamed Source, or None where the TIFF is small enough to restore whole or has a layout
    only the whole-image reader handles (palette, planar: that reader then says what is wrong)."""
    from flowrt.io.tiff_stream import TiffSource
    try:
        tiff = TiffSource(in_path)
    except InputError:
        return None
    height, width, channels = tiff.shape
    tile = tiling.tile_side(height * scale, width * scale)
    if not tile:
        tiff.close()
        return None
    tiff.cache_bytes = tiff.band_cache_bytes(tile // scale, tile // scale)
    from flowrt.io.image_file import display_name
    return Source(in_path, display_name(Path(in_path).name), "TIFF (streamed)", (width, height), channels <= 2,
                  Route.STREAMED, tile, tiff)
