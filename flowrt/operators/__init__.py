"""Degradations as differentiable torch forward models, each with its observation likelihood.

Chain order: blur -> downsample -> mask -> noise -> JPEG. Tensors are NCHW float in [0, 1];
sigma is on the 0-255 scale at the API and in [0, 1] units inside.
"""
from .base import Degradation, Likelihood
from .blur import Blur, gaussian_kernel, parse_blur
from .chain import ForwardModel, build_forward_model
from .downsample import BicubicDownsample
from .jpeg import JpegLikelihood
from .mask import Mask, fill_holes, read_mask
from .noise import NOISE_FLOOR_255, GaussianLikelihood

__all__ = [
    "BicubicDownsample", "Blur", "Degradation", "ForwardModel", "GaussianLikelihood", "JpegLikelihood",
    "Likelihood", "Mask", "NOISE_FLOOR_255", "build_forward_model", "fill_holes", "gaussian_kernel",
    "parse_blur", "read_mask",
]
