"""Where the MAP starts, and what that implies for its schedule.

Three starts:

* ``denoise``: the observation, hole-filled, denoised on its own grid by the plan's denoiser (a
  ``flowrt.denoise.Denoiser``: by default the grouped transform-domain one), then brought to the
  restored size. The denoiser is told
  the Gaussian noise level and, for a JPEG, the quantisation error's equivalent std
  (``jpeg_equivalent_sigma``); their root sum of squares sets its strength. From there the MAP
  only refines: ITERS_FROM_DENOISED iterations with a fraction of the usual step, which on val
  crops lands above the 150-iteration MAP from the observation at a fraction of its cost
  (benchmarks/results/map_start/).
* ``split``: for chains that downsample or blur, where enlarging a denoised observation never
  undoes the chain: plug-and-play splitting with the same denoiser as its prior and the chain's
  own data term (``flowrt.solve.splitting``), then ITERS_AFTER_SPLIT gentle MAP iterations.
* ``inpaint``: for a chain that only hides pixels (a mask, with Gaussian noise or none): a smooth
  fill of the holes, then plug-and-play splitting with the denoiser and the mask's closed-form data
  step (``flowrt.solve.inpaint``); its estimate is the restore (no MAP iterations by default), so
  the holes are filled by the denoiser, not left to a few prior steps.
* ``blur``: the observation itself, smoothed by ``start_blur`` pixels for Gaussian noise (the
  original schedule, 150 iterations).

``auto`` (and ``split``) takes ``inpaint`` for a mask-only chain, whatever its noise; otherwise
``auto`` takes ``split`` for a chain that downsamples or blurs (a noiseless one with the denoiser
ending at NOISELESS_SPLIT_SIGMA_255), ``denoise`` for other noisy (or JPEG) observations and
``blur`` elsewhere. Nothing here imports torch, so both engines start
the same way (``flowrt.pipeline.region`` makes every start with the numpy chain).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from flowrt.denoise.base import Denoiser
from flowrt.solve.config import ITERS_AFTER_SPLIT, ITERS_FROM_DENOISED, ITERS_FROM_OBSERVATION, SolverConfig
from flowrt.solve.schedule import start_blur_for_noise, step_for_noise

log = logging.getLogger("flowrt.solve.start")

DENOISED_STEP_SCALE = 0.125  # the step after a denoised start, relative to step_for_noise(sigma)
JPEG_DENOISED_STEP_SCALE = 0.5   # the same with a JPEG data term (its step is already 4x smaller)
SPLIT_STEP_SCALE = 0.5       # the step after a split start, relative to the denoised start's
MIN_DENOISE_SIGMA = 1.0      # below this noise std (0-255) denoising the start is not worth its time
# A chain that downsamples or blurs with no noise (below MIN_DENOISE_SIGMA) still starts with the
# splitting, its denoiser's last std set by this noise-equivalent std (0-255): the splitting inverts
# the chain, which 150 MAP iterations from the observation did slowly and less well (chosen on
# val-photos crops: benchmarks/results/split_start/noiseless.md).
NOISELESS_SPLIT_SIGMA_255 = 1.0
# The denoiser's std for a JPEG, per unit of the luma table's RMS quantisation error q/sqrt(12):
# most coefficients are quantised to zero and err far less than q/sqrt(12), so the equivalent
# white noise is a fraction of it (0.42 = 20/47 chosen at quality 20 on val crops).
JPEG_SIGMA_PER_QUANT_RMS = 0.42


def jpeg_equivalent_sigma(luma_quant: Optional[np.ndarray]) -> float:
    """The std (0-255) of white noise the denoiser should remove from a JPEG's decode, from its
    (8, 8) luma quantisation table; 0 without a JPEG term."""
    if luma_quant is None:
        return 0.0
    q = np.asarray(luma_quant, np.float64)
    return JPEG_SIGMA_PER_QUANT_RMS * float(np.sqrt(np.mean(q * q) / 12.0))


@dataclass(frozen=True)
class StartPlan:
    """The start chosen for a restore (once, in its plan: every region of an image starts alike):
    ``kind`` 'split', 'denoise' or 'blur', the solver settings with every start-dependent field
    resolved (lr, start_blur, iters, step_scale; ``solver.iters`` is never None), the denoiser's
    noise std ``denoise_sigma_255`` (0-255 scale; used unless kind is 'blur'), and ``unclip``: the
    denoised observation's noise was clipped at black and white, so the denoiser's estimate of its
    clipped mean is mapped back (``flowrt.numeric.clipping.unclip``; a denoised start without a
    JPEG term, whose decode is no noisy file's clipped mean)."""
    kind: str
    solver: SolverConfig
    denoise_sigma_255: float = 0.0
    unclip: bool = False


def choose_start(solver: SolverConfig, sigma_255: Optional[float], jpeg_sigma_255: Optional[float],
                 inverts: bool = False, denoiser_is_estimate: bool = False, inpaints: bool = False) -> StartPlan:
    """Resolve ``solver.start`` for a data term with Gaussian noise std ``sigma_255`` (None: no noise
    level) and a JPEG term whose quantisation acts like noise of std ``jpeg_sigma_255`` (None: no
    JPEG term); ``inverts``: the chain downsamples or blurs. ``denoiser_is_estimate``: the damage is
    Gaussian noise alone and the denoiser is a minimum-MSE one (the flow's Tweedie estimate), so a
    denoised start is the restore: no MAP iterations by default. ``inpaints``: the chain is a mask
    alone (no JPEG, blur or downsampling), which ``auto`` and ``split`` restore by the inpainting
    splitting. Fields the user set are kept."""
    jpeg = jpeg_sigma_255 is not None
    strength = denoise_sigma(sigma_255, jpeg_sigma_255)
    if inpaints and not jpeg and not inverts and solver.start in ("auto", "split"):
        lr = solver.lr if solver.lr is not None else step_for_noise(sigma_255)
        iters = 0 if solver.iters is None else solver.iters
        scale = DENOISED_STEP_SCALE * SPLIT_STEP_SCALE   # a MAP after it only refines, as after ``split``
        return StartPlan("inpaint", replace(solver, lr=lr, start_blur=0.0, iters=iters,
                                            step_scale=solver.step_scale * scale), strength)
    can_denoise = strength >= MIN_DENOISE_SIGMA
    if inverts and not can_denoise and solver.start in ("auto", "split"):
        strength, can_denoise = NOISELESS_SPLIT_SIGMA_255, True
    kind = _start_kind(solver.start, can_denoise, inverts)
    lr = solver.lr if solver.lr is not None else step_for_noise(sigma_255)
    if kind == "blur":
        blur = solver.start_blur if solver.start_blur is not None else start_blur_for_noise(sigma_255, jpeg)
        iters = ITERS_FROM_OBSERVATION if solver.iters is None else solver.iters
        return StartPlan(kind, replace(solver, lr=lr, start_blur=blur, iters=iters), strength)
    unclip = kind == "denoise" and not jpeg
    scale = JPEG_DENOISED_STEP_SCALE if jpeg else DENOISED_STEP_SCALE
    iters = ITERS_AFTER_SPLIT if kind == "split" else ITERS_FROM_DENOISED
    if kind == "denoise" and denoiser_is_estimate and not jpeg:
        iters = 0   # MAP steps from a posterior-mean estimate move it towards the mode: lower PSNR
    if kind == "split":
        scale *= SPLIT_STEP_SCALE
    resolved = replace(solver, lr=lr, start_blur=0.0, iters=iters if solver.iters is None else solver.iters,
                       step_scale=solver.step_scale * scale)
    return StartPlan(kind, resolved, strength, unclip)


def _start_kind(asked: str, can_denoise: bool, inverts: bool) -> str:
    """'split', 'denoise' or 'blur' for ``--start`` ``asked``; a start that needs a noise level the
    plan lacks falls back to 'blur' with a warning (``split`` on a chain with nothing to invert is
    ``denoise``)."""
    if asked == "blur":
        return "blur"
    if not can_denoise:
        if asked != "auto":
            log.warning("--start %s needs a noise level of at least %g; starting from the observation",
                        asked, MIN_DENOISE_SIGMA)
        return "blur"
    if asked == "denoise":
        return "denoise"
    return "split" if inverts else "denoise"


def denoise_sigma(sigma_255: Optional[float], jpeg_sigma_255: Optional[float]) -> float:
    """The denoiser's std (0-255): Gaussian noise and JPEG quantisation add as independent errors."""
    return float(np.hypot(sigma_255 or 0.0, jpeg_sigma_255 or 0.0))


def denoised_start(forward_model, sigma_255: float, greyscale: bool, denoiser: Denoiser, unclip: bool = False):
    """The forward model's initial estimate computed from its observation denoised by ``denoiser``
    at noise std ``sigma_255`` (0-255 scale, the value of ``denoise_sigma``): (1, 3, H, W) in [0, 1],
    from a ``flowrt.numeric`` chain (whichever engine runs the MAP that follows). unclip
    (``StartPlan.unclip``): the estimate of the clipped mean is mapped back to the clean image, where
    the denoiser estimates that mean (``Denoiser.estimates_clipped_mean``)."""
    from flowrt.numeric.clipping import unclip as unclip_mean
    sigma = float(sigma_255) / 255.0
    mapped = unclip and denoiser.estimates_clipped_mean

    def denoise(rgb: np.ndarray) -> np.ndarray:
        estimate = denoiser.denoise(rgb, sigma, greyscale=greyscale)
        return unclip_mean(estimate, sigma) if mapped else estimate
    return forward_model.initial_estimate(denoise=denoise)


def inpaint_start(forward_model, sigma_255: float, greyscale: bool, denoiser: Denoiser,
                  progress=None) -> np.ndarray:
    """``flowrt.solve.inpaint.inpaint_restore`` of a mask-only ``flowrt.numeric`` chain (its observation
    and observed-pixel mask) with ``denoiser`` as its prior step and ``sigma_255`` (0-255, >= 0) the
    observed pixels' noise: (1, 3, H, W) float32 in [0, 1]. progress(done, rounds) after each round."""
    from flowrt.solve.inpaint import inpaint_restore
    return inpaint_restore(forward_model.observed, forward_model.observed_mask, denoiser, float(sigma_255),
                           greyscale=greyscale, progress=progress)


def split_start(forward_model, sigma_255: float, greyscale: bool, denoiser: Denoiser, progress=None) -> np.ndarray:
    """``flowrt.solve.splitting.split_restore`` of a ``flowrt.numeric`` chain with ``denoiser`` as its
    prior step: (1, 3, H, W) float32 in [0, 1]. progress(done, rounds) after each round."""
    from flowrt.solve.splitting import split_restore
    return split_restore(forward_model, denoiser, float(sigma_255), greyscale=greyscale, progress=progress)
