"""flowrt.operators.bridge: torch's autograd through the numpy forward models.

Every stage and likelihood is implemented once, in numpy; through the bridge torch's gradient must
be the numpy adjoint's, checked here numerically in float64 on tiny odd-sized inputs (torch's
gradcheck, or central differences in numpy for the JPEG term), and values come back in the
tensor's dtype.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from flowrt.io.jpeg_coefficients import read_jpeg_info
from flowrt.numeric.blur import Blur
from flowrt.numeric.downsample import BicubicDownsample
from flowrt.numeric.jpeg import JpegLikelihood
from flowrt.numeric.mask import Mask
from flowrt.numeric.noise import GaussianLikelihood
from flowrt.operators import NumpyLikelihood, NumpyStage, build_forward_model, parse_blur


def _gradcheck(fn, shape, seed=0):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = (0.1 + 0.8 * x).requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-5, rtol=1e-4)


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    """uint8 (h, w, 3): random colours bicubic-enlarged (few sharp edges, like photos)."""
    small = (np.random.default_rng(seed).random((h // 4 + 2, w // 4 + 2, 3)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))


@pytest.mark.parametrize("name", ["blur_direct", "blur_separable", "blur_fft", "downsample", "mask"])
def test_stage_gradients(name):
    rng = np.random.default_rng(9)
    stage = {"blur_direct": lambda: Blur(rng.random((3, 4))),
             "blur_separable": lambda: Blur(parse_blur("gaussian:0.8")),
             "blur_fft": lambda: Blur(rng.random((16, 15))),
             "downsample": lambda: BicubicDownsample((11, 9), 2),
             "mask": lambda: Mask(rng.random((11, 9)) > 0.4)}[name]()
    _gradcheck(NumpyStage(stage).apply, (1, 3, 11, 9))


@pytest.mark.parametrize("greyscale,holes", [(False, False), (False, True), (True, True)])
def test_gaussian_nll_gradient(greyscale, holes):
    rng = np.random.default_rng(12)
    keep = rng.random((11, 13)) > 0.3 if holes else None
    term = NumpyLikelihood(GaussianLikelihood(rng.random((11, 13, 3)).astype(np.float32), 9.0, keep, greyscale))
    _gradcheck(term.nll, (2, 3, 11, 13))


@pytest.mark.parametrize("sub,sigma,grey,holes", [(2, None, False, False), (0, 5.0, False, False),
                                                  (1, 20.0, False, False), (2, 8.0, False, True), (2, 8.0, True, False)])
def test_jpeg_nll_gradient(sub, sigma, grey, holes):
    """4:2:0, 4:4:4, 4:2:2 and greyscale; the noise floor alone or a noise level; holes drop blocks."""
    img = _photo(19, 21, 10)
    pil = Image.fromarray(img).convert("L") if grey else Image.fromarray(img)
    buf = io.BytesIO()
    pil.save(buf, "JPEG", quality=30, subsampling=sub)
    keep = np.random.default_rng(11).random((19, 21)) > 0.05 if holes else None
    term = JpegLikelihood(read_jpeg_info(buf.getvalue()), sigma, keep)
    if holes:
        assert min(v.sum() for v in term.layout.valid) < max(v.size for v in term.layout.valid)
    x = 0.1 + 0.8 * np.random.default_rng(sub).random((1, 3, 19, 21))
    xt = torch.from_numpy(x).requires_grad_(True)
    NumpyLikelihood(term).nll(xt).sum().backward()
    slope = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = 1e-6
        slope[index] = (term.nll(x + step) - term.nll(x - step))[0] / 2e-6
    # relative to the largest slope: the fitted erfc's 1e-7 wobble leaves small slopes' differences noisy
    assert np.abs(xt.grad.numpy() - slope).max() < 1e-6 * np.abs(slope).max()


def test_chain_gradient():
    rng = np.random.default_rng(11)
    y = rng.random((7, 9, 3)).astype(np.float32)
    fm = build_forward_model(y, sigma=8, scale=2, blur=parse_blur("gaussian:0.7"), mask=rng.random((7, 9)) > 0.2)
    _gradcheck(fm.nll, (1, 3, 14, 18))


def test_values_come_back_in_the_tensors_dtype_and_no_gradient_is_made_unasked(monkeypatch):
    y = np.random.default_rng(13).random((7, 9, 3)).astype(np.float32)
    fm = build_forward_model(y, sigma=8)
    x = torch.full((2, 3, 7, 9), 0.5)
    asked = []
    monkeypatch.setattr(type(fm.numeric), "nll_and_grad", lambda self, z: asked.append(z) or (None, None))
    with torch.no_grad():
        nll = fm.nll(x)
    assert nll.dtype == torch.float32 and nll.shape == (2,) and not asked
    assert fm.stages == [] and fm.expected_nll(x.double()).dtype == torch.float64
