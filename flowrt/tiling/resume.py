"""On-disk state that lets an interrupted tiled restore continue where it stopped.

A state folder holds ``progress.npz`` (which tile rows, "bands", are finished and flushed to the
partial output, plus the accumulators that spill from the last finished band into the next one) and
``tile-I-J.npy`` (restored tiles of the band in progress, so an interruption loses at most one tile).
Order on disk: the partial output is fsync'ed before ``progress.npz`` is atomically replaced, so the
state never claims more than the output holds. A state written by a different run (image size,
tiling options or the caller's ``run_key``, e.g. model and restoration settings) is refused; a damaged
one (torn, truncated, edited) costs only the work it recorded: the run starts over, with a warning.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np

from flowrt.errors import InputError
from flowrt.io.atomic import atomic_file

__all__ = ["ResumeStore", "fsync_dir"]

log = logging.getLogger(__name__)
_PROGRESS = "progress.npz"
_TILE = re.compile(r"^tile-(\d+)-(\d+)\.npy$")


def fsync_dir(folder) -> None:
    """Make a rename or file creation inside ``folder`` durable (no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ResumeStore:
    """Progress of one tiled restore in ``folder``; ``fingerprint`` (JSON-able dict) names the run."""

    def __init__(self, folder, fingerprint: dict):
        self.folder = Path(folder)
        self.fingerprint = json.loads(json.dumps(fingerprint))  # normalise (tuples -> lists)
        self.band = 0

    def load(self, carry_shape: tuple[int, int, int]):
        """Return (first unfinished band, (carry_acc, carry_wsum) or None); start fresh if empty.

        carry_shape: (max rows, output width, C) of the carry; stored carries must fit it.
        Raises InputError if the folder holds another run's state; a damaged state is dropped
        (logged) and the run starts at band 0.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / _PROGRESS
        saved = self._read(path, carry_shape) if path.exists() else None
        if saved is None:  # fresh: record whose state this is before any tile is cached
            self._drop_tiles_before(None)
            empty = np.zeros((0,) + tuple(carry_shape[1:]), np.float32)
            self.save_band(0, empty, empty[:, :, 0])
            return 0, None
        self.band, acc, wsum = saved
        self._drop_tiles_before(self.band)
        log.info("resuming at tile row %d", self.band)
        return self.band, ((acc, wsum) if self.band > 0 else None)

    def _read(self, path: Path, carry_shape: tuple[int, int, int]):
        """(next band, carry_acc, carry_wsum) from ``path``; None if it is damaged (logged)."""
        try:
            with np.load(path, allow_pickle=False) as saved:
                meta = json.loads(str(saved["meta"]))
                acc, wsum = saved["carry_acc"], saved["carry_wsum"]
            fingerprint, band = meta.get("fingerprint"), int(meta["next_band"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError,
                zipfile.BadZipFile) as exc:
            log.warning("resume state %s is damaged (%s); starting from the beginning", path,
                        (str(exc).splitlines() or [type(exc).__name__])[0][:120])
            return None
        if fingerprint != self.fingerprint:
            raise InputError(f"{self.folder} belongs to a run with other options or another "
                             "input; rerun without --resume to start over")
        if acc.shape[1:] != tuple(carry_shape[1:]) or acc.shape[0] > carry_shape[0] or \
                wsum.shape != acc.shape[:2] or band < 0:
            log.warning("resume state %s is damaged (carry %s); starting from the beginning", path, acc.shape)
            return None
        return band, acc, wsum

    def cached_tile(self, i: int, j: int, shape: tuple[int, ...]) -> np.ndarray | None:
        """The restored tile (i, j) saved by an earlier run, or None if absent or unusable."""
        path = self._tile_path(i, j)
        if not path.exists():
            return None
        try:
            tile = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None  # torn by a crash: restore it again
        if tile.shape != tuple(shape) or tile.dtype != np.float32:
            return None
        return tile

    def cache_tile(self, i: int, j: int, tile: np.ndarray) -> None:
        """Keep a restored tile until its band is finished (atomic; no fsync: a torn file is redone)."""
        path = self._tile_path(i, j)
        with atomic_file(path, fsync=False) as fh:
            np.save(fh, np.ascontiguousarray(tile, np.float32))

    def save_band(self, next_band: int, carry_acc: np.ndarray, carry_wsum: np.ndarray) -> None:
        """Record that bands < next_band are in the (already flushed) output, with their carry."""
        meta = json.dumps({"fingerprint": self.fingerprint, "next_band": next_band})
        with atomic_file(self.folder / _PROGRESS) as fh:
            np.savez(fh, meta=np.array(meta), carry_acc=carry_acc, carry_wsum=carry_wsum)
        fsync_dir(self.folder)
        self.band = next_band
        self._drop_tiles_before(next_band)

    def remove(self) -> None:
        """Delete the state folder (after the output is complete, or to start over)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def _tile_path(self, i: int, j: int) -> Path:
        return self.folder / f"tile-{i}-{j}.npy"

    def _drop_tiles_before(self, band: int | None) -> None:
        """Delete cached tiles of finished bands (all of them when band is None) and temp files."""
        for path in self.folder.iterdir():
            match = _TILE.match(path.name)
            stale = path.suffix == ".tmp" or (match and (band is None or int(match[1]) < band))
            if stale:
                path.unlink(missing_ok=True)
