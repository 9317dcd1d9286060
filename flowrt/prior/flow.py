"""The multiscale Glow-style flow T^-1: image x -> latent u.

The latent is packed into a tensor of the image's own shape (B, 3, H, W): each
level factors out half its channels and the factored halves are un-squeezed
back into place. Every latent entry is standard normal under the model, so

    log p(x) = sum N(u; 0, 1) + log|det du/dx|

and the generator T (latent -> image) is ``inverse``. Images are float in
[0, 1]; sides must be divisible by 2^levels.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from flowrt.prior.architecture import ModelConfig
from flowrt.prior.layers import ActNorm, FlowSequence, InvConv1x1, Pair, Split, Squeeze, flow_step

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class Level(nn.Module):
    """squeeze -> K flow steps -> [split, inner level on the kept half] -> un-squeeze."""

    def __init__(self, channels: int, cfg: ModelConfig, depth: int, seed: int):
        super().__init__()
        c = 4 * channels
        self.squeeze = Squeeze()
        self.steps = FlowSequence(*[
            flow_step(c, cfg.width, cfg.scale_bound, seed=seed + k) for k in range(cfg.steps_per_level)
        ])
        last = depth == cfg.levels - 1
        self.split: Optional[Split] = None if last else Split(c, cfg.scale_bound)
        self.inner: Optional[Level] = None if last else Level(c // 2, cfg, depth + 1, seed + 100)

    def forward(self, x: torch.Tensor) -> Pair:
        h, _ = self.squeeze(x)
        h, logdet = self.steps(h)
        if self.inner is not None:
            h, ld_split = self.split(h)
            keep = self.split.c_keep
            z1, ld_inner = self.inner(h[:, :keep])
            h = torch.cat([z1, h[:, keep:]], 1)
            logdet = logdet + ld_split + ld_inner
        z, _ = self.squeeze.inverse(h)
        return z, logdet

    def inverse(self, z: torch.Tensor) -> Pair:
        h, _ = self.squeeze(z)
        logdet = z.new_zeros(z.shape[0])
        if self.inner is not None:
            keep = self.split.c_keep
            x1, ld_inner = self.inner.inverse(h[:, :keep])
            h, ld_split = self.split.inverse(torch.cat([x1, h[:, keep:]], 1))
            logdet = ld_inner + ld_split
        h, ld_steps = self.steps.inverse(h)
        x, _ = self.squeeze.inverse(h)
        return x, logdet + ld_steps

    def level_ids(self, ids: torch.Tensor, depth: int) -> torch.Tensor:
        """Fill a (1, C, H, W) tensor with the level that owns each latent entry."""
        h, _ = self.squeeze(ids)
        if self.inner is None:
            h = torch.full_like(h, depth)
        else:
            keep = self.split.c_keep
            inner = self.inner.level_ids(h[:, :keep], depth + 1)
            h = torch.cat([inner, torch.full_like(h[:, keep:], depth)], 1)
        return self.squeeze.inverse(h)[0]


class FlowModel(nn.Module):
    """Image x in [0, 1]^(B,3,H,W) <-> latent u ~ N(0, I) of the same shape."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.root = Level(cfg.channels, cfg, 0, seed=cfg.seed)

    @property
    def multiple(self) -> int:
        """Image sides must be divisible by this (2^levels)."""
        return 2 ** self.cfg.levels

    def check_shape(self, x: torch.Tensor) -> None:
        m = self.multiple
        if x.dim() != 4 or x.shape[1] != self.cfg.channels or x.shape[2] % m or x.shape[3] % m:
            raise ValueError(
                f"expected (B, {self.cfg.channels}, H, W) with H and W divisible by {m}, got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> Pair:
        """x (B,3,H,W) in [0,1] -> (u of the same shape, log|det du/dx| (B,))."""
        return self.root(x - 0.5)

    def inverse(self, u: torch.Tensor) -> Pair:
        """u (B,3,H,W) -> (x, log|det dx/du| (B,)); this is the generator T."""
        x, logdet = self.root.inverse(u)
        return x + 0.5, logdet

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Continuous log-density of x on [0,1]^D in nats, shape (B,)."""
        u, logdet = self(x)
        return log_normal(u) + logdet

    def bits_per_dim(self, x: torch.Tensor) -> torch.Tensor:
        """Discrete 8-bit code length per dimension for dequantised x, shape (B,)."""
        return nll_to_bpd(-self.log_prob(x), x[0].numel())

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Data-dependent ActNorm initialisation from one batch, done once before training."""
        hooks = [m.register_forward_pre_hook(_init_hook) for m in self.modules() if isinstance(m, ActNorm)]
        try:
            self(x)
        finally:
            for h in hooks:
                h.remove()

    @property
    def initialized(self) -> bool:
        return all(bool(m.initialized) for m in self.modules() if isinstance(m, ActNorm))

    def freeze(self) -> "FlowModel":
        """Bake the 1x1-conv weights and inverses (float64) as constants; for export and restoration."""
        for m in self.modules():
            if isinstance(m, InvConv1x1):
                m.freeze()
        return self

    def level_map(self, height: int, width: int) -> torch.Tensor:
        """(1, C, H, W) long tensor: the level (0 = finest) that owns each latent entry."""
        ids = torch.zeros(1, self.cfg.channels, height, width)
        return self.root.level_ids(ids, 0).long()


def _init_hook(module: ActNorm, inputs) -> None:
    if not bool(module.initialized):
        module.initialize(inputs[0])


def log_normal(u: torch.Tensor) -> torch.Tensor:
    """Sum over all but the batch axis of log N(u; 0, 1), shape (B,)."""
    return (-0.5 * u.pow(2) - HALF_LOG_2PI).flatten(1).sum(1)


def nll_to_bpd(nll: torch.Tensor, dims: int) -> torch.Tensor:
    """Continuous NLL (nats, on [0,1]^D) -> bits per dimension of the 8-bit discrete image."""
    return nll / (dims * math.log(2.0)) + 8.0
