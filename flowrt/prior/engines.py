"""Which implementation evaluates the prior for the MAP: torch autograd or ONNX Runtime.

Both give the solver the same object (an ``nn.Module`` with ``log_prob`` and ``multiple``):
  * ``torch``  the packaged FlowModel (``model.pt``), autograd through it; image or latent space.
  * ``ort``    the exported, verified ``prior_grad.onnx`` (d(-log p)/dx in one ORT pass); image space.
  * ``auto``   torch: on this project's 2-core CPU the two measured equal on one thread
               (benchmarks/results/grad_speed.md), and torch is what runs on CUDA and in latent space.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

ENGINES = ("auto", "torch", "ort")


def load_prior(model_dir: Optional[Union[str, Path]], engine: str = "auto", device=None):
    """The prior for ``engine`` from an exported folder (None: the packaged default)."""
    if engine == "ort":
        from flowrt.prior.ort_gradient import OrtPriorGradient
        from flowrt.prior.ort_torch import OrtTorchPrior
        kind = "cuda" if device is not None and getattr(device, "type", str(device)) == "cuda" else "cpu"
        return OrtTorchPrior(OrtPriorGradient(model_dir, device=kind))
    from flowrt.prior.folders import load_torch_prior
    return load_torch_prior(model_dir)
