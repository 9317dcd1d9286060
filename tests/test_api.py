"""The Python API: ``flowrt.restore`` on paths, arrays and PIL images, ``estimate_noise``,
``score``, ``load_prior``, the options dataclass, and ``import flowrt`` staying light.
Tiny exported prior (conftest ``tiny_prior``), 2-3 iterations, small seeded images."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import flowrt
from flowrt.errors import InputError


def noisy_photo(h: int = 26, w: int = 34, sigma: float = 20, seed: int = 0, channels: int = 3) -> np.ndarray:
    """uint8 (h, w, channels): smooth ramps plus Gaussian noise of std sigma (0-255)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    planes = np.stack([60 + 120 * (a * yy + (1 - a) * xx) for a in rng.uniform(0, 1, channels)], axis=2)
    return np.clip(np.round(planes + rng.normal(0, sigma, planes.shape)), 0, 255).astype(np.uint8)


@pytest.fixture
def quick(tiny_prior):
    """flowrt.restore with the tiny prior and 2 iterations."""
    def run(image, **options):
        options.setdefault("iters", 2)
        return flowrt.restore(image, model=tiny_prior, **options)
    return run


@pytest.fixture
def no_solver(monkeypatch):
    import flowrt.solve.solver

    def must_not_run(*args, **kwargs):
        raise AssertionError("the MAP solver ran")
    monkeypatch.setattr(flowrt.solve.solver, "map_restore", must_not_run)


@pytest.mark.parametrize("dtype, top", [(np.uint8, 255), (np.uint16, 65535)])
def test_integer_arrays_come_back_in_their_dtype_and_layout(quick, dtype, top):
    rgb = (noisy_photo().astype(np.float64) / 255 * top).astype(dtype)
    result = quick(rgb, sigma=15)
    assert result.image.shape == rgb.shape and result.image.dtype == dtype
    assert result.plan.sigma == 15 and "noise sigma 15.0 (given)" in result.plan.describe()
    assert not result.unchanged and not np.array_equal(result.image, rgb)


def test_grey_float_and_rgba_arrays(quick):
    grey = noisy_photo(channels=1)[..., 0]
    out = quick(grey)                      # sigma auto: estimated from the image
    assert out.image.shape == grey.shape and out.image.dtype == np.uint8
    assert out.plan.sigma_source == "estimated" and 14 < out.plan.sigma < 26
    as_float = quick(grey / 255.0, sigma=20).image
    assert as_float.dtype == np.float64 and as_float.shape == grey.shape   # the input's float type and 0 <= as_float.min() <= as_float.max() <= 1
    rgba = np.concatenate([noisy_photo(), np.full(grey.shape + (1,), 77, np.uint8)], axis=2)
    out = quick(rgba, sigma=10, scale=2)
    assert out.image.shape == (52, 68, 4) and np.all(out.image[..., 3] == 77)


def test_path_and_pil_inputs(quick, tmp_path):
    path = tmp_path / "noisy.png"
    Image.fromarray(noisy_photo()).save(path)
    from_path = quick(str(path), sigma=20)
    from_pil = quick(Image.open(path), sigma=20)
    assert from_path.image.shape == (26, 34, 3) and from_path.image.dtype == np.uint8
    np.testing.assert_array_equal(from_path.image, from_pil.image)
    jpeg = tmp_path / "b.jpg"
    Image.fromarray(noisy_photo(32, 32)).save(jpeg, quality=40)
    assert "JPEG data term from the file's own tables" in quick(jpeg).plan.describe()


def test_options_as_a_dataclass_or_keywords(quick, tiny_prior):
    image = noisy_photo()
    opts = flowrt.RestoreOptions(sigma=12, solver=flowrt.SolverConfig(iters=2))
    by_dataclass = flowrt.restore(image, opts, model=tiny_prior)
    by_keywords = quick(image, sigma=12)
    np.testing.assert_array_equal(by_dataclass.image, by_keywords.image)
    assert by_dataclass.options == by_keywords.options
    with pytest.raises(InputError, match="unknown restore option"):
        quick(image, sigmaa=3)
    with pytest.raises(InputError, match="not both"):
        flowrt.restore(image, opts, sigma=3)
    with pytest.raises(InputError, match="sigma"):
        quick(image, sigma=-1)
    with pytest.raises(InputError, match="device"):
        quick(image, device="gpu1")
    with pytest.raises(InputError, match="uint8, uint16 or float"):
        quick(image.astype(np.int32))
    with pytest.raises(InputError, match="shape"):
        quick(np.zeros((4, 4, 5), np.uint8))


def test_options_are_checked_when_made_and_never_again():
    """A RestoreOptions (and its SolverConfig) that exists is valid: a bad value fails at
    construction and through dataclasses.replace, so no caller validates it again."""
    import dataclasses
    with pytest.raises(InputError, match="--scale"):
        flowrt.RestoreOptions(scale=0)
    with pytest.raises(InputError, match="--lam"):
        flowrt.SolverConfig(lam=-1.0)
    with pytest.raises(InputError, match="--jpeg"):
        dataclasses.replace(flowrt.RestoreOptions(), jpeg=101)


def test_the_plan_names_what_ran(quick):
    """Restored.plan says which start, denoiser, iteration count and engine did the work, and a
    progress callback hears each phase in turn with its own total."""
    seen = []
    result = quick(noisy_photo(), sigma=12, denoiser="grouped",
                   progress=lambda stage, done, total: seen.append((stage, done, total)))
    plan = result.plan
    assert plan.start.kind == "denoise" and plan.denoiser == "grouped" and plan.solver.iters == 2
    assert plan.engine in ("ort", "torch") and plan.device == "cpu"
    assert plan.stages() == (("denoise", 1), ("MAP", 2))
    assert seen == [("denoise", 0, 1), ("denoise", 1, 1), ("MAP", 1, 2), ("MAP", 2, 2)]
    assert plan.describe().endswith(f"grouped denoiser, clipped noise mapped back, then 2 flow-MAP iterations; engine {plan.engine} on cpu")
    flow = quick(noisy_photo(), sigma=12, iters=None).plan          # the default: the flow denoiser alone
    assert flow.denoiser == "flow" and flow.solver.iters == 0 and flow.stages() == (("denoise", 1),)
    assert flow.describe_method().startswith("flow denoiser alone, clipped noise mapped back (no flow-MAP iterations)")
    blurred = quick(noisy_photo(), sigma=12, start="blur", iters=3).plan
    assert blurred.stages() == (("MAP", 3),) and "blurred start" in blurred.describe_method()


def test_a_given_sigma_reads_no_noise_sample(quick, monkeypatch):
    import flowrt.pipeline.plan as plan_module
    monkeypatch.setattr(plan_module, "noise_sample", lambda *args: pytest.fail("the noise sample was read"))
    assert quick(noisy_photo(), sigma=12).plan.sigma_source == "given"


def test_a_clean_image_is_returned_unchanged_without_a_solver_run(quick, no_solver):
    yy, xx = np.mgrid[0:30, 0:40]
    clean = np.stack([(60 + 3 * xx + 2 * yy).astype(np.uint8)] * 3, axis=2)
    result = quick(clean)
    assert result.unchanged and result.plan.nothing_to_do.startswith("nothing to restore: estimated noise")
    np.testing.assert_array_equal(result.image, clean)


def test_estimate_noise_on_grey_and_colour(tmp_path):
    for sigma in (5, 25):
        grey = noisy_photo(96, 96, sigma, seed=sigma, channels=1)
        colour = noisy_photo(96, 96, sigma, seed=sigma)
        for image in (grey[..., 0], grey, np.repeat(grey, 3, axis=2), colour):
            assert abs(flowrt.estimate_noise(image) - sigma) <= 0.1 * sigma
    path = tmp_path / "grey.png"
    Image.fromarray(noisy_photo(96, 96, 25, channels=1)[..., 0]).save(path)
    assert abs(flowrt.estimate_noise(path) - 25) <= 2.5


def test_score_and_a_reused_prior(tiny_prior):
    image = noisy_photo(32, 32)
    result = flowrt.score(image, model=tiny_prior)
    assert np.isfinite(result.bits_per_dim) and result.bits_per_dim > 0 and not result.cropped
    prior = flowrt.load_prior(tiny_prior, device="cpu")
    first = flowrt.restore(image, prior=prior, sigma=10, iters=2)
    again = flowrt.restore(image, prior=prior, sigma=10, iters=2)
    np.testing.assert_array_equal(first.image, again.image)


def test_import_flowrt_is_light():
    probe = ("import sys, flowrt; flowrt.RestoreOptions; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnxruntime', 'numba') "
             "or m == 'flowrt.api'))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert "restore" in dir(flowrt)
    with pytest.raises(AttributeError):
        flowrt.no_such_thing
