"""Inpainting by plug-and-play splitting: the start (and, by default, the whole restore) of a chain
that only hides pixels (a mask, Gaussian noise or none; no JPEG, blur or downsampling).

A MAP from a hole-filled observation leaves the holes to a few prior steps, which barely move a
large hole away from its smooth start. Here the holes are filled by the plan's denoiser
(``flowrt.denoise.Denoiser``) inside a half-quadratic splitting of

    min_x  ||m (x - y)||^2 / (2 n^2) + (LAM / 2) ||x - z||^2 / s_k^2,   z = denoise(x, s_k)

(Zhang et al., "Plug-and-play image restoration with deep denoiser prior", TPAMI 2021):

* the start: a smooth fill of the holes from the observed pixels (``smooth_fill``: push-pull, then
  diffusion, so no hole starts grey or blocky);
* the data step, in closed form per pixel (``mask_blend``): x = (y + w z) / (1 + w) where observed,
  x = z in a hole, with w = LAM n^2 / s_k^2 (n the observation's noise std; noiseless: x = y);
* the prior step: z = denoise(x, s_k), s_k falling geometrically from SIGMA_START_255 to the noise
  level (never below SIGMA_END_255), the denoiser run in full each round.

The answer is the last data step: the observed pixels stay at the observation (weighted by the
noise), the holes hold the denoiser's last estimate. Torch-free (numpy and the denoiser).
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from flowrt import interrupts
from flowrt.denoise.base import Denoiser
from flowrt.numeric.mask import _bilinear, _sum_pool

ROUNDS = 6               # splitting rounds (one full denoiser call each)
SIGMA_START_255 = 12.0   # the first round's denoiser std, 0-255 scale (a higher start blurs edges into the holes)
SIGMA_END_255 = 3.0      # the last round's std never goes below this (a noiseless observation)
LAM = 0.25               # coupling weight of the data step: w = LAM n^2 / s_k^2
DIFFUSION_STEPS = 20     # Jacobi steps of the heat equation inside the holes, per pyramid level

Progress = Optional[Callable[[int, int], None]]


def smooth_fill(image: np.ndarray, observed: np.ndarray, steps: int = DIFFUSION_STEPS) -> np.ndarray:
    """Holes filled smoothly from the observed pixels around them: close to the harmonic fill
    (the heat equation's steady state with the observed pixels held fixed).

    image: (1, C, H, W) float in [0, 1]; observed: (1, 1, H, W) in {0, 1} (1 = observed). Solved
    coarse to fine, as ``flowrt.numeric.mask.fill_holes``'s push-pull pyramid: each level's holes
    start from the coarser level's fill, enlarged bilinearly, and take ``steps`` Jacobi steps of the
    heat equation (so a wide hole costs no more than a narrow one). Observed pixels are returned
    unchanged; no observed pixel at all: 0.5 everywhere.
    """
    image = image.astype(np.float32)
    if observed.all():
        return image
    if not observed.any():
        return np.full_like(image, 0.5)
    h, w = image.shape[-2:]
    if h == 1 and w == 1:
        return image
    weight_sum = _sum_pool(observed)
    coarse = smooth_fill(_sum_pool(image * observed) / np.maximum(weight_sum, 1e-12),
                         (weight_sum > 0).astype(np.float32), steps)
    hole = observed[0, 0] <= 0
    x = np.where(hole, _bilinear(coarse, (h, w))[0], image[0])
    for _ in range(steps):
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
        mean = 0.25 * (padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:])
        x = np.where(hole, mean, x)
    return np.clip(x, 0, 1)[None].astype(np.float32)


def mask_blend(observed_y: np.ndarray, observed: np.ndarray, z: np.ndarray, weight: float) -> np.ndarray:
    """The data step's closed form: argmin_x ||m (x - y)||^2 + weight ||x - z||^2 per pixel.

    observed_y, z: (1, C, H, W) float; observed: (1, 1, H, W) in {0, 1}; weight >= 0 (0: the
    observed pixels are y exactly). Observed pixels -> (y + weight z) / (1 + weight), holes -> z.
    """
    blended = (observed_y + weight * z) / (1.0 + weight)
    return np.where(observed > 0, blended, z).astype(np.float32)


def inpaint_schedule(noise_255: float, rounds: int = ROUNDS) -> np.ndarray:
    """The denoiser std of each round, 0-255 scale, (rounds,): geometric from SIGMA_START_255 to
    max(noise_255, SIGMA_END_255) (a noisier observation starts and ends there)."""
    end = max(float(noise_255), SIGMA_END_255)
    return np.geomspace(max(SIGMA_START_255, end), end, rounds)


def inpaint_restore(observed_y: np.ndarray, observed: np.ndarray, denoiser: Denoiser, noise_255: float, *,
                    greyscale: bool = False, rounds: int = ROUNDS, progress: Progress = None) -> np.ndarray:
    """The splitting's estimate, (1, 3, H, W) float32 in [0, 1].

    observed_y: (1, 3, H, W) in [0, 1], the observation (hole pixels ignored); observed: (1, 1, H, W)
    in {0, 1}, 1 = observed; denoiser: the prior step; noise_255: the observed pixels' Gaussian noise
    std (0-255 scale, >= 0; 0 = noiseless). progress(done, rounds) after each round.
    """
    if not (np.isfinite(noise_255) and noise_255 >= 0):
        raise ValueError(f"noise_255 must be a finite number >= 0, got {noise_255}")
    y = observed_y.astype(np.float32)
    x = smooth_fill(y, observed)
    schedule = inpaint_schedule(noise_255, rounds)
    z = x
    for k, sigma_255 in enumerate(schedule):
        interrupts.check()
        # the full denoiser every round: its coarse pass and its pilot-refining pass are the
        # grouped denoiser's alone, and a few full rounds beat more cheap ones here
        rgb = denoiser.denoise(np.ascontiguousarray(np.clip(x[0], 0, 1).transpose(1, 2, 0)), sigma_255 / 255.0,
                               greyscale=greyscale)
        z = np.ascontiguousarray(np.asarray(rgb, np.float32).transpose(2, 0, 1))[None]
        x = mask_blend(y, observed, z, LAM * (noise_255 / sigma_255) ** 2)
        if progress is not None:
            progress(k + 1, rounds)
    return np.clip(x, 0, 1).astype(np.float32)
