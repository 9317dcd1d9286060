"""Invertible layers of the Glow-style flow.

Every layer keeps one contract (the direction is data -> latent):

    forward(x) -> (z, logdet)   logdet = log|det dz/dx|, shape (B,)
    inverse(z) -> (x, logdet)   logdet = log|det dx/dz| = -forward logdet at matching points

Tensors are NCHW. ``LAYERS`` registers a small factory per layer so that one
property test can check every bijection the same way.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Tuple

import torch
from torch import nn
import torch.nn.functional as F

Pair = Tuple[torch.Tensor, torch.Tensor]


def soft_bound(raw: torch.Tensor, bound: float) -> torch.Tensor:
    """Map raw log-scales into (-bound, bound) smoothly (identity near 0).

    Bounding the log-scale keeps exp(+-log_s) inside [e^-bound, e^bound], so
    neither the forward nor the inverse pass can overflow or underflow however
    far an optimiser pushes its input.
    """
    return bound * torch.tanh(raw / bound)


def pixels(x: torch.Tensor) -> int:
    return x.shape[2] * x.shape[3]


class ActNorm(nn.Module):
    """Per-channel affine map z = (x + bias) * exp(log_scale).

    Its data-dependent initialisation is an explicit call, ``initialize(x)``,
    made once before training; ``forward`` has no branch on it, so tracing and
    export see a plain affine map.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Set bias and scale so that this batch leaves with zero mean, unit std per channel."""
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True)
        self.bias.copy_(-mean)
        self.log_scale.copy_(-torch.log(std + 1e-6))
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> Pair:
        z = (x + self.bias) * torch.exp(self.log_scale)
        logdet = self.log_scale.sum() * pixels(x)
        return z, logdet.expand(x.shape[0])

    def inverse(self, z: torch.Tensor) -> Pair:
        x = z * torch.exp(-self.log_scale) - self.bias
        logdet = -self.log_scale.sum() * pixels(z)
        return x, logdet.expand(z.shape[0])


class InvConv1x1(nn.Module):
    """Invertible 1x1 convolution, LU-parametrised: W = P L (U + diag(sign * exp(log_s))).

    ``freeze()`` computes W and W^-1 once in float64 and stores them as
    buffers; afterwards both directions are plain convolutions with constant
    weights (what ONNX export and MAP restoration want: no inverse, no
    slogdet, no diag in the graph).
    """

    def __init__(self, channels: int, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=gen, dtype=torch.float64))
        p, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        self.register_buffer("perm", p.float())
        self.register_buffer("sign_s", torch.sign(s).float())
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.register_buffer("eye", torch.eye(channels))
        self.lower = nn.Parameter(lower.float())
        self.upper = nn.Parameter(torch.triu(upper, 1).float())
        self.log_s = nn.Parameter(torch.log(torch.abs(s)).float())
        self.frozen = False

    def weight(self) -> torch.Tensor:
        """(C, C) matrix W in the parameters' dtype."""
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag_embed(self.sign_s * torch.exp(self.log_s))
        return self.perm @ lower @ upper

    @torch.no_grad()
    def freeze(self) -> None:
        """Bake W and W^-1 (computed in float64) as constants; parameters stop mattering."""
        w = self.weight().double()
        dtype = self.lower.dtype
        self.register_buffer("w_frozen", w.to(dtype)[:, :, None, None], persistent=False)
        self.register_buffer("w_inv_frozen", torch.linalg.inv(w).to(dtype)[:, :, None, None], persistent=False)
        self.register_buffer("logdet_frozen", self.log_s.sum().detach().clone(), persistent=False)
        self.frozen = True

    def unfreeze(self) -> None:
        self.frozen = False

    def _weights(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.frozen:
            return self.w_frozen, self.w_inv_frozen, self.logdet_frozen
        w = self.weight()
        return w[:, :, None, None], torch.linalg.inv(w)[:, :, None, None], self.log_s.sum()

    def forward(self, x: torch.Tensor) -> Pair:
        w, _, logdet = self._weights()
        return F.conv2d(x, w), (logdet * pixels(x)).expand(x.shape[0])

    def inverse(self, z: torch.Tensor) -> Pair:
        _, w_inv, logdet = self._weights()
        return F.conv2d(z, w_inv), (-logdet * pixels(z)).expand(z.shape[0])


def coupling_net(c_in: int, c_out: int, width: int) -> nn.Sequential:
    """conv3x3 -> ReLU -> conv1x1 -> ReLU -> conv3x3; the last layer starts at zero (identity flow)."""
    net = nn.Sequential(
        nn.Conv2d(c_in, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, width, 1), nn.ReLU(),
        nn.Conv2d(width, c_out, 3, padding=1),
    )
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net


class AffineCoupling(nn.Module):
    """z_b = x_b * exp(log_s(x_a)) + t(x_a), z_a = x_a; log_s soft-bounded by ``scale_bound``."""

    def __init__(self, channels: int, width: int, scale_bound: float = 2.0):
        super().__init__()
        self.c_a = channels // 2
        self.c_b = channels - self.c_a
        self.scale_bound = scale_bound
        self.net = coupling_net(self.c_a, 2 * self.c_b, width)

    def _shift_log_scale(self, x_a: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        h = self.net(x_a)
        shift, raw = h[:, : self.c_b], h[:, self.c_b:]
        return shift, soft_bound(raw, self.scale_bound)

    def forward(self, x: torch.Tensor) -> Pair:
        x_a, x_b = x[:, : self.c_a], x[:, self.c_a:]
        shift, log_s = self._shift_log_scale(x_a)
        z_b = x_b * torch.exp(log_s) + shift
        return torch.cat([x_a, z_b], 1), log_s.sum(dim=(1, 2, 3))

    def inverse(self, z: torch.Tensor) -> Pair:
        z_a, z_b = z[:, : self.c_a], z[:, self.c_a:]
        shift, log_s = self._shift_log_scale(z_a)
        x_b = (z_b - shift) * torch.exp(-log_s)
        return torch.cat([z_a, x_b], 1), -log_s.sum(dim=(1, 2, 3))


class Squeeze(nn.Module):
    """(B, C, H, W) -> (B, 4C, H/2, W/2): each 2x2 block becomes 4 channels. Volume-preserving."""

    def forward(self, x: torch.Tensor) -> Pair:
        b, c, h, w = x.shape
        z = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return z.reshape(b, c * 4, h // 2, w // 2), x.new_zeros(b)

    def inverse(self, z: torch.Tensor) -> Pair:
        b, c4, h, w = z.shape
        x = z.reshape(b, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
        return x.reshape(b, c4 // 4, h * 2, w * 2), z.new_zeros(b)


class Split(nn.Module):
    """Standardise the second half of the channels with a Gaussian conditioned on the first.

    forward: (h1, h2) -> (h1, (h2 - mu(h1)) * exp(-log_sd(h1))). The factored-out
    half then follows N(0, I) exactly when h2 follows the learned conditional
    prior N(mu(h1), sd(h1)^2), so the whole model has a standard-normal latent.
    """

    def __init__(self, channels: int, scale_bound: float = 2.0):
        super().__init__()
        self.c_keep = channels // 2
        self.c_out = channels - self.c_keep
        self.scale_bound = scale_bound
        self.net = nn.Conv2d(self.c_keep, 2 * self.c_out, 3, padding=1)
        nn.init.zeros_(self.net.weight)
        nn.init.zeros_(self.net.bias)

    def _mean_log_sd(self, h1: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        h = self.net(h1)
        return h[:, : self.c_out], soft_bound(h[:, self.c_out:], self.scale_bound)

    def forward(self, x: torch.Tensor) -> Pair:
        h1, h2 = x[:, : self.c_keep], x[:, self.c_keep:]
        mean, log_sd = self._mean_log_sd(h1)
        eps = (h2 - mean) * torch.exp(-log_sd)
        return torch.cat([h1, eps], 1), -log_sd.sum(dim=(1, 2, 3))

    def inverse(self, z: torch.Tensor) -> Pair:
        h1, eps = z[:, : self.c_keep], z[:, self.c_keep:]
        mean, log_sd = self._mean_log_sd(h1)
        return torch.cat([h1, eps * torch.exp(log_sd) + mean], 1), log_sd.sum(dim=(1, 2, 3))


class FlowSequence(nn.Module):
    """A chain of bijections; log-dets add."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> Pair:
        total = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, logdet = layer(x)
            total = total + logdet
        return x, total

    def inverse(self, z: torch.Tensor) -> Pair:
        total = z.new_zeros(z.shape[0])
        for layer in reversed(self.layers):
            z, logdet = layer.inverse(z)
            total = total + logdet
        return z, total


def flow_step(channels: int, width: int, scale_bound: float, seed: int = 0) -> FlowSequence:
    """One Glow step: ActNorm -> invertible 1x1 conv -> affine coupling."""
    return FlowSequence(ActNorm(channels), InvConv1x1(channels, seed), AffineCoupling(channels, width, scale_bound))


def _randomize(module: nn.Module, seed: int) -> nn.Module:
    """Give every parameter non-trivial values so tests exercise real scales and shifts."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return module


# name -> (factory, input shape) for the property tests; shapes are tiny and odd where the layer allows.
LAYERS: Dict[str, Tuple[Callable[[], nn.Module], Tuple[int, ...]]] = {
    "actnorm": (lambda: _randomize(ActNorm(3), 1), (2, 3, 3, 5)),
    "invconv1x1": (lambda: _randomize(InvConv1x1(5, seed=2), 2), (2, 5, 3, 3)),
    "coupling_odd": (lambda: _randomize(AffineCoupling(5, 8, 2.0), 3), (2, 5, 3, 5)),
    "coupling_even": (lambda: _randomize(AffineCoupling(4, 8, 1.0), 4), (2, 4, 5, 3)),
    "squeeze": (lambda: Squeeze(), (2, 3, 4, 6)),
    "split": (lambda: _randomize(Split(6, 2.0), 5), (2, 6, 3, 5)),
    "flow_step": (lambda: _randomize(flow_step(4, 8, 2.0, seed=6), 6), (2, 4, 3, 5)),
}

LOG2 = math.log(2.0)
