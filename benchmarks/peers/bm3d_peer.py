"""BM3D (the ``bm3d`` package, Makinen, Azzari, Foi) as a peer: colour BM3D on the
(bicubic-upsampled) observation with a per-task noise level.

For noise the protocol's sigma is the truth; JPEG and multi artefacts are not Gaussian, so their
sigma is the one tuned on a val crop (FINDINGS.md): 16 for jpeg quality 20, 20 for multi.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.protocol import Degraded

from .base import upsampled_observation

BM3D_SIGMA = {"noise": 25.0, "jpeg": 16.0, "multi": 20.0}  # 0-255 scale


class Bm3dMethod:
    name = "bm3d"

    def applies_to(self, task: str) -> bool:
        return task in BM3D_SIGMA

    def missing(self) -> str | None:
        try:
            import bm3d  # noqa: F401
        except ImportError:
            return "the bm3d package is not installed (pip install bm3d)"
        return None

    def restore(self, item: Degraded, workdir: Path) -> np.ndarray:
        image = upsampled_observation(item).astype(np.float64) / 255.0
        return denoise_colour(image, BM3D_SIGMA[item.task.name] / 255.0)

    def describe(self) -> dict:
        return {"what": "bm3d.bm3d_rgb, default profile (grey images: bm3d.bm3d on one channel)",
                "sigma_255": dict(BM3D_SIGMA)}


def denoise_colour(image: np.ndarray, sigma: float) -> np.ndarray:
    """BM3D of (H, W, 3) float in [0, 1] with noise std ``sigma`` (same scale).

    bm3d_rgb normalises each opponent-colour channel by its range and divides by zero when a
    channel is constant: a grey photo stored as RGB (a JPEG of one decodes to R = G = B). Those
    are denoised as one grey channel, which is what they are.
    """
    import bm3d

    if np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2]):
        grey = np.asarray(bm3d.bm3d(image[..., 0], sigma))
        return np.repeat(grey.reshape(image.shape[:2])[..., None], 3, axis=2)
    return bm3d.bm3d_rgb(image, sigma)
