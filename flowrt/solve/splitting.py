"""Plug-and-play half-quadratic splitting: the start for chains that downsample or blur.

Denoising the observation on its own grid and enlarging it (``flowrt.solve.start``'s ``denoise``)
never inverts the chain's blur or downsampling, and the flow prior's MAP from there adds little
detail. Here a denoiser (``flowrt.denoise.Denoiser``) acts as the prior inside a splitting of

    min_x  nll(x) + (lam / 2) ||x - z||^2 / s_k^2,   z = denoise(x, s_k)

alternating, round k = 1..ROUNDS, with s_k falling geometrically from SIGMA_START_255 to
END_FACTOR times the observation's noise-equivalent std (Zhang et al., "Plug-and-play image
restoration with deep denoiser prior", TPAMI 2021, with the plan's denoiser, by default the
grouped one, for theirs):

* the data step: DATA_STEPS accelerated gradient steps on nll(x) + mu_k / 2 ||x - z||^2 from z,
  mu_k = LAM / s_k^2, nll the forward model's own data term (for a JPEG the quantisation
  intervals of its coefficients, not a Gaussian stand-in, which cannot tell a coefficient
  quantised to zero, known to be small, from a noisy one);
* the prior step: z = denoise(x, s_k), at the restored size: a coarse, cheaper estimate in all but
  the last FULL_ROUNDS rounds, and in those the Wiener pass alone with the previous round's z as
  its pilot (as good as the denoiser's own first pass here, and cheaper). The last round is marked
  ``final``: its input is a data step's output, not a noisy photo, and its estimate is the answer,
  so a denoiser may run a pass fitted on exactly such rounds there (the flow denoiser's final stage).

The answer is the last z. LAM is small: the data step then nearly fits the observation, and the
denoiser, not the coupling, does the regularising. Settings chosen on 256 crops of val and
val-photos (benchmarks/results/split_start/). Torch-free: the forward model is a
``flowrt.numeric`` chain, whatever engine the MAP that follows uses.
"""
from __future__ import annotations

from typing import Callable, Optional, Protocol, Tuple

import numpy as np

from flowrt import interrupts
from flowrt.denoise.base import Denoiser

ROUNDS = 10             # splitting rounds (one denoiser call each, at the restored size)
SIGMA_START_255 = 40.0  # the first round's denoiser std, 0-255 scale
END_FACTOR = 1.5        # the last round's std over the observation's noise-equivalent std
LAM = 0.03              # coupling weight: mu_k = LAM / s_k^2 (s_k in [0, 1] units)
DATA_STEPS = 10         # accelerated gradient steps per data step
FULL_ROUNDS = 3         # the last rounds run the Wiener pass (pilot: the previous z), earlier ones a coarse estimate
_FIRST_CURVATURE = 1.0  # the backtracking search's first guess at the data term's curvature
MAX_DOUBLINGS = 64      # the search gives up there (a step of 2^-64 / first guess: no move)

Progress = Optional[Callable[[int, int], None]]


class DataTerm(Protocol):
    """What the splitting needs of a forward model (``flowrt.numeric.chain.ForwardModel``)."""

    def nll(self, x: np.ndarray) -> np.ndarray: ...

    def nll_and_grad(self, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]: ...

    def initial_estimate(self, denoise=None) -> np.ndarray: ...

    def curvature_weights(self) -> Optional[np.ndarray]: ...


def sigma_schedule(noise_255: float, rounds: int = ROUNDS) -> np.ndarray:
    """The denoiser std of each round, 0-255 scale, (rounds,): geometric from SIGMA_START_255 to
    END_FACTOR * noise_255 (never rising: a noisier observation starts and ends there)."""
    end = END_FACTOR * float(noise_255)
    start = max(SIGMA_START_255, end)
    return np.geomspace(start, end, rounds)


def split_restore(forward_model: DataTerm, denoiser: Denoiser, noise_255: float, *, greyscale: bool = False,
                  rounds: int = ROUNDS, progress: Progress = None) -> np.ndarray:
    """The splitting's estimate, (1, 3, H, W) float32 in [0, 1] at the restored size.

    denoiser: the prior step (``flowrt.denoise.Denoiser``); an early round asks it for a coarse
    estimate (the next data step moves it anyway), a late one hands it the previous round's estimate
    as its pilot, and the last round says it is the last (``final``: its estimate is the restore). noise_255: the observation's noise-equivalent std (``start.denoise_sigma``), > 0,
    which also denoises the first estimate on the observation's grid. greyscale: the image is grey
    (passed on to the denoiser). progress(done, rounds) after each round.
    """
    if not (np.isfinite(noise_255) and noise_255 > 0):
        raise ValueError(f"noise_255 must be a finite number > 0, got {noise_255}")
    z = forward_model.initial_estimate(
        denoise=lambda rgb: denoiser.denoise(rgb, noise_255 / 255.0, greyscale=greyscale))
    z = z.astype(np.float32)
    curvature = _FIRST_CURVATURE
    weights = _weights(forward_model)   # the data term does not change between rounds
    for k, sigma_255 in enumerate(sigma_schedule(noise_255, rounds)):
        interrupts.check()
        mu = LAM / (sigma_255 / 255.0) ** 2
        x, curvature = _data_step(forward_model, z, mu, curvature, weights)
        coarse = k < rounds - FULL_ROUNDS
        pilot = None if coarse else np.ascontiguousarray(z[0].transpose(1, 2, 0))
        rgb = denoiser.denoise(np.ascontiguousarray(np.clip(x[0], 0, 1).transpose(1, 2, 0)), sigma_255 / 255.0,
                               greyscale=greyscale, coarse=coarse, pilot=pilot, final=k == rounds - 1)
        z = np.ascontiguousarray(np.asarray(rgb, np.float32).transpose(2, 0, 1))[None]
        if progress is not None:
            progress(k + 1, rounds)
    return np.clip(z, 0, 1)


def _data_step(fm: DataTerm, z: np.ndarray, mu: float, curvature: float, weights=None) -> Tuple[np.ndarray, float]:
    """argmin_x nll(x) + mu/2 ||x - z||^2, approximately: DATA_STEPS of Nesterov's method from z,
    each pixel's step 1 / (L w + mu), w the data term's relative curvature there
    (``curvature_weights``: a JPEG's edge pixels, copied into its MCU padding, have many times an
    inner pixel's, and one step sized for them stalls the rest) and L found by backtracking (and
    kept for the next round, since the data term does not change; ``weights``: ``_weights(fm)``,
    derived here when not given). Returns (x float32, L)."""
    if weights is None:
        weights = _weights(fm)
    x = z.astype(np.float64)
    v, t = x.copy(), 1.0
    for _ in range(DATA_STEPS):
        nll_v, grad = fm.nll_and_grad(v.astype(np.float32))
        grad = grad.astype(np.float64)
        curvature = _backtrack(fm, v, float(nll_v.sum()), grad, curvature, weights)
        x_next = v - (grad + mu * (v - z)) / (curvature * weights + mu)
        t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        v = x_next + ((t - 1.0) / t_next) * (x_next - x)
        x, t = x_next, t_next
    return x.astype(np.float32), curvature


def _weights(fm: DataTerm):
    """The data term's relative curvature per pixel, (1, 1, H, W) float64, or 1.0 where it has none."""
    weights = fm.curvature_weights()
    return 1.0 if weights is None else weights


def _backtrack(fm: DataTerm, v: np.ndarray, nll_v: float, grad: np.ndarray, curvature: float,
               weights=1.0) -> float:
    """The smallest curvature * 2^n (n >= 0, at most MAX_DOUBLINGS) for which a step of
    grad / (curvature * weights) from v passes Beck and Teboulle's sufficient-decrease test on the
    data term in the metric of ``weights``; a non-finite data term fails the test, so a bad region
    only shrinks the step."""
    for _ in range(MAX_DOUBLINGS):
        move = -grad / (curvature * weights)
        gap = float(fm.nll((v + move).astype(np.float32)).sum()) - nll_v
        bound = float(np.sum(grad * move)) + 0.5 * curvature * float(np.sum(weights * move * move))
        if np.isfinite(gap) and gap <= bound + 1e-9 * abs(nll_v):
            return curvature
        curvature *= 2.0
    return curvature
