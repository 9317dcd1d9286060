"""The restoration benchmark's degradation protocol (issue 4), deterministic per image name.

Tasks, applied to a clean 8-bit RGB photo x (values 0-255):
- noise: clip(round(x + N(0, 25^2))), saved as PNG; restored with --sigma 25.
- jpeg:  Pillow JPEG quality 20 (Pillow's default 4:2:0 chroma); restored from the .jpg.
- multi: crop x to even sides, Pillow bicubic down x1/2, clip(round(. + N(0, 8^2))), then JPEG
         quality 50; restored to full size with --scale 2 --sigma 8.
The noise of each (task, image name) comes from its own seed, so any subset or order of images
gives the same degraded files.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@dataclass(frozen=True)
class TaskSpec:
    """One degradation task. sigma: Gaussian noise std on the 0-255 scale (0: none);
    scale: integer downsampling factor; jpeg_quality: None for a PNG observation."""
    name: str
    sigma: float
    scale: int
    jpeg_quality: int | None

    @property
    def suffix(self) -> str:
        return ".png" if self.jpeg_quality is None else ".jpg"


TASKS: dict[str, TaskSpec] = {
    "noise": TaskSpec("noise", sigma=25.0, scale=1, jpeg_quality=None),
    "jpeg": TaskSpec("jpeg", sigma=0.0, scale=1, jpeg_quality=20),
    "multi": TaskSpec("multi", sigma=8.0, scale=2, jpeg_quality=50),
}


@dataclass(frozen=True)
class Degraded:
    """A degraded photo ready for restoration.

    clean: (H, W, 3) uint8 reference the metrics compare against (already cropped).
    observed: (H / scale, W / scale, 3) uint8, the observation as decoded from ``path``.
    path: the file a restorer reads (PNG for noise, JPEG otherwise).
    """
    task: TaskSpec
    name: str
    clean: np.ndarray
    observed: np.ndarray
    path: Path
    seed: int


def seed_for(task: str, name: str) -> int:
    """A 63-bit seed fixed by the task and the image's file name (not its position)."""
    digest = hashlib.sha256(f"{task}/{name}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def list_photos(folder: Path, limit: int | None = None) -> list[Path]:
    """Image files directly in ``folder``, sorted by name, the first ``limit`` of them."""
    photos = sorted(p for p in Path(folder).iterdir()
                    if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
    return photos if limit is None else photos[:limit]


def load_photo(path: Path, crop: int | None = None) -> np.ndarray:
    """Read a photo as (H, W, 3) uint8 RGB; with ``crop``, its centre crop x crop (clamped to
    the photo's sides)."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    if crop is not None:
        pixels = centre_crop(pixels, crop, crop)
    return pixels


def centre_crop(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """The centre (height, width) window of (H, W, ...) pixels, clamped to the array's size."""
    height, width = min(height, pixels.shape[0]), min(width, pixels.shape[1])
    top = (pixels.shape[0] - height) // 2
    left = (pixels.shape[1] - width) // 2
    return pixels[top:top + height, left:left + width]


def add_gaussian_noise(pixels: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """clip(round(pixels + N(0, sigma^2))) as uint8; pixels on the 0-255 scale."""
    noisy = pixels.astype(np.float64) + rng.normal(0.0, sigma, size=pixels.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def encode_jpeg(pixels: np.ndarray, quality: int) -> bytes:
    """Pillow's baseline JPEG of (H, W, 3) uint8 at ``quality`` (default 4:2:0 subsampling)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def bicubic_resize(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pillow bicubic resize of (h, w, 3) uint8 to (height, width, 3) uint8."""
    return np.asarray(Image.fromarray(pixels).resize((width, height), Image.BICUBIC))


def blur_and_noise(clean: np.ndarray, blur_std: float, sigma: float, seed: int) -> np.ndarray:
    """Blur clean (H, W, 3) uint8 with flowrt's own Gaussian kernel of std ``blur_std`` pixels, add
    N(0, sigma^2) noise (0-255 scale) from ``seed``, round and clip: (H, W, 3) uint8. The one
    implementation is the training crops' (``flowrt.train.split_data.blur_and_noise``)."""
    from flowrt.train.split_data import blur_and_noise as blurred_noisy
    return blurred_noisy(clean, blur_std, sigma, np.random.default_rng(seed))


def reference_for(clean: np.ndarray, task: TaskSpec) -> np.ndarray:
    """What a task's restorations are scored against: ``clean`` cropped to sides divisible by the scale."""
    return clean[: clean.shape[0] - clean.shape[0] % task.scale, : clean.shape[1] - clean.shape[1] % task.scale]


def degrade(clean: np.ndarray, task: TaskSpec, seed: int) -> tuple[np.ndarray, bytes]:
    """Apply ``task`` to clean (H, W, 3) uint8. Returns (reference, encoded observation file):
    the reference is ``clean`` cropped to sides divisible by the scale."""
    rng = np.random.default_rng(seed)
    reference = reference_for(clean, task)
    height, width = reference.shape[:2]
    observed = reference
    if task.scale != 1:
        observed = bicubic_resize(observed, height // task.scale, width // task.scale)
    if task.sigma > 0:
        observed = add_gaussian_noise(observed, task.sigma, rng)
    if task.jpeg_quality is not None:
        return reference, encode_jpeg(observed, task.jpeg_quality)
    buffer = io.BytesIO()
    Image.fromarray(observed).save(buffer, format="PNG")
    return reference, buffer.getvalue()


def write_degraded(clean: np.ndarray, name: str, task: TaskSpec, folder: Path) -> Degraded:
    """Degrade ``clean`` for ``task``, write the observation to folder/task/<stem><suffix>
    (atomically) and return it with its decoded pixels."""
    seed = seed_for(task.name, name)
    reference, encoded = degrade(clean, task, seed)
    target = Path(folder) / task.name / (Path(name).stem + task.suffix)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_bytes(encoded)
    temporary.replace(target)
    with Image.open(target) as image:
        observed = np.asarray(image.convert("RGB"))
    return Degraded(task, name, reference, observed, target, seed)
