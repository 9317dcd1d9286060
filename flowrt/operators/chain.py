"""The torch engine's forward model: the numpy chain (``flowrt.numeric.chain``) seen from torch.

``build_forward_model`` takes what the user said (the observed image y, sigma, a JPEG's own
quantisation, a scale, a blur kernel, a mask), builds the one numpy chain and wraps it: ``nll(x)`` is
-log p(y | x) for a candidate restored image x, a tensor, differentiable in x through the bridge
(one host round trip for the whole data term).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import Tensor

from flowrt.io.jpeg_coefficients import JpegInfo
from flowrt.numeric import chain as numeric_chain
from flowrt.numeric.downsample import BicubicDownsample
from flowrt.numeric.observation import MAX_SCALE  # noqa: F401 - re-exported
from .bridge import NumpyLikelihood, NumpyStage, data_term, to_numpy, to_torch


class ForwardModel:
    """x (B, 3, H, W) in [0, 1] at the restored size -> degraded z (B, 3, h, w) -> nll (B,).

    numeric: the numpy chain it wraps. stages and likelihood: its pieces behind the bridge;
    observed (1, 3, h, w), observed_mask (1, 1, h, w) in {0, 1}, restored_size (H, W) and scale its own.
    Results come back on x's device in x's dtype; the maths runs in numpy on the host.
    """

    def __init__(self, numeric: numeric_chain.ForwardModel):
        self.numeric = numeric
        self.stages = [NumpyStage(stage) for stage in numeric.stages]
        self.likelihood = NumpyLikelihood(numeric.likelihood)
        self.observed = torch.from_numpy(numeric.observed)
        self.observed_mask = torch.from_numpy(numeric.observed_mask)
        self.restored_size, self.scale = numeric.restored_size, numeric.scale

    def to(self, device=None, dtype=None) -> "ForwardModel":
        """Nothing to move: results follow their input's device and dtype."""
        return self

    def apply(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, 3, h, w): the deterministic part of the chain."""
        self._check(x)
        for stage in self.stages:
            x = stage.apply(x)
        return x

    def nll(self, x: Tensor) -> Tensor:
        """-log p(y | x), (B,) nats, constants dropped."""
        self._check(x)
        return data_term(x, self.numeric)

    def expected_nll(self, x: Tensor) -> Optional[Tensor]:
        """E[nll(x)] over observations the model would draw at x, (B,); None without a noise level."""
        expected = self.numeric.expected_nll(to_numpy(x))
        return None if expected is None else to_torch(expected, x)

    def at_observed_scale(self, x: Tensor) -> Optional[Tensor]:
        """x (B, 3, H, W) brought to the observation's grid by the chain's own downsampler alone
        (no blur, no mask): (B, 3, h, w); None when the chain does not downsample."""
        for stage in self.stages:
            if isinstance(stage.numeric, BicubicDownsample):
                return stage.apply(x)
        return None

    def initial_estimate(self) -> Tensor:
        """(1, 3, H, W) float32 in [0, 1]: the numpy chain's (y with holes filled, enlarged)."""
        return torch.from_numpy(self.numeric.initial_estimate())

    def _check(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != self.restored_size:
            raise ValueError(f"expected (B, 3, {self.restored_size[0]}, {self.restored_size[1]}), got {tuple(x.shape)}")


def build_forward_model(y: np.ndarray, *, sigma: Optional[float] = None, jpeg: Optional[JpegInfo] = None,
                        scale: int = 1, blur: Optional[np.ndarray] = None, mask: Optional[np.ndarray] = None,
                        greyscale: bool = False, degradations=()) -> ForwardModel:
    """The torch forward model for an observation y, float (h, w, 3) in [0, 1] (for a JPEG, its
    decode): ``flowrt.numeric.chain.build_forward_model``'s, whose arguments these are, behind the
    bridge. InputError for anything inconsistent."""
    return ForwardModel(numeric_chain.build_forward_model(y, sigma=sigma, jpeg=jpeg, scale=scale, blur=blur,
                                                          mask=mask, greyscale=greyscale,
                                                          degradations=degradations))
