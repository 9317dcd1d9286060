"""The standard benchmark's rows: which methods run, each a ``benchmarks.peers`` Method adapted to
the standard tasks (``standard_tasks``). ``METHODS`` is the one list; a new row is one line there,
e.g. ``"flowrt-flow": lambda: FlowrtRow("flowrt-flow", "--denoiser flow")``.
"""
from __future__ import annotations

import functools
import io
import subprocess
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PIL import Image

from benchmarks.peers.base import upsampled_observation
from benchmarks.peers.bm3d_peer import BM3D_SIGMA, Bm3dMethod, denoise_colour
from benchmarks.peers.flowrt_cli import _COMMAND, FlowrtMethod
from benchmarks.peers.jpegqs_peer import JpegqsMethod
from benchmarks.peers.simple import InputMethod
from benchmarks.standard_tasks import STANDARD_TASKS, StandardItem, StandardTask, flowrt_arguments

# The quality the peers' JPEG sigma (BM3D_SIGMA["jpeg"]) was tuned at.
_PEERS_JPEG_QUALITY = 20


@functools.lru_cache(maxsize=None)
def restore_help() -> Optional[str]:
    """``flowrt restore --help`` of this environment, or None when it does not run."""
    done = subprocess.run(_COMMAND + ["restore", "--help"], capture_output=True, text=True, check=False)
    return done.stdout if done.returncode == 0 else None


class FlowrtRow(FlowrtMethod):
    """flowrt through its CLI, a fresh process per photo (as ``benchmarks/quality.py`` runs it), with
    the standard task's flags and this row's own ``extra`` flags."""

    def __init__(self, name: str, extra: str = ""):
        super().__init__(extra)
        self.name = name

    def task_arguments(self, item: StandardItem) -> list[str]:
        return flowrt_arguments(item)

    def missing(self) -> Optional[str]:
        help_text = restore_help()
        if help_text is None:
            return "`flowrt restore` is not available in this environment"
        unknown = [flag for flag in self.extra if flag.startswith("--") and flag not in help_text]
        return f"this flowrt's restore has no {', '.join(unknown)}" if unknown else None

    def describe(self) -> dict:
        return {"what": "flowrt restore IN -o OUT <task flags> " + " ".join(self.extra)}


@functools.lru_cache(maxsize=None)
def luma_table_rms(quality: int) -> float:
    """RMS of Pillow's luma quantisation table at IJG ``quality``."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buffer, format="JPEG", quality=quality)
    with Image.open(buffer) as image:
        table = np.asarray(image.quantization[0], np.float64)
    return float(np.sqrt(np.mean(table * table)))


def bm3d_sigma(task: StandardTask) -> Optional[float]:
    """BM3D's noise std (0-255) for ``task``, or None where a denoiser is not the tool (upscaling
    without noise, deblurring, inpainting). Noise: the true sigma. JPEG: the peers' value tuned at
    quality 20 on val, scaled by the luma table's RMS at the task's quality (not tuned here).
    Multi: the peers' value."""
    if task.name == "multi":
        return BM3D_SIGMA["multi"]
    if task.scale != 1 or task.blur_std > 0 or task.hole_fraction > 0:
        return None
    if task.jpeg_quality is not None:
        ratio = luma_table_rms(task.jpeg_quality) / luma_table_rms(_PEERS_JPEG_QUALITY)
        return BM3D_SIGMA["jpeg"] * ratio
    return task.sigma if task.sigma > 0 else None


# The bm3d row's last output, (task, photo) -> image, which the bm3d-unclip row reuses
_LAST_BM3D: dict = {}


class Bm3dRow(Bm3dMethod):
    """The peers' colour BM3D on the (bicubic-upsampled) observation, at ``bm3d_sigma``."""

    def applies_to(self, task: str) -> bool:
        return bm3d_sigma(STANDARD_TASKS[task]) is not None

    def restore(self, item: StandardItem, workdir: Path) -> np.ndarray:
        image = upsampled_observation(item).astype(np.float64) / 255.0
        output = denoise_colour(image, bm3d_sigma(item.task) / 255.0)
        _LAST_BM3D.clear()
        _LAST_BM3D[(item.task.name, item.name)] = output
        return output

    def describe(self) -> dict:
        sigmas = {name: round(bm3d_sigma(task), 2) for name, task in STANDARD_TASKS.items()
                  if bm3d_sigma(task) is not None}
        return {"what": "bm3d.bm3d_rgb, default profile, on the (bicubic-upsampled) observation",
                "sigma_255": sigmas}


class Bm3dUnclipRow(Bm3dRow):
    """BM3D with flowrt's map back through the clipping (``flowrt.numeric.clipping.unclip``) after
    it, on the noise tasks: what the noise model alone gives a classical denoiser, so that the
    table separates it from what flowrt's denoisers add."""
    name = "bm3d-unclip"

    def applies_to(self, task: str) -> bool:
        found = STANDARD_TASKS[task]
        return super().applies_to(task) and found.jpeg_quality is None and found.name != "multi"

    def restore(self, item: StandardItem, workdir: Path) -> np.ndarray:
        from flowrt.numeric.clipping import unclip
        sigma = bm3d_sigma(item.task) / 255.0
        found = _LAST_BM3D.get((item.task.name, item.name))
        output = super().restore(item, workdir) if found is None else found
        return unclip(np.clip(output, 0.0, 1.0), sigma)

    def describe(self) -> dict:
        return {"what": "bm3d.bm3d_rgb, default profile, then flowrt.numeric.clipping.unclip at the true sigma; "
                        "after the bm3d row on the same photo its output is reused, so the seconds are the unclip's"}


class JpegqsRow(JpegqsMethod):
    """The peers' jpegqs on every task whose observation is a JPEG file."""

    def applies_to(self, task: str) -> bool:
        return STANDARD_TASKS[task].jpeg_quality is not None


class BicubicRow(InputMethod):
    """Pillow bicubic upsampling of the observation: the baseline of the tasks that downsample."""
    name = "bicubic"

    def applies_to(self, task: str) -> bool:
        return STANDARD_TASKS[task].scale > 1

    def describe(self) -> dict:
        return {"what": "Pillow bicubic upsampling of the observation (benchmarks.peers.base.upsampled_observation)"}


METHODS: dict[str, Callable[[], object]] = {
    "bicubic": BicubicRow,
    "flowrt": lambda: FlowrtRow("flowrt"),
    "flowrt-grouped": lambda: FlowrtRow("flowrt-grouped", "--denoiser grouped"),
    "flowrt-flow": lambda: FlowrtRow("flowrt-flow", "--denoiser flow"),
    # a candidate default: no MAP steps after a splitting start (benchmarks/results/final_stage/)
    "flowrt-iters0": lambda: FlowrtRow("flowrt-iters0", "--iters 0"),
    "flowrt-grouped-iters0": lambda: FlowrtRow("flowrt-grouped-iters0", "--denoiser grouped --iters 0"),
    "map-image": lambda: FlowrtRow("map-image", "--start blur --space image"),
    "map-latent": lambda: FlowrtRow("map-latent", "--start blur --space latent"),
    "bm3d": Bm3dRow,
    "bm3d-unclip": Bm3dUnclipRow,
    "jpegqs": JpegqsRow,
}
# The paper's MAP: 150 flow iterations per photo; these run on the first --map-photos photos only.
SLOW_METHODS = ("map-image", "map-latent")
# The row every other is compared with, photo by photo.
REFERENCE_METHOD = "flowrt"

