"""The MAP solver's settings, apart from the solver so that planning a restore (and ``import
flowrt``) does not import torch."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from flowrt.errors import InputError

SPACES = ("image", "latent")
STARTS = ("auto", "split", "denoise", "blur")
ITERS_FROM_OBSERVATION = 150  # iterations from the (lightly blurred) observation
ITERS_FROM_DENOISED = 20      # iterations from a denoised start (flowrt.solve.start)
ITERS_AFTER_SPLIT = 10        # iterations after the splitting start (flowrt.solve.splitting)
MAX_SEED = 2 ** 63 - 1


@dataclass(frozen=True)
class SolverConfig:
    """MAP settings; defaults chosen on ../shared/data/val (benchmarks/results/map_settings.md);
    iteration count and schedule re-measured in benchmarks/results/map_iterations/."""
    space: str = "image"
    iters: Optional[int] = None  # None: ITERS_AFTER_SPLIT / ITERS_FROM_DENOISED / ITERS_FROM_OBSERVATION by start
    start: str = "auto"          # auto | split | denoise | blur: where the MAP starts (flowrt.solve.start)
    lam: float = 0.5            # weight of the prior per observed pixel (see _Objective)
    coarse_prior: float = 0.6   # upscaling only: weight of -log p(D x) relative to lam (see _Objective)
    lr: Optional[float] = None  # image space: Adam step in [0,1] units; None: step_for_noise(sigma)
    start_blur: Optional[float] = None  # std (px) smoothing the start; None: start_blur_for_noise(sigma)
    lr_latent: float = 0.002    # latent space: Adam step in latent (N(0,1)) units
    level_lr_decay: float = 1.0  # latent space: level l steps with lr * decay^l (l = 0 finest)
    warmup: int = 5             # iterations of linear lr warm-up
    final_lr: float = 0.1       # the cosine decays the step to this fraction of its peak
    step_scale: float = 1.0     # image space: multiplies the step chosen for the noise level
    latent_warm_start: float = 0.5  # latent space: this fraction of iters runs in image space first
    average_tail: float = 0.25  # fraction of final iterates averaged into the answer
    discrepancy: float = 0.8    # data misfit allowed, in multiples of its expected value (0: off)
    max_retries: int = 3        # NaN guard: restarts with half the step before falling back
    seed: int = 0               # 0 <= seed <= MAX_SEED (torch's generator takes 64 bits)
    accept_fallback: bool = False  # pipeline: write the starting estimate when the optimiser fails

    def __post_init__(self) -> None:  # every instance is valid (dataclasses.replace included)
        self.validate()

    def validate(self) -> "SolverConfig":
        if self.space not in SPACES:
            raise InputError(f"--space must be one of {', '.join(SPACES)}, not {self.space!r}")
        if self.iters is not None and (int(self.iters) != self.iters or self.iters < 0):
            raise InputError(f"--iters must be a whole number >= 0, got {self.iters}")
        if self.start not in STARTS:
            raise InputError(f"--start must be one of {', '.join(STARTS)}, not {self.start!r}")
        if not math.isfinite(self.lam) or self.lam < 0:  # nan passes a plain `< 0` test
            raise InputError(f"--lam must be a finite number >= 0, got {self.lam}")
        if not math.isfinite(self.discrepancy) or self.discrepancy < 0:
            raise InputError(f"discrepancy must be a finite number >= 0, got {self.discrepancy}")
        if not math.isfinite(self.coarse_prior) or self.coarse_prior < 0:
            raise InputError(f"--coarse-prior must be a finite number >= 0, got {self.coarse_prior}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise InputError(f"the step size must be a finite number > 0, got {self.lr}")
        if self.start_blur is not None and not (math.isfinite(self.start_blur) and 0 <= self.start_blur <= 20):
            raise InputError(f"start_blur must be 0-20 px, got {self.start_blur}")
        if not 0 <= self.final_lr <= 1:  # also refuses nan
            raise InputError(f"final_lr must be in [0, 1], got {self.final_lr}")
        if not (math.isfinite(self.step_scale) and self.step_scale > 0):
            raise InputError(f"step_scale must be a finite number > 0, got {self.step_scale}")
        if not 0 <= self.average_tail <= 1:
            raise InputError("average_tail must be in [0, 1]")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise InputError(f"--seed must be a whole number from 0 to {MAX_SEED}, got {self.seed}")
        return self
