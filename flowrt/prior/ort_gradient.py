"""The MAP gradients of an exported prior on ONNX Runtime (numpy in, numpy out), and a torch adapter.

``OrtPriorGradient`` opens a folder exported with gradients (``flowrt export``'s default, or
``export_checkpoint(gradients=True)``),
refusing it unless prior_grad.onnx matches the sha256 in its manifest. Conventions are the torch
model's (onnx_backend.py): x (B,3,H,W) float32 in [0,1], H and W divisible by ``multiple``.

    nll_and_grad(x)        -> nll (B,) float64 = -log p(x) nats, grad = d nll/dx float32 like x

(The export also writes generator_vjp.onnx, the latent-space terms, verified there; no runtime
path runs it yet: the latent MAP runs on the torch engine.)

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
from flowrt.prior.folders import PRIOR_GRAD_ONNX, open_model_dir
from flowrt.prior.graph_checks import check_graph_geometry
from flowrt.prior.onnx_backend import CUDA, Prior, open_session, select_providers


class OrtPriorGradient:
    """-log p(x) and its gradient from the gradient graph of a model folder."""

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
                                 "re-export it with `flowrt export CHECKPOINT -o DIR`, which writes it by default") from None
            raise
        self._grad = open_session(self.model_dir / PRIOR_GRAD_ONNX, select_providers(device), threads)
        check_graph_geometry(self._grad, self.manifest, self.model_dir / PRIOR_GRAD_ONNX)
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
