"""Restore an image of any size tile by tile, blending overlaps, in memory that grows with its width only.

Coordinates: ``tile``, ``overlap`` and ``align`` are given in OUTPUT pixels (what the prior sees),
the grid itself lives in INPUT pixels (output / ``scale``). Interior tile borders sit on multiples of
``align`` (the caller passes lcm(2^L, 8 * scale), so a tile's output sides are multiples of 2^L and
the input's 8x8 JPEG blocks and downsampling phases never straddle a border; a JPEG with 4:2:0
chroma has 16x16 blocks, so use 16 * scale there); a tile is clipped only
by the image's bottom and right edges, exactly where an untiled restore also ends.

Blending: each tile is weighted by a separable raised-cosine window that ramps over the actual overlap
with each neighbour and is flat (1) at the image borders. Two overlapping ramps sum to exactly 1
(sin^2 + cos^2), and the weights are accumulated and divided out anyway, so any overlap is exact.

Streaming: tiles run band by band (a row of tiles), left to right. After tile (i, j) the block
rows [ys_i, ys_i+1) x cols [xs_j, xs_j+1) is final (no later tile touches it); it is normalised and
handed to the sink at once. What later tiles still add to is carried: the bottom overlap rows of the
band (full width, ``carry``) and the right overlap columns of the last tile. Peak memory is therefore
one tile plus ``overlap x width`` accumulators, never the image.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from flowrt import interrupts
from flowrt.tiling.blend import accumulate, normalise
from flowrt.errors import FlowrtError, InputError
from flowrt.tiling.resume import ResumeStore

__all__ = ["TileGrid", "axis_spans", "window_1d", "restore_tiled", "seam_score", "Source", "Sink"]


class Source(Protocol):
    """An input image read by regions: ``shape`` (H, W, C); ``read(y0, y1, x0, x1)`` -> float32
    (y1-y0, x1-x0, C) in [0, 1]."""
    shape: tuple[int, int, int]

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray: ...


class Sink(Protocol):
    """An output image written by finished blocks: ``shape`` (H*scale, W*scale, C);
    ``write_block(y0, x0, block)`` with float32 (h, w, C) in [0, 1], blocks arriving band by band,
    left to right; ``flush()`` makes everything written so far durable (before resume state is saved)."""
    shape: tuple[int, int, int]

    def write_block(self, y0: int, x0: int, block: np.ndarray) -> None: ...

    def flush(self) -> None: ...


def axis_spans(length: int, tile: int, overlap: int, align: int) -> list[tuple[int, int]]:
    """Split [0, length) into overlapping spans [start, end), all in the same (input) pixel units.

    Starts are multiples of ``align``; every span is at most ``tile`` long and all but the last
    exactly ``tile`` (the last may be shorter only where it meets ``length``); neighbours overlap by
    at least ``overlap``. Tiles are spread evenly (the fewest that satisfy the overlap), so no tile
    is a thin sliver at the end. Requires tile % align == 0 and 0 <= overlap <= tile - align.
    """
    if length <= 0:
        raise InputError(f"image side must be positive, got {length}")
    if length <= tile:
        return [(0, length)]
    last = -(-(length - tile) // align) * align  # ceil to align: the last tile then ends at `length`
    for count in range(2, last // align + 2):
        starts = [int(round(m * last / (count - 1) / align)) * align for m in range(count)]
        gaps = np.diff(starts)
        if gaps.min() > 0 and tile - gaps.max() >= overlap:
            return [(s, min(s + tile, length)) for s in starts]
    raise AssertionError("unreachable: gaps of `align` always satisfy overlap <= tile - align")


def window_1d(length: int, before: int, after: int) -> np.ndarray:
    """Blend weights along one axis of a tile: float32 (length,), in (0, 1].

    Rises as sin^2 over the first ``before`` samples (the overlap with the previous tile; 0 at an
    image border) and falls as cos^2 over the last ``after``; 1 in between. Sampled at pixel centres,
    so no weight is exactly 0 and a falling and rising ramp over the same pixels sum to exactly 1.
    """
    pos = np.arange(length, dtype=np.float64) + 0.5
    weight = np.ones(length, np.float64)
    if before > 0:
        weight *= np.where(pos < before, np.sin(0.5 * np.pi * pos / before) ** 2, 1.0)
    if after > 0:
        back = length - pos
        weight *= np.where(back < after, np.sin(0.5 * np.pi * back / after) ** 2, 1.0)
    return weight.astype(np.float32)


@dataclass(frozen=True)
class TileGrid:
    """Tiles of an input image of ``height`` x ``width`` (input pixels) restored at ``scale``.

    ``rows``/``cols``: input spans per tile row / column (see :func:`axis_spans`).
    """
    height: int
    width: int
    scale: int
    rows: tuple[tuple[int, int], ...]
    cols: tuple[tuple[int, int], ...]

    @classmethod
    def plan(cls, height: int, width: int, *, tile: int, overlap: int, scale: int = 1,
             align: int = 8) -> "TileGrid":
        """Plan tiles; ``tile``, ``overlap``, ``align`` in output pixels (see module docstring)."""
        _check_tiling_options(tile, overlap, scale, align)
        tile_in, align_in = tile // scale, align // scale
        overlap_in = min(-(-overlap // scale), tile_in - align_in)
        return cls(height, width, scale, tuple(axis_spans(height, tile_in, overlap_in, align_in)),
                   tuple(axis_spans(width, tile_in, overlap_in, align_in)))

    @property
    def count(self) -> int:
        return len(self.rows) * len(self.cols)

    def output_window(self, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        """(wy, wx): float32 blend weights of tile (i, j) over its output rows and columns."""
        return (_axis_window(self.rows, i, self.scale), _axis_window(self.cols, j, self.scale))

    def final_extent(self, spans: tuple[tuple[int, int], ...], k: int) -> int:
        """Output pixels from the start of span k that no later span touches."""
        end = spans[k + 1][0] if k + 1 < len(spans) else spans[k][1]
        return (end - spans[k][0]) * self.scale

    def carry_rows(self) -> int:
        """Output rows of the largest overlap between consecutive tile rows (the carry's height)."""
        overlaps = [a[1] - b[0] for a, b in zip(self.rows, self.rows[1:])]
        return max(overlaps, default=0) * self.scale


def _check_tiling_options(tile: int, overlap: int, scale: int, align: int) -> None:
    if scale < 1 or align < 1 or align % scale:
        raise InputError(f"align ({align}) must be a positive multiple of scale ({scale})")
    if tile < align or tile % align:
        raise InputError(f"--tile must be a positive multiple of {align}, got {tile}")
    if not 0 <= overlap <= tile // 2:
        raise InputError(f"--overlap must be between 0 and half the tile ({tile // 2}), got {overlap}")


def _axis_window(spans, k: int, scale: int) -> np.ndarray:
    start, end = spans[k]
    before = (spans[k - 1][1] - start) if k > 0 else 0
    after = (end - spans[k + 1][0]) if k + 1 < len(spans) else 0
    return window_1d((end - start) * scale, before * scale, after * scale)


def restore_tiled(source: Source, sink: Sink, restore_tile: Callable, *, tile: int = 512,
                  overlap: int = 32, scale: int = 1, align: int = 8,
                  progress: Callable[[int, int], None] | None = None,
                  state_path=None, run_key: str = "") -> None:
    """Restore ``source`` into ``sink`` tile by tile; memory ~ one tile + overlap x width.

    source: ``.shape`` (H, W, C), ``.read(y0, y1, x0, x1)`` -> float32 (h, w, C) in [0, 1].
    sink: ``.shape`` (H*scale, W*scale, C), ``.write_block(y0, x0, block)`` receives each finished,
    normalised float32 block (band by band, left to right, never twice except on resume replay),
    ``.flush()`` makes it durable.
    restore_tile(tile_in, box_in): tile_in float32 (h, w, C) in [0, 1] read from input box
    (y0, y1, x0, x1) -> float32 (h*scale, w*scale, C) in [0, 1]. Interior sides are multiples of
    ``align // scale`` input pixels; h, w may be anything where the tile meets the bottom/right edge.
    tile, overlap, align: output pixels, tile % align == 0, overlap <= tile / 2, align % scale == 0.
    progress(done, total): called once before the first tile this run restores, with the tiles an
    earlier run finished (0 for a fresh run; so a rate or ETA counts only this run's work), then
    after every tile restored.
    state_path: a folder for resume state. If it holds state from a matching run (same shapes,
    options and ``run_key``), finished bands are skipped and finished tiles of the current band are
    replayed from disk without calling ``restore_tile``; the sink must then be the same partial
    output, reopened. A mismatching state is refused (InputError). Each finished band is flushed
    to the sink before the state records it (data first, then state).
    """
    height, width, channels = source.shape
    if tuple(sink.shape) != (height * scale, width * scale, channels):
        raise ValueError(f"sink shape {sink.shape} is not source {source.shape} x scale {scale}")
    grid = TileGrid.plan(height, width, tile=tile, overlap=overlap, scale=scale, align=align)
    store = None if state_path is None else ResumeStore(
        state_path, fingerprint=_fingerprint(grid, channels, tile, overlap, align, run_key))
    band_state = _BandState(grid, channels)
    first_band = 0
    if store is not None:
        first_band, carry = store.load(band_state.carry_shape)
        if carry is not None:
            band_state.set_carry(*carry)
    done = first_band * len(grid.cols)
    report = _ProgressReport(progress, grid.count)
    for i in range(first_band, len(grid.rows)):
        for j in range(len(grid.cols)):
            interrupts.check()
            restored = _cached_tile(source, grid, i, j, store)
            if restored is None:
                report.start(done)
                restored = _restored_tile(source, restore_tile, grid, i, j, store)
            band_state.add_tile(i, j, restored, sink)
            done += 1
            report.tile(done)
        if store is not None:  # data first, then the state that says it is there
            sink.flush()
            store.save_band(i + 1, *band_state.carry_view())
    report.start(done)   # when an earlier run had left every tile done


class _ProgressReport:
    """progress(done, total) as run_tiled promises it: first the tiles an earlier run left done,
    once, before this run's first tile; then after each tile this run restores."""

    def __init__(self, progress, total: int):
        self.progress, self.total, self.started = progress, total, False

    def start(self, done: int) -> None:
        if not self.started and self.progress is not None:
            self.progress(done, self.total)
        self.started = True

    def tile(self, done: int) -> None:
        if self.started and self.progress is not None:
            self.progress(done, self.total)


def _fingerprint(grid: TileGrid, channels: int, tile: int, overlap: int, align: int,
                 run_key: str) -> dict:
    return {"height": grid.height, "width": grid.width, "channels": channels, "scale": grid.scale,
            "tile": tile, "overlap": overlap, "align": align, "run_key": run_key}


def _expected_shape(source, grid: TileGrid, i: int, j: int) -> tuple:
    (y0, y1), (x0, x1) = grid.rows[i], grid.cols[j]
    return (y1 - y0) * grid.scale, (x1 - x0) * grid.scale, source.shape[2]


def _cached_tile(source, grid: TileGrid, i: int, j: int, store) -> np.ndarray | None:
    """Output of tile (i, j) as an interrupted run of the same job left it, or None."""
    return None if store is None else store.cached_tile(i, j, _expected_shape(source, grid, i, j))


def _restored_tile(source, restore_tile, grid: TileGrid, i: int, j: int, store) -> np.ndarray:
    """Output of tile (i, j), not cached: read, restore, check, cache."""
    (y0, y1), (x0, x1) = grid.rows[i], grid.cols[j]
    expected = _expected_shape(source, grid, i, j)
    restored = np.asarray(restore_tile(source.read(y0, y1, x0, x1), (y0, y1, x0, x1)), np.float32)
    if restored.shape != expected:
        raise ValueError(f"restore_tile returned {restored.shape} for box {(y0, y1, x0, x1)}, "
                         f"expected {expected}")
    if not np.isfinite(restored).all():
        raise FlowrtError(f"restoring tile {(y0, y1, x0, x1)} gave non-finite values")
    if store is not None:
        store.cache_tile(i, j, restored)
    return restored


class _BandState:
    """Accumulators carried between tiles: bottom overlap of the band (full output width) and
    right overlap of the previous tile. Output coordinates throughout."""

    def __init__(self, grid: TileGrid, channels: int):
        self.grid = grid
        out_width = grid.width * grid.scale
        self.carry_shape = (grid.carry_rows(), out_width, channels)
        self.carry_acc = np.zeros(self.carry_shape, np.float32)
        self.carry_wsum = np.zeros(self.carry_shape[:2], np.float32)
        self.carry_height = 0  # rows of carry holding data for the current band's top
        self.right_acc = self.right_wsum = None

    def set_carry(self, acc: np.ndarray, wsum: np.ndarray) -> None:
        self.carry_height = acc.shape[0]
        self.carry_acc[:self.carry_height] = acc
        self.carry_wsum[:self.carry_height] = wsum

    def carry_view(self) -> tuple[np.ndarray, np.ndarray]:
        return self.carry_acc[:self.carry_height], self.carry_wsum[:self.carry_height]

    def add_tile(self, i: int, j: int, restored: np.ndarray, sink) -> None:
        """Blend tile (i, j)'s output, hand its finished block to the sink, keep what is not final."""
        grid, scale = self.grid, self.grid.scale
        h, w = restored.shape[:2]
        x_out = grid.cols[j][0] * scale
        acc = np.zeros(restored.shape, np.float32)
        wsum = np.zeros((h, w), np.float32)
        top = self.carry_height if i > 0 else 0
        acc[:top] = self.carry_acc[:top, x_out:x_out + w]
        wsum[:top] = self.carry_wsum[:top, x_out:x_out + w]
        if j > 0:  # the previous tile's right part already includes the carry for those columns
            left = self.right_acc.shape[1]
            acc[:, :left] = self.right_acc
            wsum[:, :left] = self.right_wsum
        wy, wx = grid.output_window(i, j)
        accumulate(acc, wsum, restored, wy, wx, 0, 0)
        final_h, final_w = grid.final_extent(grid.rows, i), grid.final_extent(grid.cols, j)
        sink.write_block(grid.rows[i][0] * scale, x_out,
                         normalise(np.ascontiguousarray(acc[:final_h, :final_w]),
                                   np.ascontiguousarray(wsum[:final_h, :final_w])))
        self.right_acc, self.right_wsum = acc[:, final_w:].copy(), wsum[:, final_w:].copy()
        below = h - final_h  # overwrites only columns no later tile of this band reads from carry
        self.carry_acc[:below, x_out:x_out + final_w] = acc[final_h:, :final_w]
        self.carry_wsum[:below, x_out:x_out + final_w] = wsum[final_h:, :final_w]
        if j == len(grid.cols) - 1:
            self.carry_height = below


def seam_score(image: np.ndarray, tile: int, overlap: int, *, scale: int = 1, align: int = 8,
               reference: np.ndarray | None = None) -> float:
    """How visible tile borders are in a tiled output: ~1 means no seams, larger means seams.

    image: (H, W[, C]) output of a tiled restore made with the same tile/overlap/scale/align.
    A seam is a step that is coherent along a tile border, so steps between neighbouring lines
    (rows, then columns) are first averaged along each tile's stretch of the line (texture and
    noise cancel there, a brightness or colour mismatch does not). The score is the median of the
    squared averaged steps where tiles meet (inside an overlap, and across its first and last line)
    over their median elsewhere (medians: one strong edge in the photo does not swing it).
    Texture scores about 1 without seams; a photo's own structure can move that (0.6-1.6 measured
    on val photos), so for photos pass ``reference`` (same shape: the clean photo or a whole-image
    restore) and get score(image) / score(reference). Returns 1.0 for a single tile.
    """
    score = _seam_ratio(image, tile, overlap, scale, align)
    if reference is not None:
        score /= max(_seam_ratio(reference, tile, overlap, scale, align), 1e-30)
    return score


def _seam_ratio(image: np.ndarray, tile: int, overlap: int, scale: int, align: int) -> float:
    image = np.asarray(image, np.float64)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[0] % scale or image.shape[1] % scale:
        raise InputError(f"image size {image.shape[:2]} is not a multiple of scale {scale}")
    grid = TileGrid.plan(image.shape[0] // scale, image.shape[1] // scale, tile=tile,
                         overlap=overlap, scale=scale, align=align)
    border, inside = [], []
    for across, along in ((grid.rows, grid.cols), (grid.cols, grid.rows)):
        steps = np.diff(image, axis=0)  # (lines - 1, length, C): step d joins lines d and d + 1
        means = np.stack([steps[:, s * scale:e * scale].mean(axis=1) for s, e in along], axis=1)
        at_border = np.zeros(steps.shape[0], bool)
        for (_, end), (start, _) in zip(across, across[1:]):
            at_border[max(start * scale - 1, 0):end * scale] = True
        border.append((means[at_border] ** 2).ravel())
        inside.append((means[~at_border] ** 2).ravel())
        image = image.transpose(1, 0, 2)  # columns next
    border, inside = np.concatenate(border), np.concatenate(inside)
    if border.size == 0 or inside.size == 0:
        return 1.0
    return float(np.median(border) / max(np.median(inside), 1e-30))
