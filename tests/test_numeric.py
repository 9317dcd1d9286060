"""flowrt.numeric, the forward models both engines run, on tiny odd-sized images in float64.

The normal log-CDF against torch.special and the interval probability's derivative by central
differences; every linear stage's adjoint against its ``apply``; the chains seen through torch's
bridge (autograd's gradient is the numpy adjoint's); the starting estimate; the loop's padding and
smoothing against torch's. And the point of it all: nothing here imports torch.
"""
from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from flowrt import numeric  # noqa: F401 - the package itself imports nothing
from flowrt import operators as torch_ops
from flowrt.errors import InputError
from flowrt.io.jpeg_coefficients import read_jpeg_info
from flowrt.numeric import chain, normal
from flowrt.numeric.blur import Blur
from flowrt.numeric.downsample import BicubicDownsample
from flowrt.numeric.jpeg import JpegLikelihood
from flowrt.numeric.mask import Mask, fill_holes
from flowrt.numeric.padding import gaussian_blur, pad_to_multiple, pad_to_multiple_vjp

TORCH_FREE = ("flowrt.numeric.chain", "flowrt.numeric.padding", "flowrt.solve.numpy_solver", "flowrt.solve.start",
              "flowrt.prior.ort_gradient", "flowrt.prior.engines", "flowrt.pipeline.region", "flowrt.pipeline.run")


def rng_of(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def photo(h: int, w: int, seed: int) -> np.ndarray:
    """uint8 (h, w, 3): random colours bicubic-enlarged (few sharp edges, like photos)."""
    small = (rng_of(seed).random((h // 4 + 2, w // 4 + 2, 3)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))


def jpeg_info(img: np.ndarray, grey: bool = False, **kw):
    buf = io.BytesIO()
    (Image.fromarray(img).convert("L") if grey else Image.fromarray(img)).save(buf, "JPEG", **kw)
    return read_jpeg_info(buf.getvalue())


def torch_value_and_grad(fn, x: np.ndarray, upstream=None):
    """(fn(x) as numpy, d sum(upstream * fn(x)) / dx) by torch autograd in float64."""
    xt = torch.from_numpy(x).requires_grad_(True)
    out = fn(xt)
    out.backward(torch.ones_like(out) if upstream is None else torch.from_numpy(upstream))
    return out.detach().numpy(), xt.grad.numpy()


def assert_close(got, expected, rel):
    """Max abs difference within rel times the reference's largest magnitude."""
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= rel * max(np.abs(expected).max(), 1e-12)


def test_nothing_in_the_numpy_path_imports_torch():
    blocker = ("import sys\n"
               "class Block:\n"
               "    def find_spec(self, name, path=None, target=None):\n"
               "        if name == 'torch' or name.startswith('torch.'):\n"
               "            raise ImportError('torch is blocked')\n"
               "sys.meta_path.insert(0, Block())\n"
               "import importlib, pkgutil, flowrt.numeric\n"
               "names = [m.name for m in pkgutil.iter_modules(flowrt.numeric.__path__, 'flowrt.numeric.')]\n"
               f"for name in names + {list(TORCH_FREE)!r}:\n"
               "    importlib.import_module(name)\n"
               "assert 'torch' not in sys.modules\n"
               "print(len(names))\n")
    proc = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) >= 12


# ---------------------------------------------------------------- the normal log-CDF


def test_log_ndtr_matches_torch_special():
    x = np.linspace(-60, 10, 70001)
    value, grad = normal.log_ndtr_and_grad(x)
    expected, expected_grad = torch_value_and_grad(torch.special.log_ndtr, x.copy())
    near = x > normal.ASYMPTOTIC_BELOW
    assert np.abs(value - expected)[near].max() < 2e-7       # the fitted erfc: 1.2e-7 relative
    assert np.abs(value - expected).max() < 1e-6             # the asymptotic tail, the torch operator's
    assert np.abs(grad / expected_grad - 1).max() < 1e-6
    far_value, far_grad = normal.log_ndtr_and_grad(np.array([-1e6, -1e4, 1e4, 40.0]))
    assert np.isfinite(far_value).all() and np.isfinite(far_grad).all()
    assert far_grad[0] == pytest.approx(1e6) and far_value[2] == 0.0


def test_log_interval_prob_and_its_derivative():
    rng = rng_of(1)
    center = rng.integers(-20, 20, 4000) * 6.0
    mean = center + rng.normal(0, 40, 4000)
    mean[:5] = center[:5]                          # at the centre: zero slope
    mean[5:10] = center[5:10] + 1e4                # far outside: finite
    half = np.full(4000, 3.0)
    value, grad = normal.log_interval_prob_and_grad(center, half, mean, 4.0)
    step = 1e-5
    slope = (normal.log_interval_prob(center, half, mean + step, 4.0)
             - normal.log_interval_prob(center, half, mean - step, 4.0)) / (2 * step)
    assert np.abs(grad - slope)[10:].max() < 1e-5 * np.abs(grad).max()
    assert (grad[:5] == 0).all() and np.isfinite(value).all()
    assert (grad[5:10] < 0).all()                  # pulls the mean back down towards the interval


# ---------------------------------------------------------------- linear stages: apply and adjoint


STAGES = {
    "blur_separable": lambda: Blur(torch_ops.parse_blur("gaussian:0.8")),
    "blur_direct": lambda: Blur(K34),
    "blur_fft": lambda: Blur(K1615),
    "downsample_x2": lambda: BicubicDownsample((11, 9), 2),
    "downsample_x3": lambda: BicubicDownsample((11, 9), 3),
    "mask": lambda: Mask(MASK),
}
K34, K1615 = rng_of(2).random((3, 4)), rng_of(3).random((16, 15))
MASK = rng_of(4).random((11, 9)) > 0.4


@pytest.mark.parametrize("name", sorted(STAGES))
def test_each_stage_keeps_float32(name):
    x = rng_of(5).random((2, 3, 11, 9)).astype(np.float32)
    out = STAGES[name]().apply(x)
    assert out.dtype == np.float32 and STAGES[name]().vjp(out).dtype == np.float32


def test_adjoints_are_transposes():
    """<A x, g> == <x, A^T g> for every stage, in float64."""
    x, g = rng_of(7).random((1, 3, 11, 9)), None
    for name in sorted(STAGES):
        stage = STAGES[name]()
        ax = stage.apply(x)
        g = rng_of(8).random(ax.shape)
        assert np.vdot(ax, g) == pytest.approx(np.vdot(x, stage.vjp(g)), rel=1e-12), name


# ---------------------------------------------------------------- likelihoods: nll and gradient


def test_jpeg_gradient_is_the_derivative_of_its_nll():
    """Central differences on a few pixels, float64 (the torch comparison checks the rest)."""
    img = photo(11, 13, 13)
    term = JpegLikelihood(jpeg_info(img, quality=40, subsampling=2), 6.0)
    z = np.clip(img.transpose(2, 0, 1)[None] / 255.0 + rng_of(14).normal(0, 0.03, (1, 3, 11, 13)), 0.05, 0.95)
    grad = term.nll_and_grad(z)[1]
    for index in [(0, 0, 0, 0), (0, 1, 5, 7), (0, 2, 10, 12), (0, 0, 10, 3)]:
        step = np.zeros_like(z)
        step[index] = 1e-6
        numeric_slope = (term.nll(z + step) - term.nll(z - step))[0] / 2e-6
        assert numeric_slope == pytest.approx(grad[index], rel=1e-4, abs=1e-3)


# ---------------------------------------------------------------- chains


CHAINS = {
    "noise": lambda y, keep: dict(sigma=15.0),
    "grey": lambda y, keep: dict(sigma=10.0, greyscale=True),
    "blur_x2_mask": lambda y, keep: dict(sigma=8.0, scale=2, blur=torch_ops.parse_blur("gaussian:0.7"), mask=keep),
    "x2": lambda y, keep: dict(sigma=8.0, scale=2),
}


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_chain_matches_torch(name):
    rng = rng_of(15)
    y = rng.random((7, 9, 3)).astype(np.float32)
    kwargs = CHAINS[name](y, rng.random((7, 9)) > 0.2)
    ours, theirs = chain.build_forward_model(y, **kwargs), torch_ops.build_forward_model(y, **kwargs)
    theirs.to(dtype=torch.float64)
    assert [type(s).__name__ for s in ours.stages] == [getattr(s, "name", type(s).__name__) for s in theirs.stages]
    assert ours.restored_size == theirs.restored_size and ours.scale == theirs.scale
    x = rng.random((2, 3) + ours.restored_size)
    nll, grad = ours.nll_and_grad(x)
    expected, expected_grad = torch_value_and_grad(theirs.nll, x)
    assert_close(nll, expected, 1e-7)
    assert_close(grad, expected_grad, 1e-7)
    assert_close(ours.expected_nll(x), theirs.expected_nll(torch.from_numpy(x)).numpy(), 1e-7)
    if ours.scale > 1:
        upstream = rng.random((2, 3, 7, 9))
        coarse, coarse_grad = torch_value_and_grad(theirs.at_observed_scale, x, upstream)
        assert_close(ours.at_observed_scale(x), coarse, 1e-7)
        assert_close(ours.at_observed_scale_vjp(upstream), coarse_grad, 1e-7)
    else:
        assert ours.at_observed_scale(x) is None


def test_jpeg_chain_with_scale_and_mask_matches_torch():
    """The multi task: x2 down -> noise -> JPEG 4:2:0, with a hole hiding one MCU."""
    source = photo(32, 48, 16)
    small = np.asarray(Image.fromarray(source).resize((24, 16), Image.BICUBIC))
    info = jpeg_info(small, quality=50)
    decoded = np.asarray(Image.open(io.BytesIO(info.data)).convert("RGB")).astype(np.float32) / 255
    keep = np.ones((16, 24), bool)
    keep[:8, :8] = False
    ours = chain.build_forward_model(decoded, sigma=8, jpeg=info, scale=2, mask=keep)
    theirs = torch_ops.build_forward_model(decoded, sigma=8, jpeg=info, scale=2, mask=keep).to(dtype=torch.float64)
    x = np.clip(source.transpose(2, 0, 1)[None] / 255.0 + rng_of(17).normal(0, 0.02, (1, 3, 32, 48)), 0, 1)
    nll, grad = ours.nll_and_grad(x)
    expected, expected_grad = torch_value_and_grad(theirs.nll, x)
    assert_close(nll, expected, 2e-6)
    assert_close(grad, expected_grad, 5e-6)
    assert ours.nll_and_grad(x.astype(np.float32))[1].dtype == np.float32


def test_initial_estimate_is_torchs_bicubic_enlargement_with_holes_and_a_denoiser():
    rng = rng_of(18)
    y = rng.random((9, 11, 3)).astype(np.float32)
    keep = rng.random((9, 11)) > 0.3
    ours = chain.build_forward_model(y, sigma=5, scale=3, mask=keep)
    start = ours.initial_estimate()
    assert start.shape == (1, 3, 27, 33) and start.dtype == np.float32
    filled = torch.from_numpy(fill_holes(ours.observed, ours.observed_mask))
    expected = torch.nn.functional.interpolate(filled, size=(27, 33), mode="bicubic", align_corners=False)
    assert_close(start, expected.clamp(0, 1).numpy(), 1e-6)
    assert np.array_equal(torch_ops.build_forward_model(y, sigma=5, scale=3, mask=keep).initial_estimate().numpy(),
                          start)
    seen = []
    halve = lambda rgb: seen.append(rgb.shape) or rgb * 0.5  # noqa: E731 - a stand-in denoiser
    halved = ours.initial_estimate(denoise=halve)               # the start denoises the observation
    assert seen == [(9, 11, 3)] and halved.shape == start.shape
    assert halved.mean() < 0.75 * start.mean()


@pytest.mark.parametrize("kwargs,match", [
    ({"sigma": -1}, "sigma"), ({"sigma": float("nan")}, "sigma"), ({"scale": 0}, "scale"),
    ({"scale": 1.5}, "scale"), ({"mask": np.ones((3, 3), bool)}, "mask"),
    ({"mask": np.zeros((6, 5), bool)}, "mask"), ({"blur": np.full((3, 3), -1.0)}, "kernel"),
])
def test_numpy_chain_refuses_what_the_torch_chain_refuses(kwargs, match):
    with pytest.raises(InputError, match=match):
        chain.build_forward_model(np.full((6, 5, 3), 0.5, np.float32), **kwargs)


# ---------------------------------------------------------------- the loop's image helpers


@pytest.mark.parametrize("h,w,multiple", [(19, 23, 4), (3, 5, 8), (8, 8, 4), (17, 3, 4)])
def test_padding_and_its_adjoint_match_torch(h, w, multiple):
    from flowrt.solve.solver import pad_to_multiple as torch_pad

    x = rng_of(20).random((1, 3, h, w))
    padded = pad_to_multiple(x, multiple)
    upstream = rng_of(21).random(padded.shape)
    expected, expected_grad = torch_value_and_grad(lambda t: torch_pad(t, multiple), x, upstream)
    assert_close(padded, expected, 0)
    assert_close(pad_to_multiple_vjp(upstream, (h, w), multiple), expected_grad, 1e-14)


@pytest.mark.parametrize("std,hw", [(0.6, (19, 23)), (1.5, (4, 30))])
def test_start_blur_matches_torch(std, hw):
    from flowrt.solve.solver import gaussian_blur as torch_blur

    x = rng_of(22).random((1, 3) + hw).astype(np.float32)
    assert_close(gaussian_blur(x, std), torch_blur(torch.from_numpy(x), std).numpy(), 1e-6)
