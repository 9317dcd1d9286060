"""The torch engine's forward models: the numpy ones (``flowrt.numeric``) behind one autograd bridge.

Every degradation and likelihood is implemented once, in ``flowrt.numeric`` (``apply`` and its
adjoint ``vjp``; ``nll_and_grad``); ``bridge`` hands tensors to them and their adjoints to autograd,
and ``chain.build_forward_model`` wraps the numpy chain. Tensors are NCHW float in [0, 1]; sigma is on
the 0-255 scale at the API. ``parse_blur``, ``read_mask`` and ``NOISE_FLOOR_255`` are re-exported.
"""
from flowrt.numeric.kernels import gaussian_kernel, parse_blur
from flowrt.numeric.observation import NOISE_FLOOR_255, read_mask
from .bridge import NumpyLikelihood, NumpyStage, data_term
from .chain import ForwardModel, build_forward_model

__all__ = [
    "ForwardModel", "NOISE_FLOOR_255", "NumpyLikelihood", "NumpyStage", "build_forward_model", "data_term",
    "gaussian_kernel", "parse_blur", "read_mask",
]
