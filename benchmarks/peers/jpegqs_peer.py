"""jpegqs (Debian package ``jpegqs``, Kurdyukov's JPEG Quant Smooth) as a peer: it re-estimates
the DCT coefficients of a JPEG inside their quantisation intervals. JPEG inputs only; for the
multi task its low-resolution output is bicubic-upsampled to full size."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.protocol import Degraded, bicubic_resize

from .base import MethodError

JPEGQS_QUALITY = 6  # its strongest setting (1-6); the best on val crops per FINDINGS.md


class JpegqsMethod:
    name = "jpegqs"

    def applies_to(self, task: str) -> bool:
        return task in ("jpeg", "multi")

    def missing(self) -> str | None:
        if shutil.which("jpegqs") is None:
            return "jpegqs is not on PATH (apt-get install jpegqs)"
        return None

    def restore(self, item: Degraded, workdir: Path) -> np.ndarray:
        if item.task.jpeg_quality is None:
            raise MethodError("jpegqs needs a JPEG observation")
        output = Path(workdir) / (item.path.stem + ".jpg")
        command = ["jpegqs", "-i", "0", "-q", str(JPEGQS_QUALITY), str(item.path), str(output)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not output.exists():
            message = (done.stderr or done.stdout).strip().splitlines()
            raise MethodError(f"jpegqs failed: {message[-1] if message else done.returncode}")
        with Image.open(output) as image:
            restored = np.asarray(image.convert("RGB"))
        height, width = item.clean.shape[:2]
        if restored.shape[:2] != (height, width):
            restored = bicubic_resize(restored, height, width)
        return restored

    def describe(self) -> dict:
        return {"what": f"jpegqs -q {JPEGQS_QUALITY} (default iterations); multi: then bicubic x2"}
