"""Classical Gaussian denoising, torch-free (numpy + numba): the MAP's starting point."""
from flowrt.denoise.grouped import denoise_rgb

__all__ = ["denoise_rgb"]
