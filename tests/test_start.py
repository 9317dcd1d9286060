"""Where the MAP starts: the start policy, the JPEG's equivalent noise, a given start."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from flowrt.errors import InputError
from flowrt.solve.config import ITERS_AFTER_SPLIT, ITERS_FROM_OBSERVATION
from flowrt.solve.solver import ITERS_FROM_DENOISED, SolverConfig, map_restore
from flowrt.solve.start import (DENOISED_STEP_SCALE, JPEG_DENOISED_STEP_SCALE, NOISELESS_SPLIT_SIGMA_255,
                                SPLIT_STEP_SCALE, choose_start, denoise_sigma, jpeg_equivalent_sigma)


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
    assert blurred.solver.iters == ITERS_FROM_OBSERVATION               # resolved in the plan, not by the loop
    assert choose_start(SolverConfig(iters=7), 25.0, None).solver.iters == 7
    with pytest.raises(InputError, match="--start"):
        SolverConfig(start="bm3d").validate()


def test_split_start_policy():
    auto = SolverConfig()
    split = choose_start(auto, 8.0, 5.0, inverts=True)
    assert split.kind == "split" and split.solver.iters == ITERS_AFTER_SPLIT
    assert split.solver.step_scale == pytest.approx(JPEG_DENOISED_STEP_SCALE * SPLIT_STEP_SCALE)
    assert split.denoise_sigma_255 == pytest.approx(np.hypot(8.0, 5.0))
    assert choose_start(auto, 8.0, None, inverts=False).kind == "denoise"   # nothing to invert
    noiseless = choose_start(auto, None, None, inverts=True)             # no noise: still inverted by splitting
    assert noiseless.kind == "split" and noiseless.denoise_sigma_255 == NOISELESS_SPLIT_SIGMA_255
    assert choose_start(auto, 0.0, None, inverts=True).kind == "split"
    assert choose_start(SolverConfig(start="blur"), 0.0, None, inverts=True).kind == "blur"
    assert choose_start(SolverConfig(start="denoise"), 0.0, None, inverts=True).kind == "blur"   # nothing to denoise
    assert choose_start(SolverConfig(start="denoise"), 8.0, None, inverts=True).kind == "denoise"
    assert choose_start(SolverConfig(start="split"), 8.0, None, inverts=False).kind == "denoise"
    assert choose_start(SolverConfig(start="split"), 0.5, None, inverts=True).kind == "split"
    assert choose_start(SolverConfig(start="split", iters=3), 8.0, None, inverts=True).solver.iters == 3


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
