"""The torch face of ``OrtPriorGradient``: a prior module whose log-density and gradient come from ORT.

The pipeline runs ``--engine ort`` without torch (``flowrt.solve.numpy_solver``); this adapter lets the
torch loop use the same ORT prior (the tests compare the loops with it). Made for the image-space
MAP loop of ``flowrt.solve.solver``, which asks a prior only for
``log_prob(x)``, ``multiple``, ``.to()``, ``.eval()`` and ``.parameters()``. Latent space needs the
generator (``inverse``) with a backward and is not served here: use the torch FlowModel there.
Import it through ``flowrt.prior.ort_gradient.OrtTorchPrior`` (keeps torch out of numpy users).
"""
from __future__ import annotations

import torch
from torch import nn


class _OrtLogProb(torch.autograd.Function):
    """log p(x) = -nll from ORT; backward = upstream (B,) times -d nll/dx saved in the forward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, backend) -> torch.Tensor:
        nll, grad = backend.nll_and_grad(x.detach().cpu().numpy())
        ctx.save_for_backward(torch.from_numpy(grad).to(device=x.device, dtype=x.dtype))
        # the solver's energies are in x's dtype; ORT's float64 nll keeps its precision until here
        return torch.from_numpy(-nll).to(device=x.device, dtype=x.dtype)

    @staticmethod
    def backward(ctx, upstream: torch.Tensor):
        (grad,) = ctx.saved_tensors
        return -upstream.view(-1, 1, 1, 1) * grad, None


class OrtTorchPrior(nn.Module):
    """nn.Module: ``log_prob(x)`` (B,) nats for x (B,3,H,W) in [0,1], differentiable in x, run by ORT."""

    def __init__(self, backend):
        super().__init__()
        self.backend = backend

    @property
    def multiple(self) -> int:
        """Image sides must be divisible by this (2^levels)."""
        return self.backend.multiple

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Continuous log-density of x on [0,1]^D in nats, shape (B,); its gradient is ORT's."""
        return _OrtLogProb.apply(x, self.backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The same as ``log_prob`` (there is no latent here: see the module docstring)."""
        return self.log_prob(x)
