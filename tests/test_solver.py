"""The MAP solver on its own: a tiny exported prior (conftest's ``tiny_prior``), a Gaussian
forward model, odd-sized images. Shapes, ranges, the energy going down, the NaN guard's
fallback, ``iters=0``, and padding to the prior's multiple."""
from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest
import torch

from flowrt.errors import InputError
from flowrt.prior.folders import load_torch_prior
from flowrt.operators import build_forward_model
from flowrt.solve.solver import SolverConfig, map_restore, pad_to_multiple

H, W = 19, 23  # neither a multiple of the prior's 4


@pytest.fixture(scope="module")
def prior(tiny_prior):
    return load_torch_prior(tiny_prior)


def noisy_photo(h: int = H, w: int = W, sigma_255: float = 15.0, seed: int = 0) -> np.ndarray:
    """float32 (h, w, 3) in [0, 1]: smooth ramps plus Gaussian noise of std sigma_255 / 255."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    clean = np.stack([0.25 + 0.5 * (a * yy + (1 - a) * xx) for a in (0.2, 0.5, 0.9)], axis=2)
    return np.clip(clean + rng.normal(0, sigma_255 / 255, clean.shape), 0, 1).astype(np.float32)


@pytest.fixture
def forward_model():
    return build_forward_model(noisy_photo(), sigma=15.0)


@pytest.mark.parametrize("space", ["image", "latent"])
def test_both_spaces_return_a_finite_image_in_range(space, prior, forward_model):
    result = map_restore(prior, forward_model, SolverConfig(space=space, iters=6))
    assert result.x.shape == (1, 3, H, W) and result.x.dtype == torch.float32
    assert torch.isfinite(result.x).all()
    assert result.x.min() >= 0 and result.x.max() <= 1
    assert not result.fell_back
    assert len(result.objective) == 6 and all(np.isfinite(result.objective))
    assert not torch.equal(result.x, forward_model.initial_estimate())


@pytest.mark.parametrize("space", ["image", "latent"])
def test_energy_decreases_on_average(space, prior, forward_model):
    cfg = SolverConfig(space=space, iters=30, warmup=2)
    history = map_restore(prior, forward_model, cfg).objective
    assert np.mean(history[-5:]) < np.mean(history[:5])
    assert min(history) < history[0]


def test_same_seed_same_answer(prior, forward_model):
    cfg = SolverConfig(iters=4, seed=3)
    assert torch.equal(map_restore(prior, forward_model, cfg).x, map_restore(prior, forward_model, cfg).x)


class NaNPrior(torch.nn.Module):
    """Wraps a flow and poisons its density: log_prob and the generator's logdet are NaN."""

    def __init__(self, flow):
        super().__init__()
        self.flow = flow
        self.multiple = flow.multiple
        self.calls = 0

    def forward(self, x):
        return self.flow(x)

    def level_map(self, h, w):
        return self.flow.level_map(h, w)

    def log_prob(self, x):
        self.calls += 1
        return self.flow.log_prob(x) * float("nan")

    def inverse(self, u):
        self.calls += 1
        x, logdet = self.flow.inverse(u)
        return x, logdet * float("nan")


@pytest.mark.parametrize("space", ["image", "latent"])
def test_nan_guard_falls_back_to_the_starting_estimate(space, prior, forward_model, caplog):
    poisoned = NaNPrior(prior)
    cfg = SolverConfig(space=space, iters=5, max_retries=2)
    with caplog.at_level(logging.WARNING, logger="flowrt.solve.solver"):
        result = map_restore(poisoned, forward_model, cfg)
    assert result.fell_back
    assert torch.equal(result.x, forward_model.initial_estimate())
    assert poisoned.calls >= cfg.max_retries + 1  # every retry was tried before giving up
    assert "did not converge" in caplog.text


def test_iters_zero_returns_the_initial_estimate(prior, forward_model):
    for space in ("image", "latent"):
        result = map_restore(prior, forward_model, SolverConfig(space=space, iters=0))
        assert torch.equal(result.x, forward_model.initial_estimate())
        assert not result.fell_back and result.objective == []


def test_super_resolution_returns_the_restored_size(prior):
    fm = build_forward_model(noisy_photo(11, 13), sigma=5.0, scale=2)
    result = map_restore(prior, fm, SolverConfig(iters=3))
    assert result.x.shape == (1, 3, 22, 26) and torch.isfinite(result.x).all()


@pytest.mark.parametrize("h, w", [(19, 23), (1, 1), (2, 7), (5, 4), (8, 8)])
def test_pad_to_multiple_on_odd_sizes(h, w):
    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(h * 100 + w))
    padded = pad_to_multiple(x, 4)
    assert padded.shape[:2] == (2, 3)
    assert padded.shape[2] % 4 == 0 and padded.shape[3] % 4 == 0
    assert h <= padded.shape[2] < h + 4 and w <= padded.shape[3] < w + 4
    assert torch.equal(padded[..., :h, :w], x)  # padding only at the bottom and right
    if (h, w) == (8, 8):
        assert padded is x
    ph, pw = padded.shape[2] - h, padded.shape[3] - w
    if ph:  # never zeros: mirrored where the side is long enough to reflect, else the edge repeated
        mirrored = ph < h and pw < w
        assert torch.equal(padded[..., h, :w], x[..., h - 2 if mirrored else h - 1, :])


def test_solver_config_refuses_bad_values():
    for bad in (dict(space="pixels"), dict(iters=-1), dict(lam=-0.1), dict(lam=float("nan")),
                dict(lam=float("inf")), dict(average_tail=1.5), dict(coarse_prior=-1.0),
                dict(coarse_prior=float("nan")), dict(discrepancy=-0.5), dict(discrepancy=float("inf")),
                dict(final_lr=1.5), dict(final_lr=float("nan")), dict(step_scale=0.0),
                dict(step_scale=float("nan"))):
        with pytest.raises(InputError):
            replace(SolverConfig(), **bad).validate()


def test_coarse_prior_acts_only_when_upscaling(prior):
    """The prior on D x enters the objective for --scale 2 and is ignored at scale 1."""
    def restore(fm, coarse):
        return map_restore(prior, fm, SolverConfig(iters=4, coarse_prior=coarse)).x
    small = noisy_photo(10, 12, sigma_255=8.0)
    upscale = build_forward_model(small, sigma=8.0, scale=2)
    with_coarse, without = restore(upscale, 0.6), restore(upscale, 0.0)
    assert with_coarse.shape == (1, 3, 20, 24) and torch.isfinite(with_coarse).all()
    assert not torch.equal(with_coarse, without)
    same_size = build_forward_model(small, sigma=8.0)
    assert torch.equal(restore(same_size, 0.6), restore(same_size, 0.0))


@pytest.mark.cuda
@pytest.mark.parametrize("space", ["image", "latent"])
def test_cuda_path_returns_a_finite_cpu_image(space, tiny_prior, forward_model):
    prior = load_torch_prior(tiny_prior)  # its own copy: map_restore moves the prior to the device
    result = map_restore(prior, forward_model, SolverConfig(space=space, iters=4), device=torch.device("cuda"))
    assert result.x.device.type == "cpu" and result.x.shape == (1, 3, H, W)
    assert torch.isfinite(result.x).all() and not result.fell_back


def test_discrepancy_keeps_the_misfit_near_what_the_noise_explains(prior):
    """With a prior weight far too high, the estimate leaves the data; the discrepancy principle
    raises the data term's weight, pulling the misfit back towards its expected value."""
    fm = build_forward_model(noisy_photo(sigma_255=15.0), sigma=15.0)
    def misfit(discrepancy):
        x = map_restore(prior, fm, SolverConfig(iters=60, lam=50.0, discrepancy=discrepancy)).x
        return float(fm.nll(x) / fm.expected_nll(x))
    free, held = misfit(0.0), misfit(1.0)
    assert held < 0.7 * free  # 2.7x -> 1.8x its expectation in 60 iterations on the tiny prior


def test_schedule_warms_up_then_decays_to_final_lr():
    from flowrt.solve.schedule import lr_schedule as _schedule
    cfg = SolverConfig(iters=20, warmup=4, final_lr=0.3)
    assert _schedule(0, cfg) == pytest.approx(0.25)
    assert _schedule(4, cfg) == pytest.approx(1.0)
    assert _schedule(20, cfg) == pytest.approx(0.3)
    assert all(_schedule(i, cfg) >= _schedule(i + 1, cfg) for i in range(4, 20))
