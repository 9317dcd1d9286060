"""Degradations as differentiable torch forward models, each with its observation likelihood.

Chain order: blur -> downsample -> mask -> noise -> JPEG. Tensors are NCHW float in [0, 1];
sigma is on the 0-255 scale at the API and in [0, 1] units inside. What does not need torch (kernels,
masks, Pillow's weights, the JPEG layout, the noise floor) lives in ``flowrt.numeric``, with the same
forward models in numpy; ``parse_blur``, ``read_mask`` and ``NOISE_FLOOR_255`` are re-exported here.
"""
from flowrt.numeric.kernels import gaussian_kernel, parse_blur
from flowrt.numeric.observation import NOISE_FLOOR_255, read_mask
from .base import Degradation, Likelihood
from .bridge import NumpyLikelihood, NumpyStage
from .chain import ForwardModel, build_forward_model

__all__ = [
    "Degradation", "ForwardModel",
    "Likelihood", "NOISE_FLOOR_255", "NumpyLikelihood", "NumpyStage", "build_forward_model", "gaussian_kernel",
    "parse_blur", "read_mask",
]
