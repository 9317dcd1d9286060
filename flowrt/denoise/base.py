"""What every denoiser offers the starts (``flowrt.solve.start``, ``flowrt.solve.splitting``), and
the one registry of denoisers by name.

A denoiser removes white Gaussian noise of a given std from an RGB image. The starts call it on
the observation and, in the splitting, once per round with a falling std; which denoiser runs is
the restore option ``denoiser`` (``--denoiser``), resolved once by the plan. ``DENOISERS`` is the
only list of names: a new denoiser is one entry there (and, to make it the default, ``AUTO``).
Torch-free and light: a denoiser's heavy modules load when it first denoises.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Protocol, Tuple, runtime_checkable

import numpy as np

from flowrt.errors import InputError


@runtime_checkable
class Denoiser(Protocol):
    """name: the registry's name for it (what the plan and the summary line say).

    denoise(rgb, sigma, *, greyscale, coarse, pilot, final): ``rgb`` float32 (H, W, 3) in [0, 1]
    corrupted by white Gaussian noise of std ``sigma`` ([0, 1] units, > 0) per channel -> float32
    (H, W, 3) in [0, 1]. greyscale: the three channels hold one grey image. coarse: a cheaper,
    rougher estimate will do (an early splitting round). pilot: None, or an earlier estimate of the
    clean image (H, W, 3) in [0, 1] the denoiser may refine instead of starting afresh. final: this
    call is the splitting's last round, whose estimate is the restore (its input is a data step's
    output, not a noisy photo; a denoiser may have a pass fitted for exactly that).

    estimates_clipped_mean: on an 8-bit photo, whose noise was clipped at black and white, the
    estimate is of the clipped mean f(x) (``flowrt.numeric.clipping``), as any average of noisy
    values is, and the start maps it back pixel by pixel; False for a denoiser fitted to undo the
    clipping itself (a flow denoiser exported before the clipped-mean target).
    """
    name: str
    estimates_clipped_mean: bool

    def denoise(self, rgb: np.ndarray, sigma: float, *, greyscale: bool = False, coarse: bool = False,
                pilot: Optional[np.ndarray] = None, final: bool = False) -> np.ndarray: ...


class GroupedDenoiser:
    """The grouped transform-domain denoiser (``flowrt.denoise.grouped.denoise_rgb``, BM3D's recipe)."""
    name = "grouped"
    estimates_clipped_mean = True

    def denoise(self, rgb: np.ndarray, sigma: float, *, greyscale: bool = False, coarse: bool = False,
                pilot: Optional[np.ndarray] = None, final: bool = False) -> np.ndarray:
        from flowrt.denoise.grouped import denoise_rgb   # numba: loaded on first use
        return denoise_rgb(rgb, sigma, greyscale=greyscale, coarse=coarse, pilot=pilot)

    def __repr__(self) -> str:
        return "GroupedDenoiser()"


def flow_denoiser() -> Denoiser:
    """The group flow's Tweedie denoiser (``flowrt.denoise.flow``) from the packaged model folder,
    loaded once per process. It is its own model, independent of the image prior that ``--model``
    chooses for the MAP."""
    from flowrt.denoise.flow import packaged_flow_denoiser   # numba and onnx: loaded on first use
    return packaged_flow_denoiser()


# name -> a factory of that denoiser
DENOISERS: Dict[str, Callable[[], Denoiser]] = {
    "flow": flow_denoiser,
    GroupedDenoiser.name: GroupedDenoiser,
}
# What ``denoiser='auto'`` resolves to, for every start: the flow. It beats the grouped denoiser at
# every noise level measured, both with the clipping mapped back (kodak24 and whole val-photos:
# benchmarks/results/standard/noise25_unclip/, clipped_noise/), and since its tables were blended it
# also starts a JPEG restore better (whole val-photos and val, quality 10 and 20:
# benchmarks/results/jpeg_start/), where the grouped denoiser had been ahead of its older tables.
AUTO = "flow"


def denoiser_choices() -> Tuple[str, ...]:
    """Every value the ``denoiser`` option takes: 'auto' and the registry's names."""
    return ("auto",) + tuple(DENOISERS)


def resolve_denoiser(name: str) -> str:
    """The registry name ``name`` stands for ('auto' -> AUTO); InputError (one line) for an unknown one."""
    resolved = AUTO if name == "auto" else name
    if resolved not in DENOISERS:
        raise InputError(f"--denoiser must be one of {', '.join(denoiser_choices())}, not {name!r}")
    return resolved


def get_denoiser(name: str) -> Denoiser:
    """A fresh denoiser by registry name (or 'auto')."""
    return DENOISERS[resolve_denoiser(name)]()
