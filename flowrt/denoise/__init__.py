"""Classical Gaussian denoising, torch-free (numpy + numba): the MAP's starting point.

``base`` (the ``Denoiser`` protocol and the registry by name) is light; ``denoise_rgb`` (numba)
loads on first use, so checking a ``--denoiser`` name imports no numba."""
from flowrt.denoise.base import DENOISERS, Denoiser, GroupedDenoiser, denoiser_choices, get_denoiser, \
    resolve_denoiser

__all__ = ["DENOISERS", "Denoiser", "GroupedDenoiser", "denoise_rgb", "denoiser_choices", "get_denoiser",
           "resolve_denoiser"]


def __getattr__(name: str):
    if name == "denoise_rgb":
        from flowrt.denoise.grouped import denoise_rgb
        return denoise_rgb
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
