"""Noise that went through a JPEG: its std before the compression, from what the decode reads.

A JPEG zeroes the noise's small DCT coefficients (and 4:2:0 averages its chroma), so
``noise_level.estimate_sigma`` on a decoded noisy JPEG reads far below the noise that was there,
while the JPEG data term models the noise *before* the quantisation. The reading is mapped back
through the same compression, simulated: a flat mid-grey patch plus Gaussian noise of std s,
encoded with the image's own quantisation tables and chroma subsampling, decoded and read by the
same estimator, gives r(s); the noise before the JPEG is the s with r(s) equal to the image's
reading (bisection; r grows with s). Flat grey stands in for the photo because the estimator reads
only a photo's flattest pixels; the figures behind this are in benchmarks/results/jpeg_noise.md.
"""
from __future__ import annotations

import io
from typing import Callable, Optional

import numpy as np

from flowrt.pipeline.noise_level import estimate_sigma

PATCH = 256         # side of the simulated patch: a 64k-pixel sample, as a crop of a photo gives
_SEED = 0           # one fixed noise field, scaled by s, so r(s) is a deterministic, rising function
_STEPS = 11         # bisection steps over [reading, _HIGHEST]: the answer to within 0.05
# The search stops here: beyond it the simulated mid-grey patch clips at 0 and 255 so much that its
# reading flattens (and dips), and r(s) would no longer tell one s from another.
_HIGHEST = 100.0


def noise_before_jpeg(reading: float, tables, upper: float = 255.0) -> float:
    """The std (0-255) of Gaussian noise added before the JPEG ``tables`` describe, whose decode
    ``estimate_sigma`` reads as ``reading`` (0-255). tables: a ``flowrt.io.jpeg_coefficients.JpegInfo``
    (``quant_y``, ``quant_c``, ``subsampling``). Never below ``reading`` (a JPEG removes noise, it adds
    none); at most ``upper`` and ``_HIGHEST``."""
    read = _simulated_reading(tables, greyscale=tables.quant_c is None)
    if reading <= 0 or read(reading) >= reading:
        return float(reading)
    low, high = float(reading), max(float(reading), min(float(upper), _HIGHEST))
    if read(high) < reading:
        return high
    for _ in range(_STEPS):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if read(middle) < reading else (low, middle)
    return 0.5 * (low + high)


def _simulated_reading(tables, greyscale: bool) -> Callable[[float], float]:
    """s -> ``estimate_sigma`` of a decoded mid-grey PATCH x PATCH JPEG (these tables) with noise std s."""
    from PIL import Image

    field = np.random.default_rng(_SEED).standard_normal((PATCH, PATCH, 1 if greyscale else 3))
    qtables = [np.asarray(tables.quant_y).reshape(64).tolist()]
    if not greyscale and tables.quant_c is not None:
        qtables.append(np.asarray(tables.quant_c).reshape(64).tolist())
    subsampling = _PILLOW_SUBSAMPLING.get(tuple(tables.subsampling), 2)

    def read(sigma: float) -> float:
        pixels = np.clip(np.round(128.0 + sigma * field), 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels[..., 0] if greyscale else pixels)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", qtables=qtables, **({} if greyscale else {"subsampling": subsampling}))
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())), dtype=np.float32) / 255.0
        return estimate_sigma(decoded)
    return read


# JpegInfo.subsampling (luma pixels per chroma sample across, down) -> Pillow's subsampling argument;
# a layout Pillow cannot write (4:1:1) is simulated as 4:2:0, the nearest it can.
_PILLOW_SUBSAMPLING = {(1, 1): 0, (2, 1): 1, (2, 2): 2}


def jpeg_tables(term) -> Optional[object]:
    """The JpegInfo whose tables a plan's JPEG term (``FileJpeg``, ``JpegQuality``) quantises with."""
    info = getattr(term, "info", None)
    if info is not None:
        return info
    return term.for_region(np.zeros((16, 16, 3), np.float32), (0, 16, 0, 16))
