"""The two kinds of pieces a forward model is made of.

A ``Degradation`` is a deterministic, differentiable stage (blur, downsampling, masking) mapping
an image batch (B, 3, H, W) in [0, 1] to its degraded version (B, 3, h, w). A ``Likelihood`` is
the observation's noise model at the end of the chain: ``nll(z)`` is -log p(y | z) in nats per
batch item (B,), constants dropped. Both hold their constants as tensors and move with ``to``.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor


class TensorHolder:
    """Moves every tensor attribute (and list of tensors) with ``to(device, dtype)``.

    Integer tensors keep their dtype; only floating ones follow `dtype`.
    """

    def to(self, device: Optional[torch.device | str] = None, dtype: Optional[torch.dtype] = None):
        for key, value in vars(self).items():
            if isinstance(value, Tensor):
                setattr(self, key, _moved(value, device, dtype))
            elif isinstance(value, list) and value and all(isinstance(v, Tensor) for v in value):
                setattr(self, key, [_moved(v, device, dtype) for v in value])
            elif isinstance(value, TensorHolder):
                value.to(device, dtype)
        return self


def _moved(t: Tensor, device, dtype) -> Tensor:
    return t.to(device=device, dtype=dtype if (dtype is not None and t.is_floating_point()) else None)


class Degradation(TensorHolder):
    """A deterministic, differentiable stage: (B, 3, H, W) -> (B, 3, h, w)."""

    def apply(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def out_size(self, h: int, w: int) -> Tuple[int, int]:
        return h, w


class Likelihood(TensorHolder):
    """The observation model: nll(z) = -log p(y | z), (B,) nats, for z the chain's output."""

    def nll(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def expected_nll(self, z: Tensor) -> Optional[Tensor]:
        """E[nll(z)] over observations y drawn from this model at z, (B,) nats; None when the
        model was given no noise level (its misfit then says nothing about over-smoothing)."""
        return None
