"""The grouped transform-domain denoiser (flowrt.denoise): kernels against references, and behaviour."""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from flowrt.denoise import denoise_rgb
from flowrt.denoise import grouped as G
from flowrt.denoise import kernels as K


def _scene(h=48, w=56, seed=0) -> np.ndarray:
    """(h, w, 3) in [0.1, 0.9]: gradients, a disc, an edge and a repeated stripe pattern."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    disc = ((yy - 0.5) ** 2 + (xx - 0.4) ** 2 < 0.08).astype(np.float32)
    stripes = 0.15 * (np.sin(xx * 40) > 0)
    base = np.stack([0.3 + 0.4 * xx, 0.2 + 0.5 * yy * disc + stripes, 0.6 - 0.3 * (xx > 0.7)], axis=2)
    return np.clip(base + 0.02 * rng.random((h, w, 3)), 0.1, 0.9).astype(np.float32)


def _psnr(a, b) -> float:
    return 10 * math.log10(1.0 / float(np.mean((np.asarray(a, np.float64) - b) ** 2)))


def test_dct_matrix_is_orthonormal():
    d = K.dct_matrix().astype(np.float64)
    np.testing.assert_allclose(d @ d.T, np.eye(8), atol=1e-6)


def test_patch_dct_matches_a_brute_force_dct():
    rng = np.random.default_rng(1)
    plane = rng.random((13, 17), dtype=np.float32)
    d = K.dct_matrix()
    coef = K.patch_dct(plane, d)
    assert coef.shape == (6, 10, 64)
    for y, x in [(0, 0), (5, 9), (2, 7)]:
        expected = (d.astype(np.float64) @ plane[y:y + 8, x:x + 8] @ d.T.astype(np.float64)).ravel()
        np.testing.assert_allclose(coef[y, x], expected, atol=1e-5)


def test_synthesis_is_the_adjoint_of_the_patch_dct():
    rng = np.random.default_rng(2)
    plane = rng.standard_normal((13, 17)).astype(np.float32)
    num = rng.standard_normal((6, 10, 64)).astype(np.float32)
    den = rng.random((6, 10)).astype(np.float32)
    d = K.dct_matrix()
    image, weight = K.synthesize(num, den, d, np.ones(8, np.float32))
    lhs = float(np.sum(K.patch_dct(plane, d).astype(np.float64) * num))
    assert lhs == pytest.approx(float(np.sum(plane.astype(np.float64) * image)), rel=1e-4)
    # the weights overlap-add over each patch's 8x8 pixels
    expected = np.zeros((13, 17))
    for y in range(6):
        for x in range(10):
            expected[y:y + 8, x:x + 8] += den[y, x]
    np.testing.assert_allclose(weight, expected, rtol=1e-5)


@pytest.mark.parametrize("beta", [0.0, 2.0])
def test_synthesis_inverts_the_patch_dct_with_unit_weights(beta):
    """Whatever the window, consistent patches put back give the plane; the weight is the window's
    overlap-add."""
    rng = np.random.default_rng(3)
    plane = rng.random((20, 11), dtype=np.float32)
    d = K.dct_matrix()
    window = np.kaiser(8, beta).astype(np.float32)
    image, weight = K.synthesize(K.patch_dct(plane, d), np.ones((13, 4), np.float32), d, window)
    np.testing.assert_allclose(image / weight, plane, atol=1e-5)
    expected = np.zeros((20, 11))
    for y in range(13):
        for x in range(4):
            expected[y:y + 8, x:x + 8] += np.outer(window, window)
    np.testing.assert_allclose(weight, expected, rtol=1e-5)


def test_block_matching_matches_brute_force():
    rng = np.random.default_rng(4)
    guide = rng.random((24, 21), dtype=np.float32)
    ref_y, ref_x = np.array([0, 9, 16], np.int32), np.array([0, 5, 13], np.int32)
    radius, cap, tau = 5, 8, 0.2
    ys, xs, counts = K.match_blocks(guide, ref_y, ref_x, radius, cap, tau)
    for r, (ry, rx) in enumerate(zip(ref_y, ref_x)):
        cands = []
        for cy in range(max(0, ry - radius), min(16, ry + radius) + 1):
            for cx in range(max(0, rx - radius), min(13, rx + radius) + 1):
                if (cy, cx) != (ry, rx):
                    dist = float(np.mean((guide[ry:ry + 8, rx:rx + 8] - guide[cy:cy + 8, cx:cx + 8]) ** 2))
                    if dist <= tau:
                        cands.append((dist, cy, cx))
        cands.sort()
        n = 1 + min(len(cands), cap - 1)
        k = 1 << (n.bit_length() - 1)
        assert counts[r] == k
        assert (ys[r, 0], xs[r, 0]) == (ry, rx)   # the reference leads its group
        got = [(int(y), int(x)) for y, x in zip(ys[r, 1:k], xs[r, 1:k])]
        assert got == [(y, x) for _, y, x in cands[:k - 1]]


def test_a_group_of_identical_patches_keeps_its_signal():
    """Stacking the same patch k times and filtering with a tiny sigma returns that patch."""
    rng = np.random.default_rng(5)
    coef = rng.standard_normal((4, 4, 64)).astype(np.float32)
    coef[:] = coef[0, 0]
    ys = np.zeros((1, 4), np.int32)
    xs = np.array([[0, 1, 2, 3]], np.int32)
    for wiener in (False, True):
        out, weight = K.filter_groups(coef, coef, ys, xs, np.array([4], np.int32), 0, 1,
                                      np.float32(1e-4), np.float32(2.7), wiener)
        np.testing.assert_allclose(out[0], np.repeat(coef[0, :1], 4, axis=0), rtol=1e-4, atol=1e-4)
        assert weight[0] > 0


def test_denoiser_removes_most_of_the_noise():
    clean = _scene()
    noisy = clean + 25 / 255 * np.random.default_rng(6).standard_normal(clean.shape).astype(np.float32)
    out = denoise_rgb(noisy, 25 / 255)
    assert out.shape == clean.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    assert _psnr(out, clean) > _psnr(np.clip(noisy, 0, 1), clean) + 8


def test_denoiser_barely_touches_a_clean_image_at_a_tiny_sigma():
    clean = _scene()
    assert _psnr(denoise_rgb(clean, 1e-4), clean) > 60


def test_bands_agree_with_the_whole_image(monkeypatch):
    clean = _scene(120, 40, seed=7)
    noisy = clean + 0.08 * np.random.default_rng(8).standard_normal(clean.shape).astype(np.float32)
    whole = denoise_rgb(noisy, 0.08)
    monkeypatch.setattr(G, "BAND_PIXELS", 64 * 40)   # bands of 64 rows, each with its margin
    banded = denoise_rgb(noisy, 0.08)
    assert abs(_psnr(banded, clean) - _psnr(whole, clean)) < 0.3
    assert float(np.abs(banded - whole).mean()) < 0.01


def test_greyscale_stays_grey_and_tiny_images_work():
    grey = _scene()[..., :1]
    noisy = np.repeat(grey + 0.1 * np.random.default_rng(9).standard_normal(grey.shape).astype(np.float32), 3, 2)
    out = denoise_rgb(noisy, 0.1, greyscale=True)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
    for shape in [(5, 3, 3), (1, 1, 3), (1, 40, 3), (9, 8, 3)]:
        tiny = np.random.default_rng(10).random(shape, dtype=np.float32)
        out = denoise_rgb(tiny, 0.1)
        assert out.shape == shape and np.isfinite(out).all()


@pytest.mark.parametrize("bad", [dict(y=np.zeros((8, 8)), sigma=0.1), dict(y=np.zeros((8, 8, 3)), sigma=0.0),
                                 dict(y=np.zeros((0, 8, 3)), sigma=0.1), dict(y=np.zeros((8, 8, 3)), sigma=math.nan)])
def test_denoiser_refuses_bad_arguments(bad):
    with pytest.raises(ValueError):
        denoise_rgb(bad["y"], bad["sigma"])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_can_denoise_after_its_parent_did():
    """GNU OpenMP aborts such a child; flowrt.parallel chooses numba's fork-safe layer."""
    noisy = np.random.default_rng(11).random((40, 40, 3), dtype=np.float32)
    expected = denoise_rgb(noisy, 0.1)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        ok = np.allclose(denoise_rgb(noisy, 0.1), expected)
        os._exit(0 if ok else 3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_threads_can_denoise_at_once():
    noisy = np.random.default_rng(12).random((48, 48, 3), dtype=np.float32)
    expected = denoise_rgb(noisy, 0.1)
    with ThreadPoolExecutor(3) as pool:
        outs = list(pool.map(lambda _: denoise_rgb(noisy, 0.1), range(6)))
    assert all(np.array_equal(o, expected) for o in outs)


def test_a_fresh_compile_and_the_cached_kernels_agree_bit_for_bit(tmp_path):
    """Restores must not depend on whether a process compiled the kernels or loaded numba's cache
    (a Ray worker and the driver, say): with fastmath they differed in the last bits."""
    import subprocess
    import sys
    script = ("import hashlib, numpy as np; from flowrt.denoise import denoise_rgb; "
              "x = np.random.default_rng(0).random((35, 45, 3), dtype=np.float32); "
              "print(hashlib.sha1(denoise_rgb(x, 0.05).tobytes()).hexdigest())")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    fresh, cached = (subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                    check=True).stdout for _ in range(2))
    assert fresh == cached and len(fresh.strip()) == 40


def test_coarse_estimate_is_cheaper_and_still_denoises():
    """``coarse`` (hard-threshold pass only, sparser references, a smaller search) removes most
    of the noise the full denoiser removes, with fewer groups to match and filter."""
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[0:96, 0:96] / 96.0
    clean = np.stack([0.5 + 0.3 * np.sin(7 * xx), 0.4 + 0.3 * (yy > 0.5), 0.5 + 0.2 * np.cos(5 * yy + 3 * xx)], -1)
    noisy = (clean + rng.normal(0, 20 / 255, clean.shape)).astype(np.float32)
    full = denoise_rgb(noisy, 20 / 255)
    coarse = denoise_rgb(noisy, 20 / 255, coarse=True)
    err = lambda x: float(np.mean((x - clean) ** 2))  # noqa: E731
    assert err(full) < err(coarse) < 0.3 * err(np.clip(noisy, 0, 1))
    assert G.COARSE_REF_STEP >= G.REF_STEP and G.COARSE_SEARCH_RADIUS <= G.SEARCH_RADIUS
    assert len(G._reference_grid(96, 96, G.COARSE_REF_STEP)[0]) < len(G._reference_grid(96, 96)[0])


def test_a_pilot_replaces_the_first_pass():
    """With a pilot the Wiener pass shrinks towards it: a clean pilot gives a far better result
    than the denoiser's own first pass, bands agree with the whole image, and a pilot of the wrong
    size is refused."""
    clean = _scene(120, 40, seed=9)
    noisy = clean + 0.08 * np.random.default_rng(10).standard_normal(clean.shape).astype(np.float32)
    own = denoise_rgb(noisy, 0.08)
    oracle = denoise_rgb(noisy, 0.08, pilot=clean)
    assert _psnr(oracle, clean) > _psnr(own, clean) + 0.5
    assert np.array_equal(denoise_rgb(noisy, 0.08, pilot=own), denoise_rgb(noisy, 0.08, pilot=own))
    grey = denoise_rgb(np.repeat(noisy[..., :1], 3, 2), 0.08, greyscale=True, pilot=np.repeat(clean[..., :1], 3, 2))
    assert np.array_equal(grey[..., 0], grey[..., 2])
    with pytest.raises(ValueError, match="pilot"):
        denoise_rgb(noisy, 0.08, pilot=clean[:-8])


def test_bands_with_a_pilot_agree_with_the_whole_image(monkeypatch):
    clean = _scene(120, 40, seed=11)
    noisy = clean + 0.08 * np.random.default_rng(12).standard_normal(clean.shape).astype(np.float32)
    pilot = denoise_rgb(noisy, 0.08, coarse=True)
    whole = denoise_rgb(noisy, 0.08, pilot=pilot)
    monkeypatch.setattr(G, "BAND_PIXELS", 64 * 40)
    banded = denoise_rgb(noisy, 0.08, pilot=pilot)
    assert float(np.abs(banded - whole).mean()) < 0.01
