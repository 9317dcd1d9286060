"""A whole observation model in numpy: blur -> downsample -> mask, then noise (or JPEG) on the result.

The numpy twin of ``flowrt.operators.chain``, built from the same checked ``ChainSpec``. Its
``nll_and_grad(x)`` is the data term and its gradient for a candidate restored image x, computed
forward through the linear stages and back through their adjoints (``vjp``):

    nll_and_grad(x) -> (nll (B,) float64 nats, d nll / dx like x)
"""
from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import numpy as np

from flowrt.io.jpeg_coefficients import JpegInfo
from flowrt.numeric.degradations import Parsed, stages_for
from flowrt.numeric.downsample import BicubicDownsample
from flowrt.numeric.jpeg import JpegLikelihood
from flowrt.numeric.mask import Mask, fill_holes
from flowrt.numeric.noise import GaussianLikelihood
from flowrt.numeric.observation import chain_spec
from flowrt.numeric.resampling import torch_upsample_matrix

Denoiser = Callable[[np.ndarray], np.ndarray]  # (h, w, 3) float32 in [0, 1] -> the same, denoised


class ForwardModel:
    """x (B, 3, H, W) in [0, 1] at the restored size -> degraded z (B, 3, h, w) -> nll (B,).

    observed: y as (1, 3, h, w) float32 clipped to [0, 1]; observed_mask: (1, 1, h, w) in {0, 1};
    restored_size: (H, W); scale: H / h.
    """

    def __init__(self, stages: List, likelihood, observed: np.ndarray, observed_mask: np.ndarray,
                 restored_size: Tuple[int, int], scale: int):
        self.stages = stages
        self.likelihood = likelihood
        self.observed = observed
        self.observed_mask = observed_mask
        self.restored_size = restored_size
        self.scale = scale

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(B, 3, H, W) -> (B, 3, h, w): the deterministic part of the chain."""
        if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != self.restored_size:
            raise ValueError(f"expected (B, 3, {self.restored_size[0]}, {self.restored_size[1]}), got {x.shape}")
        for stage in self.stages:
            x = stage.apply(x)
        return x

    def nll(self, x: np.ndarray) -> np.ndarray:
        """-log p(y | x), (B,) float64 nats, constants dropped."""
        return self.likelihood.nll(self.apply(x))

    def nll_and_grad(self, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(-log p(y | x) (B,) float64, its gradient in x, (B, 3, H, W) in x's dtype)."""
        nll, grad = self.likelihood.nll_and_grad(self.apply(x))
        for stage in reversed(self.stages):
            grad = stage.vjp(grad)
        return nll, grad.astype(x.dtype, copy=False)

    def expected_nll(self, x: np.ndarray) -> Optional[np.ndarray]:
        """E[nll(x)] over observations the model would draw at x, (B,); None without a noise level."""
        return self.likelihood.expected_nll(self.apply(x))

    def curvature_weights(self) -> Optional[np.ndarray]:
        """(1, 1, H, W) float64 >= 1 on the restored grid: the likelihood's ``curvature_weights`` carried
        back through the stages' adjoints (normalised by the adjoint of ones, so a pixel inside
        reads 1); None where the likelihood's curvature is the same everywhere."""
        weights = self.likelihood.curvature_weights()
        if weights is None:
            return None
        spread = np.broadcast_to(weights, (1, 1) + weights.shape).astype(np.float64)
        ones = np.ones_like(spread)
        for stage in reversed(self.stages):
            spread, ones = stage.vjp(spread), stage.vjp(ones)
        inside = ones > 1e-6 * ones.max()   # a masked-out pixel gets no data term: weight 1
        ratio = np.divide(spread, ones, out=np.ones_like(spread), where=inside)
        return np.maximum(ratio, 1.0)

    def _downsampler(self) -> Optional[BicubicDownsample]:
        return next((s for s in self.stages if isinstance(s, BicubicDownsample)), None)

    def at_observed_scale(self, x: np.ndarray) -> Optional[np.ndarray]:
        """x (B, 3, H, W) brought to the observation's grid by the chain's own downsampler alone
        (no blur, no mask): (B, 3, h, w); None when the chain does not downsample."""
        stage = self._downsampler()
        return None if stage is None else stage.apply(x)

    def at_observed_scale_vjp(self, g: np.ndarray) -> np.ndarray:
        """The adjoint of ``at_observed_scale``: (B, 3, h, w) -> (B, 3, H, W) (a chain that downsamples)."""
        return self._downsampler().vjp(g)

    def initial_estimate(self, denoise: Optional[Denoiser] = None) -> np.ndarray:
        """(1, 3, H, W) float32 in [0, 1]: y with holes filled (and denoised on its own grid, where its
        noise is white, when ``denoise`` is given), enlarged as torch's bicubic interpolation does.
        For a JPEG, y is already the decoder's output; blur is left in (undoing it is the solver's job)."""
        y = fill_holes(self.observed, self.observed_mask)
        if denoise is not None:
            rgb = np.asarray(denoise(np.ascontiguousarray(y[0].transpose(1, 2, 0))), np.float32)
            y = np.ascontiguousarray(rgb.transpose(2, 0, 1))[None]
        if self.scale > 1:
            rows = torch_upsample_matrix(y.shape[-2], self.restored_size[0], "bicubic").astype(np.float32)
            cols = torch_upsample_matrix(y.shape[-1], self.restored_size[1], "bicubic").astype(np.float32)
            y = rows @ y @ cols.T
        return np.clip(y, 0, 1).astype(np.float32)


def build_forward_model(y: np.ndarray, *, sigma: Optional[float] = None, jpeg: Optional[JpegInfo] = None,
                        scale: int = 1, blur: Optional[np.ndarray] = None, mask: Optional[np.ndarray] = None,
                        greyscale: bool = False, degradations: Parsed = ()) -> ForwardModel:
    """The numpy forward model for an observation y, float (h, w, 3) in [0, 1] (for a JPEG, its decode).

    The arguments are ``flowrt.operators.build_forward_model``'s: sigma the Gaussian noise std on the
    0-255 scale (None: only the noise floor), jpeg the file's quantisation, scale the upscaling
    factor (Pillow's bicubic downsampling), mask bool (h, w) True = observed, greyscale: y is one
    grey channel; degradations: (option, parsed value) pairs of ``flowrt.numeric.degradations``
    (the plan's), applied at the restored size in their order; blur: a kernel (kh, kw), shorthand
    for ``("blur", kernel)`` first among them. InputError for anything inconsistent.
    """
    spec = chain_spec(y, sigma=sigma, jpeg=jpeg, scale=scale, mask=mask, greyscale=greyscale)
    given = ((("blur", blur),) if blur is not None else ()) + tuple(degradations)
    stages: List = stages_for(given)
    if spec.scale > 1:
        stages.append(BicubicDownsample(spec.restored, spec.scale))
    if mask is not None:
        stages.append(Mask(spec.keep))
    if jpeg is not None:
        likelihood = JpegLikelihood(jpeg, sigma, spec.mask)
    else:
        likelihood = GaussianLikelihood(spec.y, spec.sigma_255, spec.mask, greyscale, noise_given=spec.noise_given)
    observed = np.ascontiguousarray(spec.observed.transpose(2, 0, 1))[None]
    observed_mask = spec.keep.astype(np.float32)[None, None]
    return ForwardModel(stages, likelihood, observed, observed_mask, spec.restored, spec.scale)
