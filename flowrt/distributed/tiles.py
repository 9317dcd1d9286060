"""One large image's tiles as cluster tasks, fed to the local tiler in its own order.

``flowrt.tiling.grid.restore_tiled`` asks for tiles one at a time, band by band, left to right, and
blends each as it arrives. ``TileFeeder.restore_tile`` answers those calls, but submits the tiles
ahead of them in the same order (at most ``window`` in flight), so the cluster restores many tiles at
once while the driver blends in order and holds only the tiles in flight. Each task gets the tile's
pixels and the plan cut to the tile's box (``RestorationPlan.cut``), never the whole image.
"""
from __future__ import annotations

from typing import Dict, List, Protocol, Tuple

import numpy as np

from flowrt.tiling.grid import TileGrid

__all__ = ["TaskRunner", "TileFeeder"]

Box = Tuple[int, int, int, int]   # (y0, y1, x0, x1) input pixels


class TaskRunner(Protocol):
    """What the feeder needs from the batch driver. window: tasks in flight at most.
    submit_tile(tile_rgb, plan, greyscale) -> a task reference; wait_for(ref) returns once it
    has finished (handling other work meanwhile); get(ref) -> (restored, Outcome) or raises the
    task's error; note(outcome) counts it; cancel(ref) drops a task no longer wanted."""
    window: int

    def submit_tile(self, tile_rgb: np.ndarray, plan, greyscale: bool): ...

    def wait_for(self, ref) -> None: ...

    def get(self, ref): ...

    def note(self, outcome) -> None: ...

    def cancel(self, ref) -> None: ...


class TileFeeder:
    """restore_tile for ``run_tiled`` over one prepared job (``flowrt.pipeline.run.RestoreJob``) with
    ``settings`` (its TileSettings)."""

    def __init__(self, runner: TaskRunner, job, settings):
        h, w = job.source.size[1], job.source.size[0]
        grid = TileGrid.plan(h, w, tile=settings.tile, overlap=settings.overlap, scale=job.plan.scale,
                             align=settings.align)
        self._boxes: List[Box] = [(y0, y1, x0, x1) for y0, y1 in grid.rows for x0, x1 in grid.cols]
        self._order = {box: k for k, box in enumerate(self._boxes)}
        self._runner, self._job = runner, job
        self._refs: Dict[int, object] = {}
        self._next = None   # the next tile to submit; starts where the tiler first asks (resume)

    def restore_tile(self, tile_rgb: np.ndarray, box) -> np.ndarray:
        """float32 (h*scale, w*scale, 3) in [0, 1] for ``tile_rgb`` (h, w, 3) at input box ``box``."""
        k = self._order[tuple(int(b) for b in box)]
        if self._next is None:  # tiles before the first asked for are done already (a resumed run)
            self._next = k
        if k not in self._refs and k < self._next:
            raise RuntimeError(f"tile {box} asked for twice")
        while self._next < len(self._boxes) and (self._next <= k or len(self._refs) < self._runner.window):
            self._submit(self._next, tile_rgb if self._next == k else None)
            self._next += 1
        ref = self._refs.pop(k)
        self._runner.wait_for(ref)
        restored, outcome = self._runner.get(ref)
        self._runner.note(outcome)
        return restored

    def cancel(self) -> None:
        """Drop the tiles still in flight (the image failed, or the tiler stopped early)."""
        for ref in self._refs.values():
            self._runner.cancel(ref)
        self._refs.clear()

    def _submit(self, k: int, tile_rgb) -> None:
        box = self._boxes[k]
        if tile_rgb is None:  # the pixels the tiler will pass for this box: RGB, grey replicated
            tile_rgb = self._job.source.read_rgb(*box)
        source = self._job.source
        self._refs[k] = self._runner.submit_tile(np.ascontiguousarray(tile_rgb, np.float32),
                                                 self._job.plan.cut(box), source.greyscale)
