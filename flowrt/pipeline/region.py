"""Restore one region (a whole image or one tile) as a plan says: the pipeline's bridge to the
forward models (``flowrt.operators``) and the estimator (``flowrt.solve``)."""
from __future__ import annotations

import logging
from typing import Callable, Optional, Tuple

import numpy as np

from flowrt.errors import SolverError
from flowrt.pipeline.plan import RestorationPlan
from flowrt.solve.config import SolverConfig

log = logging.getLogger("flowrt.pipeline")

Box = Tuple[int, int, int, int]   # (y0, y1, x0, x1) in input pixels
Progress = Optional[Callable[[int, int], None]]


def restore_loaded(image, plan: RestorationPlan, prior, solver: SolverConfig, *,
                   device=None, progress: Progress = None) -> np.ndarray:
    """Restore a decoded LoadedImage whole as ``plan`` says; float32 (H*scale, W*scale, 3) in [0, 1]."""
    h, w = image.rgb.shape[:2]
    return restore_region(image.rgb, (0, h, 0, w), plan, prior, solver, greyscale=image.mode == "L",
                          device=device, progress=progress, name=image.name)


def restore_region(rgb: np.ndarray, box: Box, plan: RestorationPlan, prior, solver: SolverConfig, *,
                   greyscale: bool, device=None, progress: Progress = None, name: str = "<image>") -> np.ndarray:
    """MAP-restore observed pixels ``rgb`` float32 (h, w, 3) in [0, 1], which lie at ``box`` of the
    input, with the plan's forward model cut to that box (its JPEG blocks, its mask); float32
    (h*scale, w*scale, 3) in [0, 1]. The box must be aligned as ``tile_alignment`` says."""
    from flowrt.operators import build_forward_model
    from flowrt.solve.solver import map_restore
    from flowrt.solve.start import choose_start, denoised_start, jpeg_equivalent_sigma
    y0, y1, x0, x1 = box
    jpeg = None if plan.jpeg is None else plan.jpeg.for_region(rgb, box)
    mask = None if plan.mask is None else plan.mask[y0:y1, x0:x1]
    fm = build_forward_model(rgb, sigma=plan.sigma, jpeg=jpeg, scale=plan.scale, blur=plan.blur,
                             mask=mask, greyscale=greyscale)
    jpeg_sigma = None if jpeg is None else jpeg_equivalent_sigma(jpeg.quant_y)
    start_plan = choose_start(solver, plan.sigma, jpeg_sigma)
    start = denoised_start(fm, start_plan.denoise_sigma_255, greyscale) if start_plan.kind == "denoise" else None
    result = map_restore(prior, fm, start_plan.solver, device=device, progress=progress, start=start)
    if result.fell_back:  # the output would be the damaged input, barely changed: not a success
        if not solver.accept_fallback:
            raise SolverError(f"{name}: the optimiser failed (non-finite values at every retry); try a smaller "
                              "--lam or --sigma, or pass --accept-fallback to write its starting estimate")
        log.warning("%s: the optimiser failed; wrote the starting estimate instead (--accept-fallback)", name)
    out = result.x[0].permute(1, 2, 0).numpy()
    if not np.isfinite(out).all():  # never write garbage: the solver's guard should make this unreachable
        raise RuntimeError("restoration produced non-finite values")
    return np.clip(out, 0.0, 1.0).astype(np.float32)
