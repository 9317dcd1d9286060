"""The MAP loop's rules that need no tensors, shared by the torch loop (``flowrt.solve.solver``) and
the numpy one (``flowrt.solve.numpy_solver``) so the two engines follow one schedule: the step and
start smoothing for a noise level, the learning-rate schedule, which iterates are averaged, the
discrepancy principle's update and the NaN guard's retries (how an image is padded to the prior's
multiple is ``flowrt.numeric.padding.padding_for``).
"""
from __future__ import annotations

import logging
import math
from typing import Callable, Optional, TypeVar

from flowrt.solve.config import SolverConfig

log = logging.getLogger("flowrt.solve")
T = TypeVar("T")

MAX_DATA_WEIGHT = 100.0
REBALANCE_EVERY = 10  # iterations between discrepancy checks (one extra data-term pass each)


def step_for_noise(sigma_255: Optional[float]) -> float:
    """Image-space Adam step for a data term with noise std ``sigma_255`` (None: JPEG/noise floor only).

    Adam moves every pixel by about the step per iteration, so the step follows the size of
    what is to be removed: 0.02 at sigma 25, down to 0.005 for a clean or JPEG-only input
    (chosen on val crops: benchmarks/results/map_settings.md).
    """
    sigma = 0.0 if sigma_255 is None else float(sigma_255)
    return 0.02 * min(1.0, max(0.25, sigma / 25.0))


def start_blur_for_noise(sigma_255: Optional[float], jpeg: bool) -> float:
    """How much to smooth the starting point of a Gaussian-noise restoration (std in pixels).

    Starting from y itself, Adam spends most of its iterations walking pixels out of the noise;
    a lightly blurred y starts near the answer in flat regions, and the data term restores what
    the blur took from edges (benchmarks/results/map_settings.md). JPEG data terms start from
    the decoder's output instead (no blur).
    """
    if jpeg or sigma_255 is None:
        return 0.0
    return min(1.5, float(sigma_255) / 25.0)


def lr_schedule(it: int, cfg: SolverConfig) -> float:
    """The step at iteration ``it`` as a fraction of its peak: linear warm-up, then cosine decay to
    ``final_lr`` over the run.

    The warm-up protects the first steps from the prior's stiff curvature at a noisy start
    (its length and the schedule's: benchmarks/results/map_iterations/).
    """
    if it < cfg.warmup:
        return (it + 1) / cfg.warmup
    t = (it - cfg.warmup) / max(1, cfg.iters - cfg.warmup)
    return cfg.final_lr + (1 - cfg.final_lr) * 0.5 * (1 + math.cos(math.pi * t))


def rebalances_at(it: int, cfg: SolverConfig) -> bool:
    """Whether the discrepancy principle checks the data term's weight before iteration ``it``."""
    return it >= cfg.warmup and it % REBALANCE_EVERY == 0


def tail_start(cfg: SolverConfig) -> int:
    """The first iteration whose iterate joins the averaged answer (the last ``average_tail``, at least one)."""
    return cfg.iters - max(1, int(math.ceil(cfg.average_tail * cfg.iters))) if cfg.iters else 0


def rebalanced_weight(weight: float, misfit: float, expected: float, cfg: SolverConfig) -> float:
    """Morozov's discrepancy principle: the data term's new weight given its misfit (the data nll)
    and the misfit the noise alone explains, both summed over the batch (nats). The weight grows
    by misfit / (discrepancy * expected) and relaxes towards 1, within [1, MAX_DATA_WEIGHT]; a
    non-finite ratio leaves it unchanged."""
    ratio = misfit / (cfg.discrepancy * expected)
    if not math.isfinite(ratio):
        return weight
    return min(MAX_DATA_WEIGHT, max(1.0, weight * ratio))


def with_halving_retries(attempt: Callable[[float], T], lr: float, retries: int) -> Optional[T]:
    """The NaN guard: ``attempt(lr)``, and while it raises FloatingPointError, again with half the step,
    ``retries`` times at most; its result, or None when every attempt failed."""
    for number in range(retries + 1):
        try:
            return attempt(lr)
        except FloatingPointError as exc:
            log.warning("MAP attempt %d failed (%s); retrying with half the step", number + 1, exc)
            lr *= 0.5
    return None
