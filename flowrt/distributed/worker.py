"""What a cluster worker runs for ``flowrt batch --ray``: one image or one tile, with the prior
loaded once per worker process. Plain functions (no Ray import): ``flowrt.distributed.ray_batch``
wraps them as Ray tasks, and they run as they are in a test or a single process.

Every image function returns an ``Outcome`` instead of raising for a bad image, so that a user's
mistake is reported like the local batch reports it and is never retried; only a worker that dies
(a system failure) makes Ray retry the task.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

__all__ = ["PriorSpec", "Outcome", "cached_prior", "prior_loads", "prior_multiple", "restore_file",
           "restore_pixels", "restore_tile"]

_PRIORS: Dict["PriorSpec", tuple] = {}   # this process's priors: loaded once, reused by every task
_LOADS = {"count": 0}


@dataclass(frozen=True)
class PriorSpec:
    """Which prior a worker loads: model_dir (None: the packaged default; otherwise a folder every
    worker can read at that path), engine and device as ``flowrt batch`` takes them; model: the
    prior's ``model_key`` (part of a tiled restore's resume key)."""
    model_dir: Optional[str]
    engine: str = "auto"
    device: str = "auto"
    model: str = ""


@dataclass(frozen=True)
class Outcome:
    """How one task ended. status: 'done', 'failed' (message says why) or 'tiled' (the image is
    large enough to be tiled: the driver spreads its tiles instead); a finished image's message is
    its plan's description (for -v). worker ("host:pid") and loads: the worker process and how many
    priors it has loaded so far (the driver counts loads over the cluster)."""
    status: str
    message: str = ""
    worker: str = ""
    loads: int = 0
    seconds: float = 0.0


def cached_prior(spec: PriorSpec) -> tuple:
    """(prior, device) for ``spec`` (``flowrt.prior.engines.open_engine``), loaded on this process's
    first call and kept."""
    if spec not in _PRIORS:
        from flowrt.prior.engines import open_engine
        device, prior = open_engine(spec.model_dir, spec.engine, spec.device)
        _PRIORS[spec] = (prior, device)
        _LOADS["count"] += 1
    return _PRIORS[spec]


def prior_loads() -> Tuple[str, int]:
    """(this worker process as "host:pid", priors it has loaded)."""
    return f"{socket.gethostname()}:{os.getpid()}", _LOADS["count"]


def prior_multiple(spec: PriorSpec) -> int:
    """The prior's 2^L (tile sides must be multiples of it); loads the prior on this worker."""
    return int(cached_prior(spec)[0].multiple)


def _outcome(status: str, start: float, message: str = "") -> Outcome:
    worker, loads = prior_loads()
    return Outcome(status, message, worker, loads, time.perf_counter() - start)


def restore_file(spec: PriorSpec, src: str, dst: str, opts, tiling, bit_depth: Optional[int]) -> Outcome:
    """Restore image file ``src`` into ``dst`` (both paths as this worker sees them; dst written
    atomically, its folder created) exactly as the local batch does, unless it is large enough to be
    tiled: then nothing is written and the Outcome says 'tiled'."""
    from flowrt.pipeline.batch import failure_message
    from flowrt.pipeline.run import prepare_restore, run_restore
    from flowrt.pipeline.source import Route
    start = time.perf_counter()
    try:
        # created and left: images restored at once share folders (the driver tidies empty ones)
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        job = prepare_restore(src, dst, opts, tiling, bit_depth=bit_depth)
        if job.source.route is not Route.WHOLE:
            job.source.close()
            return _outcome("tiled", start)
        prior, device = cached_prior(spec)
        run_restore(job, prior, opts, device=device, model=spec.model)
        described = job.plan.nothing_to_do or job.plan.describe()  # bound to the engine by run_restore
    except Exception as exc:  # noqa: BLE001 - reported for this image; the batch goes on
        return _outcome("failed", start, failure_message(Path(src), exc))
    return _outcome("done", start, described)


def restore_pixels(spec: PriorSpec, src: str, image, plan, opts) -> Tuple[Optional[np.ndarray], Outcome]:
    """Restore ``src``, decoded (a LoadedImage) by the caller, whole as ``plan`` says: (float32
    (H*scale, W*scale, 3) in [0, 1], Outcome), or (None, failed Outcome). The caller writes it."""
    from flowrt.pipeline.batch import failure_message
    from flowrt.pipeline.region import restore_loaded
    start = time.perf_counter()
    try:
        prior, device = cached_prior(spec)
        restored = restore_loaded(image, plan.with_engine(prior, device), prior, device=device)
    except Exception as exc:  # noqa: BLE001
        return None, _outcome("failed", start, failure_message(Path(src), exc))
    return restored, _outcome("done", start)


def restore_tile(spec: PriorSpec, tile_rgb: np.ndarray, plan, opts, greyscale: bool) -> Tuple[np.ndarray, Outcome]:
    """One tile: ``tile_rgb`` float32 (h, w, 3) in [0, 1] with ``plan`` already cut to its box
    (``RestorationPlan.cut``) -> (float32 (h*scale, w*scale, 3) in [0, 1], Outcome). Raises on
    failure: the driver fails the whole image."""
    from flowrt.pipeline.region import restore_region
    start = time.perf_counter()
    prior, device = cached_prior(spec)
    h, w = tile_rgb.shape[:2]
    restored = restore_region(tile_rgb, (0, h, 0, w), plan.with_engine(prior, device), prior,
                              greyscale=greyscale, device=device)
    return restored, _outcome("done", start)
