"""The MAP gradients of an exported prior on ONNX Runtime (numpy in, numpy out), and a torch adapter.

``OrtPriorGradient`` opens a folder exported with gradients (``export_checkpoint(gradients=True)``),
refusing it unless prior_grad.onnx (and, when asked for, generator_vjp.onnx) match the sha256 in
its manifest. Conventions are the torch model's (onnx_backend.py): x (B,3,H,W) float32 in [0,1],
H and W divisible by ``multiple``; u the latent of the same shape.

    nll_and_grad(x)        -> nll (B,) float64 = -log p(x) nats, grad = d nll/dx float32 like x
    generator_terms(u, v)  -> x = T(u), logdet, e_prior, d e_prior/du, v^T dx/du (generator_vjp.onnx)

``--engine ort`` hands the bare ``OrtPriorGradient`` to the numpy MAP loop
(``flowrt.solve.numpy_solver``), which imports no torch. ``OrtTorchPrior`` wraps it for the torch
solver's image space instead (an nn.Module whose ``log_prob(x)`` is ORT's -nll with ORT's gradient as
its backward; the tests compare the two loops through it); torch is imported only there.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np

from flowrt.errors import ModelError
from flowrt.prior.folders import GENERATOR_VJP_ONNX, PRIOR_GRAD_ONNX, check_files, open_model_dir
from flowrt.prior.graph_checks import check_graph_geometry
from flowrt.prior.onnx_backend import CUDA, Prior, open_session, select_providers


class OrtPriorGradient:
    """-log p(x) and its gradient (and the generator's terms) from the gradient graphs of a model folder."""

    # Same validation as the density graphs: (B, C, H, W), sides divisible by multiple, finite floats.
    check_batch = Prior.check_batch

    def __init__(self, model_dir: Optional[Union[str, Path]] = None, device: str = "auto", threads: int = 0):
        """Open ``model_dir`` (None: the packaged default); ``threads`` intra-op threads, 0 lets ORT choose.

        ModelError if the folder has no (or a modified) prior_grad.onnx; sessions never spin.
        """
        try:
            self.model_dir, self.manifest = open_model_dir(model_dir, [PRIOR_GRAD_ONNX])
        except ModelError as exc:
            if "lists no sha256" in str(exc):
                raise ModelError(f"{exc}: this prior was exported without gradient graphs; "
                                 "re-export it with gradients (export_checkpoint(gradients=True))") from None
            raise
        self._requested = select_providers(device)
        self._threads = threads
        self._grad = open_session(self.model_dir / PRIOR_GRAD_ONNX, self._requested, threads)
        check_graph_geometry(self._grad, self.manifest, self.model_dir / PRIOR_GRAD_ONNX)
        self._vjp = None  # opened (and hash-checked) on first use: image-space MAP never needs it
        self.providers: List[str] = list(self._grad.get_providers())
        self.levels: int = int(self.manifest["architecture"]["levels"])
        self.channels: int = int(self.manifest["architecture"].get("channels", 3))
        self._multiple: int = int(self.manifest["size_rule"]["multiple"])

    @property
    def multiple(self) -> int:
        """Image sides must be divisible by this (2^levels)."""
        return self._multiple

    @property
    def device(self) -> str:
        """'cuda' when the CUDA provider really runs the graph, else 'cpu'."""
        return "cuda" if self.providers and self.providers[0] == CUDA else "cpu"

    def nll_and_grad(self, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """x (B,3,H,W) in [0,1] -> (nll (B,) float64 nats, d nll/dx (B,3,H,W) float32).

        nll = -log p(x) on [0,1]^D (bits/dim = nll / (D ln 2) + 8); the gradient points uphill in
        nll, so a descent step on the prior term is x - step * grad.
        """
        nll, grad = self._grad.run(None, {"x": self.check_batch(x, "image")})
        return nll.astype(np.float64), grad

    def generator_terms(self, u: np.ndarray, v: np.ndarray) -> Tuple[np.ndarray, ...]:
        """u, v (B,3,H,W) -> (x = T(u), log|det dx/du| (B,), e_prior (B,), d e_prior/du, v^T dx/du).

        e_prior = 0.5 ||u||^2 + log|det dx/du| (nats; -log p(T(u)) up to a constant), float64;
        the rest float32. For E(u) = E_data(T(u)) + lam * e_prior(u), with v = dE_data/dx at T(u),
        dE/du = vjp + lam * e_prior_grad.
        """
        if self._vjp is None:
            check_files(self.model_dir, self.manifest, [GENERATOR_VJP_ONNX])
            self._vjp = open_session(self.model_dir / GENERATOR_VJP_ONNX, self._requested, self._threads)
        u = self.check_batch(u, "latent")
        v = self.check_batch(v, "cotangent")
        if u.shape != v.shape:
            raise ModelError(f"latent {u.shape} and cotangent {v.shape} must have one shape")
        x, logdet, e_prior, e_grad, vjp = self._vjp.run(None, {"u": u, "v": v})
        return x, logdet, e_prior.astype(np.float64), e_grad, vjp


def OrtTorchPrior(backend: Union[OrtPriorGradient, str, Path, None] = None, **kwargs):
    """An nn.Module for ``flowrt.solve.solver.map_restore`` in image space, run by ONNX Runtime.

    ``backend``: an OrtPriorGradient, or a model folder (None: the packaged default) opened with
    ``kwargs`` (device, threads). The module has ``log_prob(x)`` (B,) nats with a backward,
    ``multiple``, and no parameters; tensors go through the CPU (ORT gets numpy arrays).
    """
    from flowrt.prior.ort_torch import OrtTorchPrior as module

    if not isinstance(backend, OrtPriorGradient):
        backend = OrtPriorGradient(backend, **kwargs)
    return module(backend)
