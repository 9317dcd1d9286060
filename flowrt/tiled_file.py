"""File in, file out, tiled: picks streaming TIFF or in-memory I/O and owns the partial/resume files.

While it runs, only ``OUT.partial`` (the output being filled: a tiled BigTIFF, or a raw ``.npy`` for
other formats) and the folder ``OUT.partial.state`` exist; ``OUT`` appears, by an atomic rename, only
once every tile is in. An interrupted run leaves both behind for ``resume=True``; a fresh run deletes
them first. TIFF input is streamed (never whole in memory); PNG/JPEG input is decoded once.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from flowrt.array_stream import ArraySource, NpySink
from flowrt.errors import InputError
from flowrt.tile_resume import fsync_dir
from flowrt.tiff_stream import TiffSink, TiffSource, is_tiff
from flowrt.tiling import TileGrid, restore_tiled

__all__ = ["restore_file_tiled", "partial_paths", "load_image_pillow", "save_image_pillow"]

log = logging.getLogger(__name__)
_TIFF_SUFFIXES = {".tif", ".tiff"}


def partial_paths(out_path) -> tuple[Path, Path]:
    """(partial output, resume state folder) used while ``out_path`` is being made."""
    out_path = Path(out_path)
    partial = out_path.with_name(out_path.name + ".partial")
    return partial, partial.with_name(partial.name + ".state")


def restore_file_tiled(in_path, out_path, restore_tile: Callable, *, tile: int = 512,
                       overlap: int = 32, scale: int = 1, align: int = 8, resume: bool = False,
                       progress: Callable[[int, int], None] | None = None, run_key: str = "",
                       load_image: Callable | None = None, save_image: Callable | None = None) -> None:
    """Restore image file ``in_path`` into ``out_path`` tile by tile (see ``tiling.restore_tiled``).

    restore_tile(tile_in float32 (h, w, C) [0, 1], box_in) -> float32 (h*scale, w*scale, C): gets
    C = 1 (grey) or 3 (RGB); an alpha channel is split off and passed through (repeated x scale).
    A TIFF ``out_path`` (.tif/.tiff) is written as a tiled BigTIFF while tiles finish; others go
    through ``save_image`` at the end. Output bit depth follows the input (8 or 16).
    resume: continue an interrupted run of the same input, options and ``run_key`` (the caller's
    description of model and restoration settings); without it, leftovers are deleted first.
    load_image(path) -> (pixels uint8|uint16 (H, W, C), info); save_image(path, pixels, info):
    the caller's image I/O for non-TIFF files (keeps ICC/EXIF); default: Pillow, 8-bit and grey 16-bit.
    Raises InputError for user mistakes; leaves no file at ``out_path`` unless it succeeded.
    """
    in_path, out_path = Path(in_path), Path(out_path)
    _check_paths(in_path, out_path)
    partial, state = partial_paths(out_path)
    if not resume:
        _remove_leftovers(partial, state)
    source, info = _open_source(in_path, load_image, tile, scale)
    try:  # refuse bad tiling options before anything is written
        TileGrid.plan(source.shape[0], source.shape[1], tile=tile, overlap=overlap, scale=scale,
                      align=align)
        out_shape = (source.shape[0] * scale, source.shape[1] * scale, source.shape[2])
        sink = _open_sink(out_path, partial, state, out_shape, source, resume)
        try:
            restore_tiled(source, sink, _pass_alpha(restore_tile, source.shape[2], scale),
                          tile=tile, overlap=overlap, scale=scale, align=align, progress=progress,
                          state_path=state, run_key=run_key)
            _finish(sink, out_path, info, save_image)
        finally:
            sink.close()
    finally:
        if isinstance(source, TiffSource):
            source.close()
    _remove_leftovers(partial, state)


def _check_paths(in_path: Path, out_path: Path) -> None:
    if not in_path.is_file():
        raise InputError(f"{in_path}: no such file")
    if not out_path.parent.is_dir():
        raise InputError(f"{out_path.parent}: output folder does not exist")
    if out_path.exists() and out_path.resolve() == in_path.resolve():
        raise InputError(f"{out_path}: refusing to overwrite the input")


def _remove_leftovers(partial: Path, state: Path) -> None:
    partial.unlink(missing_ok=True)
    shutil.rmtree(state, ignore_errors=True)


def _open_source(in_path: Path, load_image, tile: int, scale: int):
    """(source, info): a streaming TiffSource for TIFF, else the decoded image in memory."""
    if is_tiff(in_path) and load_image is None:
        with TiffSource(in_path) as probe:  # size the strip cache to one band of tiles
            height, width, channels = probe.shape
            band_bytes = 2 * (tile // scale + 16) * width * channels * probe.dtype.itemsize
        return TiffSource(in_path, cache_bytes=max(band_bytes, 8 << 20)), None
    pixels, info = (load_image or load_image_pillow)(in_path)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.dtype not in (np.uint8, np.uint16) or pixels.shape[2] not in (1, 2, 3, 4):
        raise InputError(f"{in_path}: unsupported pixels {pixels.dtype} {pixels.shape}")
    return ArraySource(pixels), info


def _open_sink(out_path: Path, partial: Path, state: Path, shape, source, resume: bool):
    """A sink on ``partial``: reopened when resuming a matching run, else created afresh."""
    as_tiff = out_path.suffix.lower() in _TIFF_SUFFIXES

    def make(reopen: bool):
        if as_tiff:
            extra = {} if reopen or not isinstance(source, TiffSource) else \
                {"photometric": source.photometric, "iccprofile": source.iccprofile}
            return TiffSink(partial, shape, source.dtype, reopen=reopen, **extra)
        try:
            return NpySink(partial, shape, source.dtype, reopen=reopen)
        except ValueError as exc:
            raise InputError(f"{partial} is not a partial output of this run ({exc})") from None

    if resume and partial.exists() and (state / "progress.npz").exists():
        return make(reopen=True)
    if resume:
        log.info("nothing to resume for %s; starting from the beginning", out_path)
    _remove_leftovers(partial, state)
    return make(reopen=False)


def _pass_alpha(restore_tile: Callable, channels: int, scale: int) -> Callable:
    """Wrap restore_tile so it sees grey/RGB only; alpha is kept and upsampled by repetition."""
    if channels not in (2, 4):
        return restore_tile

    def restore_colour(tile_in: np.ndarray, box):
        colour = restore_tile(np.ascontiguousarray(tile_in[:, :, :-1]), box)
        alpha = tile_in[:, :, -1:].repeat(scale, axis=0).repeat(scale, axis=1)
        return np.concatenate([np.asarray(colour, np.float32), alpha], axis=2)

    return restore_colour


def _finish(sink, out_path: Path, info, save_image) -> None:
    """Move the complete output into place: rename the TIFF, or encode the .npy via save_image."""
    if isinstance(sink, TiffSink):
        sink.finish(out_path)
        return
    sink.flush()
    (save_image or save_image_pillow)(out_path, sink.load(), info)


def load_image_pillow(path) -> tuple[np.ndarray, None]:
    """Minimal default reader: uint8 (H, W, C) for L/LA/RGB/RGBA, uint16 (H, W, 1) for 16-bit grey."""
    from PIL import Image
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("I;16", "I;16B", "I"):
                return np.asarray(image, np.uint16)[:, :, None], None
            if image.mode not in ("L", "LA", "RGB", "RGBA"):
                image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            return np.asarray(image), None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"{path}: cannot read image ({exc})") from None


def save_image_pillow(path, pixels: np.ndarray, info=None) -> None:
    """Minimal default writer (atomic): 8-bit 1-4 channels, 16-bit grey; format from the suffix."""
    from PIL import Image
    path = Path(path)
    channels = pixels.shape[2]
    if pixels.dtype == np.uint16 and channels != 1:
        raise InputError(f"{path}: 16-bit colour needs TIFF output (or the flowrt image writer)")
    image = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels)  # mode from dtype, C
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            image.save(handle, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)

