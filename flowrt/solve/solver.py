"""MAP restoration with a flow prior:  argmin  -log p(y | x) - lambda log p(x).

Two parametrisations share one objective, run by the one MAP loop (``flowrt.solve.loop``):
  * ``image``  optimise x directly; the prior's gradient flows through T^-1.
  * ``latent`` optimise u with x = T(u), as the paper does; -log p(T(u)) =
    ||u||^2 / 2 + log|det dT/du| comes out of a single generator pass.
The forward model (degradations + likelihood) is any object with ``nll(x) -> (B,)``
and ``initial_estimate() -> (1,3,H,W)`` (see ``flowrt.operators``).

The image is reflect-padded to a multiple of 2^L for the prior; the data term
sees the original crop. Iterates stay in [0, 1] (clamped after every image-space
step). The answer is the mean of the last ``average_tail`` of the iterates: MAP
iterates jitter around the optimum once Adam's step is below the noise scale,
and averaging them is cheaper and steadier than picking one.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from flowrt.solve.config import (ITERS_FROM_DENOISED, ITERS_FROM_OBSERVATION, MAX_SEED, SPACES,  # noqa: F401
                                 STARTS, SolverConfig)  # re-exported: callers import them from here
from flowrt.numeric.kernels import gaussian_taps
from flowrt.numeric.padding import padding_for
from flowrt.solve.loop import optimise
from flowrt.solve.schedule import rebalanced_weight, step_for_noise

log = logging.getLogger("flowrt.solve.solver")


@dataclass
class MapResult:
    x: torch.Tensor                 # (1, 3, H, W) in [0, 1], the restored image
    objective: List[float] = field(default_factory=list)
    fell_back: bool = False         # True when the optimiser failed and x is the initial estimate
    seconds: float = 0.0


def gaussian_blur(x: torch.Tensor, std: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) with reflect padding (replicate on tiny images)."""
    radius = int(math.ceil(3 * std))
    k = torch.from_numpy(gaussian_taps(std, np.float32)).to(x.device, x.dtype)
    k = k.view(1, 1, 1, -1).repeat(x.shape[1], 1, 1, 1)
    mode = "reflect" if min(x.shape[-2:]) > radius else "replicate"
    x = F.pad(x, (radius, radius, radius, radius), mode=mode)
    x = F.conv2d(x, k, groups=x.shape[1])
    return F.conv2d(x, k.transpose(2, 3), groups=x.shape[1])


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad (B,C,H,W) at the bottom/right to sides divisible by ``multiple``."""
    ph, pw, mode = padding_for(*x.shape[-2:], multiple)
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode=mode)


class _Objective:
    """E = data_nll(crop(x)) + lam / s^2 * prior_nll(x) + lam * coarse_prior * prior_nll(D crop(x)).

    s is the forward model's upscaling factor and D its own downsampler. The data term counts
    h*w observed pixels, the prior H*W = s^2 h w restored ones, so lam weighs the prior per
    observed pixel and one lam serves every scale. When upscaling, the noise was added on the
    observation's grid: there it is white and the prior sees it as noise, while on the restored
    grid it has become smooth blobs the prior barely penalises; so the prior is also applied to
    the estimate brought back to that grid (its gain: benchmarks/results/map_settings_multi/).
    """

    def __init__(self, prior, forward_model, cfg: SolverConfig, size, latent_scale=None):
        self.prior, self.fm, self.cfg, self.size = prior, forward_model, cfg, size
        scale = int(getattr(forward_model, "scale", 1))
        self.lam_full = cfg.lam / scale ** 2
        self.lam_coarse = cfg.lam * cfg.coarse_prior if scale > 1 else 0.0
        self.data_weight = 1.0
        # latent space optimises v with u = v * latent_scale: Adam's per-entry step in u
        # is then lr * latent_scale, which is how levels get their own step sizes.
        self.latent_scale = latent_scale

    def latent(self, param: torch.Tensor) -> torch.Tensor:
        return param if self.latent_scale is None else param * self.latent_scale

    def image(self, param: torch.Tensor) -> torch.Tensor:
        if self.cfg.space == "image":
            return param
        return self.prior.inverse(self.latent(param))[0]

    def fresh(self, start: torch.Tensor) -> torch.Tensor:
        return start.clone().requires_grad_(True)

    def energy_and_grad(self, param: torch.Tensor) -> tuple:
        energy = self(param)
        if not torch.isfinite(energy):
            return float(energy.detach()), None
        grad, = torch.autograd.grad(energy, param)
        return float(energy.detach()), grad

    def project(self, param: torch.Tensor) -> None:
        if self.cfg.space == "image":
            with torch.no_grad():
                param.clamp_(0.0, 1.0)

    def iterate(self, param: torch.Tensor, it: int) -> torch.Tensor:
        with torch.no_grad():
            x_it = self.image(param)
            if not torch.isfinite(x_it).all():
                raise FloatingPointError(f"iterate became non-finite at iteration {it}")
            return x_it.clamp(0, 1)

    def __call__(self, param: torch.Tensor) -> torch.Tensor:
        h, w = self.size
        if self.cfg.space == "image":
            x = param
            prior_nll = -self.prior.log_prob(x)
        else:
            u = self.latent(param)
            x, logdet_gen = self.prior.inverse(u)
            prior_nll = 0.5 * u.pow(2).flatten(1).sum(1) + logdet_gen
        data_nll = self.fm.nll(x[..., :h, :w])
        energy = self.data_weight * data_nll + self.lam_full * prior_nll
        if self.lam_coarse:
            coarse = self.fm.at_observed_scale(x[..., :h, :w])
            energy = energy - self.lam_coarse * self.prior.log_prob(pad_to_multiple(coarse, self.prior.multiple))
        return energy.sum()

    def rebalance(self, param: torch.Tensor) -> None:
        """Morozov's discrepancy principle: when the estimate misses the observation by more than
        ``discrepancy`` times what the noise alone would explain, the prior is smoothing away
        signal (texture), so the data term's weight grows by that ratio (and relaxes back towards
        1 once the misfit is explained). On multi val crops the misfit of detailed photos stood at
        1.1-1.5x its expectation, of smooth ones at 0.8x. Needs a noise level: without one the
        forward model returns None and the weight stays 1."""
        if not self.cfg.discrepancy or not hasattr(self.fm, "expected_nll"):
            return
        h, w = self.size
        with torch.no_grad():
            x = self.image(param)[..., :h, :w]
            expected = self.fm.expected_nll(x)
            if expected is None or float(expected.sum()) <= 0:
                return
            misfit = float(self.fm.nll(x).sum())
        self.data_weight = rebalanced_weight(self.data_weight, misfit, float(expected.sum()), self.cfg)


def _latent_scale(model, cfg: SolverConfig, shape, device) -> Optional[torch.Tensor]:
    """Per-entry latent step multiplier decay^level (None in image space or when flat)."""
    if cfg.space != "latent" or cfg.level_lr_decay == 1.0:
        return None
    levels = model.level_map(shape[-2], shape[-1]).to(device)
    return cfg.level_lr_decay ** levels.float()


class _TorchAdam:
    """torch.optim.Adam on one parameter tensor, its step size given per call (the schedule's)."""

    def __init__(self, param: torch.Tensor):
        self.opt = torch.optim.Adam([param], lr=0.0)

    def step(self, param: torch.Tensor, grad: torch.Tensor, lr: float) -> None:
        for g in self.opt.param_groups:
            g["lr"] = lr
        param.grad = grad
        self.opt.step()


def map_restore(prior, forward_model, cfg: SolverConfig = SolverConfig(), *,
                device: Optional[torch.device] = None,
                progress: Optional[Callable[[int, int], None]] = None,
                start: Optional[torch.Tensor] = None) -> MapResult:
    """Restore one image by MAP. ``prior``: a frozen FlowModel; returns x (1,3,H,W) in [0,1] on the CPU.

    start: (1, 3, H, W) in [0, 1], where the iterations begin (None: the forward model's initial
    estimate, smoothed by ``cfg.start_blur``). ``cfg.iters`` None means ITERS_FROM_OBSERVATION.
    """
    if cfg.iters is None:
        cfg = replace(cfg, iters=ITERS_FROM_OBSERVATION)
    t0 = time.perf_counter()
    device = device or torch.device("cpu")
    torch.manual_seed(cfg.seed)
    prior = prior.to(device).eval()
    for p in prior.parameters():
        p.requires_grad_(False)
    fm = forward_model.to(device)
    if start is not None:
        x_start = start.to(device).clamp(0, 1)
    else:
        x_start = fm.initial_estimate().to(device).clamp(0, 1)
        if cfg.start_blur:
            x_start = gaussian_blur(x_start, cfg.start_blur)
    history: List[float] = []
    if cfg.iters and cfg.space == "latent" and cfg.latent_warm_start > 0:
        # T^-1 of a damaged image is far out of distribution (its latent norm far above a sample's), so the
        # latent run starts from a short image-space MAP instead of from T^-1(y).
        warm_iters, total = int(round(cfg.iters * cfg.latent_warm_start)), cfg.iters
        outer = progress
        warm = map_restore(prior, fm, replace(cfg, space="image", iters=warm_iters), device=device,
                           progress=None if outer is None else (lambda i, n: outer(i, total)))
        x_start, history = warm.x.to(device), warm.objective
        cfg = replace(cfg, iters=total - warm_iters)
        progress = None if outer is None else (lambda i, n: outer(warm_iters + i, total))
    if cfg.iters == 0:
        return MapResult(x_start.cpu(), history, seconds=time.perf_counter() - t0)
    x, more = _optimise(prior, fm, cfg, x_start, progress)
    fell_back = x is None
    if fell_back:
        log.warning("MAP did not converge; returning its starting estimate unchanged")
        x = x_start
    return MapResult(x.detach().cpu(), history + more, fell_back, time.perf_counter() - t0)


def _optimise(prior, fm, cfg: SolverConfig, x_start: torch.Tensor, progress):
    """Run the MAP loop from image ``x_start`` with the NaN guard; (x cropped, history) or (None, [])."""
    size = x_start.shape[-2:]
    x_pad = pad_to_multiple(x_start, prior.multiple)
    scale = _latent_scale(prior, cfg, x_pad.shape, x_pad.device)
    objective = _Objective(prior, fm, cfg, size, scale)
    with torch.no_grad():
        start = x_pad if cfg.space == "image" else prior(x_pad)[0]
        if scale is not None:
            start = start / scale
    lr = (cfg.lr or step_for_noise(None)) * cfg.step_scale if cfg.space == "image" else cfg.lr_latent
    done = optimise(objective, _TorchAdam, start, cfg, lr, progress)
    return (None, []) if done is None else (done[0][..., : size[0], : size[1]], done[1])
