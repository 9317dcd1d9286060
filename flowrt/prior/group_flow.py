"""A noise-conditional flow over groups of similar patches, whose exact score is the denoiser.

The variable is one channel-group ``y`` of a noisy image in the 3-D transform domain
(``flowrt.denoise.grouped.Grouping.chunk``: (B, G, 64), G members, 64 DCT coefficients, [0, 1]
units), conditioned on the noise std ``sigma`` and on the pilot's coefficients ``p`` at the same
places. The flow is one bijection onto a standard normal, ``ConditionalAffine`` (the layers'
contract: forward(y, ctx) -> (z, logdet), inverse(z, ctx) -> (y, logdet)):

    z = (y - mu) / s,   s^2 = sigma^2 / (1 - g),   mu = b p / (1 - g),

with the gain g in [0, 1) and the pilot weight b read from tables indexed by the coefficient's
*slot* (channel, group size, Haar level, DCT index) and interpolated linearly in
r = log((p / sigma)^2 + e^-8) and in log sigma (``TableConfig``). Because s^2 >= sigma^2,
p(y | p, sigma) is exactly the density of a clean coefficient x ~ N(mu, s^2 - sigma^2) seen through
Gaussian noise of std sigma, and Tweedie's formula gives the minimum-MSE estimate from the score:

    x_hat = y + sigma^2 d/dy log p(y | p, sigma) = g y + b p.

Fitting the tables to minimise E||x_hat - x||^2 (denoising score matching) is a linear least-squares
problem per table cell, solved in closed form by ``flowrt.train.group_fit``. With g = p^2 / (p^2 +
sigma^2) and b = 0 the estimate is the grouped denoiser's Wiener shrinkage, the fit's fallback where
a cell saw no data. ``tests/test_group_flow.py`` checks ``tweedie`` against autograd of ``log_prob``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, Tuple

import torch
from torch import nn

Pair = Tuple[torch.Tensor, torch.Tensor]
LOG_2PI = math.log(2 * math.pi)
R_FLOOR = math.exp(-8.0)   # keeps r finite where the pilot is exactly zero
MAX_GAIN = 0.999           # g < 1 keeps s finite: the density stays proper


@dataclass(frozen=True)
class TableConfig:
    """The tables' axes: group (G, a power of two); r_min, r_max, r_bins: knots of r; sigma_min,
    sigma_max (0-255 scale), sigma_bins: log-spaced knots of sigma. Values outside are clamped."""
    group: int = 32
    r_min: float = -8.0
    r_max: float = 14.0
    r_bins: int = 45
    sigma_min: float = 2.0
    sigma_max: float = 64.0
    sigma_bins: int = 11

    def validate(self) -> "TableConfig":
        if self.group < 1 or self.group & (self.group - 1):
            raise ValueError(f"group must be a power of two, got {self.group}")
        if not (self.r_max > self.r_min and self.r_bins >= 2 and self.sigma_bins >= 2
                and 0 < self.sigma_min < self.sigma_max):
            raise ValueError(f"bad group flow table axes: {self}")
        return self

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @property
    def sizes(self) -> int:
        return int(math.log2(self.group)) + 1


def slot_index(group: int) -> torch.Tensor:
    """(3, sizes, G, 64) long: the slot of channel c, group size 2^s, member row m, DCT index d;
    rows m >= 2^s (padding) map to the spare last slot. A slot is (channel, size, Haar level, d),
    the Haar level of row m being 0 for the group mean and floor(log2 m) + 1 for a detail."""
    sizes = int(math.log2(group)) + 1
    pairs: Dict[Tuple[int, int], int] = {}
    for s in range(sizes):
        for level in range(s + 1):
            pairs[(s, level)] = len(pairs)
    spare = len(pairs) * 64 * 3
    index = torch.full((3, sizes, group, 64), spare, dtype=torch.long)
    for c in range(3):
        for s in range(sizes):
            for m in range(2 ** s):
                level = 0 if m == 0 else int(math.log2(m)) + 1
                index[c, s, m] = (c * len(pairs) + pairs[(s, level)]) * 64 + torch.arange(64)
    return index


def wiener_tables(cfg: TableConfig) -> Tuple[torch.Tensor, torch.Tensor]:
    """(gain, weight) tables, (slots, sigma_bins, r_bins) float32, of the Wiener shrinkage
    g = q^2 / (1 + q^2) (q = p / sigma at the r knot), b = 0."""
    rows = int(slot_index(cfg.group).max()) + 1
    q2 = torch.exp(torch.linspace(cfg.r_min, cfg.r_max, cfg.r_bins))
    gain = torch.clamp(q2 / (1 + q2), max=MAX_GAIN).expand(rows, cfg.sigma_bins, cfg.r_bins).contiguous()
    return gain, torch.zeros_like(gain)


@dataclass
class GroupContext:
    """What conditions the bijection, each (B, G, 64): gain g, pilot weight b, mu, scale s, and
    valid (bool: member rows below the group's count; padding rows pass through)."""
    gain: torch.Tensor
    weight: torch.Tensor
    mu: torch.Tensor
    scale: torch.Tensor
    valid: torch.Tensor


class ConditionalAffine(nn.Module):
    """z = (y - mu) / s on the valid entries; logdet (B,) summed over them."""

    def forward(self, y: torch.Tensor, ctx: GroupContext) -> Pair:
        z = torch.where(ctx.valid, (y - ctx.mu) / ctx.scale, y)
        return z, -(torch.log(ctx.scale) * ctx.valid).sum(dim=(1, 2))

    def inverse(self, z: torch.Tensor, ctx: GroupContext) -> Pair:
        y = torch.where(ctx.valid, z * ctx.scale + ctx.mu, z)
        return y, (torch.log(ctx.scale) * ctx.valid).sum(dim=(1, 2))


def table_lookup(gain, weight, slots, cfg: TableConfig, p, counts, channel, sigma) -> Pair:
    """(g, b) (B, G, 64) at each entry of pilot groups p (B, G, 64): bilinear in (log sigma, r) within
    the entry's slot of the tables gain, weight (slots, sigma_bins, r_bins); slots ``slot_index``;
    counts, channel, sigma (B,). Differentiable in the tables (``flowrt.train.group_tune`` tunes
    them through it); g is not clamped here."""
    r = torch.log((p / sigma[:, None, None]) ** 2 + R_FLOOR)
    t = (torch.clamp(r, cfg.r_min, cfg.r_max) - cfg.r_min) * ((cfg.r_bins - 1) / (cfg.r_max - cfg.r_min))
    i0 = torch.clamp(torch.floor(t), max=cfg.r_bins - 2)
    wr = t - i0
    u = (torch.log(sigma * 255.0) - math.log(cfg.sigma_min)) * (
        (cfg.sigma_bins - 1) / math.log(cfg.sigma_max / cfg.sigma_min))
    u = torch.clamp(u, 0.0, cfg.sigma_bins - 1.0)
    j0 = torch.clamp(torch.floor(u), max=cfg.sigma_bins - 2)
    wu = (u - j0)[:, None, None]
    size = torch.round(torch.log2(counts.to(p.dtype))).long()
    slot = slots[channel, size]                                             # (B, G, 64)
    base = (slot * cfg.sigma_bins + j0.long()[:, None, None]) * cfg.r_bins + i0.long()
    out = []
    for table in (gain.to(p.dtype).reshape(-1), weight.to(p.dtype).reshape(-1)):
        lo = table[base] * (1 - wr) + table[base + 1] * wr
        hi = table[base + cfg.r_bins] * (1 - wr) + table[base + cfg.r_bins + 1] * wr
        out.append(lo * (1 - wu) + hi * wu)
    return out[0], out[1]


class GroupFlow(nn.Module):
    """The conditional flow p(y | p, sigma) over channel-groups; see the module docstring.

    Inputs everywhere: y, p (B, G, 64) float; counts (B,) powers of two <= G; channel (B,) long
    0-2; sigma (B,) > 0 in [0, 1] units."""

    def __init__(self, cfg: TableConfig = TableConfig(), gain: torch.Tensor = None, weight: torch.Tensor = None):
        super().__init__()
        self.cfg = cfg.validate()
        if gain is None or weight is None:
            gain, weight = wiener_tables(cfg)
        self.register_buffer("slots", slot_index(cfg.group))
        rows = int(self.slots.max()) + 1
        expected = (rows, cfg.sigma_bins, cfg.r_bins)
        if tuple(gain.shape) != expected or tuple(weight.shape) != expected:
            raise ValueError(f"tables must be {expected}, got {tuple(gain.shape)} and {tuple(weight.shape)}")
        # float16 halves the packaged graph; the rounding moves x_hat by < 1e-3 of y or p
        self.register_buffer("gain", torch.clamp(gain.float(), 0.0, MAX_GAIN).half())
        self.register_buffer("weight", weight.half())
        self.bijection = ConditionalAffine()

    def _lookup(self, p, counts, channel, sigma) -> Pair:
        """(g, b) at each entry: ``table_lookup`` of this flow's tables."""
        return table_lookup(self.gain, self.weight, self.slots, self.cfg, p, counts, channel, sigma)

    def context(self, p, counts, channel, sigma) -> GroupContext:
        g, b = self._lookup(p, counts, channel, sigma)
        rows = torch.arange(p.shape[1], device=p.device)
        valid = (rows[None, :, None] < counts[:, None, None]).expand_as(p)
        scale = sigma[:, None, None] / torch.sqrt(1 - g)
        return GroupContext(gain=g, weight=b, mu=b * p / (1 - g), scale=scale, valid=valid)

    def log_prob(self, y, p, counts, channel, sigma) -> torch.Tensor:
        """log p(y | p, sigma) in nats over each group's valid entries, (B,)."""
        ctx = self.context(p, counts, channel, sigma)
        z, logdet = self.bijection(y, ctx)
        return -0.5 * ((z * z + LOG_2PI) * ctx.valid).sum(dim=(1, 2)) + logdet

    def forward(self, y, p, counts, channel, sigma) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x_hat (B, G, 64), weight (B,), nll (B,)): Tweedie's estimate of the clean group in
        closed form (zero on padding rows); its aggregation weight 1 / sum(g^2), as the Wiener
        pass weighs its groups; and -log p(y | p, sigma) in nats. This is the exported graph."""
        ctx = self.context(p, counts, channel, sigma)
        z, logdet = self.bijection(y, ctx)
        x_hat = torch.where(ctx.valid, ctx.gain * y + ctx.weight * p, torch.zeros_like(y))
        energy = (ctx.gain * ctx.gain * ctx.valid).sum(dim=(1, 2))
        nll = 0.5 * ((z * z + LOG_2PI) * ctx.valid).sum(dim=(1, 2)) - logdet
        return x_hat, 1.0 / torch.clamp(energy, min=1e-6), nll

    def tweedie(self, y, p, counts, channel, sigma) -> torch.Tensor:
        """x_hat alone (see ``forward``)."""
        return self(y, p, counts, channel, sigma)[0]
