"""Images as users have them: 8/16-bit PNG and TIFF, greyscale, RGBA, JPEG, WebP, BMP; ICC and EXIF kept.

``read_image`` turns a file, bytes or stdin ('-') into a ``LoadedImage`` (float RGB in [0, 1]
plus everything needed to write the result back the way the input was); ``write_image`` writes
an RGB result like a given input, atomically, never over that input. Pixels are never rotated:
the EXIF orientation tag is carried over so viewers show the output as they showed the input.
"""
from __future__ import annotations

import functools
import io
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np

from flowrt.errors import InputError
from flowrt.io.atomic import atomic_file, check_output_path
from flowrt.io.colour import LUMA_601
from flowrt.io.formats import (EIGHT_BIT_FORMATS, FORMAT_CHOICES, FORMAT_NAMES, JPEG_QUALITY,
                                QUALITY_FORMATS)
from flowrt.io.jpeg_coefficients import JpegInfo, read_jpeg_info
from flowrt.io.input_bytes import display_name, read_source as _read_source, sniff_format as _sniff  # noqa: F401 (display_name re-exported)
from flowrt.io.limits import bomb_error, check_pixels, pillow_checks_lifted
from flowrt.io.stdout_pipe import write_stdout as _write_stdout
from flowrt.io.png16 import decode_png16, encode_png16, png_bit_depth

log = logging.getLogger("flowrt.io.image_file")
__all__ = ["LoadedImage", "JpegInfo", "read_image", "write_image", "check_destination", "format_for_path"]

EXIF_PREFIX = b"Exif\x00\x00"
ORIENTATION_TAG = 274
LUMA = np.array(LUMA_601, np.float32)
Source = Union[str, os.PathLike, bytes, bytearray]


@dataclass
class LoadedImage:
    """A decoded input image and what is needed to write a result back like it.

    rgb: float32 (H, W, 3) in [0, 1] (greyscale replicated to 3 channels). alpha: float32 (H, W)
    in [0, 1] or None. mode: 'L' or 'RGB' (the file's colour). bit_depth: 8 or 16 per sample.
    format: 'PNG', 'TIFF', 'JPEG', 'WEBP' or 'BMP'. exif: EXIF bytes starting with b'Exif\\0\\0' (or None).
    orientation: EXIF orientation 1-8 (1 = as stored). jpeg: the file's own quantisation for
    JPEG inputs. size: (width, height). source: the path read, None for bytes or stdin.
    """

    rgb: np.ndarray
    alpha: Optional[np.ndarray]
    mode: str
    bit_depth: int
    format: str
    icc_profile: Optional[bytes]
    exif: Optional[bytes]
    jpeg: Optional[JpegInfo]
    size: Tuple[int, int]
    source: Optional[str] = None
    orientation: int = 1
    name: str = "<image>"


def _normalise_exif(exif: Optional[bytes]) -> Optional[bytes]:
    if not exif:
        return None
    return exif if exif.startswith(EXIF_PREFIX) else EXIF_PREFIX + exif


def _orientation(exif: Optional[bytes]) -> int:
    if not exif:
        return 1
    from PIL import Image

    try:
        with warnings.catch_warnings():  # Pillow warns "Corrupt EXIF data": the tag is lost either way
            warnings.simplefilter("ignore")
            tags = Image.Exif()
            tags.load(exif)
            value = int(tags.get(ORIENTATION_TAG, 1))
    except Exception:  # a damaged EXIF block costs the tag, not the image
        return 1
    return value if 1 <= value <= 8 else 1


def _to_float(samples: np.ndarray, bit_depth: int) -> np.ndarray:
    return samples.astype(np.float32) / np.float32(255 if bit_depth == 8 else 65535)


def _assemble(samples: np.ndarray, bit_depth: int, grey: bool, has_alpha: bool):
    """uint samples (H, W, C) -> (rgb float32 (H, W, 3), alpha float32 (H, W) or None, mode)."""
    x = _to_float(samples, bit_depth)
    colour = x[..., :1] if grey else x[..., :3]
    rgb = np.ascontiguousarray(np.repeat(colour, 3, axis=2) if grey else colour)
    alpha = np.ascontiguousarray(x[..., -1]) if has_alpha else None
    return rgb, alpha, "L" if grey else "RGB"


def _open_pillow(data: bytes, name: str):
    from PIL import Image

    # Pillow's UserWarnings ("Invalid APNG", "malformed MPO", "Corrupt EXIF data") would reach the
    # terminal raw: they are collected and logged, one line each, naming the file
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with pillow_checks_lifted():   # flowrt's limit (--max-pixels) applies, not Pillow's alone
                im = Image.open(io.BytesIO(data))
                check_pixels(name, *im.size, file_size=len(data))
                im.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise bomb_error(name) from None
        except InputError:
            raise
        except Image.UnidentifiedImageError:  # its message names a BytesIO object, useless to a user
            raise InputError(f"{name}: unreadable or damaged image (its header is not valid)") from None
        except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, EOFError...
            raise InputError(f"{name}: unreadable or truncated image ({exc})") from None
        finally:
            for message in dict.fromkeys(" ".join(str(w.message).split()) for w in caught):
                log.warning("%s: %s", name, message)
    return im


def _read_with_pillow(data: bytes, name: str, fmt: str) -> dict:
    im = _open_pillow(data, name)
    info = im.info
    has_alpha = im.mode in ("LA", "RGBA", "PA", "La", "RGBa") or "transparency" in info
    grey = im.mode in ("1", "L", "LA", "La", "I", "I;16")
    if im.mode in ("I", "I;16"):
        raise InputError(f"{name}: unsupported {im.mode} image")
    target = ("LA" if has_alpha else "L") if grey else ("RGBA" if has_alpha else "RGB")
    samples = np.asarray(im.convert(target)).reshape(im.size[1], im.size[0], len(target))
    rgb, alpha, mode = _assemble(samples, 8, grey, has_alpha)
    jpeg = None
    if fmt == "JPEG" and im.mode in ("L", "RGB") and info.get("adobe_transform", 1) != 0:
        try:  # CMYK or RGB-coded JPEGs are not YCbCr: no JPEG model for them
            jpeg = read_jpeg_info(data)
        except InputError as exc:  # Pillow read it, so the image is still usable without the model
            log.warning("%s: JPEG quantisation unreadable, restoring it as a plain image (%s)", name, exc)
    return dict(rgb=rgb, alpha=alpha, mode=mode, bit_depth=8, icc_profile=info.get("icc_profile") or None,
                exif=_normalise_exif(info.get("exif")), jpeg=jpeg)


def _read_png16(data: bytes, name: str) -> dict:
    png = decode_png16(data, name, functools.partial(check_pixels, file_size=len(data), bytes_per_pixel=6))
    channels = png.pixels.shape[2]
    rgb, alpha, mode = _assemble(png.pixels, 16, channels <= 2, channels in (2, 4))
    return dict(rgb=rgb, alpha=alpha, mode=mode, bit_depth=16, icc_profile=png.icc_profile,
                exif=_normalise_exif(png.exif), jpeg=None)


def _read_tiff(data: bytes, name: str) -> dict:
    from flowrt.io.tiff_file import read_tiff

    return read_tiff(data, name, functools.partial(check_pixels, file_size=len(data)))


def read_image(src: Source) -> LoadedImage:
    """Read a PNG, TIFF, JPEG, WebP or BMP from a path, bytes, or '-' (stdin).

    Raises InputError (one line naming the file) for a missing, empty, truncated, unreadable,
    zero-sized or over-large (Pillow's MAX_IMAGE_PIXELS) image.
    """
    data, name, source = _read_source(src)
    if not data:
        raise InputError(f"{name}: empty file")
    fmt = _sniff(data, name)
    if fmt == "PNG" and png_bit_depth(data) == 16:
        fields = _read_png16(data, name)
    elif fmt == "TIFF":
        fields = _read_tiff(data, name)
    else:
        fields = _read_with_pillow(data, name, fmt)
    orientation = fields.pop("orientation", None) or _orientation(fields["exif"])
    h, w = fields["rgb"].shape[:2]
    return LoadedImage(format=fmt, size=(w, h), source=source, orientation=orientation, name=name, **fields)


# ---------------------------------------------------------------- writing


def format_for_path(path: str, fmt: Optional[str] = None) -> str:
    """'PNG', 'TIFF', 'JPEG', 'WEBP' or 'BMP' from an explicit fmt or the path's suffix ('-' means
    PNG). A fmt that the path's suffix contradicts is an InputError (the file would lie)."""
    named = None
    if fmt:
        if fmt.lower() not in FORMAT_NAMES:
            raise InputError(f"unknown output format {fmt!r}; use {', '.join(FORMAT_CHOICES)}")
        named = FORMAT_NAMES[fmt.lower()]
    if str(path) == "-":
        return named or "PNG"
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMAT_NAMES:
        raise InputError(f"{path}: cannot tell the output format from the suffix; use "
                         f"{', '.join('.' + c for c in FORMAT_CHOICES)}")
    if named is not None and FORMAT_NAMES[suffix] != named:
        raise InputError(f"{path}: the suffix says {FORMAT_NAMES[suffix]} but --format says {named}")
    return FORMAT_NAMES[suffix]


def _exif_for_output(like: LoadedImage) -> Optional[bytes]:
    """The input's EXIF, or a minimal one carrying its orientation (e.g. from a TIFF tag)."""
    if like.exif:
        return like.exif
    if like.orientation != 1:
        from PIL import Image

        tags = Image.Exif()
        tags[ORIENTATION_TAG] = like.orientation
        return _normalise_exif(tags.tobytes())
    return None


def resized_alpha(alpha: np.ndarray, h: int, w: int) -> np.ndarray:
    """Alpha at the output size (it differs after --scale): Pillow bicubic on floats, clipped."""
    if alpha.shape == (h, w):
        return alpha
    from PIL import Image

    im = Image.fromarray(alpha.astype(np.float32), "F").resize((w, h), Image.BICUBIC)
    return np.clip(np.asarray(im), 0, 1)


def _samples(rgb: np.ndarray, like: LoadedImage, bit_depth: int) -> np.ndarray:
    """float RGB -> uint (H, W, C) samples with the input's colour mode and alpha."""
    planes = (rgb @ LUMA)[..., None] if like.mode == "L" else rgb
    if like.alpha is not None:
        planes = np.concatenate([planes, resized_alpha(like.alpha, *rgb.shape[:2])[..., None]], axis=2)
    top = 255 if bit_depth == 8 else 65535
    return np.round(np.clip(planes, 0, 1) * top).astype(np.uint8 if bit_depth == 8 else np.uint16)


def _encode(samples: np.ndarray, like: LoadedImage, fmt: str, quality: Optional[int] = None) -> bytes:
    exif = _exif_for_output(like)
    if fmt == "TIFF":
        from flowrt.io.tiff_file import encode_tiff

        return encode_tiff(samples, like.icc_profile, like.orientation)
    if fmt == "PNG" and samples.dtype == np.uint16:
        return encode_png16(samples, like.icc_profile, exif[len(EXIF_PREFIX):] if exif else None)
    from PIL import Image

    channels = samples.shape[2]
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
    im = Image.fromarray(samples[..., 0] if channels == 1 else samples, mode)
    extra = {"icc_profile": like.icc_profile} if like.icc_profile else {}
    if exif:
        extra["exif"] = exif
    buf = io.BytesIO()
    if fmt == "JPEG":  # 4:4:4: a restored image's colour detail is what the user paid for
        im.save(buf, "JPEG", quality=quality or JPEG_QUALITY, subsampling=0, **extra)
    elif fmt == "WEBP":  # lossless unless a quality is asked for
        options = {"quality": quality} if quality else {"lossless": True}
        im.save(buf, "WEBP", method=4, **options, **extra)
    elif fmt == "BMP":  # holds no ICC profile or EXIF
        im.save(buf, "BMP")
    else:
        im.save(buf, "PNG", **extra)
    return buf.getvalue()


def check_destination(dest: Union[str, os.PathLike], like: LoadedImage, bit_depth: Optional[int] = None,
                      fmt: Optional[str] = None, quality: Optional[int] = None) -> Tuple[str, int]:
    """(format, bit depth) ``write_image`` would use for ``dest``, or the InputError it would raise
    (unknown suffix, impossible depth, alpha into JPEG, a quality for a lossless format, the input
    itself, a missing or read-only folder, a folder named as the file: ``flowrt.io.atomic.check_output_path``).

    Callers run it before any long computation, so a bad OUT fails in a second, not after the work.
    """
    fmt = format_for_path(str(dest), fmt)
    depth = bit_depth or (8 if fmt in EIGHT_BIT_FORMATS else like.bit_depth)
    if depth not in (8, 16) or (fmt in EIGHT_BIT_FORMATS and depth != 8):
        raise InputError(f"cannot write {fmt} with {depth}-bit samples")
    if fmt == "JPEG" and like.alpha is not None:
        raise InputError(f"{dest}: JPEG cannot hold the alpha channel; write .png, .tif or .webp")
    if quality is not None and (fmt not in QUALITY_FORMATS or not 1 <= quality <= 100):
        raise InputError(f"--quality (1-100) is for JPEG and WebP output; got {quality} for {fmt}")
    if str(dest) != "-":
        check_output_path(dest, like.source)
    return fmt, depth


def write_image(dest: Union[str, os.PathLike], rgb: np.ndarray, like: LoadedImage,
                bit_depth: Optional[int] = None, fmt: Optional[str] = None, quality: Optional[int] = None) -> None:
    """Write rgb (float (H, W, 3), values clipped to [0, 1]) the way `like` was stored.

    Bit depth follows the input unless given (JPEG is always 8); greyscale stays greyscale; the
    alpha channel is re-attached (resized if H, W changed); ICC profile, EXIF and orientation are
    kept (BMP holds neither). The format comes from fmt or the suffix; '-' writes PNG (or fmt) bytes
    to stdout. quality: JPEG/WebP 1-100 (default: JPEG 95 with 4:4:4 chroma, WebP lossless). The
    write is atomic and refuses to replace the input file (InputError); a file system that refuses the
    bytes (full, read-only, closed pipe) raises StorageError.
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"write_image expects (H, W, 3), got {rgb.shape}")
    if not np.isfinite(rgb).all():
        raise ValueError("write_image refuses an image with NaN or infinite values")
    fmt, depth = check_destination(dest, like, bit_depth, fmt, quality)
    payload = _encode(_samples(rgb, like, depth), like, fmt, quality)
    if str(dest) == "-":
        _write_stdout(payload)
    else:
        with atomic_file(dest) as fh:
            fh.write(payload)

