"""Blind JPEG detection (flowrt.pipeline.jpeg_detect) and the plan's use of it for ``--jpeg auto``."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from flowrt.io.image_file import read_image
from flowrt.io.jpeg_coefficients import read_jpeg_info
from flowrt.pipeline.jpeg_detect import detect_jpeg, ijg_table
from flowrt.pipeline.options import RestoreOptions
from flowrt.pipeline.plan import JpegQuality, plan_restoration
from flowrt.pipeline.source import from_image

QUALITY_TOLERANCE = 3


def photo_like(height: int, width: int, seed: int, noise: float = 0.01) -> np.ndarray:
    """(H, W, 3) uint8: smooth shading, a few hard-edged discs, fine texture and Gaussian noise of
    std ``noise`` (0-1 scale), from one seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    img = np.stack([0.3 + 0.4 * xx, 0.5 - 0.3 * yy, 0.4 + 0.2 * np.sin(6 * xx + 3 * yy)], axis=2)
    for _ in range(6):
        cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.2)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0.1, 0.9, 3)
    img += 0.04 * np.sin(40 * xx[..., None] * rng.uniform(0.5, 1.5, 3))
    img += rng.normal(0, noise, img.shape)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def jpeg_decode(pixels: np.ndarray, quality: int) -> np.ndarray:
    """What a PNG copy of a Pillow JPEG at ``quality`` holds: (H, W, 3) uint8."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


@pytest.mark.parametrize("quality", [5, 20, 50, 75, 95])
def test_ijg_tables_are_the_ones_pillow_writes(quality):
    buf = io.BytesIO()
    Image.fromarray(photo_like(16, 16, 0)).save(buf, "JPEG", quality=quality)
    np.testing.assert_array_equal(read_jpeg_info(buf.getvalue()).quant_y, ijg_table(quality))


@pytest.mark.parametrize("quality", [20, 60])
def test_a_png_copy_of_a_jpeg_is_detected_with_its_quality(quality):
    evidence = detect_jpeg(jpeg_decode(photo_like(96, 128, seed=1), quality) / 255.0)
    assert evidence.detected, evidence.describe()
    assert abs(evidence.quality - quality) <= QUALITY_TOLERANCE


def test_clean_smooth_noisy_and_flat_images_are_not_called_jpegs():
    rng = np.random.default_rng(2)
    smooth = photo_like(96, 128, seed=2)
    noisy = np.clip(smooth + rng.normal(0, 10, smooth.shape), 0, 255).round().astype(np.uint8)
    flat = np.full((64, 64, 3), 117, np.uint8)
    for image in (smooth, noisy, flat):
        evidence = detect_jpeg(image / 255.0)
        assert not evidence.detected, evidence.describe()


def test_blocking_off_the_grid_is_not_detected():
    """A JPEG's copy cropped by 3 pixels has its blocks off the (0, 0) grid the term would re-encode."""
    shifted = jpeg_decode(photo_like(99, 131, seed=3), 20)[3:, 3:]
    assert not detect_jpeg(shifted / 255.0).detected


def plan_for(path, **fields):
    return plan_restoration(from_image(read_image(str(path)), str(path)), RestoreOptions(**fields))


def test_a_no_flags_restore_of_the_copy_applies_the_jpeg_term(tmp_path):
    copy = tmp_path / "copy.png"
    Image.fromarray(jpeg_decode(photo_like(64, 80, seed=4), 20)).save(copy)
    plan = plan_for(copy)
    assert isinstance(plan.jpeg, JpegQuality) and abs(plan.jpeg.quality - 20) <= QUALITY_TOLERANCE
    assert plan.nothing_to_do is None and "detected JPEG blocking" in plan.describe()
    assert plan_for(copy, jpeg="off").jpeg is None  # --jpeg off still turns it off


def test_noise_that_went_through_a_jpeg_is_not_called_clean(tmp_path):
    """The multi chain (x1/2, noise 8, JPEG 50): the JPEG zeroes most of the noise, but not the blocks."""
    rng = np.random.default_rng(6)
    small = np.asarray(Image.fromarray(photo_like(128, 160, seed=6)).resize((80, 64), Image.BICUBIC), np.float64)
    noisy = np.clip(np.round(small + rng.normal(0, 8, small.shape)), 0, 255).astype(np.uint8)
    copy = tmp_path / "multi.png"
    Image.fromarray(jpeg_decode(noisy, 50)).save(copy)
    plan = plan_for(copy)
    assert plan.jpeg is not None and abs(plan.jpeg.quality - 50) <= QUALITY_TOLERANCE
    assert plan.nothing_to_do is None


def test_a_clean_png_still_has_nothing_to_do(tmp_path):
    clean = tmp_path / "clean.png"
    Image.fromarray(photo_like(64, 80, seed=5, noise=0.0)).save(clean)
    plan = plan_for(clean)
    assert plan.jpeg is None and plan.nothing_to_do is not None
