"""The numpy MAP loop (``--engine ort``) against the torch loop with the same ONNX Runtime prior.

The packaged default prior's gradient graph on tiny odd-sized images (a fraction of a second each).
Adam is torch's to float32 rounding; one iteration agrees to float32 precision; after that both
engines amplify rounding alike (Adam's first steps move every pixel by about the step whatever the
size of its gradient), so longer runs are compared as the two torch priors compare with each other.
"""
from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest
import torch

from flowrt.numeric.chain import build_forward_model as numpy_chain
from flowrt.operators import build_forward_model as torch_chain
from flowrt.prior.ort_gradient import OrtPriorGradient, OrtTorchPrior
from flowrt.solve.config import SolverConfig
from flowrt.solve.numpy_solver import Adam, map_restore_numpy
from flowrt.solve.solver import map_restore

H, W = 19, 23  # neither a multiple of the prior's 8


@pytest.fixture(scope="module")
def prior():
    return OrtPriorGradient(None, device="cpu", threads=1)


def noisy_photo(h: int = H, w: int = W, sigma_255: float = 15.0, seed: int = 0) -> np.ndarray:
    """float32 (h, w, 3) in [0, 1]: smooth ramps plus Gaussian noise of std sigma_255 / 255."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    clean = np.stack([0.25 + 0.5 * (a * yy + (1 - a) * xx) for a in (0.2, 0.5, 0.9)], axis=2)
    return np.clip(clean + rng.normal(0, sigma_255 / 255, clean.shape), 0, 1).astype(np.float32)


def both(prior, cfg: SolverConfig, **chain):
    """(torch loop's result, numpy loop's result) on the same observation and settings."""
    y = noisy_photo()
    return (map_restore(OrtTorchPrior(prior), torch_chain(y, **chain), cfg),
            map_restore_numpy(prior, numpy_chain(y, **chain), cfg))


def test_adam_is_torchs_adam():
    rng = np.random.default_rng(1)
    start = rng.random((1, 3, 5, 7)).astype(np.float32)
    ours, theirs = start.copy(), torch.from_numpy(start.copy()).requires_grad_(True)
    adam, reference = Adam(ours), torch.optim.Adam([theirs], lr=0.1)
    for step in range(12):
        grad = rng.normal(0, 10.0 ** rng.integers(-6, 3), start.shape).astype(np.float32)
        lr = 0.05 * (step + 1) / 12
        reference.param_groups[0]["lr"] = lr
        theirs.grad = torch.from_numpy(grad)
        reference.step()
        adam.step(ours, grad, lr)
    assert np.abs(ours - theirs.detach().numpy()).max() < 1e-6


@pytest.mark.parametrize("chain", [dict(sigma=15.0), dict(sigma=8.0, scale=2), dict(sigma=5.0, mask=np.eye(H, W) == 0)])
def test_one_iteration_is_the_torch_loops(prior, chain):
    cfg = SolverConfig(iters=1, lr=0.02, start_blur=0.6, average_tail=0.0)
    ours_torch, ours = both(prior, cfg, **chain)
    assert ours.x.shape == tuple(ours_torch.x.shape) and ours.x.dtype == np.float32
    assert np.abs(ours.x - ours_torch.x.numpy()).max() < 1e-6
    np.testing.assert_allclose(ours.objective, ours_torch.objective, rtol=1e-6)


@pytest.mark.parametrize("chain", [dict(sigma=15.0), dict(sigma=8.0, scale=2)])
def test_a_run_with_rebalancing_lands_where_the_torch_loop_does(prior, chain):
    """12 iterations: the discrepancy principle acts at iteration 10, the tail is averaged; x2 adds
    the coarse prior term. The torch FlowModel and ORT priors differ from each other by as much."""
    cfg = SolverConfig(iters=12, lr=0.02, start_blur=0.6, warmup=3)
    reference, ours = both(prior, cfg, **chain)
    difference = np.abs(ours.x - reference.x.numpy())
    assert difference.mean() < 1e-3 and difference.max() < 0.03
    np.testing.assert_allclose(ours.objective, reference.objective, rtol=5e-3)
    assert not ours.fell_back and len(ours.objective) == 12


def test_energy_decreases_and_the_answer_stays_in_range(prior):
    calls = []
    fm = numpy_chain(noisy_photo(), sigma=15.0)
    result = map_restore_numpy(prior, fm, SolverConfig(iters=25, warmup=2), progress=lambda i, n: calls.append((i, n)))
    assert calls == [(i, 25) for i in range(1, 26)]
    assert np.mean(result.objective[-5:]) < np.mean(result.objective[:5])
    assert result.x.min() >= 0 and result.x.max() <= 1 and np.isfinite(result.x).all()
    assert not np.array_equal(result.x, fm.initial_estimate())


def test_iters_zero_returns_the_start_and_start_overrides_it(prior):
    fm = numpy_chain(noisy_photo(), sigma=15.0)
    np.testing.assert_array_equal(map_restore_numpy(prior, fm, SolverConfig(iters=0, start_blur=0.0)).x,
                                  fm.initial_estimate())
    given = np.full((1, 3, H, W), 0.25, np.float32)
    np.testing.assert_array_equal(map_restore_numpy(prior, fm, SolverConfig(iters=0), start=given).x, given)


def test_nan_guard_retries_then_falls_back_to_the_start(prior, caplog):
    class Broken:
        multiple = prior.multiple

        def nll_and_grad(self, x):
            nll, grad = prior.nll_and_grad(x)
            return nll * np.nan, grad

    fm = numpy_chain(noisy_photo(), sigma=15.0)
    cfg = SolverConfig(iters=3, max_retries=2, start_blur=0.0)
    with caplog.at_level(logging.WARNING, logger="flowrt.solve.numpy_solver"):
        result = map_restore_numpy(Broken(), fm, cfg)
    assert result.fell_back and np.array_equal(result.x, fm.initial_estimate())
    assert sum("retrying with half the step" in r.message for r in caplog.records) == 3


def test_latent_space_is_refused(prior):
    with pytest.raises(ValueError, match="latent"):
        map_restore_numpy(prior, numpy_chain(noisy_photo(), sigma=15.0), replace(SolverConfig(), space="latent"))
