"""Choosing the torch device from the user's auto | cpu | cuda (training and restoration share it)."""
from __future__ import annotations

from .errors import InputError


def resolve_device(name: str):
    """torch.device for 'auto' (CUDA when available, else CPU), 'cpu' or 'cuda'.

    InputError when CUDA is asked for and torch cannot see a CUDA device.
    """
    import torch
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but CUDA is not available here")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)
