"""Verification of the gradient graphs (prior_grad.onnx, generator_vjp.onnx) against torch autograd.

At GRAD_SIZES (batch 2 non-square, batch 1 square; sides rounded up to the size rule), each a
figure against the float64 autograd of the same torch model, its limit widened to MODEL_FACTOR
times the torch float32 model's own figure where float32 itself cannot do better (verify.py):

* prior_grad on a natural-looking image and on uniform noise: ``nll`` in nats/dim, ``grad``
  relative, i.e. ||g - g64|| / ||g64|| (a gradient has no natural scale of its own; _grad_rel);
* generator_vjp on the torch latent of a natural image and on a standard-normal draw, with a
  standard-normal cotangent v: ``x`` absolute on [0, 1], ``logdet`` and ``e_prior`` in nats/dim,
  ``e_prior_grad`` and ``vjp`` relative.

The gradient graphs are always float32 (grad_export.py), so the float32 limits apply whatever
precision the density graphs were exported in.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch

from flowrt.prior.flow import FlowModel
from flowrt.prior.folders import GENERATOR_VJP_ONNX, PRIOR_GRAD_ONNX
from flowrt.prior.onnx_backend import open_session, select_providers

from .verify import TOLERANCES, Check, _abs, _check, _per_dim, natural_image, random_image, round_to_rule

GRAD_SIZES = ((2, 48, 80), (1, 64, 64))   # (batch, height, width) before rounding to the size rule
GRAD_REL = 1e-4   # float32 through forward and backward: ~100x above the figures measured on natural inputs
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _grad_rel(a, b) -> float:
    """||a - b|| / ||b|| (2-norms over the batch). Not a max: the coupling nets are ReLU networks, and
    where float32 rounding flips a unit at its kink the gradient jumps at a few pixels (on the
    default prior one entry of 30,720 moved by 6e-4 of the largest, the rest agreed to 1e-6),
    while a wrong or missing term moves the whole field by O(1)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(float(np.linalg.norm(b)), 1e-30))


def torch_prior_grad(model: FlowModel, x: np.ndarray, dtype) -> Tuple[np.ndarray, np.ndarray]:
    """(nll (B,), d nll/dx) of ``model`` at x by autograd in ``dtype``."""
    xt = torch.from_numpy(x).to(dtype).requires_grad_(True)
    nll = -model.log_prob(xt)
    (grad,) = torch.autograd.grad(nll.sum(), xt)
    return nll.detach().numpy(), grad.numpy()


def torch_generator_terms(model: FlowModel, u: np.ndarray, v: np.ndarray, dtype) -> tuple:
    """(x, logdet, e_prior, d e_prior/du, v^T dx/du) of ``model`` at (u, v) by autograd in ``dtype``."""
    ut = torch.from_numpy(u).to(dtype).requires_grad_(True)
    x, logdet = model.inverse(ut)
    e_prior = 0.5 * ut.pow(2).flatten(1).sum(1) + logdet
    (e_grad,) = torch.autograd.grad(e_prior.sum(), ut, retain_graph=True)
    (vjp,) = torch.autograd.grad(x, ut, grad_outputs=torch.from_numpy(v).to(dtype))
    return tuple(t.detach().numpy() for t in (x, logdet, e_prior, e_grad, vjp))


def prior_grad_checks(session, models, x: np.ndarray, tag: str) -> List[Check]:
    """nll and grad of prior_grad.onnx at x against float64 autograd."""
    tol = TOLERANCES["float32"]
    dims = x[0].size
    ort = session.run(None, {"x": x})
    exact, torch32 = (torch_prior_grad(m, x, d) for m, d in zip(models, (torch.float64, torch.float32)))
    return [_check(f"prior_grad nll {tag}", _per_dim(ort[0], exact[0], dims), _per_dim(torch32[0], exact[0], dims),
                   tol.density_per_dim, "nats/dim"),
            _check(f"prior_grad grad {tag}", _grad_rel(ort[1], exact[1]), _grad_rel(torch32[1], exact[1]),
                   GRAD_REL, "relative")]


def generator_checks(session, models, u: np.ndarray, v: np.ndarray, tag: str) -> List[Check]:
    """Every output of generator_vjp.onnx at (u, v) against float64 autograd."""
    tol = TOLERANCES["float32"]
    dims = u[0].size
    ort = session.run(None, {"u": u, "v": v})
    exact, torch32 = (torch_generator_terms(m, u, v, d) for m, d in zip(models, (torch.float64, torch.float32)))
    figures = [("x", _abs, tol.image_abs, "abs [0,1]"),
               ("logdet", lambda a, b: _per_dim(a, b, dims), tol.density_per_dim, "nats/dim"),
               ("e_prior", lambda a, b: _per_dim(a, b, dims), tol.density_per_dim, "nats/dim"),
               ("e_prior_grad", _grad_rel, GRAD_REL, "relative"),
               ("vjp", _grad_rel, GRAD_REL, "relative")]
    return [_check(f"generator_vjp {name} {tag}", figure(o, e), figure(t, e), limit, unit)
            for (name, figure, limit, unit), o, e, t in zip(figures, ort, exact, torch32)]


def gradient_checks(folder: Path, model: FlowModel) -> List[Check]:
    """Every gradient check on the gradient graphs present in ``folder`` against ``model``."""
    f32 = copy.deepcopy(model).float().eval().freeze()
    f64 = copy.deepcopy(f32).double().freeze()
    for p in list(f32.parameters()) + list(f64.parameters()):
        p.requires_grad_(False)
    models = (f64, f32)
    providers = select_providers("auto")
    grad_session, vjp_session = (open_session(Path(folder) / name, providers) if (Path(folder) / name).is_file()
                                 else None for name in (PRIOR_GRAD_ONNX, GENERATOR_VJP_ONNX))
    checks: List[Check] = []
    for size in GRAD_SIZES:
        batch, h, w = round_to_rule(size, model.multiple)
        natural = natural_image(batch, h, w, seed=h + 1)
        tag = f"{h}x{w}"
        if grad_session is not None:
            checks += prior_grad_checks(grad_session, models, natural, f"{tag} natural")
            checks += prior_grad_checks(grad_session, models, random_image(batch, h, w, seed=w + 1), f"{tag} random")
        if vjp_session is None:
            continue
        rng = np.random.default_rng(h * w)
        v = rng.standard_normal(natural.shape).astype(np.float32)
        with torch.no_grad():
            natural_latent = f32(torch.from_numpy(natural))[0].numpy()
        normal_latent = rng.standard_normal(natural.shape).astype(np.float32)
        checks += generator_checks(vjp_session, models, natural_latent, v, f"{tag} natural latent")
        checks += generator_checks(vjp_session, models, normal_latent, v, f"{tag} normal latent")
    return checks
