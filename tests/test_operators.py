"""flowrt.operators and the JPEG coefficient reader, each against a non-differentiable reference.

References: Pillow's resize (float 'F' mode and 8-bit), a loop-over-taps convolution, Pillow's
JPEG encoder and decoder (baseline, progressive, restart markers, greyscale, 4:4:4/4:2:2/4:2:0).
Gradients are checked numerically in float64 on tiny odd-sized inputs.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from flowrt.errors import InputError
from flowrt.io.jpeg_coefficients import decode_coefficients, jpeg_info_for_quality, read_jpeg_info
from flowrt.numeric import blur as numeric_blur
from flowrt.numeric.downsample import BicubicDownsample
from flowrt.numeric import normal
from flowrt.numeric.jpeg import JpegLikelihood
from flowrt.numeric.mask import Mask, fill_holes
from flowrt.numeric.noise import GaussianLikelihood
from flowrt.operators import (ForwardModel, NumpyStage, build_forward_model,
                              parse_blur, read_mask)


def smooth_image(h: int, w: int, seed: int) -> np.ndarray:
    """uint8 (h, w, 3): random colours bicubic-enlarged, photo-like in having few sharp edges."""
    rng = np.random.default_rng(seed)
    small = (rng.random((h // 4 + 2, w // 4 + 2, 3)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))


def to_tensor(img: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    x = img.astype(np.float64) / (255 if img.dtype == np.uint8 else 1)
    return torch.from_numpy(x).permute(2, 0, 1)[None].to(dtype)


def to_array(img: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 -> (1, 3, h, w) float64 in [0, 1]."""
    return img.transpose(2, 0, 1)[None] / 255.0


def to_numpy(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).detach().double().numpy()


def stage_name(stage) -> str:
    """A chain stage's name: the numpy stage's behind a bridge."""
    return stage.name if isinstance(stage, NumpyStage) else type(stage).__name__


def jpeg_bytes(img: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", **kw)
    return buf.getvalue()


# ---------------------------------------------------------------- downsampling


@pytest.mark.parametrize("h,w,s", [(37, 53, 2), (40, 48, 3), (21, 17, 4), (16, 16, 2), (9, 15, 1)])
def test_downsample_matches_pillow_float(h, w, s):
    x = np.random.default_rng(h * w).random((h, w, 3)).astype(np.float32)
    ref = np.stack([np.asarray(Image.fromarray(x[..., c], "F").resize((w // s, h // s), Image.BICUBIC))
                    for c in range(3)], axis=2)
    out = BicubicDownsample((h, w), s).apply(x.transpose(2, 0, 1)[None])[0].transpose(1, 2, 0)
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() < 1e-5  # far below 1/255, borders included


def test_downsample_matches_pillow_8bit():
    img = smooth_image(45, 38, 1)
    ref = np.asarray(Image.fromarray(img).resize((19, 22), Image.BICUBIC)).astype(np.float64)
    out = BicubicDownsample((45, 38), 2).apply(img.transpose(2, 0, 1)[None] / 255.0)[0].transpose(1, 2, 0) * 255
    assert np.abs(np.round(np.clip(out, 0, 255)) - ref).max() <= 1  # Pillow rounds between passes


def test_downsample_rejects_bad_factor():
    with pytest.raises(InputError):
        BicubicDownsample((5, 5), 8)
    with pytest.raises(InputError):
        BicubicDownsample((5, 5), 0)


# ---------------------------------------------------------------- blur


def reference_convolve(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Direct sum over taps: y[i, j] = sum k[a, b] x[i + kh//2 - a, j + kw//2 - b], edges replicated."""
    kh, kw = k.shape
    pad = max(kh, kw)
    xp = np.pad(x, ((pad, pad), (pad, pad)), mode="edge")
    h, w = x.shape
    out = np.zeros((h, w))
    for a in range(kh):
        for b in range(kw):
            top, left = pad + kh // 2 - a, pad + kw // 2 - b
            out += k[a, b] * xp[top:top + h, left:left + w]
    return out


@pytest.mark.parametrize("shape,separable", [((3, 3), False), ((4, 5), False), ((4, 5), True), ((1, 6), True),
                                             ((17, 19), False), ((23, 13), True)])
def test_blur_matches_reference(shape, separable):
    rng = np.random.default_rng(sum(shape))
    k = np.outer(rng.random(shape[0]), rng.random(shape[1])) if separable else rng.random(shape)
    k /= k.sum()
    blur = numeric_blur.Blur(k)
    assert blur.layout.separable == (separable or 1 in shape)
    x = rng.random((1, 3, 11, 8))
    ref = np.stack([reference_convolve(x[0, c], k) for c in range(3)])
    np.testing.assert_allclose(blur.apply(x)[0], ref, atol=1e-6)
    np.testing.assert_allclose(NumpyStage(blur).apply(torch.from_numpy(x))[0].numpy(), ref, atol=1e-6)


def test_parse_blur(tmp_path):
    k = parse_blur("gaussian:1.5")
    assert k.shape == (11, 11) and abs(k.sum() - 1) < 1e-6 and k[5, 5] == k.max()
    kernel = np.zeros((5, 7), np.float32)
    kernel[2, 1:6] = 1
    np.save(tmp_path / "k.npy", kernel)
    np.testing.assert_allclose(parse_blur(str(tmp_path / "k.npy")), kernel / 5)
    Image.fromarray((kernel * 255).astype(np.uint8)).save(tmp_path / "k.png")
    np.testing.assert_allclose(parse_blur(str(tmp_path / "k.png")), kernel / 5, atol=1e-6)
    bad_arrays = {"neg.npy": -np.ones((3, 3)), "zero.npy": np.zeros((3, 3)), "nan.npy": np.full((3, 3), np.nan),
                  "cube.npy": np.ones((3, 3, 3, 3))}
    for name, array in bad_arrays.items():
        np.save(tmp_path / name, array)
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    specs = ["gaussian:", "gaussian:abc", "gaussian:-1", "gaussian:0", "gaussian:1000", "gaussian:nan",
             "box:3", str(tmp_path / "missing.npy"), str(tmp_path / "junk.npy")]
    for spec in specs + [str(tmp_path / name) for name in bad_arrays]:
        with pytest.raises(InputError) as info:
            parse_blur(spec)
        assert "\n" not in str(info.value)


# ---------------------------------------------------------------- mask


def test_mask_file_and_hole_filling(tmp_path):
    holes = np.zeros((9, 14), np.uint8)
    holes[2:6, 3:9] = 255  # white = missing
    Image.fromarray(holes).save(tmp_path / "m.png")
    observed = read_mask(str(tmp_path / "m.png"), (9, 14))
    assert observed.dtype == bool and observed.sum() == 9 * 14 - 24 and not observed[3, 4]
    with pytest.raises(InputError, match="mask"):
        read_mask(str(tmp_path / "m.png"), (14, 9))
    img = smooth_image(9, 14, 2).transpose(2, 0, 1)[None].astype(np.float32) / 255
    m = observed.astype(np.float32)[None, None]
    filled = fill_holes(img * m, m)
    assert np.array_equal(filled * m, img * m)
    lo, hi = img.min(axis=(2, 3), keepdims=True), img.max(axis=(2, 3), keepdims=True)
    assert ((filled >= lo - 1e-6) & (filled <= hi + 1e-6)).all()
    assert np.array_equal(Mask(observed).apply(img), img * m)
    assert (fill_holes(img, np.zeros_like(m)) == 0.5).all()  # nothing observed: mid-grey


# ---------------------------------------------------------------- JPEG coefficients


def test_progressive_restart_and_optimised_files_give_the_same_coefficients():
    img = smooth_image(37, 53, 3)
    base = decode_coefficients(jpeg_bytes(img, quality=50))
    assert [c.shape for c in base] == [(5, 7, 8, 8), (3, 4, 8, 8), (3, 4, 8, 8)]
    for options in ({"progressive": True}, {"restart_marker_blocks": 3}, {"optimize": True},
                    {"progressive": True, "restart_marker_rows": 1}):
        other = decode_coefficients(jpeg_bytes(img, quality=50, **options))
        assert all(np.array_equal(a, b) for a, b in zip(base, other)), options


@pytest.mark.parametrize("h,w,sub,quality,grey", [(37, 53, 2, 50, False), (40, 48, 0, 20, False),
                                                  (21, 30, 1, 90, False), (19, 27, 2, 75, True),
                                                  (13, 9, 2, 20, False)])
def test_coefficients_of_the_source_match_the_file(h, w, sub, quality, grey):
    """round(DCT(YCbCr(source)) / q) equals what the encoder wrote, up to its integer arithmetic."""
    img = smooth_image(h, w, h + w)
    pil = Image.fromarray(img)
    if grey:
        pil = pil.convert("L")
        img = np.repeat(np.asarray(pil)[..., None], 3, axis=2)
    buf = io.BytesIO()
    pil.save(buf, "JPEG", quality=quality, subsampling=sub)
    term = JpegLikelihood(read_jpeg_info(buf.getvalue()))
    for c, coef in enumerate(term.coefficients(to_array(img))):
        ratio = coef[0] / term.layout.q[c]
        assert (np.round(ratio) == term.layout.k[c]).mean() > 0.95
        assert np.abs(ratio - term.layout.k[c]).max() < 1.0


def test_decoded_444_jpeg_sits_at_the_interval_centres():
    """With no chroma subsampling the decoder is exact up to rounding: nll ~ 0, and it grows off it."""
    data = jpeg_bytes(smooth_image(24, 40, 5), quality=30, subsampling=0)
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    term = JpegLikelihood(read_jpeg_info(data))
    at_decode = term.nll(to_array(decoded))[0]
    shifted = term.nll(np.roll(to_array(decoded), 1, axis=3))[0]
    assert at_decode < 1e-3 * 24 * 40 * 3 and shifted > 100 * max(at_decode, 1)


def test_requantised_fallback_is_close_to_the_file():
    img = smooth_image(32, 48, 6)
    data = jpeg_bytes(img, quality=40)
    exact = read_jpeg_info(data).coefficients()
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.float32) / 255
    guess = jpeg_info_for_quality(decoded, 40)
    assert not guess.exact
    same = [float((a == b).mean()) for a, b in zip(exact, guess.coefficients())]
    assert min(same) > 0.9


def test_damaged_coefficients_fall_back_to_re_encoding(monkeypatch):
    import flowrt.io.jpeg_coefficients as jpegfile

    data = jpeg_bytes(smooth_image(24, 40, 15), quality=60)
    exact = read_jpeg_info(data).coefficients()
    monkeypatch.setattr(jpegfile, "_damage", lambda messages: "pretend libjpeg lost a scan")
    info = read_jpeg_info(data)
    monkeypatch.undo()  # the re-encoded file itself reads cleanly
    guess = info.coefficients()
    assert not info.exact
    assert min(float((a == b).mean()) for a, b in zip(exact, guess)) > 0.9


def test_corrupt_entropy_data_is_an_input_error():
    data = jpeg_bytes(smooth_image(32, 32, 7), quality=90)
    cut = data[:len(data) - 200] + b"\xff\xd9"
    with pytest.raises(InputError):
        decode_coefficients(cut)
    with pytest.raises(InputError):
        read_jpeg_info(b"\xff\xd8\xff\xdb\x00")


# ---------------------------------------------------------------- likelihoods


def test_log_interval_prob_is_accurate_and_finite():
    lo = np.array([-1.0, -3.0, 2.0, -40.0, 30.0, -1e4, -0.01, -9.0, 7.5])
    hi = lo + np.array([2.0, 1.0, 0.5, 1.0, 2.0, 1.0, 0.02, 3.0, 0.25])
    got, grad = normal.log_interval_prob_and_grad((lo + hi) / 2, (hi - lo) / 2, np.zeros_like(lo), 1.0)
    mpmath = pytest.importorskip("mpmath")  # ships with torch (through sympy)
    mpmath.mp.dps = 50
    expect = []
    for a, b in zip(lo.tolist(), hi.tolist()):
        if a + b > 0:
            a, b = -b, -a  # same mass, and no cancellation in 1 - 1e-300
        expect.append(float(mpmath.log(mpmath.ncdf(b) - mpmath.ncdf(a))))
    np.testing.assert_allclose(got, expect, rtol=1e-6)
    assert np.isfinite(grad).all()
    far = np.array([1e4, -3e3, 0.5], np.float32)  # float32, far outside its interval
    value, far_grad = normal.log_interval_prob_and_grad(np.zeros(3), np.full(3, 0.5), far, 1.0)
    assert np.isfinite(value).all() and np.isfinite(far_grad).all()
    assert far_grad[0] < 0 < far_grad[1]  # pulls back towards the interval


def test_gaussian_likelihood_formula():
    rng = np.random.default_rng(8)
    y, z = rng.random((5, 7, 3)).astype(np.float32), rng.random((2, 3, 5, 7))
    keep = rng.random((5, 7)) > 0.3
    term = GaussianLikelihood(y, 12.0, keep)
    expect = ((z - y.transpose(2, 0, 1)[None]) ** 2 * keep).sum(axis=(1, 2, 3)) / (2 * (12 / 255) ** 2)
    np.testing.assert_allclose(term.nll(z), expect, rtol=1e-6)
    np.testing.assert_allclose(term.nll_and_grad(z)[0], expect, rtol=1e-6)
    grey = GaussianLikelihood(np.repeat(y[..., :1], 3, 2), 12.0, greyscale=True)
    luma = z.transpose(0, 2, 3, 1) @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(grey.nll(z), ((luma - y[None, ..., 0]) ** 2).sum(axis=(1, 2)) / (2 * (12 / 255) ** 2),
                               rtol=1e-6)


# ---------------------------------------------------------------- the chain


def test_full_chain_shapes_and_views():
    rng = np.random.default_rng(11)
    y = rng.random((7, 9, 3)).astype(np.float32)
    keep = rng.random((7, 9)) > 0.2
    fm = build_forward_model(y, sigma=8, scale=2, blur=parse_blur("gaussian:0.7"), mask=keep)
    assert isinstance(fm, ForwardModel) and fm.restored_size == (14, 18)
    assert [stage_name(s) for s in fm.stages] == ["Blur", "BicubicDownsample", "Mask"]
    start = fm.initial_estimate()
    assert start.shape == (1, 3, 14, 18) and 0 <= float(start.min()) and float(start.max()) <= 1
    assert fm.nll(start.expand(3, -1, -1, -1)).shape == (3,)
    # the coarse prior's view: the downsampler alone, without the blur before it or the mask after
    x = torch.rand(1, 3, 14, 18, generator=torch.Generator().manual_seed(0))
    assert torch.equal(fm.at_observed_scale(x), fm.stages[1].apply(x))
    assert build_forward_model(y, sigma=8).at_observed_scale(x[..., :7, :9]) is None


def test_jpeg_chain_with_scale_and_mask():
    """multi task: bicubic down x2 -> noise -> JPEG; holes drop their blocks from the data term."""
    source = smooth_image(32, 48, 12)
    small = np.asarray(Image.fromarray(source).resize((24, 16), Image.BICUBIC))
    data = jpeg_bytes(small, quality=50)
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.float32) / 255
    info = read_jpeg_info(data)
    fm = build_forward_model(decoded, sigma=8, jpeg=info, scale=2)
    truth, blurred = to_tensor(source), to_tensor(np.asarray(Image.fromarray(source).filter(
        __import__("PIL.ImageFilter", fromlist=["GaussianBlur"]).GaussianBlur(2))))
    assert float(fm.nll(truth)) < float(fm.nll(blurred))
    assert fm.initial_estimate().shape == (1, 3, 32, 48)
    keep = np.ones((16, 24), bool)
    keep[:8, :8] = False
    holed = build_forward_model(decoded, sigma=8, jpeg=info, scale=2, mask=keep)
    valid = holed.likelihood.numeric.layout.valid
    assert float(valid[0].sum()) == 6 - 1  # one 8x8 luma block of 2x3 hidden
    assert float(valid[1].sum()) == 1 * 2 - 1  # its 16x16 MCU's chroma block too


@pytest.mark.parametrize("kwargs,match", [
    ({"sigma": -1}, "sigma"), ({"sigma": float("nan")}, "sigma"), ({"scale": 0}, "scale"),
    ({"scale": 1.5}, "scale"), ({"mask": np.ones((3, 3), bool)}, "mask"),
    ({"mask": np.zeros((6, 5), bool)}, "mask"), ({"blur": np.full((3, 3), -1.0)}, "kernel"),
])
def test_build_rejects_bad_options(kwargs, match):
    with pytest.raises(InputError, match=match):
        build_forward_model(np.full((6, 5, 3), 0.5, np.float32), **kwargs)


def test_build_rejects_a_jpeg_of_another_size():
    info = read_jpeg_info(jpeg_bytes(smooth_image(16, 16, 13), quality=50))
    with pytest.raises(InputError, match="JPEG"):
        build_forward_model(np.full((8, 16, 3), 0.5, np.float32), jpeg=info)


@pytest.mark.cuda
def test_forward_model_on_cuda_matches_cpu():
    img = smooth_image(24, 32, 14)
    data = jpeg_bytes(img, quality=40)
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.float32) / 255
    for kwargs in ({"sigma": 10.0, "scale": 2, "blur": parse_blur("gaussian:1")}, {"jpeg": read_jpeg_info(data)}):
        fm = build_forward_model(decoded, **kwargs)
        x = fm.initial_estimate()
        cpu = fm.nll(x)
        gpu = fm.to("cuda").nll(x.cuda())
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-3)


# ---------------------------------------------------------------- expected misfit (discrepancy principle)

def test_gaussian_expected_nll_matches_drawn_observations():
    """Half a nat per observed value; the nll of the truth against noisy draws lands on it."""
    rng = np.random.default_rng(5)
    clean = rng.random((21, 17, 3)).astype(np.float32)
    keep = rng.random((21, 17)) > 0.3
    noisy = (clean + rng.normal(0, 10 / 255, clean.shape)).astype(np.float32)  # unclipped: the model's story
    fm = build_forward_model(np.clip(noisy, 0, 1), sigma=10, mask=keep)
    fm.likelihood.numeric.y = noisy.transpose(2, 0, 1)[None].astype(np.float64)
    expected = float(fm.expected_nll(to_tensor(clean)))
    assert expected == pytest.approx(0.5 * keep.sum() * 3)
    assert float(fm.nll(to_tensor(clean))) == pytest.approx(expected, rel=0.15)  # sigma includes the floor
    assert build_forward_model(noisy.clip(0, 1)).expected_nll(to_tensor(clean)) is None  # no noise level given


def test_jpeg_expected_nll_matches_a_real_noisy_jpeg():
    """Noise 8 added to a photo-like image before Pillow's JPEG: the truth's misfit is what the model expects."""
    clean = smooth_image(48, 64, 3)
    rng = np.random.default_rng(9)
    noisy = np.clip(np.round(clean + rng.normal(0, 8, clean.shape)), 0, 255).astype(np.uint8)
    data = jpeg_bytes(noisy, quality=50)
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.float32) / 255
    fm = build_forward_model(decoded, sigma=8, jpeg=read_jpeg_info(data))
    truth = to_tensor(clean)
    expected = fm.expected_nll(truth)
    assert expected.shape == (1,) and float(expected) > 0
    assert float(fm.nll(truth)) == pytest.approx(float(expected), rel=0.25)
    assert torch.equal(fm.expected_nll(truth), expected)  # fixed seed: the same answer twice
    quantised_only = build_forward_model(decoded, jpeg=read_jpeg_info(data))
    assert quantised_only.expected_nll(truth) is None
