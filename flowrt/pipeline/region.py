"""Restore one region (a whole image or one tile) as a plan says: the pipeline's bridge to the
forward models and the estimator. Nothing is decided here: the plan names the start, the
iteration count, the schedule and the engine (``RestorationPlan.with_method`` / ``with_engine``).
The ort engine runs the numpy forward models (``flowrt.numeric``) and MAP loop
(``flowrt.solve.numpy_solver``) and imports no torch; the torch engine ``flowrt.operators`` and
``flowrt.solve.solver``."""
from __future__ import annotations

import logging
from typing import Callable, Optional, Tuple

import numpy as np

from flowrt.errors import SolverError
from flowrt.pipeline.plan import STAGE_DENOISE, STAGE_MAP, STAGE_SPLIT, RestorationPlan, StageProgress

log = logging.getLogger("flowrt.pipeline")

Box = Tuple[int, int, int, int]   # (y0, y1, x0, x1) in input pixels
Progress = Optional[Callable[[int, int], None]]


def restore_loaded(image, plan: RestorationPlan, prior, *, device=None, progress: StageProgress = None) -> np.ndarray:
    """Restore a decoded LoadedImage whole as ``plan`` says; float32 (H*scale, W*scale, 3) in [0, 1]."""
    h, w = image.rgb.shape[:2]
    return restore_region(image.rgb, (0, h, 0, w), plan, prior, greyscale=image.mode == "L",
                          device=device, progress=progress, name=image.name)


def restore_region(rgb: np.ndarray, box: Box, plan: RestorationPlan, prior, *, greyscale: bool, device=None,
                   progress: StageProgress = None, name: str = "<image>") -> np.ndarray:
    """MAP-restore observed pixels ``rgb`` float32 (h, w, 3) in [0, 1], which lie at ``box`` of the
    input, with the plan's forward model cut to that box (its JPEG blocks, its mask); float32
    (h*scale, w*scale, 3) in [0, 1]. The box must be aligned as ``tile_alignment`` says. The plan
    must be bound to ``prior``'s engine (``plan.with_engine(prior, device)``). progress(stage,
    done, total) per step of each of ``plan.stages()``."""
    if plan.engine is None:
        raise ValueError("bind the plan to its engine first: plan.with_engine(prior, device)")
    y0, y1, x0, x1 = box
    jpeg = None if plan.jpeg is None else plan.jpeg.for_region(rgb, box)
    chain = dict(sigma=plan.sigma, jpeg=jpeg, scale=plan.scale, degradations=plan.degradations,
                 mask=None if plan.mask is None else plan.mask[y0:y1, x0:x1], greyscale=greyscale)
    log.info("%s: %s", name, plan.describe_method())
    numeric_fm = None
    if plan.engine == "ort" or plan.start.kind != "blur":   # the start and both engines share one numpy chain
        from flowrt.numeric.chain import build_forward_model
        numeric_fm = build_forward_model(rgb, **chain)
    start = make_start(numeric_fm, plan, greyscale, progress)
    on_iteration = _stage(progress, STAGE_MAP)
    if start is not None and plan.solver.iters == 0:   # the start is the estimate (the flow denoiser's)
        out, fell_back = np.asarray(start, np.float32)[0].transpose(1, 2, 0), False
    elif plan.engine == "ort":
        out, fell_back = _numpy_map(numeric_fm, prior, plan, start, on_iteration)
    else:
        out, fell_back = _torch_map(numeric_fm, rgb, chain, prior, plan, start, device, on_iteration)
    if fell_back:  # the output would be the damaged input, barely changed: not a success
        if not plan.solver.accept_fallback:
            raise SolverError(f"{name}: the optimiser failed (non-finite values at every retry); try a smaller "
                              "--lam or --sigma, or pass --accept-fallback to write its starting estimate")
        log.warning("%s: the optimiser failed; wrote the starting estimate instead (--accept-fallback)", name)
    if not np.isfinite(out).all():  # never write garbage: the solver's guard should make this unreachable
        raise RuntimeError("restoration produced non-finite values")
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _stage(progress: StageProgress, stage: str) -> Progress:
    """The (done, total) callback of one stage: the only place a stage's progress is wrapped."""
    return None if progress is None else (lambda done, total: progress(stage, done, total))


def make_start(numeric_fm, plan: RestorationPlan, greyscale: bool,
               progress: StageProgress = None) -> Optional[np.ndarray]:
    """The MAP's start, (1, 3, H, W) float32 in [0, 1] (None: the solver's own blurred start), made
    by the numpy chain ``numeric_fm`` for both engines."""
    kind, sigma_255 = plan.start.kind, plan.start.denoise_sigma_255
    if kind == "blur":
        return None
    from flowrt.denoise.base import get_denoiser
    from flowrt.solve import inpaint, splitting
    from flowrt.solve.start import denoised_start, inpaint_start, split_start
    denoiser = get_denoiser(plan.denoiser)
    if kind in ("split", "inpaint"):
        on_round = _stage(progress, STAGE_SPLIT)
        if on_round is not None:
            on_round(0, inpaint.ROUNDS if kind == "inpaint" else splitting.ROUNDS)
        run = inpaint_start if kind == "inpaint" else split_start
        return run(numeric_fm, sigma_255, greyscale, denoiser, progress=on_round)
    on_denoise = _stage(progress, STAGE_DENOISE)
    if on_denoise is not None:
        on_denoise(0, 1)
    start = denoised_start(numeric_fm, sigma_255, greyscale, denoiser, unclip=plan.start.unclip)
    if on_denoise is not None:
        on_denoise(1, 1)
    return start


def _torch_map(numeric_fm, rgb: np.ndarray, chain: dict, prior, plan: RestorationPlan, start, device,
               progress: Progress) -> Tuple[np.ndarray, bool]:
    """The torch engine: (restored (H, W, 3) float32, fell back). Its forward model is the numpy chain
    the start used (``numeric_fm``), behind the autograd bridge; built here when there was none."""
    import torch

    from flowrt.operators import ForwardModel, build_forward_model
    from flowrt.solve.solver import map_restore
    fm = build_forward_model(rgb, **chain) if numeric_fm is None else ForwardModel(numeric_fm)
    start = None if start is None else torch.from_numpy(np.ascontiguousarray(start, np.float32))
    result = map_restore(prior, fm, plan.solver, device=device, progress=progress, start=start)
    return result.x[0].permute(1, 2, 0).numpy(), result.fell_back


def _numpy_map(numeric_fm, prior, plan: RestorationPlan, start, progress: Progress) -> Tuple[np.ndarray, bool]:
    """The ort engine, torch-free: (restored (H, W, 3) float32, fell back). The prior's ORT session
    runs where it was opened; the forward models run in numpy on the CPU whatever it is."""
    from flowrt.solve.numpy_solver import map_restore_numpy
    result = map_restore_numpy(prior, numeric_fm, plan.solver, progress=progress, start=start)
    return result.x[0].transpose(1, 2, 0), result.fell_back
