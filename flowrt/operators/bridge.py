"""The torch engine's one way into the numpy forward models: an autograd bridge.

Each degradation's maths lives once, in ``flowrt.numeric``: a linear stage's ``apply`` and its
adjoint ``vjp``, a likelihood's ``nll`` and ``nll_and_grad``. Torch reaches it here, as
``flowrt.prior.ort_torch`` reaches the ONNX prior: the forward pass hands the tensor to numpy (on
the host, in the tensor's dtype) and the backward pass hands the upstream gradient to the adjoint.
A tensor on CUDA is copied to the host and its result back; the prior stays on the device.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor



def to_numpy(x: Tensor) -> np.ndarray:
    """A host view of x (no copy for a CPU tensor), cut off from autograd."""
    return x.detach().cpu().numpy()


def to_torch(a: np.ndarray, like: Tensor) -> Tensor:
    """a as a tensor on ``like``'s device in ``like``'s dtype."""
    return torch.from_numpy(np.ascontiguousarray(a)).to(device=like.device, dtype=like.dtype)


class _LinearBridge(torch.autograd.Function):
    """y = A x by the numpy stage's ``apply``; the backward is its adjoint ``vjp``."""

    @staticmethod
    def forward(ctx, x: Tensor, stage) -> Tensor:
        ctx.stage = stage
        return to_torch(stage.apply(to_numpy(x)), x)

    @staticmethod
    def backward(ctx, upstream: Tensor):
        return to_torch(ctx.stage.vjp(to_numpy(upstream)), upstream), None


class _DataTermBridge(torch.autograd.Function):
    """nll(z) (B,) by the numpy likelihood; its gradient is computed in the same pass and kept for
    the backward, which scales it by the upstream (B,). Only ``nll`` runs when z needs no gradient."""

    @staticmethod
    def forward(ctx, z: Tensor, term) -> Tensor:
        if not ctx.needs_input_grad[0]:
            return to_torch(term.nll(to_numpy(z)), z)
        nll, grad = term.nll_and_grad(to_numpy(z))
        ctx.save_for_backward(to_torch(grad, z))
        return to_torch(nll, z)

    @staticmethod
    def backward(ctx, upstream: Tensor):
        (grad,) = ctx.saved_tensors
        return upstream.view(-1, 1, 1, 1) * grad, None


def data_term(z: Tensor, term) -> Tensor:
    """term.nll(z) (B,) in z's dtype, differentiable in z: ``term`` is anything with ``nll`` and
    ``nll_and_grad`` on arrays (a ``flowrt.numeric.base.Likelihood``, a numpy ``ForwardModel``)."""
    return _DataTermBridge.apply(z, term)


class NumpyStage:
    """A ``flowrt.numeric.base.Stage`` (``apply``, ``vjp``, ``out_size``) applied to tensors."""

    def __init__(self, stage):
        self.numeric = stage

    @property
    def name(self) -> str:
        """The numpy stage's class name ("Blur", "BicubicDownsample", "Mask")."""
        return type(self.numeric).__name__

    def apply(self, x: Tensor) -> Tensor:
        return _LinearBridge.apply(x, self.numeric)

    def out_size(self, h: int, w: int) -> Tuple[int, int]:
        return self.numeric.out_size(h, w)


class NumpyLikelihood:
    """A ``flowrt.numeric.base.Likelihood`` (``nll``, ``nll_and_grad``, ``expected_nll``) on tensors."""

    def __init__(self, term):
        self.numeric = term
        self.noise_given = term.noise_given

    def nll(self, z: Tensor) -> Tensor:
        """-log p(y | z), (B,) in z's dtype, differentiable in z."""
        return data_term(z, self.numeric)

    def expected_nll(self, z: Tensor) -> Optional[Tensor]:
        expected = self.numeric.expected_nll(to_numpy(z))
        return None if expected is None else to_torch(expected, z)
