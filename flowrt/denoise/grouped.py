"""A grouped transform-domain Gaussian denoiser: the MAP's starting point for noisy observations.

After Dabov et al., "Image denoising by sparse 3-D transform-domain collaborative filtering"
(IEEE TIP 2007), in its colour form: the image goes to an orthonormal opponent colour space
(white noise of std sigma per RGB channel stays white with the same std per channel), and two
passes run over every reference patch on a grid (every ``REF_STEP`` pixels):

1. **hard thresholding**: the patches most similar to the reference (on the luma-like channel,
   within ``SEARCH_RADIUS``) are stacked into a group; the group's 3-D transform (2-D DCT of
   each patch, Haar across the group) is hard-thresholded at ``HARD_THRESHOLD * sigma``; every
   patch of the group is put back, weighted by 1 / (coefficients kept);
2. **Wiener filtering**: groups are matched again on the first estimate, where noise no longer
   hides similarity, and the noisy groups are shrunk by p^2 / (p^2 + sigma^2), p the first
   estimate's 3-D coefficient.

Matching is shared by the three colour channels. Grouping is what the earlier sliding-DCT start
lacked: similar patches from elsewhere in the image average the noise down where one patch's
transform cannot. Memory: a few (H, W, 64) float32 coefficient arrays per channel, so large
images are processed in bands of rows (``BAND_PIXELS``) with a margin wide enough for matching.
torch-free: numpy and the numba kernels of ``flowrt.denoise.kernels``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import numpy as np

from flowrt import interrupts
from flowrt.denoise import kernels as K
from flowrt.parallel import KERNEL_LOCK

HARD_THRESHOLD = 2.7      # in multiples of sigma (Dabov et al.'s lambda_3D)
SEARCH_RADIUS = 19        # candidate patches lie within this many pixels of the reference
REF_STEP = 3              # reference patches every this many pixels (the last row/column always)
COARSE_SEARCH_RADIUS = 11  # the same two for a coarse estimate (``denoise_rgb(coarse=True)``)
COARSE_REF_STEP = 4
GROUP_HARD = 16           # most patches per group, first pass
GROUP_WIENER = 32         # most patches per group, second pass
# Matching thresholds, mean squared difference per pixel on the 0-255 scale. The first pass
# compares noisy patches, whose distance carries 2 sigma^2 of noise on top of the signal's.
MATCH_HARD_SIGNAL_255 = 3000.0
MATCH_WIENER_255 = 800.0
FLAT = np.ones(K.PATCH, np.float32)   # the aggregation window of the hard-thresholding and Wiener passes
# The learned pass's aggregation window, Kaiser with this beta (chosen on val-photos crops:
# benchmarks/results/flow_denoiser/README.md; the classical passes stay flat, where it did not help)
LEARNED_KAISER_BETA = 2.0
CHUNK_GROUPS = 4096       # groups filtered per parallel call (bounds the group buffer)
BAND_PIXELS = 1 << 19     # larger images are denoised in bands of rows of about this many pixels
MARGIN = SEARCH_RADIUS + 2 * K.PATCH   # rows of context on each side of a band

# A learned second pass: filter(grouping, channel, r0, r1, sigma) -> (patches, weight): groups
# r0..r1-1 of one channel of a ``Grouping`` (sigma in [0, 1] units) estimated and put back into
# patch DCTs, (r1-r0, G, 64) with rows past each group's count zero, as ``kernels.filter_groups``
# returns them; weight (r1-r0,) > 0 each group's aggregation weight.
GroupFilter = Callable[["Grouping", int, int, int, float], Tuple[np.ndarray, np.ndarray]]

# Orthonormal opponent colour transform (rows: luma-like mean, red-blue, green-magenta).
OPPONENT = np.array([
    [1 / math.sqrt(3), 1 / math.sqrt(3), 1 / math.sqrt(3)],
    [1 / math.sqrt(2), 0.0, -1 / math.sqrt(2)],
    [1 / math.sqrt(6), -2 / math.sqrt(6), 1 / math.sqrt(6)],
], np.float32)


def denoise_rgb(rgb: np.ndarray, sigma: float, *, greyscale: bool = False, coarse: bool = False,
                pilot: Optional[np.ndarray] = None, group_filter: Optional[GroupFilter] = None,
                ref_step: int = REF_STEP) -> np.ndarray:
    """Denoise ``rgb`` float (H, W, 3) in [0, 1], corrupted by white Gaussian noise of std ``sigma``
    ([0, 1] units, > 0) per channel; returns float32 (H, W, 3) clipped to [0, 1].

    greyscale: the three channels hold one grey image (one noise draw shared by all three),
    denoised once as a single channel. coarse: a cheaper, rougher estimate: the
    hard-thresholding pass alone, with COARSE_REF_STEP and COARSE_SEARCH_RADIUS (for callers that
    denoise the same image again and again, like ``flowrt.solve.splitting``). pilot: an earlier
    estimate of the clean image, (H, W, 3) in [0, 1]; the hard-thresholding pass is skipped and the
    Wiener pass matches on, and shrinks towards, the pilot instead of its own first estimate.
    group_filter: a learned second pass (``GroupFilter``, e.g. ``flowrt.denoise.flow``'s) in
    place of the Wiener shrinkage, over the same groups. ref_step: the second pass's reference
    patches every this many pixels (``REF_STEP``; a later stage after a good pilot can afford fewer).
    """
    rgb = _checked(rgb, "rgb")
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma}")
    planes = _planes(rgb, greyscale)
    guide = None
    if pilot is not None:
        guide = _planes(_checked(pilot, "pilot"), greyscale)
        if guide[0].shape != planes[0].shape:
            raise ValueError(f"the pilot is {guide[0].shape}, the image {planes[0].shape}")
    with KERNEL_LOCK:   # numba's workqueue layer takes one caller at a time (flowrt.parallel)
        done = _denoise_planes(planes, float(sigma), coarse, guide, group_filter, ref_step)
    if greyscale:
        out = np.repeat(done[0][..., None], 3, axis=2)
    else:
        out = np.einsum("ji,jhw->hwi", OPPONENT, np.stack(done))
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _checked(rgb: np.ndarray, what: str) -> np.ndarray:
    rgb = np.asarray(rgb, np.float32)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"expected {what} (H, W, 3), got {rgb.shape}")
    return rgb


def _planes(rgb: np.ndarray, greyscale: bool) -> List[np.ndarray]:
    """The channels the denoiser works on: one grey plane, or the three opponent planes."""
    if greyscale:
        return [rgb.mean(axis=2)]
    return [np.ascontiguousarray(p) for p in np.einsum("ij,hwj->ihw", OPPONENT, rgb)]


def _denoise_planes(planes: List[np.ndarray], sigma: float, coarse: bool,
                    pilot: Optional[List[np.ndarray]], group_filter=None, ref_step: int = REF_STEP) -> List[np.ndarray]:
    """Denoise channels (H, W) sharing one noise std; channel 0 guides the matching. Bands of
    rows bound the memory; each band sees MARGIN rows of context on both sides."""
    h, w = planes[0].shape
    band = max(64, BAND_PIXELS // max(w, 1))
    if h <= band + 2 * MARGIN:
        return _denoise_padded(planes, sigma, coarse, pilot, group_filter, ref_step)
    out = [np.empty_like(p) for p in planes]
    for r0 in range(0, h, band):
        r1 = min(h, r0 + band)
        a, b = max(0, r0 - MARGIN), min(h, r1 + MARGIN)
        part = _denoise_padded([p[a:b] for p in planes], sigma, coarse,
                               None if pilot is None else [p[a:b] for p in pilot], group_filter, ref_step)
        for o, q in zip(out, part):
            o[r0:r1] = q[r0 - a:r1 - a]
    return out


def _denoise_padded(planes: List[np.ndarray], sigma: float, coarse: bool,
                    pilot: Optional[List[np.ndarray]], group_filter=None, ref_step: int = REF_STEP) -> List[np.ndarray]:
    """Reflect-pad planes smaller than two patches (matching needs room), denoise, crop back."""
    h, w = planes[0].shape
    ph, pw = max(0, 2 * K.PATCH - h), max(0, 2 * K.PATCH - w)
    if ph or pw:
        mode = "reflect" if h > 1 and w > 1 and ph < h and pw < w else "edge"
        pad = lambda ps: None if ps is None else [np.pad(p, ((0, ph), (0, pw)), mode=mode) for p in ps]  # noqa: E731
        return [p[:h, :w] for p in _two_passes(pad(planes), sigma, coarse, pad(pilot), group_filter, ref_step)]
    return _two_passes(planes, sigma, coarse, pilot, group_filter, ref_step)


def _two_passes(planes: List[np.ndarray], sigma: float, coarse: bool = False,
                pilot: Optional[List[np.ndarray]] = None,
                group_filter: Optional[GroupFilter] = None, ref_step: int = REF_STEP) -> List[np.ndarray]:
    if pilot is None and coarse:
        planes = [np.ascontiguousarray(p, np.float32) for p in planes]
        d = K.dct_matrix()
        refs = _reference_grid(*planes[0].shape, COARSE_REF_STEP)
        return _hard_pass(planes, [K.patch_dct(p, d) for p in planes], refs, sigma, COARSE_SEARCH_RADIUS, d)
    grouping = group_planes(planes, sigma, pilot, ref_step)
    d = K.dct_matrix()
    if group_filter is None:
        groups = (grouping.ys, grouping.xs, grouping.counts)
        return [_filter(c, pc, groups, sigma, d) for c, pc in zip(grouping.coefs, grouping.pilot_coefs)]
    return [_filter_learned(grouping, ch, sigma, d, group_filter) for ch in range(len(grouping.coefs))]


@dataclass
class Grouping:
    """One image's second-pass groups: noisy and pilot patch DCTs per channel ((H-7, W-7, 64)
    each) and the positions matched on the pilot (ys, xs (R, GROUP_WIENER) int32; counts (R,)
    powers of two)."""
    coefs: List[np.ndarray]
    pilot_coefs: List[np.ndarray]
    ys: np.ndarray
    xs: np.ndarray
    counts: np.ndarray


def group_planes(planes: List[np.ndarray], sigma: float,
                 pilot: Optional[List[np.ndarray]] = None, ref_step: int = REF_STEP) -> Grouping:
    """The second pass's groups of noisy planes ((H, W) float32, H, W >= 16, channel 0 guiding
    the matching; noise std ``sigma`` in [0, 1] units): the pilot is the hard-thresholding pass
    unless given, and patches are matched on it. Training (``flowrt.train.group_data``) calls
    this too, so a learned filter meets the very groups it was fitted on."""
    d = K.dct_matrix()
    planes = [np.ascontiguousarray(p, np.float32) for p in planes]
    coefs = [K.patch_dct(p, d) for p in planes]
    if pilot is None:
        pilot = _hard_pass(planes, coefs, _reference_grid(*planes[0].shape, REF_STEP), sigma, SEARCH_RADIUS, d)
    refs = _reference_grid(*planes[0].shape, ref_step)
    pilot = [np.ascontiguousarray(p, np.float32) for p in pilot]
    ys, xs, counts = K.match_blocks(pilot[0], *refs, SEARCH_RADIUS, GROUP_WIENER, MATCH_WIENER_255 / 255.0 ** 2)
    return Grouping(coefs, [K.patch_dct(p, d) for p in pilot], ys, xs, counts)


def _hard_pass(planes, coefs, refs, sigma: float, radius: int, d: np.ndarray) -> List[np.ndarray]:
    """The hard-thresholding estimate of every channel, grouped on the noisy channel 0."""
    s255 = sigma * 255.0
    tau_hard = (MATCH_HARD_SIGNAL_255 + 2 * s255 * s255) / 255.0 ** 2
    groups = K.match_blocks(planes[0], *refs, radius, GROUP_HARD, tau_hard)
    return [_filter(c, None, groups, sigma, d) for c in coefs]


def _filter_learned(grouping: Grouping, channel: int, sigma: float, d: np.ndarray,
                    group_filter: GroupFilter) -> np.ndarray:
    """The second pass over one channel with a learned filter instead of the Wiener shrinkage."""
    coef = grouping.coefs[channel]
    num = np.zeros_like(coef)
    den = np.zeros(coef.shape[:2], np.float32)
    for r0 in range(0, len(grouping.counts), CHUNK_GROUPS):
        interrupts.check()
        r1 = min(len(grouping.counts), r0 + CHUNK_GROUPS)
        estimate, weight = group_filter(grouping, channel, r0, r1, sigma)
        estimate = np.ascontiguousarray(estimate, np.float32)
        K.scatter_groups(estimate, np.ascontiguousarray(weight, np.float32), grouping.ys, grouping.xs,
                         grouping.counts, r0, num, den)
    image, weight = K.synthesize(num, den, d, np.kaiser(K.PATCH, LEARNED_KAISER_BETA).astype(np.float32))
    return image / np.maximum(weight, 1e-12)


def _reference_grid(h: int, w: int, step: int = REF_STEP) -> Tuple[np.ndarray, np.ndarray]:
    """Reference positions every ``step`` pixels, the last row and column always included."""
    def axis(n: int) -> np.ndarray:
        last = n - K.PATCH
        steps = list(range(0, last + 1, step))
        if steps[-1] != last:
            steps.append(last)
        return np.asarray(steps, np.int32)
    ys, xs = np.meshgrid(axis(h), axis(w), indexing="ij")
    return ys.ravel().copy(), xs.ravel().copy()


def _filter(coef: np.ndarray, pilot, groups, sigma: float, d: np.ndarray) -> np.ndarray:
    """One pass over one channel: filter every group, aggregate, synthesise (H, W)."""
    ys, xs, counts = groups
    num = np.zeros_like(coef)
    den = np.zeros(coef.shape[:2], np.float32)
    wiener = pilot is not None
    pilot = coef if pilot is None else pilot
    for r0 in range(0, len(counts), CHUNK_GROUPS):
        interrupts.check()
        r1 = min(len(counts), r0 + CHUNK_GROUPS)
        filtered, weights = K.filter_groups(coef, pilot, ys, xs, counts, r0, r1, np.float32(sigma),
                                            np.float32(HARD_THRESHOLD), wiener)
        K.scatter_groups(filtered, weights, ys, xs, counts, r0, num, den)
    image, weight = K.synthesize(num, den, d, FLAT)
    return image / np.maximum(weight, 1e-12)
