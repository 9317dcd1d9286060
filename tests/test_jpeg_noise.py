"""Noise that went through a JPEG (flowrt.pipeline.jpeg_noise): --sigma auto plans the noise before
the compression, not the little of it the decode shows (issue 24, point 6)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from flowrt.io.image_file import read_image
from flowrt.io.jpeg_coefficients import read_jpeg_info
from flowrt.pipeline.jpeg_noise import noise_before_jpeg
from flowrt.pipeline.noise_level import estimate_sigma
from flowrt.pipeline.options import RestoreOptions
from flowrt.pipeline.plan import JpegQuality, plan_restoration
from flowrt.pipeline.source import from_image


def shaded(side: int = 256, seed: int = 0) -> np.ndarray:
    """(side, side, 3) float64 0-255: smooth shading and two soft discs, no noise."""
    yy, xx = np.mgrid[0:side, 0:side] / side
    img = np.stack([70 + 90 * xx, 160 - 60 * yy, 110 + 40 * np.sin(5 * xx + 2 * yy)], axis=2)
    rng = np.random.default_rng(seed)
    for _ in range(2):
        cy, cx = rng.uniform(0.2, 0.8, 2)
        img += 30 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.02)[..., None] * rng.uniform(-1, 1, 3)
    return img


def noisy_jpeg(sigma: float, quality: int, seed: int = 0, subsampling: int = 2) -> bytes:
    """A Pillow JPEG (subsampling 2: 4:2:0, Pillow's default; 0: 4:4:4) of shaded() plus noise."""
    pixels = shaded(seed=seed) + np.random.default_rng(seed + 1).normal(0, sigma, (256, 256, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=quality,
                                                                             subsampling=subsampling)
    return buffer.getvalue()


@pytest.mark.parametrize("sigma, quality", [(25, 70), (15, 80), (10, 90), (12, 100)])   # 100: 4:2:0 alone
def test_the_noise_before_the_jpeg_is_recovered_from_the_decodes_low_reading(sigma, quality):
    data = noisy_jpeg(sigma, quality)
    reading = estimate_sigma(read_image(data).rgb)
    assert reading < 0.8 * sigma   # the JPEG took a good part of the noise away
    assert noise_before_jpeg(reading, read_jpeg_info(data)) == pytest.approx(sigma, rel=0.15)


def test_a_jpeg_that_quantises_nothing_keeps_the_reading():
    data = noisy_jpeg(12, 100, subsampling=0)   # all-ones tables, full chroma: the decode is the noisy image
    reading = estimate_sigma(read_image(data).rgb)
    assert reading == pytest.approx(12, rel=0.1)
    assert noise_before_jpeg(reading, read_jpeg_info(data)) == pytest.approx(reading, rel=0.1)
    assert noise_before_jpeg(0.0, read_jpeg_info(data)) == 0.0


def _plan(data: bytes):
    image = read_image(data)
    return plan_restoration(from_image(image, "x.jpg"), RestoreOptions())


def test_a_noisy_jpeg_file_is_planned_with_its_noise_before_the_compression():
    plan = _plan(noisy_jpeg(15, 80, seed=3))
    assert plan.sigma_estimate < 11 and plan.sigma == pytest.approx(15, rel=0.15)
    assert "before the JPEG" in plan.describe() and f"reads {plan.sigma_estimate:.1f}" in plan.describe()


@pytest.mark.parametrize("quality", [30, 70, 95])
def test_a_clean_jpeg_still_plans_no_noise_term(quality):
    plan = _plan(noisy_jpeg(0, quality, seed=4))
    assert plan.jpeg is not None and plan.sigma is None


def test_a_png_copy_of_a_noisy_jpeg_uses_the_detected_qualitys_tables(tmp_path):
    copy = tmp_path / "copy.png"
    Image.open(io.BytesIO(noisy_jpeg(15, 80, seed=5))).save(copy)
    plan = plan_restoration(from_image(read_image(str(copy)), str(copy)), RestoreOptions())
    assert isinstance(plan.jpeg, JpegQuality) and plan.sigma == pytest.approx(15, rel=0.2)


def test_a_greyscale_jpeg_is_simulated_with_its_one_table():
    pixels = shaded(seed=6)[..., 1] + np.random.default_rng(7).normal(0, 15, (256, 256))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8), "L").save(buffer, "JPEG", quality=50)
    info = read_jpeg_info(buffer.getvalue())
    reading = estimate_sigma(read_image(buffer.getvalue()).rgb)
    assert info.quant_c is None and reading < 12
    assert noise_before_jpeg(reading, info) == pytest.approx(15, rel=0.15)


def test_a_reading_past_what_the_simulation_can_tell_stays_bounded():
    info = read_jpeg_info(noisy_jpeg(0, 95))
    assert 70 <= noise_before_jpeg(70.0, info) <= 100
    assert noise_before_jpeg(120.0, info) == 120.0   # never below the reading
