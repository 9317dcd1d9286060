"""Restore one region (a whole image or one tile) as a plan says: the pipeline's bridge to the
forward models and the estimator. The prior decides the engine: an ``OrtPriorGradient`` (``--engine
ort``) runs the numpy forward models (``flowrt.numeric``) and MAP loop (``flowrt.solve.numpy_solver``)
and imports no torch; anything else is a torch prior for ``flowrt.operators`` and ``flowrt.solve.solver``."""
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
    from flowrt.prior.engines import runs_without_torch
    from flowrt.solve.start import choose_start, jpeg_equivalent_sigma
    y0, y1, x0, x1 = box
    jpeg = None if plan.jpeg is None else plan.jpeg.for_region(rgb, box)
    chain = dict(sigma=plan.sigma, jpeg=jpeg, scale=plan.scale, blur=plan.blur,
                 mask=None if plan.mask is None else plan.mask[y0:y1, x0:x1], greyscale=greyscale)
    start_plan = choose_start(solver, plan.sigma, None if jpeg is None else jpeg_equivalent_sigma(jpeg.quant_y),
                              inverts=plan.scale > 1 or plan.blur is not None,
                              denoiser_is_estimate=plan.denoiser == "flow" and jpeg is None and plan.mask is None
                              and plan.scale == 1 and plan.blur is None)
    iters = start_plan.solver.iters
    log.info("%s: %s start (noise-equivalent std %.1f), then %s MAP iterations", name, start_plan.kind,
             start_plan.denoise_sigma_255, "the default number of" if iters is None else iters)
    numpy_engine = runs_without_torch(prior)
    numeric_fm = None
    if numpy_engine or start_plan.kind != "blur":   # the start and the ort engine share one numpy chain
        from flowrt.numeric.chain import build_forward_model
        numeric_fm = build_forward_model(rgb, **chain)
    start, progress = _start(numeric_fm, start_plan, greyscale, plan.denoiser, progress)
    if start is not None and start_plan.solver.iters == 0:   # the start is the estimate: no MAP to run
        out, fell_back = np.asarray(start, np.float32)[0].transpose(1, 2, 0), False
    elif numpy_engine:
        out, fell_back = _numpy_map(numeric_fm, prior, start_plan, start, progress)
    else:
        out, fell_back = _torch_map(rgb, chain, prior, start_plan, start, device, progress)
    if fell_back:  # the output would be the damaged input, barely changed: not a success
        if not solver.accept_fallback:
            raise SolverError(f"{name}: the optimiser failed (non-finite values at every retry); try a smaller "
                              "--lam or --sigma, or pass --accept-fallback to write its starting estimate")
        log.warning("%s: the optimiser failed; wrote the starting estimate instead (--accept-fallback)", name)
    if not np.isfinite(out).all():  # never write garbage: the solver's guard should make this unreachable
        raise RuntimeError("restoration produced non-finite values")
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _start(numeric_fm, start_plan, greyscale: bool, denoiser: str,
           progress: Progress) -> Tuple[Optional[np.ndarray], Progress]:
    """The MAP's start, (1, 3, H, W) float32 in [0, 1] (None: the solver's own blurred start), made
    by the numpy chain ``numeric_fm`` for both engines with the plan's denoiser (a registry name),
    and the progress callback for the MAP that follows: a split start's rounds and the MAP's
    iterations count as one run of rounds + iterations."""
    if start_plan.kind == "blur":
        return None, progress
    from flowrt.denoise.base import get_denoiser
    from flowrt.solve.start import denoised_start, split_start
    chosen = get_denoiser(denoiser)
    if start_plan.kind == "denoise":
        return denoised_start(numeric_fm, start_plan.denoise_sigma_255, greyscale, chosen), progress
    from flowrt.solve.splitting import ROUNDS
    if progress is None:
        return split_start(numeric_fm, start_plan.denoise_sigma_255, greyscale, chosen), None
    iters = start_plan.solver.iters
    start = split_start(numeric_fm, start_plan.denoise_sigma_255, greyscale, chosen,
                        progress=lambda done, rounds: progress(done, rounds + iters))
    return start, lambda done, total: progress(ROUNDS + done, ROUNDS + total)


def _torch_map(rgb: np.ndarray, chain: dict, prior, start_plan, start, device, progress) -> Tuple[np.ndarray, bool]:
    """The torch engine: (restored (H, W, 3) float32, fell back)."""
    import torch

    from flowrt.operators import build_forward_model
    from flowrt.solve.solver import map_restore
    fm = build_forward_model(rgb, **chain)
    start = None if start is None else torch.from_numpy(np.ascontiguousarray(start, np.float32))
    result = map_restore(prior, fm, start_plan.solver, device=device, progress=progress, start=start)
    return result.x[0].permute(1, 2, 0).numpy(), result.fell_back


def _numpy_map(numeric_fm, prior, start_plan, start, progress) -> Tuple[np.ndarray, bool]:
    """The ort engine, torch-free: (restored (H, W, 3) float32, fell back). The prior's ORT session
    runs where it was opened; the forward models run in numpy on the CPU whatever it is."""
    from flowrt.solve.numpy_solver import map_restore_numpy
    result = map_restore_numpy(prior, numeric_fm, start_plan.solver, progress=progress, start=start)
    return result.x[0].transpose(1, 2, 0), result.fell_back
