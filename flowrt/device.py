"""Choosing the torch device from the user's auto | cpu | cuda | cuda:N (training and restoration share it).

``check_device_name`` is the one place the spelling is checked (torch-free, so options validate
before torch loads); ``resolve_device`` then checks it against the machine.
"""
from __future__ import annotations

import os
import re
import sys

from .errors import InputError

DEVICE_CHOICES = "auto|cpu|cuda|cuda:N"
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device_name(name: str) -> str:
    """``name`` if it is auto, cpu, cuda or cuda:N (N a GPU index from 0), else InputError."""
    if not isinstance(name, str) or not _DEVICE.fullmatch(name):
        raise InputError(f"--device must be {DEVICE_CHOICES.replace('|', ', ')} (e.g. cuda:1), not {name!r}")
    return name


def gpu_driver_loaded() -> bool:
    """False only where torch could not see a GPU anyway: on Linux without NVIDIA's driver
    (/proc/driver/nvidia) or ROCm's (/dev/kfd). Lets ``--device auto`` settle on the CPU without
    importing torch (about 2 s); elsewhere True, and torch is asked."""
    if not sys.platform.startswith("linux"):
        return True
    return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/kfd")


def resolve_device(name: str):
    """torch.device for 'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N'.

    InputError when CUDA is asked for and torch cannot see a CUDA device, or N is not one of them,
    and when torch is not installed (the runtime's own engine, ort, needs no torch device).
    """
    from .errors import missing_torch, torch_installed
    check_device_name(name)
    if not torch_installed():
        raise missing_torch(f"--device {name} with the torch engine")
    import torch
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"--device {name} was asked for but CUDA is not available here")
        count = torch.cuda.device_count()
        index = int(name.partition(":")[2] or 0)
        if index >= count:
            raise InputError(f"--device {name}: no such GPU (this machine has {count}: cuda:0 to cuda:{count - 1})")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)
