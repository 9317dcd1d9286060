"""MAP restoration in image space without torch:  argmin_x  -log p(y | x) - lambda log p(x).

The torch-free objective of ``flowrt.solve.solver``'s image space, for ``--engine ort``, run by the
one MAP loop (``flowrt.solve.loop``): the prior is any
object with ``nll_and_grad(x) -> (nll (B,), d nll/dx)`` and ``multiple`` (``flowrt.prior.ort_gradient.
OrtPriorGradient``), the forward model a ``flowrt.numeric.chain.ForwardModel`` (``nll_and_grad``,
``expected_nll``, ``at_observed_scale`` and its ``_vjp``, ``initial_estimate``). Every rule is the torch
loop's, from ``flowrt.solve.schedule``: the image reflect-padded to the prior's multiple (the data
term sees the crop), Adam (torch's defaults, float32) with the warm-up + cosine step, iterates
clamped to [0, 1], the energy of ``_Objective`` with lambda / s^2 and the coarse prior term when
upscaling, Morozov's rebalance every REBALANCE_EVERY iterations, the mean of the last
``average_tail`` iterates as the answer, and the NaN guard that retries with half the step and
finally falls back to the start. Image space has no randomness, so ``cfg.seed`` changes nothing.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Callable, List, Optional, Tuple

import numpy as np

from flowrt.numeric.padding import gaussian_blur, pad_to_multiple, pad_to_multiple_vjp
from flowrt.solve.config import ITERS_FROM_OBSERVATION, SolverConfig
from flowrt.solve.loop import optimise
from flowrt.solve.schedule import rebalanced_weight, step_for_noise

log = logging.getLogger("flowrt.solve.numpy_solver")

Progress = Optional[Callable[[int, int], None]]


@dataclass
class NumpyMapResult:
    x: np.ndarray                   # (1, 3, H, W) float32 in [0, 1], the restored image
    objective: List[float] = field(default_factory=list)
    fell_back: bool = False         # True when the optimiser failed and x is the initial estimate
    seconds: float = 0.0


class Adam:
    """torch.optim.Adam with its defaults (betas 0.9 / 0.999, eps 1e-8, no weight decay) on one
    float32 array, updated in place; the step size is given per call (the schedule's)."""

    def __init__(self, like: np.ndarray, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.m = np.zeros_like(like, np.float32)
        self.v = np.zeros_like(like, np.float32)
        self.betas, self.eps, self.t = betas, eps, 0

    def step(self, param: np.ndarray, grad: np.ndarray, lr: float) -> None:
        """param -= Adam's update for ``grad`` (both float32, param in place), step size ``lr``."""
        b1, b2 = self.betas
        self.t += 1
        self.m += np.float32(1 - b1) * (grad - self.m)
        self.v *= np.float32(b2)
        self.v += np.float32(1 - b2) * grad * grad
        step_size = lr / (1 - b1 ** self.t)
        denom = np.sqrt(self.v) / np.float32((1 - b2 ** self.t) ** 0.5) + np.float32(self.eps)
        param -= np.float32(step_size) * (self.m / denom)


class _Objective:
    """E = data_nll(crop(x)) + lam / s^2 * prior_nll(x) + lam * coarse_prior * prior_nll(pad(D crop(x))),
    with its gradient in x (B, 3, H', W'), x padded to the prior's multiple; see the torch loop's
    ``_Objective`` for why each term is there. ``data_weight`` is the discrepancy principle's."""

    def __init__(self, prior, forward_model, cfg: SolverConfig, size: Tuple[int, int]):
        self.prior, self.fm, self.cfg, self.size = prior, forward_model, cfg, size
        scale = int(getattr(forward_model, "scale", 1))
        self.lam_full = cfg.lam / scale ** 2
        self.lam_coarse = cfg.lam * cfg.coarse_prior if scale > 1 else 0.0
        self.data_weight = 1.0

    def fresh(self, start: np.ndarray) -> np.ndarray:
        return start.astype(np.float32, copy=True)

    def project(self, x: np.ndarray) -> None:
        np.clip(x, 0.0, 1.0, out=x)

    def iterate(self, x: np.ndarray, it: int) -> np.ndarray:
        if not np.isfinite(x).all():
            raise FloatingPointError(f"iterate became non-finite at iteration {it}")
        return x.copy()

    def energy_and_grad(self, x: np.ndarray) -> Tuple[float, np.ndarray]:
        """(E summed over the batch, float; dE/dx float32 like x). FloatingPointError for a non-finite x."""
        if not np.isfinite(x).all():
            raise FloatingPointError("the iterate became non-finite")
        h, w = self.size
        crop = x[..., :h, :w]
        data_nll, data_grad = self.fm.nll_and_grad(crop)
        prior_nll, prior_grad = self.prior.nll_and_grad(x)
        energy = self.data_weight * data_nll + self.lam_full * prior_nll
        grad = self.lam_full * prior_grad.astype(np.float32)
        grad[..., :h, :w] += np.float32(self.data_weight) * data_grad
        if self.lam_coarse:
            coarse_nll, coarse_grad = self._coarse(crop)
            energy = energy + self.lam_coarse * coarse_nll
            grad[..., :h, :w] += np.float32(self.lam_coarse) * coarse_grad
        return float(np.sum(energy)), grad

    def _coarse(self, crop: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(-log p(pad(D crop)) (B,), its gradient in crop): the prior on the observation's grid."""
        coarse = self.fm.at_observed_scale(crop)
        nll, grad = self.prior.nll_and_grad(pad_to_multiple(coarse, self.prior.multiple))
        grad = pad_to_multiple_vjp(grad, coarse.shape[-2:], self.prior.multiple)
        return nll, self.fm.at_observed_scale_vjp(grad).astype(np.float32)

    def rebalance(self, x: np.ndarray) -> None:
        """Morozov's discrepancy principle (``flowrt.solve.schedule.rebalanced_weight``); needs a
        noise level: without one the forward model's expected misfit is None and the weight stays."""
        if not self.cfg.discrepancy:
            return
        h, w = self.size
        crop = x[..., :h, :w]
        expected = self.fm.expected_nll(crop)
        if expected is None or float(np.sum(expected)) <= 0:
            return
        misfit = float(np.sum(self.fm.nll(crop)))
        self.data_weight = rebalanced_weight(self.data_weight, misfit, float(np.sum(expected)), self.cfg)


def _optimise(prior, fm, cfg: SolverConfig, x_start: np.ndarray, progress: Progress):
    """The MAP loop from ``x_start`` with the NaN guard: (x cropped, history), or (None, []) when every
    attempt failed."""
    size = x_start.shape[-2:]
    objective = _Objective(prior, fm, cfg, size)
    start = pad_to_multiple(x_start, prior.multiple)
    lr = (cfg.lr or step_for_noise(None)) * cfg.step_scale
    done = optimise(objective, Adam, start, cfg, lr, progress)
    return (None, []) if done is None else (done[0][..., : size[0], : size[1]], done[1])


def map_restore_numpy(prior, forward_model, cfg: SolverConfig = SolverConfig(), *, progress: Progress = None,
                      start: Optional[np.ndarray] = None) -> NumpyMapResult:
    """Restore one image by MAP in image space with numpy; x (1, 3, H, W) float32 in [0, 1].

    start: (1, 3, H, W) in [0, 1], where the iterations begin (None: the forward model's initial
    estimate, smoothed by ``cfg.start_blur``). ``cfg.iters`` None means ITERS_FROM_OBSERVATION.
    progress(done, total) after every iteration.
    """
    if cfg.space != "image":
        raise ValueError("the numpy MAP loop optimises over the image; latent space needs the torch engine")
    if cfg.iters is None:
        cfg = replace(cfg, iters=ITERS_FROM_OBSERVATION)
    t0 = time.perf_counter()
    if start is not None:
        x_start = np.clip(np.asarray(start, np.float32), 0, 1)
    else:
        x_start = np.clip(forward_model.initial_estimate(), 0, 1)
        if cfg.start_blur:
            x_start = gaussian_blur(x_start, cfg.start_blur)
    if cfg.iters == 0:
        return NumpyMapResult(x_start, [], seconds=time.perf_counter() - t0)
    x, history = _optimise(prior, forward_model, cfg, x_start, progress)
    fell_back = x is None
    if fell_back:
        log.warning("MAP did not converge; returning its starting estimate unchanged")
        x = x_start
    return NumpyMapResult(np.ascontiguousarray(x, np.float32), history, fell_back, time.perf_counter() - t0)
