"""The numba blend kernels against their numpy references."""
import numpy as np
import pytest

import flowrt.tiling.blend as blend
from flowrt.tiling.blend import accumulate, accumulate_reference, normalise, normalise_reference


def _accumulators(rng, h, w, c):
    acc = rng.random((h, w, c), dtype=np.float32)
    wsum = rng.random((h, w), dtype=np.float32) + 0.1
    return acc, wsum


@pytest.fixture(params=["serial", "parallel"])
def threading(request, monkeypatch):
    """Run a test with the one-thread kernels and again with the parallel ones forced."""
    if request.param == "parallel":
        monkeypatch.setattr(blend, "PARALLEL_MIN_ELEMENTS", 0)
    return request.param


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_accumulate_matches_reference(channels, threading):
    rng = np.random.default_rng(channels)
    acc, wsum = _accumulators(rng, 37, 53, channels)
    acc_ref, wsum_ref = acc.copy(), wsum.copy()
    for y0, x0, h, w in [(0, 0, 37, 53), (3, 5, 11, 29), (30, 48, 7, 5), (0, 52, 37, 1)]:
        tile = rng.random((h, w, channels), dtype=np.float32)
        wy = rng.random(h, dtype=np.float32)
        wx = rng.random(w, dtype=np.float32)
        accumulate(acc, wsum, tile, wy, wx, y0, x0)
        accumulate_reference(acc_ref, wsum_ref, tile, wy, wx, y0, x0)
    np.testing.assert_allclose(acc, acc_ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(wsum, wsum_ref, rtol=1e-6, atol=1e-6)


def test_accumulate_takes_strided_tiles():
    rng = np.random.default_rng(7)
    acc, wsum = _accumulators(rng, 19, 23, 3)
    acc_ref, wsum_ref = acc.copy(), wsum.copy()
    big = rng.random((40, 50, 3), dtype=np.float32)
    tile = big[1:30:2, 3:47:3]  # (15, 15, 3), not contiguous
    wy, wx = np.linspace(0.1, 1, 15), np.linspace(1, 0.2, 15)  # float64 windows are converted
    accumulate(acc, wsum, tile, wy, wx, 2, 4)
    accumulate_reference(acc_ref, wsum_ref, tile, wy.astype(np.float32), wx.astype(np.float32), 2, 4)
    np.testing.assert_allclose(acc, acc_ref, rtol=1e-6, atol=1e-6)


def test_normalise_matches_reference(threading):
    rng = np.random.default_rng(3)
    acc, wsum = _accumulators(rng, 29, 31, 3)
    np.testing.assert_allclose(normalise(acc, wsum), normalise_reference(acc, wsum), rtol=1e-6)
    out = np.empty_like(acc)
    assert normalise(acc, wsum, out) is out


def test_accumulate_rejects_bad_arguments():
    acc, wsum = np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.float32)
    tile, w4 = np.ones((4, 4, 3), np.float32), np.ones(4, np.float32)
    with pytest.raises(ValueError, match="outside"):
        accumulate(acc, wsum, tile, w4, w4, 6, 0)
    with pytest.raises(TypeError):
        accumulate(acc.astype(np.float64), wsum, tile, w4, w4, 0, 0)
    with pytest.raises(ValueError, match="window"):
        accumulate(acc, wsum, tile, np.ones(3, np.float32), w4, 0, 0)
    with pytest.raises(ValueError, match="contiguous"):
        accumulate(acc[:, ::2], wsum[:, ::2], tile, w4, w4, 0, 0)
