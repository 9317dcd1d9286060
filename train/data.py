"""Training data: a folder of photos held in memory as uint8, sampled as random crops and flips.

Sampling draws from an explicit ``torch.Generator`` whose state goes into the
checkpoint, so a resumed run sees exactly the batches an uninterrupted one would.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List

import numpy as np
import torch

from flowrt.errors import FlowrtError
from flowrt.io.formats import IMAGE_SUFFIXES

log = logging.getLogger("flowrt.train")



class DataError(FlowrtError, ValueError):
    """The data folder cannot give a single usable training image."""


@dataclass
class ImageFolder:
    images: List[torch.Tensor]   # each (3, H, W) uint8
    skipped_corrupt: List[str]
    skipped_small: List[str]


def list_images(folder: str) -> List[Path]:
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"data folder not found: {folder}")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _read_rgb8(path: Path) -> np.ndarray:
    from PIL import Image
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I", "F"):
                arr = np.asarray(im, dtype=np.float64)
                arr = np.clip(arr / (65535.0 if arr.max() > 255 else 255.0), 0, 1) * 255.0 + 0.5
                return np.repeat(arr.astype(np.uint8)[..., None], 3, axis=2)
            return np.asarray(im.convert("RGB"), dtype=np.uint8)


def load_folder(folder: str, min_side: int) -> ImageFolder:
    """Read every image of ``folder`` (recursively); corrupt ones and ones smaller than ``min_side`` are skipped and counted."""
    paths = list_images(folder)
    if not paths:
        raise DataError(f"no PNG, JPEG or TIFF images in {folder}")
    images, corrupt, small = [], [], []
    for path in paths:
        try:
            arr = _read_rgb8(path)
        except Exception as exc:  # any decoder failure means: skip this file, keep going
            log.warning("skipping unreadable image %s (%s)", path, type(exc).__name__)
            corrupt.append(str(path))
            continue
        if min(arr.shape[:2]) < min_side:
            log.warning("skipping %s: %dx%d is smaller than the %d px patch", path, arr.shape[1], arr.shape[0], min_side)
            small.append(str(path))
            continue
        images.append(torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))))
    if not images:
        why = f"{len(corrupt)} unreadable, {len(small)} smaller than {min_side} px"
        raise DataError(f"no usable images in {folder} ({why})")
    return ImageFolder(images, corrupt, small)


def random_crops(images: List[torch.Tensor], batch: int, patch: int, gen: torch.Generator) -> torch.Tensor:
    """(batch, 3, patch, patch) uint8: random image, random crop, random horizontal flip."""
    out = torch.empty(batch, 3, patch, patch, dtype=torch.uint8)
    idx = torch.randint(len(images), (batch,), generator=gen)
    for b in range(batch):
        img = images[int(idx[b])]
        top = int(torch.randint(img.shape[1] - patch + 1, (1,), generator=gen))
        left = int(torch.randint(img.shape[2] - patch + 1, (1,), generator=gen))
        crop = img[:, top:top + patch, left:left + patch]
        if bool(torch.rand((), generator=gen) < 0.5):
            crop = crop.flip(2)
        out[b] = crop
    return out


def fixed_crops(images: List[torch.Tensor], per_image: int, patch: int, seed: int = 1234) -> torch.Tensor:
    """Deterministic validation crops: ``per_image`` per image, same every call."""
    gen = torch.Generator().manual_seed(seed)
    crops = []
    for img in images:
        for _ in range(per_image):
            top = int(torch.randint(img.shape[1] - patch + 1, (1,), generator=gen))
            left = int(torch.randint(img.shape[2] - patch + 1, (1,), generator=gen))
            crops.append(img[:, top:top + patch, left:left + patch])
    return torch.stack(crops)


def dequantize(batch_u8: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """uint8 -> float in [0, 1): (k + U(0,1)) / 256, the uniform dequantisation of 8-bit data."""
    noise = torch.rand(batch_u8.shape, generator=gen)
    return (batch_u8.float() + noise) / 256.0
