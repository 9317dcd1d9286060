"""The paper's training objective  L = L_nll + b_ln L_ln + b_ae L_ae + b_in L_in.

With T the generator (latent -> image, ``model.inverse``) and T^-1 the encoder:
  L_nll  -log p(x + eps) in bits per dimension (x dequantised);
  L_ln   ||T(T^-1(x) + xi) - x||^2       a small latent step stays near x;
  L_ae   ||T(T^-1(x)) - x||^2            the round trip (the paper names it only);
  L_in   ||T^-1(x) - T^-1(x + eta)||^2   a noisy input maps near its clean latent.
Squared norms are means over entries, so the weights do not depend on patch size.
"""
from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from .config import LossConfig
from flowrt.prior.flow import FlowModel, log_normal, nll_to_bpd


class TrainingObjective(nn.Module):
    """Wraps the model so that one ``forward`` computes every term (what DDP needs)."""

    def __init__(self, model: FlowModel, cfg: LossConfig):
        super().__init__()
        self.model = model
        self.cfg = cfg

    def forward(self, x: torch.Tensor, xi: torch.Tensor, eta: torch.Tensor) -> Dict[str, torch.Tensor]:
        """x (B,3,P,P) dequantised in [0,1]; xi, eta (A,3,P,P) noise for the first A samples."""
        u, logdet = self.model(x)
        nll = -(log_normal(u) + logdet)
        terms = {"nll_bpd": nll_to_bpd(nll, x[0].numel()).mean()}
        total = terms["nll_bpd"]
        a = xi.shape[0]
        x_a, u_a = x[:a], u[:a]
        if self.cfg.b_ln > 0:
            x_step, _ = self.model.inverse(u_a + xi)
            terms["ln"] = (x_step - x_a).pow(2).mean()
            total = total + self.cfg.b_ln * terms["ln"]
        if self.cfg.b_ae > 0:
            x_back, _ = self.model.inverse(u_a)
            terms["ae"] = (x_back - x_a).pow(2).mean()
            total = total + self.cfg.b_ae * terms["ae"]
        if self.cfg.b_in > 0:
            u_noisy, _ = self.model(x_a + eta)
            terms["in"] = (u_noisy - u_a).pow(2).mean()
            total = total + self.cfg.b_in * terms["in"]
        terms["loss"] = total
        return terms


def aux_count(batch: int, cfg: LossConfig) -> int:
    """How many samples of a batch the regularisers use (at least one)."""
    return max(1, int(round(batch * cfg.aux_fraction)))
