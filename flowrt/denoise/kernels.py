"""numba kernels of the grouped transform-domain denoiser (``flowrt.denoise.grouped``).

Conventions: a plane is float32 (H, W); a *position* (y, x) names the 8x8 patch whose top-left
pixel it is, 0 <= y <= H - 8, 0 <= x <= W - 8; a coefficient array is float32 (H - 7, W - 7, 64),
the orthonormal 2-D DCT of every patch, coefficient k * 8 + l (k along rows, l along columns).
A *group* is up to ``max_group`` positions similar to a reference position, the reference first;
its size is always a power of two, so that the transform along the group is an orthonormal Haar.

Kernels that write shared accumulators run serially; the expensive ones (patch DCT, matching,
filtering a chunk of groups into its own buffer) run in parallel over rows or references: callers
hold ``flowrt.parallel.KERNEL_LOCK`` around them.
"""
from __future__ import annotations

import math

import numba
import numpy as np

import flowrt.parallel  # noqa: F401 - chooses numba's threading layer before any kernel runs
from flowrt.numeric import dct

PATCH = 8
COEFS = PATCH * PATCH
_INV_SQRT2 = 1.0 / math.sqrt(2.0)


def dct_matrix() -> np.ndarray:
    """(8, 8) float32 orthonormal DCT-II, row k the k-th basis vector: ``flowrt.numeric.dct``'s."""
    return dct.dct_matrix(np.float32)


@numba.njit(parallel=True, nogil=True, cache=True)
def patch_dct(plane, d):  # pragma: no cover - compiled
    """plane (H, W) float32, d the DCT matrix -> (H - 7, W - 7, 64): every patch's 2-D DCT.

    Separable: the column transform of each 8-row strip is shared by every patch on that row
    (64 multiply-adds per position), then each patch's row transform costs 512."""
    h, w = plane.shape
    hp, wp = h - PATCH + 1, w - PATCH + 1
    out = np.empty((hp, wp, COEFS), np.float32)
    for y in numba.prange(hp):
        vt = np.zeros((PATCH, w), np.float32)
        for k in range(PATCH):
            for i in range(PATCH):
                dk = d[k, i]
                for x in range(w):
                    vt[k, x] += dk * plane[y + i, x]
        for x in range(wp):
            for k in range(PATCH):
                for m in range(PATCH):
                    s = 0.0
                    for j in range(PATCH):
                        s += vt[k, x + j] * d[m, j]
                    out[y, x, k * PATCH + m] = s
    return out


@numba.njit(parallel=True, nogil=True, cache=True)
def synthesize(num, den, d, window):  # pragma: no cover - compiled
    """Overlap-add every position's inverse DCT: num (hp, wp, 64) weighted coefficients, den
    (hp, wp) weights, window (8,) float32 -> (image (H, W) = sum of weighted patches, weight (H, W)
    = sum of weights), each patch's pixel (i, j) also weighted by window[i] * window[j] (all ones:
    flat patches; a Kaiser window trusts a patch's centre more than its border).

    Gather form (each output row reads the positions that cover it), so rows run in parallel."""
    hp, wp = den.shape
    h, w = hp + PATCH - 1, wp + PATCH - 1
    rows = np.zeros((hp, PATCH, w), np.float32)  # rows[y, k]: row-inverse of coefficient row k
    for y in numba.prange(hp):
        for x in range(wp):
            for k in range(PATCH):
                for j in range(PATCH):
                    s = 0.0
                    for m in range(PATCH):
                        s += num[y, x, k * PATCH + m] * d[m, j]
                    rows[y, k, x + j] += s * window[j]
    image = np.zeros((h, w), np.float32)
    weight = np.zeros((h, w), np.float32)
    for r in numba.prange(h):
        for i in range(max(0, r - hp + 1), min(PATCH, r + 1)):
            y = r - i
            for k in range(PATCH):
                dk = d[k, i] * window[i]
                for x in range(w):
                    image[r, x] += dk * rows[y, k, x]
            for x in range(wp):
                for j in range(PATCH):
                    weight[r, x + j] += den[y, x] * window[i] * window[j]
    return image, weight


@numba.njit(nogil=True, cache=True, inline="always")
def _insert(dist, ys, xs, n, cap, d, y, x):  # pragma: no cover - compiled
    """Insert (d, y, x) into the ascending lists holding n entries (at most cap); new n."""
    i = n if n < cap else cap - 1
    while i > 1 and dist[i - 1] > d:  # slot 0 is the reference's, never displaced
        if i < cap:
            dist[i], ys[i], xs[i] = dist[i - 1], ys[i - 1], xs[i - 1]
        i -= 1
    dist[i], ys[i], xs[i] = d, y, x
    return min(n + 1, cap)


@numba.njit(parallel=True, nogil=True, cache=True)
def match_blocks(guide, ref_y, ref_x, radius, max_group, tau):  # pragma: no cover - compiled
    """For each reference position, the positions within ``radius`` whose patch differs from it by
    a mean squared difference of at most ``tau`` (guide's units squared), closest first.

    guide (H, W) float32; ref_y, ref_x (R,) int32 -> (ys, xs (R, max_group) int32, counts (R,)
    int32); counts are powers of two, entry 0 is the reference itself."""
    h, w = guide.shape
    hp, wp = h - PATCH + 1, w - PATCH + 1
    nref = ref_y.shape[0]
    ys = np.zeros((nref, max_group), np.int32)
    xs = np.zeros((nref, max_group), np.int32)
    counts = np.ones(nref, np.int32)
    limit_all = tau * COEFS
    for r in numba.prange(nref):
        ry, rx = ref_y[r], ref_x[r]
        dist = np.empty(max_group, np.float32)
        dist[0] = 0.0
        ys[r, 0], xs[r, 0] = ry, rx
        n = 1
        for cy in range(max(0, ry - radius), min(hp - 1, ry + radius) + 1):
            for cx in range(max(0, rx - radius), min(wp - 1, rx + radius) + 1):
                if cy == ry and cx == rx:
                    continue
                limit = limit_all if n < max_group else min(limit_all, dist[max_group - 1])
                s = 0.0
                for i in range(PATCH):
                    for j in range(PATCH):
                        t = guide[ry + i, rx + j] - guide[cy + i, cx + j]
                        s += t * t
                    if s > limit:
                        break
                if s < limit or (s == limit and n < max_group):
                    n = _insert(dist, ys[r], xs[r], n, max_group, s, cy, cx)
        k = 1
        while k * 2 <= n:
            k *= 2
        counts[r] = k
    return ys, xs, counts


@numba.njit(nogil=True, cache=True, inline="always")
def _haar(g, k, inverse):  # pragma: no cover - compiled
    """Orthonormal Haar transform along axis 0 of g (>= k, 64), in place; k a power of two."""
    tmp = np.empty((k, COEFS), np.float32)
    if not inverse:
        n = k
        while n > 1:
            half = n // 2
            for i in range(half):
                for c in range(COEFS):
                    a, b = g[2 * i, c], g[2 * i + 1, c]
                    tmp[i, c] = (a + b) * _INV_SQRT2
                    tmp[half + i, c] = (a - b) * _INV_SQRT2
            g[:n] = tmp[:n]
            n = half
    else:
        n = 2
        while n <= k:
            half = n // 2
            for i in range(half):
                for c in range(COEFS):
                    a, b = g[i, c], g[half + i, c]
                    tmp[2 * i, c] = (a + b) * _INV_SQRT2
                    tmp[2 * i + 1, c] = (a - b) * _INV_SQRT2
            g[:n] = tmp[:n]
            n *= 2


@numba.njit(nogil=True, cache=True, inline="always")
def _gather(g, coef, ys_r, xs_r, k):  # pragma: no cover - compiled
    """Copy the k members' coefficients (coef at ys_r[m], xs_r[m]) into g[:k] and Haar-transform them."""
    for m in range(k):
        for c in range(COEFS):
            g[m, c] = coef[ys_r[m], xs_r[m], c]
    _haar(g, k, False)


@numba.njit(parallel=True, nogil=True, cache=True)
def filter_groups(coef, pilot, ys, xs, counts, r0, r1, sigma, threshold, wiener):  # pragma: no cover
    """Collaboratively filter groups r0..r1-1 of one channel; returns (filtered (r1-r0, G, 64), weight (r1-r0,)).

    coef: the channel's noisy patch coefficients; pilot: the first estimate's (read only when
    ``wiener``). Hard thresholding zeroes 3-D coefficients below threshold * sigma (keeping the
    group's mean) and weighs the group by 1 / (coefficients kept); Wiener shrinks each by
    p^2 / (p^2 + sigma^2), p the pilot's, and weighs by 1 / sum(shrink^2)."""
    g_max = ys.shape[1]
    out = np.zeros((r1 - r0, g_max, COEFS), np.float32)
    weights = np.zeros(r1 - r0, np.float32)
    cut = threshold * sigma
    s2 = sigma * sigma
    for q in numba.prange(r1 - r0):
        r = r0 + q
        k = counts[r]
        g = out[q]
        _gather(g, coef, ys[r], xs[r], k)
        if wiener:
            p = np.empty((k, COEFS), np.float32)
            _gather(p, pilot, ys[r], xs[r], k)
            energy = 0.0
            for m in range(k):
                for c in range(COEFS):
                    p2 = p[m, c] * p[m, c]
                    gain = p2 / (p2 + s2)
                    g[m, c] *= gain
                    energy += gain * gain
            weights[q] = 1.0 / max(energy, 1e-6)
        else:
            kept = 0
            for m in range(k):
                for c in range(COEFS):
                    if (m > 0 or c > 0) and abs(g[m, c]) <= cut:
                        g[m, c] = 0.0
                    else:
                        kept += 1
            weights[q] = 1.0 / kept
        _haar(g, k, True)
    return out, weights


@numba.njit(nogil=True, cache=True)
def scatter_groups(filtered, weights, ys, xs, counts, r0, num, den):  # pragma: no cover - compiled
    """Add filtered groups r0.. (from ``filter_groups``) into num (hp, wp, 64) and den (hp, wp), weighted."""
    for q in range(filtered.shape[0]):
        r = r0 + q
        wgt = weights[q]
        for m in range(counts[r]):
            y, x = ys[r, m], xs[r, m]
            den[y, x] += wgt
            for c in range(COEFS):
                num[y, x, c] += wgt * filtered[q, m, c]


@numba.njit(parallel=True, nogil=True, cache=True)
def gather_groups(coef, ys, xs, counts, r0, r1):  # pragma: no cover - compiled
    """Groups r0..r1-1 of one channel in the 3-D transform domain: (r1-r0, G, 64) float32, the
    Haar transform along the group of each member's patch DCT; rows from counts[r] on are zero."""
    g_max = ys.shape[1]
    out = np.zeros((r1 - r0, g_max, COEFS), np.float32)
    for q in numba.prange(r1 - r0):
        r = r0 + q
        _gather(out[q], coef, ys[r], xs[r], counts[r])
    return out
