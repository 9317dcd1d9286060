"""Can this machine hold a restore? Memory and disk needs estimated from the opened input, before any
long work, and refused in one line when they plainly exceed what is free.

The estimates are upper bounds of the big arrays, not measurements: a whole-image MAP keeps the
flow's activations for every output pixel (``WHOLE_BYTES_PER_PIXEL``: the order of the peak measured
for the default prior, see ``flowrt.pipeline.run``'s docstring); a decoded image costs float32 RGB in
and the blended float32 output with its weights; a tiled file output needs its partial file (raw
samples) and the final file beside it on disk. A streamed route holds one band of tiles, which is
what the tile size bounds, and is only checked for disk.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

from flowrt.errors import InputError, StorageError

__all__ = ["available_memory", "check_resources", "WHOLE_BYTES_PER_PIXEL"]

WHOLE_BYTES_PER_PIXEL = 1400          # a whole-image MAP per output pixel (activations kept for autograd)
DECODED_BYTES_PER_PIXEL = 12          # float32 RGB of the decoded input
TILED_OUT_BYTES_PER_PIXEL = 16        # float32 RGB accumulator + float32 weight per output pixel


def available_memory() -> Optional[int]:
    """Bytes a new allocation can take now: MemAvailable, lowered by a cgroup limit; None if unknown."""
    free = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit.isdigit() and free is not None:
            free = min(free, int(limit) - used)
    except (OSError, ValueError):
        pass
    return free


def _gib(n: float) -> str:
    return f"{n / (1 << 30):.1f} GiB"


def memory_needed(route: str, in_pixels: int, scale: int) -> int:
    """Bytes the big arrays of a restore take: route 'whole', 'tiled' or 'streamed'."""
    out_pixels = in_pixels * scale * scale
    if route == "whole":
        return in_pixels * DECODED_BYTES_PER_PIXEL + out_pixels * WHOLE_BYTES_PER_PIXEL
    if route == "tiled":
        return in_pixels * DECODED_BYTES_PER_PIXEL + out_pixels * TILED_OUT_BYTES_PER_PIXEL
    return 0


def check_resources(route: str, size, channels: int, scale: int, out_path: str, *,
                    sample_bytes: int = 1, name: str = "<image>") -> None:
    """InputError when the restore of an input of ``size`` (width, height) by ``route`` needs more
    memory than is available; StorageError when a tiled file output (partial + final) cannot fit on
    ``out_path``'s disk. sample_bytes: bytes per output sample (1 or 2)."""
    w, h = size
    need = memory_needed(route, w * h, scale)
    free = available_memory()
    if need and free is not None and need > free:
        advice = (" (--tile N restores it in tiles, in bounded memory)" if route == "whole"
                  else " (a TIFF written to .tif is streamed instead)")
        raise InputError(f"{name}: restoring {w}x{h} pixels {route} needs about {_gib(need)} of memory and "
                         f"{_gib(max(free, 0))} is available{advice}")
    if route == "whole" or str(out_path) == "-":
        return
    disk = 2 * w * h * scale * scale * channels * sample_bytes   # the partial file, then the output
    folder = Path(out_path).parent
    try:
        free_disk = shutil.disk_usage(folder if str(folder) else os.curdir).free
    except OSError:
        return
    if disk > free_disk:
        raise StorageError(f"{out_path}: needs up to {_gib(disk)} of disk for the partial and final output and "
                           f"{_gib(free_disk)} is free in {folder}")
