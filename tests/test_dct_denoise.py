"""The transform-domain denoiser that starts noisy MAP runs, and the start policy around it."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flowrt.errors import InputError
from flowrt.solve import dct_denoise as dd
from flowrt.solve.solver import ITERS_FROM_DENOISED, SolverConfig, map_restore
from flowrt.solve.start import (DENOISED_STEP_SCALE, JPEG_DENOISED_STEP_SCALE, choose_start, denoise_sigma,
                                jpeg_equivalent_sigma)


def _smooth_image(h=48, w=56, seed=0) -> torch.Tensor:
    """(1, 3, h, w) in [0.1, 0.9]: gradients, a disc and an edge, as photos have."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    disc = ((yy - 0.5) ** 2 + (xx - 0.4) ** 2 < 0.08).float()
    base = torch.stack([0.3 + 0.4 * xx, 0.2 + 0.5 * yy * disc, 0.6 - 0.3 * (xx > 0.7).float()])
    return (base + 0.02 * torch.rand(3, h, w, generator=gen)).clamp(0.1, 0.9)[None]


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / float(((a - b) ** 2).mean()))


def test_dct_matrix_is_orthonormal():
    m = dd.dct_matrix(8)
    assert torch.allclose(m @ m.T, torch.eye(8, dtype=torch.float64), atol=1e-12)


def test_patch_synthesis_is_the_adjoint_of_analysis():
    dct = dd._PatchDct(8, torch.float64, torch.device("cpu"))
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 1, 13, 17, generator=gen, dtype=torch.float64)
    c = torch.randn(2, 64, 6, 10, generator=gen, dtype=torch.float64)
    assert float((dct.forward(x) * c).sum()) == pytest.approx(float((x * dct.adjoint(c)).sum()), rel=1e-10)


def test_patch_analysis_matches_a_brute_force_dct():
    dct = dd._PatchDct(8, torch.float64, torch.device("cpu"))
    x = torch.randn(1, 1, 10, 11, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    m = dd.dct_matrix(8)
    patch = x[0, 0, 1:9, 2:10]
    expected = (m @ patch @ m.T).reshape(-1)   # channel k*8 + l: row frequency k, column frequency l
    assert torch.allclose(dct.forward(x)[0, :, 1, 2], expected, atol=1e-12)


def test_denoiser_removes_most_of_the_noise():
    clean = _smooth_image()
    noisy = clean + 25 / 255 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(3))
    out = dd.dct_denoise(noisy, 25 / 255)
    assert out.shape == clean.shape and out.dtype == clean.dtype
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert _psnr(out, clean) > _psnr(noisy.clamp(0, 1), clean) + 8


def test_denoiser_barely_touches_a_clean_image_at_a_tiny_sigma():
    clean = _smooth_image()
    assert _psnr(dd.dct_denoise(clean, 1e-4), clean) > 60


def test_bands_equal_the_whole_image(monkeypatch):
    noisy = _smooth_image(40, 30) + 0.08 * torch.randn(1, 3, 40, 30, generator=torch.Generator().manual_seed(4))
    whole = dd.dct_denoise(noisy, 0.08)
    monkeypatch.setattr(dd, "BAND_ROWS", 7)
    assert torch.allclose(dd.dct_denoise(noisy, 0.08), whole, atol=1e-5)


def test_greyscale_stays_grey_and_tiny_images_work():
    grey = _smooth_image()[:, :1].expand(-1, 3, -1, -1)
    noisy = (grey + 0.1 * torch.randn(1, 1, *grey.shape[-2:], generator=torch.Generator().manual_seed(5)))
    out = dd.dct_denoise(noisy.expand(-1, 3, -1, -1), 0.1, greyscale=True)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    assert dd.dct_denoise(torch.rand(1, 3, 5, 3), 0.1).shape == (1, 3, 5, 3)   # smaller than a patch


@pytest.mark.parametrize("bad", [dict(y=torch.rand(3, 8, 8), sigma=0.1), dict(y=torch.rand(1, 3, 8, 8), sigma=0.0)])
def test_denoiser_refuses_bad_arguments(bad):
    with pytest.raises(ValueError):
        dd.dct_denoise(bad["y"], bad["sigma"])


def test_start_policy():
    auto = SolverConfig()
    noise = choose_start(auto, 25.0, None)
    assert noise.kind == "denoise" and noise.solver.iters == ITERS_FROM_DENOISED
    assert noise.solver.step_scale == pytest.approx(DENOISED_STEP_SCALE) and noise.solver.start_blur == 0
    jpeg = choose_start(auto, None, jpeg_equivalent_sigma(np.full((8, 8), 40.0)))
    assert jpeg.kind == "denoise" and jpeg.solver.step_scale == pytest.approx(JPEG_DENOISED_STEP_SCALE)
    assert choose_start(auto, None, None).kind == "blur"               # no noise level known
    assert choose_start(SolverConfig(start="denoise"), 0.5, None).kind == "blur"   # nothing to denoise
    blurred = choose_start(SolverConfig(start="blur"), 25.0, None)
    assert blurred.kind == "blur" and blurred.solver.start_blur == pytest.approx(1.0)
    assert blurred.solver.iters is None                                # map_restore's own default
    assert choose_start(SolverConfig(iters=7), 25.0, None).solver.iters == 7
    with pytest.raises(InputError, match="--start"):
        SolverConfig(start="bm3d").validate()


def test_jpeg_equivalent_noise():
    assert jpeg_equivalent_sigma(None) == 0.0
    q = np.full((8, 8), 12.0)
    assert jpeg_equivalent_sigma(q) == pytest.approx(0.42 * 12 / np.sqrt(12))
    assert denoise_sigma(3.0, 4.0) == pytest.approx(5.0) and denoise_sigma(None, None) == 0.0


def test_map_restore_begins_at_the_given_start():
    from flowrt.operators import build_forward_model
    from flowrt.prior.architecture import ModelConfig
    from flowrt.prior.flow import FlowModel
    prior = FlowModel(ModelConfig(levels=2, steps_per_level=1, width=8))
    y = np.full((8, 8, 3), 0.5, np.float32)
    start = torch.full((1, 3, 8, 8), 0.25)
    result = map_restore(prior, build_forward_model(y, sigma=10.0), SolverConfig(iters=0), start=start)
    assert torch.equal(result.x, start)
