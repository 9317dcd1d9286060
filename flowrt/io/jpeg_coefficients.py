"""A JPEG file's own quantisation: its tables, chroma sampling and quantised DCT coefficients.

The JPEG data term needs the integer coefficients k the encoder wrote (coefficient value
k * q means the true one lay in [q (k - 1/2), q (k + 1/2)]). Pillow decodes pixels only, and
re-estimating k from decoded pixels is wrong where the decoder clipped or upsampled chroma, so
this module reads them from the entropy-coded data itself: Huffman-coded sequential (baseline,
extended) and progressive JPEGs, 8-bit samples, any restart interval. Anything else (arithmetic
coding, lossless, 12-bit) makes ``coefficients()`` fall back to re-encoding Pillow's decode with
the file's own tables (``exact`` then turns False).

Coefficient arrays are int32 of shape (blocks_y, blocks_x, 8, 8) in natural (row-major)
frequency order, one per component, covering ceil(component side / 8) blocks.
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from flowrt.errors import InputError
from flowrt.io.jpeg_markers import SOF_HUFFMAN, SOF_OTHER, Unsupported, corrupt, next_segment, parse_dqt, parse_sof
from flowrt.io.jpeg_scan import decode_coefficients

log = logging.getLogger("flowrt.jpeg")


@dataclass
class JpegInfo:
    """What a JPEG file says about its own compression.

    ``quant`` holds each component's (8, 8) table in natural order (Y first); ``sampling`` each
    component's (h, v) factors; ``subsampling`` = (sx, sy), how many luma pixels share one chroma
    sample across and down ((2, 2) for 4:2:0, (1, 1) for 4:4:4 and greyscale). ``data`` is the
    whole file. ``exact`` is False when the coefficients were re-estimated, not read.
    """

    data: bytes = field(repr=False)
    width: int
    height: int
    quant: Tuple[np.ndarray, ...]
    sampling: Tuple[Tuple[int, int], ...]
    progressive: bool
    exact: bool = True
    _coefficients: Optional[List[np.ndarray]] = field(default=None, repr=False)

    @property
    def quant_y(self) -> np.ndarray:
        return self.quant[0]

    @property
    def quant_c(self) -> Optional[np.ndarray]:
        return self.quant[1] if len(self.quant) > 1 else None

    @property
    def subsampling(self) -> Tuple[int, int]:
        if len(self.sampling) == 1:
            return (1, 1)
        hmax = max(h for h, _ in self.sampling)
        vmax = max(v for _, v in self.sampling)
        return (hmax // self.sampling[1][0], vmax // self.sampling[1][1])

    def coefficients(self) -> List[np.ndarray]:
        """Quantised coefficients k per component, int32 (by, bx, 8, 8), natural order; cached."""
        if self._coefficients is None:
            try:
                self._coefficients = decode_coefficients(self.data)
            except (Unsupported, InputError) as exc:
                # Pillow decoded these pixels, so re-encoding them with the file's tables is a
                # fair approximation (a corrupt segment Pillow tolerated lands here too)
                log.warning("JPEG coefficients re-estimated from the decoded pixels (%s)", exc)
                self._coefficients = _reencoded_coefficients(self)
                self.exact = False
        return self._coefficients

    @property
    def mcu(self) -> Tuple[int, int]:
        """(rows, columns) of luma pixels per MCU: 8 x the largest vertical/horizontal sampling."""
        return 8 * max(v for _, v in self.sampling), 8 * max(h for h, _ in self.sampling)

    def crop(self, y0: int, y1: int, x0: int, x1: int) -> "JpegInfo":
        """The JPEG of pixel rows [y0, y1) and columns [x0, x1), as if encoded on its own.

        The box must be MCU-aligned (``mcu``): y0, x0 multiples of it, y1, x1 too or the image's
        own bottom/right edge. Blocks never straddle such a border and the encoder's edge padding
        happens only at the image edge, so the crop's coefficients are exactly the file's blocks
        over the box. ``data`` is empty (a crop has no file of its own); ``coefficients()`` returns
        the stored slices (decoding the whole file once, here, if it was not yet).
        """
        mh, mw = self.mcu
        for start, end, side, step, axis in ((y0, y1, self.height, mh, "rows"),
                                             (x0, x1, self.width, mw, "columns")):
            if not 0 <= start < end <= side or start % step or (end % step and end != side):
                raise ValueError(f"JPEG crop {axis} [{start}, {end}) are not MCU-aligned ({step}) "
                                 f"inside 0..{side}")
        vmax, hmax = mh // 8, mw // 8
        coefficients = []
        for (h, v), k in zip(self.sampling, self.coefficients()):
            b0, a0 = y0 * v // vmax // 8, x0 * h // hmax // 8
            b1, a1 = _ceil_div(_ceil_div(y1 * v, vmax), 8), _ceil_div(_ceil_div(x1 * h, hmax), 8)
            coefficients.append(np.ascontiguousarray(k[b0:b1, a0:a1]))
        return JpegInfo(data=b"", width=x1 - x0, height=y1 - y0, quant=self.quant, sampling=self.sampling,
                        progressive=self.progressive, exact=self.exact, _coefficients=coefficients)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def read_jpeg_info(data: bytes) -> JpegInfo:
    """Parse the headers (tables, frame) of a JPEG file held in memory; coefficients stay lazy."""
    if data[:2] != b"\xff\xd8":
        raise corrupt("no start-of-image marker")
    tables: Dict[int, np.ndarray] = {}
    frame, progressive, pos = None, False, 2
    while True:
        marker, payload, pos = next_segment(data, pos)
        if marker == 0xDB:
            parse_dqt(payload, tables)
        elif marker in SOF_HUFFMAN or marker in SOF_OTHER:
            frame = parse_sof(payload)
            progressive = marker in (0xC2, 0xC6, 0xCA, 0xCE)
        elif marker in (0xDA, 0xD9):
            break
    if frame is None:
        raise corrupt("no frame header")
    _, height, width, comps = frame
    missing = [c.tq for c in comps if c.tq not in tables]
    if missing:
        raise corrupt(f"quantisation table {missing[0]} is used but never defined")
    return JpegInfo(data=data, width=width, height=height,
                    quant=tuple(tables[c.tq].copy() for c in comps),
                    sampling=tuple((c.h, c.v) for c in comps), progressive=progressive)


def _reencoded_coefficients(info: JpegInfo) -> List[np.ndarray]:
    """Fallback: re-encode Pillow's decode with the file's tables and parse that (approximate)."""
    from PIL import Image

    sub = {(1, 1): 0, (2, 1): 1, (2, 2): 2}.get(info.subsampling)
    if sub is None:
        raise InputError(f"unsupported JPEG chroma sampling {info.sampling}; use --jpeg off")
    with Image.open(io.BytesIO(info.data)) as im:
        im.load()
        mode = "L" if len(info.quant) == 1 else "RGB"
        im = im.convert(mode)
    tables = [info.quant[0].reshape(-1).tolist()]
    if len(info.quant) > 1:
        tables.append(info.quant[1].reshape(-1).tolist())
    buf = io.BytesIO()
    im.save(buf, "JPEG", qtables=tables, subsampling=sub)
    return decode_coefficients(buf.getvalue())


def jpeg_info_for_quality(rgb: np.ndarray, quality: int, subsampling: Tuple[int, int] = (2, 2),
                          greyscale: bool = False) -> JpegInfo:
    """A JpegInfo for pixels known to have been JPEG-compressed at `quality` (IJG scale 1-100).

    rgb: float (H, W, 3) in [0, 1], the decoded image. Re-encoding it with the same tables
    recovers (approximately) the coefficients the original encoder chose; ``exact`` is False.
    """
    from PIL import Image

    if not 1 <= int(quality) <= 100:
        raise InputError(f"JPEG quality must be 1-100, got {quality}")
    sub = {(1, 1): 0, (2, 1): 1, (2, 2): 2}.get(tuple(subsampling))
    if sub is None:
        raise InputError(f"unsupported chroma subsampling {subsampling}")
    pixels = np.clip(np.round(np.asarray(rgb, np.float64) * 255), 0, 255).astype(np.uint8)
    im = Image.fromarray(pixels, "RGB")
    if greyscale:
        im = im.convert("L")
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=int(quality), subsampling=sub)
    info = read_jpeg_info(buf.getvalue())
    info.exact = False
    return info
