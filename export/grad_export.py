"""Gradient graphs of a frozen FlowModel for MAP on ONNX Runtime: prior_grad.onnx and generator_vjp.onnx.

    prior_grad.onnx      x (B,3,H,W) float32 in [0,1] -> nll (B,) = -log p(x) nats, grad = d nll / dx (B,3,H,W)
    generator_vjp.onnx   u (B,3,H,W), v (B,3,H,W)     -> x = T(u), logdet = log|det dx/du| (B,),
                         e_prior = 0.5 ||u||^2 + logdet (B,), e_prior_grad = d e_prior / du,
                         vjp = v^T dx/du (B,3,H,W)

The latent MAP energy E(u) = E_data(T(u)) + lam * e_prior(u) then has dE/du = vjp + lam * e_prior_grad
with v = dE_data/dx at x = T(u): one call once v is known (the two terms come separately so the
caller keeps its weights and its data-term schedule).

Why this route (../shared/FINDINGS.md, "ONNX export"): neither torch exporter takes autograd.grad,
torch.func.grad or vjp. Tracing the autograd call with make_fx turns the backward into plain aten
ops; the only one no exporter maps is aten.convolution_backward, which for the input's gradient is
a transposed convolution with the same weight (the weights are constants: no weight gradient is
ever asked for). Symbolic tracing keeps B, H and W dynamic; the torch.export-based ONNX exporter
("dynamo") then writes the aten graph. The graphs are traced from the float32 model whatever the
export's precision: a gradient step needs float32's range and costs no more.
"""
from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path
from typing import Callable, Dict, Sequence

import torch

from flowrt.prior.flow import FlowModel

from .onnx_export import finalize_graph

PRIOR_GRAD_NAMES = (["x"], ["nll", "grad"])
GENERATOR_VJP_NAMES = (["u", "v"], ["x", "logdet", "e_prior", "e_prior_grad", "vjp"])
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
aten = torch.ops.aten


def _convolution_backward(grad_out, inp, weight, bias_sizes, stride, padding, dilation, transposed,
                          output_padding, groups, output_mask):
    """aten.convolution_backward for the input only: the adjoint of a (non-transposed, stride-1 in
    this flow) convolution is the transposed convolution with the same weight and padding."""
    if output_mask[1] or output_mask[2] or transposed:
        raise NotImplementedError("gradient export differentiates the input only, through plain convolutions")
    grad_in = aten.convolution(grad_out, weight, None, stride, padding, dilation, True,
                               [0] * len(stride), groups)
    return grad_in, None, None


def decompositions() -> dict:
    """make_fx's table: the core aten decompositions (threshold_backward, tanh_backward... become
    elementwise ops every exporter knows) plus the convolution adjoint above."""
    from torch._decomp import core_aten_decompositions

    table = dict(core_aten_decompositions())
    table[aten.convolution_backward.default] = _convolution_backward
    return table


def prior_nll_and_grad(model: FlowModel) -> Callable:
    """x (B,3,H,W) -> (nll (B,) float32, d nll/dx float32); the Gaussian sum in float64 like forward.onnx."""
    def fn(x: torch.Tensor):
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            u, logdet = model(x)
            nll = (0.5 * u.double().pow(2) + _HALF_LOG_2PI).flatten(1).sum(1) - logdet.double()
            (grad,) = torch.autograd.grad(nll.sum(), x)
        return nll.float(), grad
    return fn


def generator_terms(model: FlowModel) -> Callable:
    """(u, v) -> (x, logdet, e_prior, d e_prior/du, v^T dx/du); e_prior = 0.5||u||^2 + log|det dx/du| nats.

    e_prior is -log p(T(u)) up to the constant D/2 log(2 pi) (the solver's latent prior term).
    """
    def fn(u: torch.Tensor, v: torch.Tensor):
        with torch.enable_grad():
            u = u.detach().requires_grad_(True)
            x, logdet = model.inverse(u)
            e_prior = 0.5 * u.double().pow(2).flatten(1).sum(1) + logdet.double()
            (e_grad,) = torch.autograd.grad(e_prior.sum(), u, retain_graph=True)
            (vjp,) = torch.autograd.grad(x, u, grad_outputs=v)
        return x, logdet, e_prior.float(), e_grad, vjp
    return fn


def trace(fn: Callable, examples: Sequence[torch.Tensor]) -> torch.fx.GraphModule:
    """fn as an aten-only GraphModule with symbolic (dynamic) shapes.

    The model's weights are real tensors closed over by fn: they become constants of the graph.
    """
    from torch.fx.experimental.proxy_tensor import make_fx

    return make_fx(fn, decomposition_table=decompositions(), tracing_mode="symbolic",
                   _allow_non_fake_inputs=True)(*examples)


def export_traced(module: torch.fx.GraphModule, examples: Sequence[torch.Tensor], path: Path, names,
                  opset: int) -> None:
    """Write ``module`` with the dynamo exporter, every input's B, H, W dynamic; then finalize_graph."""
    inputs, outputs = names
    auto = torch.export.Dim.AUTO
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, tuple(examples), str(path), dynamo=True, opset_version=opset,
                          input_names=inputs, output_names=outputs, external_data=False, verbose=False,
                          dynamic_shapes=tuple({0: auto, 2: auto, 3: auto} for _ in examples))
    finalize_graph(path)


def export_gradient_graphs(model: FlowModel, folder: Path, opset: int,
                           names: Sequence[str] = ("prior_grad.onnx", "generator_vjp.onnx")) -> Dict[str, Path]:
    """Write the gradient graphs ``names`` (default both) for ``model`` into ``folder``; returns name -> path.

    The example is batch 2 at the smallest non-square size the size rule allows (as export_graphs).
    """
    import logging

    from flowrt.prior.folders import GENERATOR_VJP_ONNX, PRIOR_GRAD_ONNX

    frozen = copy.deepcopy(model).float().eval().freeze()
    for p in frozen.parameters():
        p.requires_grad_(False)  # gradients go to the input only: no weight-gradient ops are traced
    m = model.multiple
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, model.cfg.channels, 2 * m, 3 * m, generator=gen)
    u, v = torch.randn(x.shape, generator=gen), torch.randn(x.shape, generator=gen)
    folder = Path(folder)
    unknown = set(names) - {PRIOR_GRAD_ONNX, GENERATOR_VJP_ONNX}
    if unknown:
        raise ValueError(f"no gradient graph is called {sorted(unknown)[0]!r}")
    paths = {name: folder / name for name in names}
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the exporter logs its opset 18 -> 17 conversion and missing torchvision
    try:
        if PRIOR_GRAD_ONNX in paths:
            export_traced(trace(prior_nll_and_grad(frozen), (x,)), (x,), paths[PRIOR_GRAD_ONNX],
                          PRIOR_GRAD_NAMES, opset)
        if GENERATOR_VJP_ONNX in paths:
            export_traced(trace(generator_terms(frozen), (u, v)), (u, v), paths[GENERATOR_VJP_ONNX],
                          GENERATOR_VJP_NAMES, opset)
    finally:
        quiet.setLevel(level)
    return paths
