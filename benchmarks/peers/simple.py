"""The two baselines every user has: the degraded input itself (bicubic-upsampled for the
multi task) and scikit-image's total-variation denoiser with a weight tuned per task."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from benchmarks.metrics import psnr
from benchmarks.protocol import Degraded

from .base import MethodError, upsampled_observation


class InputMethod:
    """The observation as the user has it; what every method must beat."""
    name = "input"

    def applies_to(self, task: str) -> bool:
        return True

    def missing(self) -> str | None:
        return None

    def restore(self, item: Degraded, workdir: Path) -> np.ndarray:
        return upsampled_observation(item)

    def describe(self) -> dict:
        return {"what": "degraded input; Pillow bicubic upsampling for multi"}


# Coarse factor-2 grid, then two refinements around the best (x 2^+-0.5, x 2^+-0.25): ten
# evaluations pin the weight to within ~19 %, plenty for a smooth PSNR-vs-weight curve.
_COARSE_WEIGHTS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16)
_REFINE_FACTORS = (2 ** 0.5, 2 ** 0.25)


class TvMethod:
    """skimage.restoration.denoise_tv_chambolle on the (upsampled) observation, colour channels
    coupled, default 200 iterations; the weight per task comes from ``tune``."""
    name = "tv"

    def __init__(self) -> None:
        self.weights: dict[str, float] = {}
        self.tuned_on: dict[str, str] = {}

    def applies_to(self, task: str) -> bool:
        return True

    def missing(self) -> str | None:
        try:
            import skimage.restoration  # noqa: F401
        except ImportError:
            return "scikit-image is not installed (pip install scikit-image)"
        return None

    @staticmethod
    def _denoise(image: np.ndarray, weight: float) -> np.ndarray:
        from skimage.restoration import denoise_tv_chambolle

        return denoise_tv_chambolle(image.astype(np.float64) / 255.0, weight=weight,
                                    channel_axis=-1)

    def tune(self, item: Degraded) -> float:
        """Pick the weight maximising PSNR on ``item`` (deterministic search); remember it for
        item's task and return it."""
        source = upsampled_observation(item)
        scores: dict[float, float] = {}

        def score(weight: float) -> float:
            weight = float(f"{weight:.4g}")
            if weight not in scores:
                scores[weight] = psnr(item.clean, self._denoise(source, weight))
            return scores[weight]

        best = max(_COARSE_WEIGHTS, key=score)
        for factor in _REFINE_FACTORS:
            best = max((best / factor, best, best * factor), key=score)
        best = float(f"{best:.4g}")
        self.weights[item.task.name] = best
        self.tuned_on[item.task.name] = item.name
        return best

    def restore(self, item: Degraded, workdir: Path) -> np.ndarray:
        weight = self.weights.get(item.task.name)
        if weight is None or not math.isfinite(weight):
            raise MethodError(f"TV weight for task {item.task.name} was not tuned")
        return self._denoise(upsampled_observation(item), weight)

    def describe(self) -> dict:
        return {"what": "skimage denoise_tv_chambolle, weight tuned per task by PSNR on one photo",
                "weights": dict(self.weights), "tuned_on": dict(self.tuned_on)}
