"""A whole observation model: blur -> downsample -> mask, then noise (and JPEG) on the result.

``build_forward_model`` turns what the user said (the observed image y, sigma, a JPEG's own
quantisation, a scale, a blur kernel, a mask) into a ``ForwardModel`` whose ``nll(x)`` is
-log p(y | x) for a candidate restored image x, differentiable in x.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from flowrt.io.jpeg_coefficients import JpegInfo
from flowrt.numeric import blur as numeric_blur
from flowrt.numeric import downsample as numeric_downsample
from flowrt.numeric import jpeg as numeric_jpeg
from flowrt.numeric import mask as numeric_mask
from flowrt.numeric import noise as numeric_noise
from flowrt.numeric.observation import MAX_SCALE, chain_spec  # noqa: F401 - MAX_SCALE re-exported
from .base import Degradation, Likelihood, TensorHolder
from .bridge import NumpyLikelihood, NumpyStage, to_numpy


class ForwardModel(TensorHolder):
    """x (B, 3, H, W) in [0, 1] at the restored size -> degraded z (B, 3, h, w) -> nll (B,).

    observed: y as (1, 3, h, w); observed_mask: (1, 1, h, w) in {0, 1}; restored_size: (H, W).
    """

    def __init__(self, stages: List[Degradation], likelihood: Likelihood, observed: Tensor,
                 observed_mask: Tensor, restored_size: Tuple[int, int], scale: int):
        self.stages = stages
        self.likelihood = likelihood
        self.observed = observed
        self.observed_mask = observed_mask
        self.restored_size = restored_size
        self.scale = scale

    def to(self, device=None, dtype=None) -> "ForwardModel":
        super().to(device, dtype)
        for stage in self.stages:
            stage.to(device, dtype)
        return self

    def apply(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, 3, h, w): the deterministic part of the chain."""
        if x.dim() != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != self.restored_size:
            raise ValueError(f"expected (B, 3, {self.restored_size[0]}, {self.restored_size[1]}), got {tuple(x.shape)}")
        for stage in self.stages:
            x = stage.apply(x)
        return x

    def nll(self, x: Tensor) -> Tensor:
        """-log p(y | x), (B,) nats, constants dropped."""
        return self.likelihood.nll(self.apply(x))

    def expected_nll(self, x: Tensor) -> Optional[Tensor]:
        """E[nll(x)] over observations the model would draw at x, (B,); None without a noise level."""
        return self.likelihood.expected_nll(self.apply(x))

    def at_observed_scale(self, x: Tensor) -> Optional[Tensor]:
        """x (B, 3, H, W) brought to the observation's grid by the chain's own downsampler alone
        (no blur, no mask): (B, 3, h, w); None when the chain does not downsample."""
        for stage in self.stages:
            if isinstance(stage, NumpyStage) and isinstance(stage.numeric, numeric_downsample.BicubicDownsample):
                return stage.apply(x)
        return None

    def initial_estimate(self) -> Tensor:
        """(1, 3, H, W) in [0, 1]: y with holes filled, bicubic-upsampled to the restored size.

        For a JPEG, y is already the decoder's output; blur is left in (undoing it is the solver's job).
        Denoised and split starts are made by the numpy chain for both engines (``flowrt.pipeline.region``).
        """
        y = torch.from_numpy(numeric_mask.fill_holes(to_numpy(self.observed), to_numpy(self.observed_mask)))
        if self.scale > 1:
            y = F.interpolate(y, size=self.restored_size, mode="bicubic", align_corners=False)
        return y.clamp(0, 1)


def build_forward_model(y: np.ndarray, *, sigma: Optional[float] = None, jpeg: Optional[JpegInfo] = None,
                        scale: int = 1, blur: Optional[np.ndarray] = None, mask: Optional[np.ndarray] = None,
                        greyscale: bool = False) -> ForwardModel:
    """The forward model for an observation y, float (h, w, 3) in [0, 1] (for a JPEG, its decode).

    sigma: Gaussian noise std on the 0-255 scale, added before any JPEG compression (None: only
    the noise floor). jpeg: the file's quantisation (y must have its size); the data term then
    lives in its DCT domain. scale: the restored image is (h * scale, w * scale), degraded by
    Pillow's bicubic downsampling. blur: kernel (kh, kw) summing to 1, applied at the restored
    size. mask: bool (h, w) at the observed size, True = observed. greyscale: y is one grey
    channel (compared with x's luma). InputError for anything inconsistent.
    """
    spec = chain_spec(y, sigma=sigma, jpeg=jpeg, scale=scale, blur=blur, mask=mask, greyscale=greyscale)
    stages: List[Degradation] = []
    if blur is not None:
        stages.append(NumpyStage(numeric_blur.Blur(blur)))
    if spec.scale > 1:
        stages.append(NumpyStage(numeric_downsample.BicubicDownsample(spec.restored, spec.scale)))
    if mask is not None:
        stages.append(NumpyStage(numeric_mask.Mask(spec.keep)))
    if jpeg is not None:
        likelihood: Likelihood = NumpyLikelihood(numeric_jpeg.JpegLikelihood(jpeg, sigma, spec.mask))
    else:
        likelihood = NumpyLikelihood(numeric_noise.GaussianLikelihood(spec.y, spec.sigma_255, spec.mask, greyscale,
                                                                      noise_given=spec.noise_given))
    observed = torch.from_numpy(spec.observed).permute(2, 0, 1)[None]
    observed_mask = torch.from_numpy(spec.keep.astype(np.float32))[None, None]
    return ForwardModel(stages, likelihood, observed, observed_mask, spec.restored, spec.scale)
