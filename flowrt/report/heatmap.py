"""A bits/dim map as a picture: an inferno-like colour scale and a labelled colour bar, drawn with Pillow.

The colour range is chosen from percentiles (one noisy pixel must not wash the rest out) and can be
shared between maps (a before and an after map on one scale); values outside it are clipped to the
ends of the bar.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Tuple, Union

import numpy as np

from flowrt.io.atomic import atomic_file

# Anchors of matplotlib's "inferno" (perceptually uniform, dark = likely, bright = unlikely), 0..1.
_ANCHORS = np.array([(0, 0, 4), (40, 11, 84), (101, 21, 110), (159, 42, 99), (212, 72, 66),
                     (245, 125, 21), (250, 193, 39), (252, 255, 164)], np.float64)
LUT = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_ANCHORS)), _ANCHORS[:, c])
                for c in range(3)], 1).round().astype(np.uint8)   # (256, 3) uint8

BAR_WIDTH = 18
MIN_HEIGHT = 256   # maps shorter than this are enlarged (nearest) so the bar's labels fit


def value_range(maps: Iterable[np.ndarray], low: float = 1.0, high: float = 99.0) -> Tuple[float, float]:
    """(lo, hi): the low-th and high-th percentiles of all the maps' values together; hi > lo."""
    values = np.concatenate([np.asarray(m, np.float64).ravel() for m in maps])
    lo, hi = (float(v) for v in np.percentile(values, [low, high]))
    return lo, max(hi, lo + 1e-3)


def colourize(bits: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(H, W) float -> (H, W, 3) uint8: lo (and below) darkest, hi (and above) brightest."""
    t = np.clip((np.asarray(bits, np.float64) - lo) / (hi - lo), 0.0, 1.0)
    return LUT[np.round(t * 255).astype(np.intp)]


def render_heatmap(bits: np.ndarray, value_range_: Tuple[float, float] = None, *, label: str = "bits/dim"):
    """A PIL RGB image: the colourized (H, W) map, a colour bar on its right, tick labels and ``label``.

    value_range_: (lo, hi) of the colour scale (default: ``value_range([bits])``).
    """
    from PIL import Image, ImageDraw

    lo, hi = value_range_ or value_range([bits])
    picture = Image.fromarray(colourize(bits, lo, hi))
    if picture.height < MIN_HEIGHT:
        zoom = -(-MIN_HEIGHT // picture.height)
        picture = picture.resize((picture.width * zoom, picture.height * zoom), Image.NEAREST)
    font = _font(13)
    pad, text_w = 8, 70
    canvas = Image.new("RGB", (picture.width + pad + BAR_WIDTH + text_w, picture.height), "white")
    canvas.paste(picture, (0, 0))
    top, bottom = 22, picture.height - 8            # the bar leaves room for its title
    ramp = LUT[np.linspace(255, 0, bottom - top).round().astype(np.intp)]
    bar = Image.fromarray(np.repeat(ramp[:, None, :], BAR_WIDTH, 1))
    x0 = picture.width + pad
    canvas.paste(bar, (x0, top))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((x0, top, x0 + BAR_WIDTH - 1, bottom - 1), outline=(60, 60, 60))
    draw.text((x0, 2), label, fill="black", font=font)
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = bottom - 1 - frac * (bottom - top - 1)
        value = lo + frac * (hi - lo)
        draw.line((x0 + BAR_WIDTH, y, x0 + BAR_WIDTH + 4, y), fill="black")
        draw.text((x0 + BAR_WIDTH + 7, y), f"{value:.2f}", fill="black", font=font, anchor="lm")
    return canvas


def check_png_destination(path: Union[str, Path], *inputs: Union[str, Path]) -> None:
    """InputError unless ``path`` can take a new PNG heat map (see ``flowrt.report.paths.check_output``)."""
    from flowrt.report.paths import check_output
    check_output(path, (".png",), "heat map", inputs)


def save_png(image, path: Union[str, Path]) -> None:
    """Write a PIL image as PNG, atomically (whole or not at all)."""
    with atomic_file(path) as fh:
        image.save(fh, format="PNG")


def _font(size: int):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)   # Pillow >= 10.1 with FreeType: a scalable font
    except (TypeError, AttributeError, OSError):
        return ImageFont.load_default()
