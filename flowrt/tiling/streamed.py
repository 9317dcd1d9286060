"""File out, tiled: owns the partial output and the resume files of a tiled restore.

While it runs, only ``OUT.partial`` (the output being filled: a tiled BigTIFF, or a raw ``.npy`` for
other formats) and the folder ``OUT.partial.state`` exist; ``OUT`` appears, by an atomic rename, only
once every tile is in. An interrupted run leaves both behind for ``resume=True``; a fresh run deletes
them first. The input arrives opened (``flowrt.pipeline.source``): streamed TIFF regions, or a decoded
image; this module never re-opens it nor re-decides the route.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from flowrt.io.array_stream import NpySink, to_unit_float
from flowrt.io.colour import LUMA_601
from flowrt.errors import InputError, storage_error
from flowrt.io.atomic import check_output_path, remove_stale_temporaries
from flowrt.io.image_file import format_for_path
from flowrt.io.output_lock import output_lock
from flowrt.io.tiff_stream import TiffSink
from flowrt.tiling.grid import TileGrid, restore_tiled

__all__ = ["restore_into_file", "partial_paths", "remove_leftovers", "as_rgb"]

log = logging.getLogger(__name__)
_LUMA = np.array(LUMA_601, np.float32)  # as flowrt.io.image_file writes grey


def partial_paths(out_path) -> tuple[Path, Path]:
    """(partial output, resume state folder) used while ``out_path`` is being made."""
    out_path = Path(out_path)
    partial = out_path.with_name(out_path.name + ".partial")
    return partial, partial.with_name(partial.name + ".state")


def restore_into_file(source, out_path, restore_tile: Callable, *, tile: int = 512,
                      overlap: int = 32, scale: int = 1, align: int = 8, resume: bool = False,
                      progress: Callable[[int, int], None] | None = None,
                      run_key: str = "", bit_depth: int | None = None) -> None:
    """Restore the opened input ``source`` (flowrt.pipeline.source.Source) into ``out_path`` tile by
    tile (see ``tiling.grid.restore_tiled``).

    restore_tile(tile_in float32 (h, w, 3) [0, 1], box_in (y0, y1, x0, x1)) -> float32
    (h*scale, w*scale, 3) [0, 1]: always RGB (grey replicated, written back as luma; alpha split off
    and passed through). A streamed source is written as a tiled BigTIFF while tiles finish (8/16 bit
    as the input, ICC kept; alpha repeated x scale); a decoded one is collected in a ``.npy`` partial
    and encoded once at the end like the input (``flowrt.io.image_file``).
    resume: continue an interrupted run of the same input, options and ``run_key`` (the caller's
    description of model and restoration settings); without it, leftovers are deleted first.
    bit_depth: 8 or 16 bits per output sample (default: as the input).
    Raises InputError for user mistakes and StorageError for a file system that refuses a write
    (full, read-only); leaves no file at ``out_path`` unless it succeeded. The partial output and its
    state belong to the run holding ``out_path``'s lock (``flowrt.io.output_lock``): a second run
    fails (OutputBusy) before touching them.
    """
    in_path, out_path = Path(source.in_path), Path(out_path)
    _check_paths(in_path, out_path)
    with output_lock(out_path):
        _locked_restore(source, in_path, out_path, restore_tile, tile, overlap, scale, align, resume,
                        progress, run_key, bit_depth)


def _locked_restore(source, in_path: Path, out_path: Path, restore_tile: Callable, tile, overlap, scale,
                    align, resume, progress, run_key, bit_depth) -> None:
    remove_stale_temporaries(out_path.parent)
    try:
        _restore_into_file(source, in_path, out_path, restore_tile, tile, overlap, scale, align, resume,
                           progress, run_key, bit_depth)
    except InputError:  # a damaged input: a resume would meet the same bytes (or refuse a changed file)
        if not resume:
            remove_leftovers(*partial_paths(out_path))
        raise
    except OSError as exc:   # the partial output, its state or the final rename: one line
        raise storage_error(out_path, exc) from None


def _restore_into_file(source, in_path: Path, out_path: Path, restore_tile: Callable, tile: int,
                       overlap: int, scale: int, align: int, resume: bool, progress, run_key: str,
                       bit_depth) -> None:
    partial, state = partial_paths(out_path)
    if not resume:
        remove_leftovers(partial, state)
    pixels, like = source.pixels, source.image
    if like is not None and like.alpha is not None and format_for_path(str(out_path)) == "JPEG":
        raise InputError(f"{out_path}: JPEG cannot hold the alpha channel; write .png or .tif")
    stat = in_path.stat()  # a changed input must not resume from the old one's tiles
    run_key = f"{in_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{run_key}"
    # refuse bad tiling options before anything is written
    TileGrid.plan(pixels.shape[0], pixels.shape[1], tile=tile, overlap=overlap, scale=scale, align=align)
    out_shape = (pixels.shape[0] * scale, pixels.shape[1] * scale, pixels.shape[2])
    sink = _open_sink(partial, state, out_shape, pixels, like, resume, bit_depth)
    try:
        restore_tiled(pixels, sink, as_rgb(restore_tile, pixels.shape[2], scale),
                      tile=tile, overlap=overlap, scale=scale, align=align, progress=progress,
                      state_path=state, run_key=run_key)
        _finish(sink, out_path, like, bit_depth)
    finally:
        sink.close()
    remove_leftovers(partial, state)


def _check_paths(in_path: Path, out_path: Path) -> None:
    if not in_path.is_file():
        raise InputError(f"{in_path}: no such file")
    check_output_path(out_path, str(in_path))  # the same checks as a whole-image write
    format_for_path(str(out_path))  # an unknown suffix fails now, not after the last tile


def remove_leftovers(partial: Path, state: Path) -> None:
    """Delete a partial output and its resume state (absent ones are fine)."""
    partial.unlink(missing_ok=True)
    shutil.rmtree(state, ignore_errors=True)


def _open_sink(partial: Path, state: Path, shape, source, like, resume: bool, bit_depth=None):
    """A sink on ``partial``: reopened when resuming a matching run, else created afresh."""
    reopen = resume and partial.exists() and (state / "progress.npz").exists()
    if resume and not reopen:
        log.info("nothing to resume for %s; starting from the beginning", partial)
    if not reopen:
        remove_leftovers(partial, state)
    if like is None:
        extra = {} if reopen else {"photometric": source.photometric,
                                   "iccprofile": source.iccprofile}
        dtype = {8: np.uint8, 16: np.uint16}.get(bit_depth, source.dtype)
        return TiffSink(partial, shape, dtype, reopen=reopen, **extra)
    dtype = np.uint16 if (bit_depth or like.bit_depth) == 16 else np.uint8
    try:
        return NpySink(partial, shape, dtype, reopen=reopen)
    except ValueError as exc:
        raise InputError(f"{partial} cannot be resumed from: {exc}; rerun without --resume "
                         "to start over") from None


def as_rgb(restore_tile: Callable, channels: int, scale: int) -> Callable:
    """Wrap an RGB restore_tile for (h, w, channels) tiles: grey is replicated in and taken back
    out as luma (as flowrt.io.image_file does); alpha (2nd/4th channel) is kept, repeated x scale."""
    if channels == 3:
        return restore_tile
    colour = 1 if channels <= 2 else 3

    def restore(tile_in: np.ndarray, box):
        rgb = np.repeat(tile_in[:, :, :1], 3, axis=2) if colour == 1 else tile_in[:, :, :3]
        out = np.asarray(restore_tile(np.ascontiguousarray(rgb), box), np.float32)
        planes = [out @ _LUMA if colour == 1 else out]
        if channels in (2, 4):
            planes.append(tile_in[:, :, -1].repeat(scale, axis=0).repeat(scale, axis=1))
        return np.dstack(planes).astype(np.float32)

    return restore


def _finish(sink, out_path: Path, like, bit_depth=None) -> None:
    """Move the complete output into place: rename the TIFF, or encode the .npy like the input."""
    if isinstance(sink, TiffSink):
        sink.finish(out_path)
        return
    from flowrt.io.image_file import write_image
    sink.flush()
    write_image(str(out_path), to_unit_float(sink.load()), like, bit_depth=bit_depth)
