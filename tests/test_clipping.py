"""Noise clipped at black and white: the clipped mean against Monte Carlo, its inverse, and a
restore of a dark noisy photo whose level comes back only when the clipping is undone."""
from __future__ import annotations

import numpy as np
import pytest

from flowrt.numeric.clipping import clipped_mean, unclip


@pytest.mark.parametrize("x,sigma", [(0.0, 0.1), (0.03, 0.1), (0.5, 0.2), (0.97, 0.05), (1.0, 0.2), (0.2, 0.01)])
def test_clipped_mean_matches_monte_carlo(x, sigma):
    draws = np.random.default_rng(0).standard_normal(400_000)
    expected = np.clip(x + sigma * draws, 0.0, 1.0).mean()
    assert abs(float(clipped_mean(np.array([x]), sigma)[0]) - expected) < 4 * sigma / np.sqrt(400_000) + 1e-6


def test_clipped_mean_is_x_away_from_the_ends_and_biased_at_them():
    x = np.linspace(0.0, 1.0, 101)
    f = clipped_mean(x, 0.05)
    inner = (x > 0.3) & (x < 0.7)
    assert np.abs(f[inner] - x[inner]).max() < 1e-7
    assert f[0] > 0.019 and f[-1] < 0.981          # sigma / sqrt(2 pi) = 0.0199 at the ends
    assert np.all(np.diff(f) > 0)                  # increasing: the inverse exists


def test_unclip_inverts_clipped_mean():
    for sigma in (2 / 255, 25 / 255, 60 / 255):
        x = np.linspace(0.0, 1.0, 777)
        assert np.abs(unclip(clipped_mean(x, sigma), sigma) - x).max() < 2e-4
    low = float(clipped_mean(np.array([0.0]), 0.1)[0])
    out = unclip(np.array([0.0, low / 2, 1.0]), 0.1)
    assert out.dtype == np.float32 and out[0] == 0.0 and out[1] == 0.0 and out[2] == 1.0
    same = np.array([0.1, 0.7], np.float32)
    assert np.array_equal(unclip(same, 0.0), same)


def _dark_noisy(seed: int = 3):
    """A 64x64 dark ramp (4-24 of 255) with noise 25, rounded and clipped as a file stores it."""
    ramp = np.linspace(4, 24, 64)[None, :, None] * np.ones((64, 1, 3))
    noisy = np.clip(np.round(ramp + 25 * np.random.default_rng(seed).standard_normal(ramp.shape)), 0, 255)
    return (ramp / 255).astype(np.float32), noisy.astype(np.uint8)


def test_noise_restore_brings_a_dark_photo_back_to_its_level():
    """Without the map back, a denoiser returns the clipped mean, about 5/255 too bright here."""
    import flowrt
    from flowrt.denoise.grouped import denoise_rgb
    clean, noisy = _dark_noisy()
    bias = float(clipped_mean(clean, 25 / 255).mean() - clean.mean())
    assert bias > 4 / 255
    plain = denoise_rgb(noisy.astype(np.float32) / 255, 25 / 255)
    assert plain.mean() - clean.mean() > 0.8 * bias
    for denoiser in ("grouped", "auto"):
        result = flowrt.restore(noisy, sigma=25, denoiser=denoiser)
        out = np.asarray(result.image, np.float32) / 255
        assert abs(out.mean() - clean.mean()) < 0.25 * bias, denoiser
        assert np.mean((out - clean) ** 2) < 0.5 * np.mean((plain - clean) ** 2), denoiser
        assert "clipped noise mapped back" in result.plan.describe()


def test_only_a_noise_restore_maps_back():
    from flowrt.solve.config import SolverConfig
    from flowrt.solve.start import choose_start
    assert choose_start(SolverConfig(), 25.0, None).unclip
    assert not choose_start(SolverConfig(), 25.0, 6.0).unclip            # a JPEG's decode
    assert not choose_start(SolverConfig(), 25.0, None, inverts=True).unclip   # the splitting's rounds


def test_flow_tables_say_what_they_estimate():
    from flowrt.denoise.flow import fit_target, packaged_flow_denoiser
    assert fit_target(None) == "clean" and fit_target('{"ridge": 0.5}') == "clean"
    assert fit_target('{"target": "clipped-mean"}') == "clipped-mean" and fit_target("{not json") == "clean"
    assert packaged_flow_denoiser().estimates_clipped_mean
