"""The inpainting splitting (flowrt.solve.inpaint) and how a mask-only restore is planned (issue 22)."""
from __future__ import annotations

import numpy as np
import pytest

from flowrt.solve.config import SolverConfig
from flowrt.solve.inpaint import inpaint_restore, inpaint_schedule, mask_blend, smooth_fill
from flowrt.solve.start import choose_start


def as_batch(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))[None].astype(np.float32)


def disc_holes(h: int, w: int, centres, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.any([(yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2 for cy, cx in centres], axis=0)


def texture(h: int, w: int, seed: int) -> np.ndarray:
    """float32 (h, w, 3) in [0, 1]: oblique colour stripes plus a seeded smooth random field."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    field = np.cumsum(np.cumsum(rng.normal(0, 1, (h, w)), 0), 1)
    field = (field - field.mean()) / (field.std() + 1e-9)
    rgb = np.stack([0.5 + 0.3 * np.sin(0.15 * xx + 0.1 * yy + p) + 0.05 * field for p in (0.0, 1.5, 3.0)], -1)
    return np.clip(rgb, 0, 1).astype(np.float32)


class BlurDenoiser:
    """A stand-in Denoiser: a 3x3 box blur (keeps a linear ramp, smooths stripes)."""
    name = "box"

    def __init__(self):
        self.sigmas = []

    def denoise(self, rgb, sigma, *, greyscale=False, coarse=False, pilot=None, final=False):
        self.sigmas.append(sigma)
        padded = np.pad(rgb, ((1, 1), (1, 1), (0, 0)), mode="edge")
        h, w = rgb.shape[:2]
        return sum(padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)) / 9.0


def test_a_smooth_gradient_hole_is_filled_within_a_small_error():
    h, w = 48, 64
    yy, xx = np.mgrid[0:h, 0:w]
    ramp = np.stack([0.2 + 0.6 * xx / w, 0.1 + 0.7 * yy / h, 0.5 + 0.2 * (xx - yy) / w], -1).astype(np.float32)
    holes = disc_holes(h, w, [(24, 30)], 11)
    observed = as_batch(np.where(holes[..., None], 0, ramp))
    filled = smooth_fill(observed, (~holes).astype(np.float32)[None, None])[0].transpose(1, 2, 0)
    assert np.abs(filled - ramp)[holes].max() < 0.02
    assert np.array_equal(filled[~holes], ramp[~holes])   # observed pixels untouched


def test_the_mask_blend_keeps_observed_pixels_and_takes_the_estimate_in_holes():
    y, z = np.full((1, 3, 4, 4), 0.8, np.float32), np.full((1, 3, 4, 4), 0.2, np.float32)
    observed = np.zeros((1, 1, 4, 4), np.float32)
    observed[..., :2] = 1
    exact = mask_blend(y, observed, z, 0.0)
    assert np.allclose(exact[..., :2], 0.8) and np.allclose(exact[..., 2:], 0.2)
    weighted = mask_blend(y, observed, z, 1.0)
    assert np.allclose(weighted[..., :2], 0.5)


def test_the_schedule_falls_from_high_to_the_noise_floor():
    schedule = inpaint_schedule(0.0)
    assert schedule[0] > schedule[-1] and np.all(np.diff(schedule) < 0)
    assert inpaint_schedule(20.0)[-1] == pytest.approx(20.0)


@pytest.mark.parametrize("noise_255", [0.0, 10.0])
def test_observed_pixels_stay_near_the_observation(noise_255):
    clean = texture(40, 36, seed=1)
    holes = disc_holes(40, 36, [(12, 10), (28, 25)], 6)
    rng = np.random.default_rng(2)
    noisy = np.clip(clean + rng.normal(0, noise_255 / 255, clean.shape), 0, 1).astype(np.float32)
    denoiser = BlurDenoiser()
    out = inpaint_restore(as_batch(np.where(holes[..., None], 0, noisy)), (~holes).astype(np.float32)[None, None],
                          denoiser, noise_255)[0].transpose(1, 2, 0)
    assert len(denoiser.sigmas) > 1 and denoiser.sigmas[0] > denoiser.sigmas[-1]   # the rounds ran, falling
    gap = np.abs(out - noisy)[~holes]
    assert gap.max() < 1e-6 if noise_255 == 0 else gap.mean() < noise_255 / 255
    assert out[holes].mean() > 0.2   # the black holes are filled


def test_a_mask_only_chain_plans_the_inpainting_start():
    start = choose_start(SolverConfig(), 0.0, None, inpaints=True)
    assert start.kind == "inpaint" and start.solver.iters == 0
    assert choose_start(SolverConfig(start="split"), 5.0, None, inpaints=True).kind == "inpaint"
    assert choose_start(SolverConfig(start="blur"), 0.0, None, inpaints=True).kind == "blur"
    assert choose_start(SolverConfig(), 5.0, 3.0, inpaints=True).kind != "inpaint"   # a JPEG keeps its term
    assert choose_start(SolverConfig(), 5.0, None, inverts=True, inpaints=True).kind == "split"


def test_a_textured_hole_beats_the_old_path_and_the_plan_says_so():
    """Default restore (inpainting splitting, no prior engine) against the old path (blurred start
    then the flow MAP, ``start='blur'``), inside the holes of a seeded texture."""
    from flowrt.api import restore
    clean = texture(48, 48, seed=3)
    holes = disc_holes(48, 48, [(14, 14), (32, 30)], 7)
    observed = np.round(np.where(holes[..., None], 0, clean) * 255).astype(np.uint8)
    reference = np.round(clean * 255)

    def hole_psnr(result):
        return 10 * np.log10(255 ** 2 / np.mean((result.image.astype(np.float64) - reference)[holes] ** 2))

    new = restore(observed, mask=holes, sigma=0)
    old = restore(observed, mask=holes, sigma=0, start="blur")
    assert new.plan.start.kind == "inpaint" and not new.plan.needs_prior
    assert "inpainting: smooth fill" in new.plan.describe()
    assert hole_psnr(new) > hole_psnr(old) + 1.0
    assert np.abs(new.image.astype(np.float64) - observed)[~holes].max() <= 1   # observed pixels kept
