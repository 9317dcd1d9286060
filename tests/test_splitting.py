"""The plug-and-play splitting start: its schedule, its data step, and that it inverts what the
denoised start cannot (a downsampling), on small seeded images."""
from __future__ import annotations

import numpy as np
import pytest

from flowrt.denoise import GroupedDenoiser
from flowrt.numeric.chain import build_forward_model
from flowrt.solve import splitting
from flowrt.solve.splitting import END_FACTOR, SIGMA_START_255, sigma_schedule, split_restore
from flowrt.solve.start import denoised_start, split_start


def _scene(size: int = 48, seed: int = 3) -> np.ndarray:
    """A smooth-edged test picture (discs and bars) in [0, 1], (size, size, 3) float32."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = np.zeros((size, size, 3), np.float32)
    for _ in range(6):
        cy, cx, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.08, 0.25)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0.1, 0.9, 3)
    image[:, :, 1] += 0.2 * (np.sin(18 * xx) > 0)
    return np.clip(image, 0, 1)


def _observe(clean: np.ndarray, sigma_255: float, seed: int = 0):
    """Downsample x2 with the chain's own operator and add noise: (observation (h, w, 3), forward model)."""
    exact = build_forward_model(clean[::2, ::2], sigma=sigma_255, scale=2)
    low = exact.apply(np.ascontiguousarray(clean.transpose(2, 0, 1))[None])[0].transpose(1, 2, 0)
    noisy = np.clip(low + np.random.default_rng(seed).normal(0, sigma_255 / 255, low.shape), 0, 1).astype(np.float32)
    return noisy, build_forward_model(noisy, sigma=sigma_255, scale=2)


def test_schedule_falls_geometrically_to_the_noise():
    s = sigma_schedule(10.0, 5)
    assert s[0] == pytest.approx(SIGMA_START_255) and s[-1] == pytest.approx(END_FACTOR * 10.0)
    assert np.all(np.diff(s) < 0) and np.allclose(s[1:] / s[:-1], s[1] / s[0])
    loud = sigma_schedule(60.0, 4)          # noisier than the usual start: flat at the end value
    assert np.allclose(loud, END_FACTOR * 60.0)


def test_data_step_fits_the_observation():
    """With no coupling (mu 0) the accelerated gradient steps lower the data term from z; with a
    huge coupling they stay at z."""
    clean = _scene()
    noisy, fm = _observe(clean, 5.0)
    z = fm.initial_estimate()
    x, curvature = splitting._data_step(fm, z, 0.0, 1.0)
    assert curvature > 1.0 and fm.nll(x)[0] < 0.8 * fm.nll(z)[0]
    stuck, _ = splitting._data_step(fm, z, 1e12, curvature)
    assert np.abs(stuck - z).max() < 1e-4


def test_split_beats_the_denoised_start_on_an_upscale():
    clean = _scene(64)
    noisy, fm = _observe(clean, 6.0)
    rounds = []
    split = split_start(fm, 6.0, False, GroupedDenoiser(), progress=lambda done, total: rounds.append((done, total)))
    plain = denoised_start(fm, 6.0, False, GroupedDenoiser())
    truth = clean.transpose(2, 0, 1)[None]
    assert split.shape == truth.shape and split.dtype == np.float32 and 0 <= split.min() and split.max() <= 1
    assert np.mean((split - truth) ** 2) < 0.8 * np.mean((plain - truth) ** 2)
    assert rounds == [(k, splitting.ROUNDS) for k in range(1, splitting.ROUNDS + 1)]


def test_split_is_deterministic_and_checks_its_noise_level():
    noisy, fm = _observe(_scene(32), 6.0)
    a = split_restore(fm, GroupedDenoiser(), 6.0, rounds=3)
    b = split_restore(fm, GroupedDenoiser(), 6.0, rounds=3)
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="noise_255"):
        split_restore(fm, GroupedDenoiser(), 0.0)


def test_backtracking_stops_on_a_non_finite_data_term():
    """A data term that is NaN everywhere off its start must not hang the search: the curvature
    grows to the cap and the step shrinks to nothing."""
    class Broken:
        def nll(self, x):
            return np.array([np.nan])

    v = np.zeros((1, 3, 4, 4))
    curvature = splitting._backtrack(Broken(), v, 1.0, np.ones_like(v), 1.0)
    assert curvature == 2.0 ** splitting.MAX_DOUBLINGS


def test_progress_reports_the_rounds_then_the_map_iterations():
    """One restore with a split start reports its stages in order, split rounds then MAP
    iterations, each with its own total and never going back."""
    from flowrt.pipeline.plan import RestorationPlan
    from flowrt.pipeline.region import restore_region
    from flowrt.prior.architecture import ModelConfig
    from flowrt.prior.flow import FlowModel
    from flowrt.solve.config import SolverConfig
    prior = FlowModel(ModelConfig(levels=2, steps_per_level=1, width=8))
    noisy, _ = _observe(_scene(32), 6.0)
    plan = RestorationPlan(6.0, "given", None, "test", 2, None, None).with_method(SolverConfig(iters=3))
    assert plan.stages() == (("split", splitting.ROUNDS), ("MAP", 3))
    seen = []
    out = restore_region(noisy, (0, 16, 0, 16), plan.with_engine(prior), prior, greyscale=False,
                         progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert out.shape == (32, 32, 3)
    rounds = [(d, t) for s, d, t in seen if s == "split"]
    iterations = [(d, t) for s, d, t in seen if s == "MAP"]
    assert rounds == [(d, splitting.ROUNDS) for d in range(splitting.ROUNDS + 1)]
    assert iterations == [(d, 3) for d in (1, 2, 3)]
    assert [s for s, _, _ in seen] == ["split"] * (splitting.ROUNDS + 1) + ["MAP"] * 3


def test_a_noiseless_upscale_is_inverted_by_the_splitting_at_the_floor_std():
    """No noise: the splitting still inverts the downsampling (the plan runs it with the denoiser
    ending at NOISELESS_SPLIT_SIGMA_255), far closer to the truth than the bicubic enlargement."""
    from flowrt.solve.start import NOISELESS_SPLIT_SIGMA_255, choose_start
    from flowrt.solve.config import SolverConfig
    clean = _scene(64)
    exact = build_forward_model(clean[::2, ::2], sigma=0.0, scale=2)
    low = exact.apply(np.ascontiguousarray(clean.transpose(2, 0, 1))[None])[0].transpose(1, 2, 0)
    low = (np.round(np.clip(low, 0, 1) * 255) / 255).astype(np.float32)
    fm = build_forward_model(low, sigma=0.0, scale=2)
    plan = choose_start(SolverConfig(), 0.0, None, inverts=True)
    assert plan.kind == "split" and plan.denoise_sigma_255 == NOISELESS_SPLIT_SIGMA_255
    split = split_start(fm, plan.denoise_sigma_255, False, GroupedDenoiser())
    truth = clean.transpose(2, 0, 1)[None]
    enlarged = fm.initial_estimate()
    assert np.mean((split - truth) ** 2) < 0.7 * np.mean((enlarged - truth) ** 2)


def _jpeg_upscale_chain(size: int):
    """A x2 chain observed as a quality-50 JPEG of size // 2 px (4:2:0), as the multi task's files are."""
    from flowrt.io.jpeg_coefficients import jpeg_info_for_quality
    clean = _scene(size)
    exact = build_forward_model(clean[::2, ::2], scale=2)
    low = exact.apply(np.ascontiguousarray(clean.transpose(2, 0, 1))[None])[0].transpose(1, 2, 0)
    info = jpeg_info_for_quality(np.clip(low, 0, 1), 50)
    return build_forward_model(np.clip(low, 0, 1).astype(np.float32), sigma=4.0, jpeg=info, scale=2)


def test_jpeg_padding_copies_weigh_the_edge():
    """A 30 px JPEG is coded as 32 px (16 px MCUs): its last row and column fill 3 samples, the
    corner 9; on the restored grid the weights stay 1 inside and rise towards the edge."""
    fm = _jpeg_upscale_chain(60)
    copies = fm.likelihood.curvature_weights()
    assert copies.shape == (30, 30) and copies[0, 0] == 1 and copies[-1, 5] == 3 and copies[-1, -1] == 9
    weights = fm.curvature_weights()
    assert weights.shape == (1, 1, 60, 60) and np.allclose(weights[..., :50, :50], 1.0)
    assert weights[0, 0, -1, -1] > 4 and np.all(weights >= 1)
    assert build_forward_model(np.zeros((8, 8, 3), np.float32), sigma=5.0).curvature_weights() is None


def test_data_step_is_not_stalled_by_the_jpeg_padding(monkeypatch):
    """Where the JPEG's size is not a whole number of MCUs (26 px coded as 32), one global step
    sized for the edge pixels (copied 7 times into the padding) barely moves the rest: the weighted
    step fits the file's coefficients far better in the same number of steps. An MCU-aligned file
    (32 px) has no padding, and its step is unchanged."""
    for size, gain in ((52, 2.0), (64, 1.0)):
        fm = _jpeg_upscale_chain(size)
        z = fm.initial_estimate()
        weighted, _ = splitting._data_step(fm, z, 0.0, 1.0)
        monkeypatch.setattr(fm, "curvature_weights", lambda: None)
        uniform, _ = splitting._data_step(fm, z, 0.0, 1.0)
        fit_weighted, fit_uniform = fm.nll(weighted)[0], fm.nll(uniform)[0]
        assert fit_weighted < fm.nll(z)[0] / 10
        if gain > 1:
            assert fit_weighted * gain < fit_uniform
        else:
            np.testing.assert_array_equal(weighted, uniform)
