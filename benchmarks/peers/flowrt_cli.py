"""flowrt itself, run exactly as a user runs it: ``flowrt restore IN -o OUT`` in a fresh process
per image (so its seconds include interpreter start-up and model loading)."""
from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.protocol import Degraded

from .base import MethodError

_COMMAND = [sys.executable, "-m", "flowrt.cli.main"]


def task_arguments(item: Degraded) -> list[str]:
    """The protocol's flags: noise --sigma 25; jpeg none (the file's own quantisation);
    multi --scale 2 --sigma 8."""
    arguments: list[str] = []
    if item.task.scale != 1:
        arguments += ["--scale", str(item.task.scale)]
    if item.task.sigma > 0:
        arguments += ["--sigma", f"{item.task.sigma:g}"]
    return arguments


def read_rgb(path: Path) -> np.ndarray:
    """An output image as (H, W, 3) float64 in [0, 1], whatever its bit depth."""
    with Image.open(path) as image:
        if image.mode in ("I;16", "I;16B", "I"):
            grey = np.asarray(image, dtype=np.float64) / 65535.0
            return np.repeat(grey[..., None], 3, axis=2)
        return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0


class FlowrtMethod:
    name = "flowrt"

    def __init__(self, extra_arguments: str = ""):
        self.extra = shlex.split(extra_arguments)

    def applies_to(self, task: str) -> bool:
        return True

    def missing(self) -> str | None:
        done = subprocess.run(_COMMAND + ["restore", "--help"], capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            return "`flowrt restore` is not available in this environment"
        return None

    def task_arguments(self, item: Degraded) -> list[str]:
        """The flags describing item's degradation (a benchmark with other tasks overrides this)."""
        return task_arguments(item)

    def command(self, item: Degraded, output: Path) -> list[str]:
        return _COMMAND + ["restore", str(item.path), "-o", str(output)] + \
            self.task_arguments(item) + self.extra

    def restore(self, item: Degraded, workdir: Path) -> np.ndarray:
        output = Path(workdir) / (item.path.stem + ".png")
        done = subprocess.run(self.command(item, output), capture_output=True, text=True,
                              check=False)
        if done.returncode != 0 or not output.exists():
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise MethodError(f"flowrt exited {done.returncode}: {lines[-1] if lines else ''}")
        return read_rgb(output)

    def overhead_seconds(self, item: Degraded, workdir: Path) -> float:
        """Wall seconds of a zero-iteration restore of ``item``: start-up, model loading and
        I/O, the fixed part of every per-image time (a batch run pays it once)."""
        import time

        output = Path(workdir) / "overhead.png"
        command = self.command(item, output) + ["--iters", "0"]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise MethodError(f"flowrt exited {done.returncode}: {lines[-1] if lines else ''}")
        return time.perf_counter() - start

    def describe(self) -> dict:
        return {"what": "flowrt restore IN -o OUT <task flags> <extra>", "extra": self.extra}
