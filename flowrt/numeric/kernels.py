"""Blur kernels: parsing ``--blur``, checking a kernel, and the forms both blur stages run it in.

A kernel is (kh, kw) float32, non-negative, summing to 1, its centre at (kh // 2, kw // 2) as
scipy.ndimage.convolve places it. ``rank_one`` splits a separable kernel into two 1-D passes and
``taps`` lists the entries that matter; ``flowrt.numeric.blur`` runs them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from flowrt.errors import InputError

MAX_KERNEL_SIDE = 257
MAX_GAUSSIAN_STD = 40.0
DIRECT_MAX_TAPS = 64  # non-zero taps above which a non-separable kernel goes through the FFT

Taps = Tuple[Tuple[int, int, float], ...]


def gaussian_taps(std: float, dtype=np.float64, min_radius: int = 0) -> np.ndarray:
    """The one Gaussian of flowrt: (2 r + 1,) taps exp(-t^2 / (2 std^2)) for t = -r..r, r = max(min_radius,
    ceil(3 std)), summing to 1, computed in ``dtype`` (the start's smoothing in both loops, ``--blur
    gaussian:S``'s kernel)."""
    radius = max(min_radius, int(math.ceil(3 * std)))
    t = np.arange(-radius, radius + 1).astype(dtype)
    g = np.exp(-0.5 * (t / np.dtype(dtype).type(std)) ** 2)
    return g / g.sum()


def gaussian_kernel(std: float) -> np.ndarray:
    """Normalised 2-D Gaussian of standard deviation `std` pixels, side 2 * max(1, ceil(3 std)) + 1."""
    g = gaussian_taps(std, np.float64, min_radius=1)
    k = np.outer(g, g)
    return (k / k.sum()).astype(np.float32)


def check_kernel(kernel: np.ndarray, what: str) -> np.ndarray:
    """A kernel array (2-D, or an image's (kh, kw, 1|3|4)) -> (kh, kw) float32 summing to 1; InputError if unusable."""
    k = np.asarray(kernel, np.float64)
    if k.ndim == 3 and k.shape[2] in (1, 3, 4):
        k = k[..., :3].mean(axis=2) if k.shape[2] >= 3 else k[..., 0]
    if k.ndim != 2 or k.size == 0:
        raise InputError(f"blur kernel {what} must be a 2-D array, got shape {k.shape}")
    if max(k.shape) > MAX_KERNEL_SIDE:
        raise InputError(f"blur kernel {what} is {k.shape[1]}x{k.shape[0]}; at most {MAX_KERNEL_SIDE} a side")
    if not np.isfinite(k).all():
        raise InputError(f"blur kernel {what} holds NaN or infinite values")
    if k.min() < -1e-3 * max(k.max(), 0):
        raise InputError(f"blur kernel {what} has negative weights")
    k = np.clip(k, 0, None)
    if k.sum() <= 0:
        raise InputError(f"blur kernel {what} sums to zero")
    return (k / k.sum()).astype(np.float32)


def parse_blur(spec: str) -> np.ndarray:
    """'gaussian:S' (std S pixels, 0 < S <= 40) or a kernel file (.npy or an image) -> (kh, kw) float32 summing to 1."""
    text = str(spec).strip()
    if text.lower().startswith("gaussian:"):
        try:
            std = float(text.split(":", 1)[1])
        except ValueError:
            raise InputError(f"bad blur spec {spec!r}: expected gaussian:S with S a number of pixels") from None
        if not (0 < std <= MAX_GAUSSIAN_STD):
            raise InputError(f"bad blur spec {spec!r}: the std must be in (0, {MAX_GAUSSIAN_STD}] pixels")
        return gaussian_kernel(std)
    path = Path(text)
    if not path.is_file():
        raise InputError(f"bad blur spec {spec!r}: expected gaussian:S or a kernel file (.npy, .png, .tif)")
    if path.suffix.lower() == ".npy":
        try:
            kernel = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"{path}: not a readable .npy kernel ({exc})") from None
    else:
        from flowrt.io.image_file import read_image

        kernel = read_image(path).rgb
    return check_kernel(kernel, str(path))


def rank_one(k: np.ndarray) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """(column, row) float32 with outer(column, row) == k when k is separable (rel. error < 1e-6), else None."""
    u, s, vt = np.linalg.svd(k.astype(np.float64))
    if s.size > 1 and s[1] > 1e-6 * s[0]:
        return None
    col, row = u[:, 0] * math.sqrt(s[0]), vt[0] * math.sqrt(s[0])
    if col.sum() < 0:
        col, row = -col, -row
    return col.astype(np.float32), row.astype(np.float32)


def taps(kernel: np.ndarray) -> Taps:
    """((row, col, weight), ...) of the kernel's entries that matter (|w| > 1e-9 max), weights as floats."""
    keep = np.abs(kernel) > 1e-9 * np.abs(kernel).max()
    return tuple((int(a), int(b), float(kernel[a, b])) for a, b in zip(*np.nonzero(keep)))


@dataclass(frozen=True)
class BlurLayout:
    """How a blur stage runs its kernel: true convolution = correlation with the flipped kernel over
    the input padded by edge replication, ``pad`` = (left, right, top, bottom) placing the centre at
    (kh // 2, kw // 2). A separable kernel runs as ``row_taps`` then ``col_taps``; a general one as
    ``taps`` (up to DIRECT_MAX_TAPS of them) or through the FFT."""
    flipped: np.ndarray
    pad: Tuple[int, int, int, int]
    separable: bool
    row_taps: Taps
    col_taps: Taps
    taps: Taps

    @property
    def direct(self) -> bool:
        """Whether a non-separable kernel is summed tap by tap (else through the FFT)."""
        return len(self.taps) <= DIRECT_MAX_TAPS


def blur_layout(kernel: np.ndarray) -> BlurLayout:
    """The ``BlurLayout`` of a kernel (checked first: InputError if unusable)."""
    k = check_kernel(kernel, "")
    kh, kw = k.shape
    flipped = np.ascontiguousarray(k[::-1, ::-1])
    factors = rank_one(flipped)
    row_taps = col_taps = ()
    if factors is not None:
        row_taps, col_taps = taps(factors[1][None, :]), taps(factors[0][:, None])
    return BlurLayout(flipped, (kw - 1 - kw // 2, kw // 2, kh - 1 - kh // 2, kh // 2), factors is not None,
                      row_taps, col_taps, taps(flipped))
