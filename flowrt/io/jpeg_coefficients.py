"""A JPEG file's own quantisation: its tables, chroma sampling and quantised DCT coefficients.

The JPEG data term needs the integer coefficients k the encoder wrote (coefficient value
k * q means the true one lay in [q (k - 1/2), q (k + 1/2)]). Pillow decodes pixels only, and
re-estimating k from decoded pixels is wrong where the decoder clipped or upsampled chroma, so
they are read from the entropy-coded data by libjpeg (through jpeglib): baseline, extended,
progressive and arithmetic-coded JPEGs with 8-bit samples, any restart interval. A file libjpeg
reads only with complaints (truncated or corrupt scan data) keeps its tables, but
``coefficients()`` then falls back to re-encoding Pillow's decode with them (``exact`` False).

Coefficient arrays are int32 of shape (blocks_y, blocks_x, 8, 8) in natural (row-major)
frequency order, one per component, covering ceil(component side / 8) blocks.
"""
from __future__ import annotations

import io
import logging
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Tuple

import numpy as np

from flowrt.errors import InputError
# its lock also guards tempfile.tempdir, swapped (process-wide) while jpeglib runs
from flowrt.io.native_stderr import LOCK as STDERR_LOCK, captured_stderr

log = logging.getLogger("flowrt.jpeg")

# libjpeg-turbo 2.1: jpeglib's default (IJG 6b) cannot decode arithmetic coding; the coefficients
# themselves are the file's, whichever libjpeg reads them.
LIBJPEG = "turbo210"
# libjpeg warnings that leave every coefficient intact (padding between markers, odd APP headers)
HARMLESS = ("extraneous bytes before marker", "unknown JFIF revision", "Unknown Adobe color transform",
            "Unknown APP", "JFIF extension")


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
    _damage: Optional[str] = field(default=None, repr=False)  # why the file's coefficients are not used

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
            if self._damage is None:  # built by hand from data alone: read it now
                self._coefficients = decode_coefficients(self.data)
            else:
                # Pillow decoded these pixels, so re-encoding them with the file's tables is a
                # fair approximation of what the encoder wrote
                log.warning("JPEG coefficients re-estimated from the decoded pixels (%s)", self._damage)
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
        the stored slices.
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


# ---------------------------------------------------------------- libjpeg through jpeglib


@contextmanager
def _private_tempdir() -> Iterator[str]:
    """A scratch folder that also receives jpeglib's own temporary copy of the file (it makes one
    per read and does not remove it when libjpeg fails), so nothing is left behind either way."""
    previous = tempfile.tempdir
    with tempfile.TemporaryDirectory(prefix="flowrt-jpeg-") as folder:
        tempfile.tempdir = folder
        try:
            yield folder
        finally:
            tempfile.tempdir = previous


def _libjpeg_read(data: bytes):
    """(jpeglib DCTJPEG with everything loaded, libjpeg's messages); InputError if it refuses."""
    import jpeglib

    messages: List[str] = []
    with STDERR_LOCK, _private_tempdir() as folder:
        path = os.path.join(folder, "input.jpg")  # jpeglib reads paths only (stdin, bytes: here)
        with open(path, "wb") as handle:
            handle.write(data)
        try:
            with captured_stderr(messages), jpeglib.version(LIBJPEG):
                dct = jpeglib.read_dct(path)
                dct.load()
        except Exception as exc:  # jpeglib turns libjpeg's error exit into OSError / RuntimeError
            reason = messages[-1] if messages else str(exc)
            raise InputError(f"unreadable JPEG (libjpeg: {reason})") from None
    return dct, messages


def _damage(messages: List[str]) -> Optional[str]:
    """The first libjpeg warning that means some coefficients were lost or guessed, else None."""
    for message in messages:
        if any(benign in message for benign in HARMLESS):
            log.debug("libjpeg: %s", message)
        else:
            return f"libjpeg: {message}"
    return None


def _parse(data: bytes) -> Tuple[JpegInfo, List[np.ndarray]]:
    """(JpegInfo without coefficients, the coefficients read) from a whole JPEG file."""
    dct, messages = _libjpeg_read(data)
    components = [dct.Y] + ([dct.Cb, dct.Cr] if dct.has_chrominance else [])
    if dct.has_black or len(components) != dct.num_components:
        raise InputError(f"unsupported JPEG with {dct.num_components} colour components")
    # jpeglib gives sampling factors as (vertical, horizontal); JpegInfo keeps (h, v)
    sampling = tuple((int(v_h[1]), int(v_h[0])) for v_h in np.asarray(dct.samp_factor)[:len(components)])
    tables = np.asarray(dct.qt)
    quant = tuple(tables[int(t)].astype(np.int32) for t in np.asarray(dct.quant_tbl_no)[:len(components)])
    info = JpegInfo(data=data, width=int(dct.width), height=int(dct.height), quant=quant, sampling=sampling,
                    progressive=bool(dct.progressive_mode), _damage=_damage(messages))
    return info, [np.ascontiguousarray(k, dtype=np.int32) for k in components]


def decode_coefficients(data: bytes) -> List[np.ndarray]:
    """The quantised coefficients of a whole JPEG file: int32 (by, bx, 8, 8) per component.

    InputError (one line) if libjpeg refuses the file or reports lost or corrupt scan data.
    """
    info, coefficients = _parse(data)
    if info._damage is not None:
        raise InputError(f"corrupt JPEG data ({info._damage})")
    return coefficients


def read_jpeg_info(data: bytes) -> JpegInfo:
    """The tables, frame and coefficients of a JPEG file held in memory (one libjpeg pass).

    InputError (one line) for a file libjpeg cannot read at all; a file it reads with damage
    keeps its tables and re-estimates the coefficients when they are asked for.
    """
    if data[:2] != b"\xff\xd8":
        raise InputError("unreadable JPEG (no start-of-image marker)")
    info, coefficients = _parse(data)
    if info._damage is None:
        info._coefficients = coefficients
    return info


def _reencoded_coefficients(info: JpegInfo) -> List[np.ndarray]:
    """Fallback: re-encode Pillow's decode with the file's tables and read that (approximate)."""
    from PIL import Image

    sub = {(1, 1): 0, (2, 1): 1, (2, 2): 2}.get(info.subsampling)
    if sub is None:
        raise InputError(f"unsupported JPEG chroma sampling {info.sampling}; use --jpeg off")
    try:
        with Image.open(io.BytesIO(info.data)) as im:
            im = im.convert("L" if len(info.quant) == 1 else "RGB")
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... for broken files
        raise InputError(f"unreadable JPEG ({info._damage or exc})") from None
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
