"""Score a photo under the prior: bits per dimension of its 8-bit pixels.

The flow is a density on [0, 1]^D; an 8-bit image k is scored through its dequantisation
x = (k + v) / 256 with v in [0, 1): ``uniform`` draws v from a fixed-seed generator (the
estimator training and validation use: its expectation bounds the discrete code length from
above), ``mid`` takes v = 1/2 (deterministic, a point estimate). Sides that the size rule
rejects are centre-cropped to the largest multiple of 2^levels, and the result says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from flowrt.errors import InputError

DEQUANTISATIONS = ("uniform", "mid")
# The one scoring mode of flowrt score, the API's score and the reports' bits/dim (numbers and maps),
# so the same file gets the same figure everywhere.
DEFAULT_DEQUANT = "uniform"
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Score:
    bits_per_dim: float
    height: int               # the image as read
    width: int
    scored_height: int        # after the centre crop to the size rule
    scored_width: int
    dequant: str
    providers: List[str]
    bit_depth: int = 8        # of the file; the score is always that of its 8-bit rounding
    seed: int = DEFAULT_SEED  # of the uniform dequantisation

    @property
    def cropped(self) -> bool:
        return (self.scored_height, self.scored_width) != (self.height, self.width)


def read_rgb8(path: str) -> Tuple[np.ndarray, int]:
    """((H, W, 3) uint8, the file's bit depth) of an image file or '-' (stdin), via flowrt.io.image_file.

    Greyscale is repeated to three channels and alpha ignored; 16-bit samples are rounded to the
    nearest 8-bit level, since the prior is a model of 8-bit photos.
    """
    from flowrt.io.image_file import read_image

    image = read_image(path)
    rgb8 = np.clip(np.round(image.rgb.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    return rgb8, int(image.bit_depth)


def centre_crop_to_multiple(rgb: np.ndarray, multiple: int) -> np.ndarray:
    """The centred (H', W', C) crop with H', W' the largest multiples of ``multiple``."""
    h, w = rgb.shape[:2]
    hc, wc = h - h % multiple, w - w % multiple
    if hc == 0 or wc == 0:
        raise InputError(f"image is {h}x{w}; this prior needs at least {multiple}x{multiple} pixels")
    top, left = (h - hc) // 2, (w - wc) // 2
    return rgb[top:top + hc, left:left + wc]


def dequantize(rgb8: np.ndarray, dequant: str = DEFAULT_DEQUANT, seed: int = DEFAULT_SEED) -> np.ndarray:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1): (k + v) / 256."""
    if dequant not in DEQUANTISATIONS:
        raise InputError(f"dequantisation must be one of {', '.join(DEQUANTISATIONS)}, not {dequant!r}")
    k = rgb8.astype(np.float64).transpose(2, 0, 1)[None]
    v = np.random.default_rng(seed).uniform(0, 1, k.shape) if dequant == "uniform" else 0.5
    return ((k + v) / 256.0).astype(np.float32)


def score_rgb8(prior, rgb8: np.ndarray, dequant: str = DEFAULT_DEQUANT, seed: int = DEFAULT_SEED,
               bit_depth: int = 8) -> Score:
    """Bits/dim of an (H, W, 3) uint8 image under ``prior`` (a flowrt.prior.onnx_backend.Prior)."""
    cropped = centre_crop_to_multiple(rgb8, prior.multiple)
    bpd = float(prior.bits_per_dim(dequantize(cropped, dequant, seed))[0])
    return Score(bpd, rgb8.shape[0], rgb8.shape[1], cropped.shape[0], cropped.shape[1], dequant,
                 list(prior.providers), bit_depth, seed)


def mode_words(dequant: str = DEFAULT_DEQUANT, seed: int = DEFAULT_SEED) -> str:
    """How a bits/dim figure was scored, in words every output that prints one uses."""
    return f"uniform dequantisation, seed {seed}" if dequant == "uniform" else f"{dequant} dequantisation"


def crop_note(score: Score, multiple: int) -> Tuple[str, ...]:
    """Words for what was scored, for the command's output line."""
    note = (mode_words(score.dequant, score.seed),)
    if score.bit_depth != 8:
        note += (f"{score.bit_depth}-bit samples rounded to 8 bits",)
    if score.cropped:
        note += (f"centre-cropped {score.width}x{score.height} to {score.scored_width}x{score.scored_height} "
                 f"(sides divisible by {multiple})",)
    return note
