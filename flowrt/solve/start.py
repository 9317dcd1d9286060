"""Where the MAP starts, and what that implies for its schedule.

Two starts:

* ``denoise``: the observation, hole-filled, denoised on its own grid by the transform-domain
  denoiser (``flowrt.solve.dct_denoise``), then brought to the restored size. It needs a known
  Gaussian noise level and a data term without JPEG quantisation (quantisation noise is neither
  white nor Gaussian). From there the MAP only refines: ITERS_FROM_DENOISED iterations with a
  quarter of the usual step, which on noise-25 val crops lands above the 150-iteration MAP from
  the blurred observation at a fraction of its cost (benchmarks/results/map_start/).
* ``blur``: the observation itself, smoothed by ``start_blur`` pixels (the original schedule).

``auto`` takes ``denoise`` where it applies and ``blur`` elsewhere.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Optional

import torch

from flowrt.solve.dct_denoise import dct_denoise
from flowrt.solve.solver import ITERS_FROM_DENOISED, SolverConfig, start_blur_for_noise, step_for_noise

log = logging.getLogger("flowrt.solve.start")

DENOISED_STEP_SCALE = 0.25   # the step after a denoised start, relative to step_for_noise(sigma)
MIN_DENOISE_SIGMA = 1.0      # below this noise std (0-255) denoising the start is not worth its time


@dataclass(frozen=True)
class StartPlan:
    """The start chosen for one region: ``kind`` 'denoise' or 'blur', and the solver settings
    with every start-dependent field resolved (lr, start_blur, iters, step_scale)."""
    kind: str
    solver: SolverConfig


def choose_start(solver: SolverConfig, sigma_255: Optional[float], jpeg: bool) -> StartPlan:
    """Resolve ``solver.start`` for a data term with noise std ``sigma_255`` (None: no noise level)
    and, when ``jpeg``, a JPEG quantisation term. Fields the user set are kept."""
    can_denoise = sigma_255 is not None and sigma_255 >= MIN_DENOISE_SIGMA and not jpeg
    kind = "denoise" if can_denoise and solver.start in ("auto", "denoise") else "blur"
    if solver.start == "denoise" and kind != "denoise":
        log.warning("--start denoise needs a Gaussian noise level of at least %g and no JPEG term; "
                    "starting from the blurred observation", MIN_DENOISE_SIGMA)
    lr = solver.lr if solver.lr is not None else step_for_noise(sigma_255)
    if kind == "denoise":
        resolved = replace(solver, lr=lr, start_blur=0.0,
                           iters=ITERS_FROM_DENOISED if solver.iters is None else solver.iters,
                           step_scale=solver.step_scale * DENOISED_STEP_SCALE)
    else:
        blur = solver.start_blur if solver.start_blur is not None else start_blur_for_noise(sigma_255, jpeg)
        resolved = replace(solver, lr=lr, start_blur=blur)
    return StartPlan(kind, resolved)


def denoised_start(forward_model, sigma_255: float, greyscale: bool) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1]: the forward model's initial estimate computed from its observation
    denoised at noise std ``sigma_255`` (0-255 scale)."""
    sigma = float(sigma_255) / 255.0
    return forward_model.initial_estimate(denoise=lambda y: dct_denoise(y, sigma, greyscale=greyscale))
