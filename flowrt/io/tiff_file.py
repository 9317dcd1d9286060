"""TIFF reading and writing through tifffile: 8/16-bit grey or RGB, with or without alpha.

The first page is the image. Any compression tifffile decodes with imagecodecs is read (none,
LZW, deflate, PackBits, JPEG, zstd, LZMA, WebP...); JPEG-in-TIFF stored as YCbCr comes back as
RGB, and CMYK as RGB by Pillow's simple formula. The ICC profile (tag 34675) and the orientation tag (274) are kept; other EXIF fields of a
TIFF input are not carried over. Premultiplied (associated) alpha is converted to straight alpha
on reading, and straight alpha is what gets written. tifffile reports malformed tags on its own
logger; ``tifffile_messages`` turns them into one flowrt warning per file.
"""
from __future__ import annotations

import io
import logging
import warnings
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Set

import numpy as np

from flowrt.errors import InputError

ICC_TAG = 34675
ORIENTATION_TAG = 274
MINISWHITE, MINISBLACK, RGB, PALETTE, SEPARATED, YCBCR = 0, 1, 2, 3, 5, 6
JPEG_COMPRESSIONS = (6, 7)  # old- and new-style JPEG: tifffile's decoder converts YCbCr to RGB itself
INKSET_TAG, INKSET_CMYK = 332, 1
ASSOCIATED_ALPHA = 1
log = logging.getLogger("flowrt.io.tiff")


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def tifffile_messages(name: str, seen: Optional[Set[str]] = None) -> Iterator[None]:
    """Within the block, what tifffile logs (malformed or unreadable tags) or warns is collected
    instead of reaching stderr raw through logging's last-resort handler, then logged once as
    "NAME: TIFF metadata ignored (...)" on flowrt.io.tiff. ``seen`` dedupes across calls."""
    logger = logging.getLogger("tifffile")
    handler, propagate = _Collect(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        lines = [(m.splitlines() or [""])[0][:200] for m in handler.messages + [str(w.message) for w in caught]]
        fresh = [m for m in dict.fromkeys(lines) if seen is None or m not in seen]
        if seen is not None:
            seen.update(fresh)
        if fresh:
            more = f" and {len(fresh) - 1} more" if len(fresh) > 1 else ""
            log.warning("%s: TIFF metadata ignored (%s%s)", name, fresh[0], more)


# What tifffile raises when a damaged tag holds the wrong type or count (a tuple where a number
# belongs, too few offsets): reading such a page is a user's damaged file, not a flowrt bug.
METADATA_ERRORS = (TypeError, ValueError, IndexError, KeyError, AttributeError, OverflowError, ZeroDivisionError)


@contextmanager
def damaged_tags(name: str) -> Iterator[None]:
    """Within the block, METADATA_ERRORS become one InputError line naming the file."""
    try:
        yield
    except InputError:
        raise
    except METADATA_ERRORS as exc:
        line = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise InputError(f"{name}: unreadable TIFF (damaged tags: {line})") from None


def _samples_last(page, name: str) -> np.ndarray:
    """The page's pixels as (H, W, S)."""
    axes = page.axes
    if axes not in ("YX", "YXS", "SYX"):
        raise InputError(f"{name}: unsupported TIFF layout (axes {axes})")
    offsets, counts = page.dataoffsets, page.databytecounts
    if any(o + c > page.parent.filehandle.size for o, c in zip(offsets, counts)):
        raise InputError(f"{name}: truncated TIFF")
    try:
        arr = page.asarray()
    except Exception as exc:  # tifffile raises many kinds for broken or unsupported data
        raise InputError(f"{name}: unreadable TIFF ({exc})") from None
    if axes == "YX":
        return arr[..., None]
    return np.moveaxis(arr, 0, -1) if axes == "SYX" else arr


def _to_unit(arr: np.ndarray, page, name: str):
    """Samples -> (float (H, W, S) in [0, 1], bit depth)."""
    if arr.dtype == np.bool_:
        return arr.astype(np.float32), 8
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255, 8
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535, 16
    raise InputError(f"{name}: unsupported TIFF sample type {arr.dtype} (8- or 16-bit integers only)")


def _colour(unit: np.ndarray, page, name: str):
    """(rgb (H, W, 3), alpha or None, mode) from unit samples and the page's photometric."""
    photometric = int(page.photometric)
    if photometric == YCBCR and int(page.compression) in JPEG_COMPRESSIONS:
        photometric = RGB  # decoded to RGB by the JPEG codec
    if photometric == SEPARATED:
        return _cmyk(unit, page, name)
    if photometric == PALETTE:
        cmap = np.asarray(page.colormap, np.float32) / 65535  # (3, 2**bits)
        index = np.round(unit[..., 0] * (255 if page.dtype == np.uint8 else 65535)).astype(np.int64)
        return np.ascontiguousarray(cmap[:, index].transpose(1, 2, 0)), None, "RGB"
    if photometric not in (MINISWHITE, MINISBLACK, RGB):
        raise InputError(f"{name}: unsupported TIFF colour space (photometric {photometric})")
    colours = 3 if photometric == RGB else 1
    if unit.shape[2] < colours:
        raise InputError(f"{name}: TIFF has fewer samples than its colour space needs")
    colour = unit[..., :colours]
    if photometric == MINISWHITE:
        colour = 1 - colour
    alpha = unit[..., colours] if unit.shape[2] > colours else None
    if alpha is not None and page.extrasamples and int(page.extrasamples[0]) == ASSOCIATED_ALPHA:
        colour = np.where(alpha[..., None] > 0, colour / np.maximum(alpha[..., None], 1e-12), 0)
        colour = np.clip(colour, 0, 1)
    rgb = np.repeat(colour, 3, axis=2) if colours == 1 else colour
    return np.ascontiguousarray(rgb, np.float32), alpha, "L" if colours == 1 else "RGB"


def _cmyk(unit: np.ndarray, page, name: str):
    """CMYK (H, W, 4 [+ alpha]) -> (rgb, alpha or None, 'RGB') the way Pillow converts it,
    R = (1 - C)(1 - K), without a colour profile: a print separation has no better default."""
    inkset = page.tags.get(INKSET_TAG)
    if unit.shape[2] < 4 or (inkset is not None and inkset.value != INKSET_CMYK):
        raise InputError(f"{name}: unsupported TIFF colour separation ({unit.shape[2]} inks, not CMYK)")
    rgb = (1 - unit[..., :3]) * (1 - unit[..., 3:4])
    alpha = unit[..., 4] if unit.shape[2] > 4 else None
    return np.ascontiguousarray(rgb, np.float32), alpha, "RGB"


def read_tiff(data: bytes, name: str, check_size: Callable[[str, int, int], None]) -> dict:
    """Decode the first page of a TIFF held in memory into LoadedImage fields."""
    import tifffile

    with tifffile_messages(name):
        try:
            tif = tifffile.TiffFile(io.BytesIO(data))
        except Exception as exc:
            raise InputError(f"{name}: unreadable TIFF ({_first_line(exc)})") from None
        with tif, damaged_tags(name):
            return _read_first_page(tif, name, check_size)


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def _read_first_page(tif, name: str, check_size: Callable[[str, int, int], None]) -> dict:
    """LoadedImage fields from the first page of an open TiffFile."""
    if not tif.pages:
        raise InputError(f"{name}: TIFF holds no image")
    page = tif.pages[0]
    shape = dict(zip(page.axes, page.shape))
    check_size(name, shape.get("X", 0), shape.get("Y", 0))
    unit, depth = _to_unit(_samples_last(page, name), page, name)
    rgb, alpha, mode = _colour(unit, page, name)
    return dict(rgb=rgb, alpha=None if alpha is None else np.ascontiguousarray(alpha, np.float32),
                mode=mode, bit_depth=depth, icc_profile=_tag_bytes(page, ICC_TAG), exif=None, jpeg=None,
                orientation=_orientation(page))


def _tag_bytes(page, code: int) -> Optional[bytes]:
    tag = page.tags.get(code)
    try:
        return bytes(tag.value) if tag is not None else None
    except (TypeError, ValueError):  # a mistyped tag costs the profile, not the image
        return None


def _orientation(page) -> int:
    tag = page.tags.get(ORIENTATION_TAG)
    try:
        value = int(tag.value) if tag is not None else 1
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def encode_tiff(samples: np.ndarray, icc_profile: Optional[bytes], orientation: int) -> bytes:
    """uint8/uint16 (H, W, C), C in 1-4 (grey, grey+alpha, RGB, RGBA) -> deflate-compressed TIFF
    with horizontal differencing (imagecodecs' predictor: photos shrink by a further ~10-30%)."""
    import tifffile

    channels = samples.shape[2]
    kwargs = dict(photometric="minisblack" if channels <= 2 else "rgb", compression="zlib",
                  predictor=True)
    data = samples[..., 0] if channels == 1 else samples
    if channels in (2, 4):
        kwargs["extrasamples"] = ["unassalpha"]
    if channels == 2:
        kwargs["planarconfig"] = "contig"
    if icc_profile:
        kwargs["iccprofile"] = icc_profile
    if orientation != 1:
        kwargs["extratags"] = [(ORIENTATION_TAG, "H", 1, int(orientation), True)]
    buf = io.BytesIO()
    tifffile.imwrite(buf, data, **kwargs)
    return buf.getvalue()
