"""What every benchmarked method provides, and helpers they share."""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from benchmarks.protocol import Degraded, bicubic_resize


class MethodError(Exception):
    """A method could not restore one image (the benchmark records it and goes on)."""


class Method(Protocol):
    """A restoration method under test.

    name: its column label. applies_to(task): whether it handles that task at all (jpegqs reads
    JPEG files only). missing(): why it cannot run on this machine, or None. restore(item,
    workdir): the restored image, (H, W, 3) uint8 or float in [0, 1] at the clean image's size;
    it may write scratch files under workdir (a folder of its own).
    """
    name: str

    def applies_to(self, task: str) -> bool: ...

    def missing(self) -> str | None: ...

    def restore(self, item: Degraded, workdir: Path) -> np.ndarray: ...

    def describe(self) -> dict: ...


def upsampled_observation(item: Degraded) -> np.ndarray:
    """The observation at the clean image's size: as is, or Pillow-bicubic upsampled (multi)."""
    height, width = item.clean.shape[:2]
    if item.observed.shape[:2] == (height, width):
        return item.observed
    return bicubic_resize(item.observed, height, width)
