"""``--sigma auto``'s estimator against known noise: grey, grey stored as RGB, and colour."""
from __future__ import annotations

import numpy as np
import pytest

from flowrt.pipeline.noise_level import estimate_sigma

SIGMAS = (5, 15, 25, 50)


def scene(size: int = 160, seed: int = 0) -> np.ndarray:
    """float (size, size, 3) in [0.25, 0.75]: smooth colour shading, a few hard-edged discs and
    fine texture in one quarter (what leaks through the filter), away from clipping."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    img = np.stack([0.35 + 0.2 * (a * yy + (1 - a) * xx) for a in rng.uniform(0, 1, 3)], axis=2)
    for _ in range(4):
        cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.15)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] += rng.uniform(-0.1, 0.1, 3)
    img[: size // 4, : size // 4] += 0.05 * np.sin(40 * xx[: size // 4, : size // 4])[..., None]
    return np.clip(img, 0.25, 0.75)


def noisy8(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """clean + N(0, sigma/255), clipped and rounded to 8-bit levels, back in [0, 1]."""
    noisy = clean + np.random.default_rng(seed).normal(0, sigma / 255, clean.shape)
    return np.round(np.clip(noisy, 0, 1) * 255) / 255


@pytest.mark.parametrize("sigma", SIGMAS)
def test_grey_image_estimate_within_ten_percent(sigma):
    grey = scene()[..., 1]
    estimate = estimate_sigma(noisy8(grey, sigma, seed=sigma))
    assert abs(estimate - sigma) <= 0.1 * sigma, estimate


@pytest.mark.parametrize("sigma", SIGMAS)
def test_grey_stored_as_rgb_reads_like_grey(sigma):
    """Identical channels (what read_image makes of a grey file) must not read sqrt(3) too high."""
    grey = noisy8(scene()[..., 1], sigma, seed=sigma)
    as_rgb = np.repeat(grey[..., None], 3, axis=2)
    estimate = estimate_sigma(as_rgb)
    assert abs(estimate - sigma) <= 0.1 * sigma, estimate
    assert estimate == pytest.approx(estimate_sigma(grey))
    assert estimate_sigma(grey[..., None]) == pytest.approx(estimate_sigma(grey))


@pytest.mark.parametrize("sigma", SIGMAS)
def test_colour_image_estimate_within_ten_percent(sigma):
    estimate = estimate_sigma(noisy8(scene(), sigma, seed=100 + sigma))
    assert abs(estimate - sigma) <= 0.1 * sigma, estimate


def test_clean_image_reads_near_zero():
    assert estimate_sigma(noisy8(scene(), 0, seed=1)) < 1.0


def test_clipped_flat_region_does_not_pull_the_estimate_down():
    """A black, flat third of the image: its noise is cut off at 0 and it is the flattest part."""
    clean = scene()
    clean[:, : clean.shape[1] // 3] = 0.0
    estimate = estimate_sigma(noisy8(clean, 25, seed=7))
    assert abs(estimate - 25) <= 2.5, estimate


def test_alpha_channel_is_ignored_and_tiny_images_read_zero():
    rgb = noisy8(scene(), 15, seed=3)
    rgba = np.concatenate([rgb, np.ones(rgb.shape[:2] + (1,))], axis=2)
    assert estimate_sigma(rgba) == pytest.approx(estimate_sigma(rgb))
    assert estimate_sigma(np.zeros((5, 40, 3))) == 0.0
