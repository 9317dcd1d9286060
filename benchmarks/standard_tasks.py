"""The standard benchmark's tasks (issue 22): ten degradations of a clean photo, each deterministic
per (task, photo name), written as the file a user would hand to a restorer.

| task | degradation | flowrt flags |
| --- | --- | --- |
| noise15/25/50 | clip(round(x + N(0, s^2))), PNG | --sigma s |
| jpeg10/20/40 | Pillow JPEG quality q (4:2:0) | none (the file's own tables) |
| sr2 | crop to even sides, Pillow bicubic x1/2, no noise, PNG | --scale 2 --sigma 0 |
| multi | the protocol's chain (``benchmarks/protocol.py``) | --scale 2 --sigma 8 |
| deblur | flowrt's Gaussian kernel, std 1.6 px, + N(0, 2^2), rounded, PNG | --blur gaussian:1.6 --sigma 2 |
| inpaint | random discs of 8-32 px diameter until 20% of the pixels are holes, holes black, PNG; the mask (white = hole) beside it | --mask MASK --sigma 0 |

Seeds are ``protocol.seed_for(task, photo name)``: any subset or order of photos gives the same files.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from benchmarks.protocol import TASKS, Degraded, TaskSpec, blur_and_noise, degrade, seed_for

HOLE_DIAMETERS = (8.0, 32.0)   # px, the blobs' smallest and largest diameter


@dataclass(frozen=True)
class StandardTask(TaskSpec):
    """A protocol ``TaskSpec`` plus the standard set's two extra degradations: blur_std (px, 0:
    none; blur comes before the noise) and hole_fraction (the share of pixels hidden, 0: none)."""
    blur_std: float = 0.0
    hole_fraction: float = 0.0


def _spec(name: str, sigma: float = 0.0, scale: int = 1, jpeg: Optional[int] = None,
          blur: float = 0.0, holes: float = 0.0) -> StandardTask:
    return StandardTask(name, sigma=sigma, scale=scale, jpeg_quality=jpeg, blur_std=blur, hole_fraction=holes)


_MULTI = TASKS["multi"]
STANDARD_TASKS: dict[str, StandardTask] = {task.name: task for task in (
    _spec("noise15", sigma=15.0), _spec("noise25", sigma=25.0), _spec("noise50", sigma=50.0),
    _spec("jpeg10", jpeg=10), _spec("jpeg20", jpeg=20), _spec("jpeg40", jpeg=40),
    _spec("sr2", scale=2),
    _spec("multi", sigma=_MULTI.sigma, scale=_MULTI.scale, jpeg=_MULTI.jpeg_quality),
    _spec("deblur", sigma=2.0, blur=1.6),
    _spec("inpaint", holes=0.2),
)}


@dataclass(frozen=True)
class StandardItem(Degraded):
    """A degraded photo of the standard set. holes: bool (H, W), True = missing (inpainting only);
    mask_path: that mask as a PNG file, white = missing (flowrt's ``--mask``)."""
    holes: Optional[np.ndarray] = None
    mask_path: Optional[Path] = None


def blob_holes(height: int, width: int, fraction: float, rng: np.random.Generator,
               diameters: tuple = HOLE_DIAMETERS) -> np.ndarray:
    """bool (height, width), True = hole: discs of uniform random diameter in ``diameters`` (px)
    at uniform random centres, added until at least ``fraction`` of the pixels are covered."""
    holes = np.zeros((height, width), bool)
    target = fraction * height * width
    covered = 0
    while covered < target:
        radius = rng.uniform(*diameters) / 2.0
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        y0, y1 = max(int(cy - radius), 0), min(int(np.ceil(cy + radius)) + 1, height)
        x0, x1 = max(int(cx - radius), 0), min(int(np.ceil(cx + radius)) + 1, width)
        yy, xx = np.ogrid[y0:y1, x0:x1]
        window = holes[y0:y1, x0:x1]
        before = int(window.sum())
        window |= (yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2 <= radius ** 2
        covered += int(window.sum()) - before
    return holes


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def degrade_standard(clean: np.ndarray, task: StandardTask, seed: int):
    """(reference (H, W, 3) uint8, encoded observation, holes bool (H, W) or None) for ``task``."""
    if task.hole_fraction > 0:
        holes = blob_holes(*clean.shape[:2], task.hole_fraction, np.random.default_rng(seed))
        observed = clean.copy()
        observed[holes] = 0
        return clean, _png(observed), holes
    if task.blur_std > 0:
        return clean, _png(blur_and_noise(clean, task.blur_std, task.sigma, seed)), None
    reference, encoded = degrade(clean, task, seed)
    return reference, encoded, None


def _write_atomic(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_bytes(data)
    temporary.replace(target)


def write_standard(clean: np.ndarray, name: str, task: StandardTask, folder: Path) -> StandardItem:
    """Degrade ``clean`` for ``task`` into folder/task/<stem><suffix> (and <stem>_mask.png for
    inpainting), atomically; the item with its decoded observation."""
    seed = seed_for(task.name, name)
    reference, encoded, holes = degrade_standard(clean, task, seed)
    target = Path(folder) / task.name / (Path(name).stem + task.suffix)
    _write_atomic(target, encoded)
    mask_path = None
    if holes is not None:
        mask_path = target.with_name(Path(name).stem + "_mask.png")
        _write_atomic(mask_path, _png(np.where(holes, 255, 0).astype(np.uint8)))
    with Image.open(target) as image:
        observed = np.asarray(image.convert("RGB"))
    return StandardItem(task, name, reference, observed, target, seed, holes, mask_path)


def flowrt_arguments(item: StandardItem) -> list[str]:
    """The flags telling flowrt what happened to ``item`` (the table in this module's docstring):
    a noiseless task says --sigma 0; a JPEG leaves the noise level to flowrt (its tables are in the file)."""
    task = item.task
    arguments: list[str] = []
    if task.scale != 1:
        arguments += ["--scale", str(task.scale)]
    if getattr(task, "blur_std", 0) > 0:
        arguments += ["--blur", f"gaussian:{task.blur_std:g}"]
    if item.mask_path is not None:
        arguments += ["--mask", str(item.mask_path)]
    if task.sigma > 0 or task.jpeg_quality is None:
        arguments += ["--sigma", f"{task.sigma:g}"]
    return arguments
