"""Blind JPEG detection: was this decoded image (a PNG, a screenshot, a re-save) once a JPEG, and at
what quality?

A JPEG decoder's luma blocks are inverse DCTs of integers times the quantisation table, so on the
8x8 grid the encoder used, each DCT coefficient of the decoded luma lies within rounding error
(a fraction of a grey level) of a multiple of its table entry q. The periodicity of the
coefficients with period q, ``mean(cos(2 pi c / q))`` over the coefficients the table quantises to
non-zero levels, is then close to 1; for a photo that never went through JPEG it is close to 0. A table
entry that is a divisor of the true one also fits, so every IJG quality 1-100 is scored with its
whole luma table and the best one wins (a wrong quality misses on most of the 64 entries).

Two checks keep clean images clean: the best fit must clear ``MIN_FIT``, and it must beat the same
table on a grid shifted by half a block by ``MIN_GRID_MARGIN`` (flat content is periodic on any
grid; JPEG blocking is periodic on one). An image made of flat 8x8 tiles on the grid is what a
strongly compressed smooth photo decodes to, and is called a JPEG. Only the grid at offset (0, 0)
is searched: that is where a copy of a JPEG, or a crop of one at a multiple of 8, has its blocks,
and the re-encoding data term (``flowrt.pipeline.plan.JpegQuality``) restores that grid alone.

The chroma table is the IJG chroma table of the same quality (what libjpeg and Pillow write);
chroma is assumed 4:2:0, the encoders' default. Noise that went through the JPEG is mostly
zeroed by it and reads low to flowrt.pipeline.noise_level, but the blocking is found, so such an
image is restored with the JPEG term rather than called clean, and flowrt.pipeline.jpeg_noise maps
the low reading back to the noise before the compression with the detected quality's tables.

Nothing here imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from flowrt.io.colour import LUMA_601, LUMA_LEVEL_SHIFT
from flowrt.numeric.dct import BLOCK, dct_matrix

# IJG's luma table (ITU-T T.81 Annex K.1), natural order; quality Q scales it as libjpeg does.
IJG_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.int64).reshape(8, 8)
QUALITIES = np.arange(1, 101)

# Coefficients within this of zero (0-255 luma scale) fit every period and are not scored.
NEAR_ZERO = 1.0
# Pseudo-counts of zero fit added to every table's score (see _periodicity).
SHRINK = 20.0
# A fit below this is no JPEG: rounding leaves a true table's fit above 0.8 at q >= 3, and a photo
# that never was a JPEG scores about 0 (a few hundredths on 256x256).
MIN_FIT = 0.35
# ... and the fit on the grid shifted by (4, 4) must be at least this much lower.
MIN_GRID_MARGIN = 0.25
# Fewer scored coefficients than this cannot tell (a tiny or flat image): no detection.
MIN_COEFFICIENTS = 100
# The plan scores a centred square of at most this side, on the grid: bounded reads on any size.
DETECT_SIDE = 1024
# At most this many blocks are scored (spread evenly over the image): bounded time on any size.
MAX_BLOCKS = 8192


def ijg_table(quality: int, base: np.ndarray = IJG_LUMA) -> np.ndarray:
    """libjpeg's table for IJG ``quality`` 1-100 (baseline: entries clamped to 1..255), (8, 8) int."""
    quality = int(quality)
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((base * scale + 50) // 100, 1, 255)


@dataclass(frozen=True)
class JpegEvidence:
    """What the blocking says. quality: the best-fitting IJG quality (1-100); fit: the periodicity
    of the coefficients with its luma table on the (0, 0) grid (about 1 for a JPEG's decode, about
    0 for a photo); off_grid: the same on the grid shifted by (4, 4); coefficients: how many were
    scored. ``detected`` applies the thresholds."""
    quality: int
    fit: float
    off_grid: float
    coefficients: int

    @property
    def detected(self) -> bool:
        return (self.coefficients >= MIN_COEFFICIENTS and self.fit >= MIN_FIT
                and self.fit - self.off_grid >= MIN_GRID_MARGIN)

    def describe(self) -> str:
        verdict = "JPEG" if self.detected else "no JPEG"
        return (f"{verdict} blocking: quality {self.quality} fits {self.fit:.2f} on the 8x8 grid, "
                f"{self.off_grid:.2f} off it ({self.coefficients} coefficients)")


def luma_255(rgb: np.ndarray) -> np.ndarray:
    """(H, W) float64 level-shifted JPEG luma (0-255 scale minus 128) of an (H, W), (H, W, 1) or
    (H, W, C>=3) image in [0, 1] (grey replicated, alpha ignored), rounded to 8-bit samples first."""
    pixels = np.asarray(rgb, np.float64)
    if pixels.ndim == 3 and pixels.shape[2] >= 3:
        pixels = pixels[..., :3]
    elif pixels.ndim == 3:
        pixels = pixels[..., 0]
    pixels = np.round(np.clip(pixels, 0.0, 1.0) * 255.0)
    luma = pixels @ np.asarray(LUMA_601) if pixels.ndim == 3 else pixels
    return luma - LUMA_LEVEL_SHIFT


def block_coefficients(luma: np.ndarray, offset=(0, 0), max_blocks: int = MAX_BLOCKS) -> np.ndarray:
    """Orthonormal DCT of the whole 8x8 blocks of ``luma`` on the grid starting at ``offset``
    (rows, cols): (N, 64) float64, natural order, at most ``max_blocks`` blocks, evenly spread."""
    oy, ox = offset
    plane = luma[oy:, ox:]
    by, bx = plane.shape[0] // BLOCK, plane.shape[1] // BLOCK
    if by == 0 or bx == 0:
        return np.zeros((0, BLOCK * BLOCK))
    blocks = plane[:by * BLOCK, :bx * BLOCK].reshape(by, BLOCK, bx, BLOCK).transpose(0, 2, 1, 3)
    blocks = blocks.reshape(-1, BLOCK, BLOCK)
    if len(blocks) > max_blocks:
        blocks = blocks[np.linspace(0, len(blocks) - 1, max_blocks).astype(int)]
    d = dct_matrix()
    return np.einsum("ij,njk,lk->nil", d, blocks, d).reshape(-1, BLOCK * BLOCK)


def _periodicity(coefficients: np.ndarray, tables: np.ndarray) -> tuple:
    """(fit per table (T,), coefficients scored per table (T,)): for each of ``tables`` (T, 64),
    the mean of cos(2 pi c / q) over the coefficients c that table quantises to a non-zero value
    (|c| >= q / 2, and |c| >= NEAR_ZERO), q the entry of c's frequency. Coefficients quantised to
    zero fit any period, so they say nothing; shrunk towards 0 by SHRINK pseudo-counts, so a
    table that scores only a handful of coefficients cannot win by chance."""
    sums = np.zeros(len(tables))
    counts = np.zeros(len(tables))
    for f in range(BLOCK * BLOCK):
        c = coefficients[:, f]
        c = c[np.abs(c) >= NEAR_ZERO].astype(np.float32)
        if c.size == 0:
            continue
        entries, where = np.unique(tables[:, f], return_inverse=True)
        q = entries.astype(np.float32)[:, None]
        kept = np.abs(c)[None, :] >= q / 2
        phase = np.cos(np.float32(2 * np.pi) * c[None, :] / q)
        sums += (phase * kept).sum(axis=1)[where.reshape(-1)]
        counts += kept.sum(axis=1)[where.reshape(-1)]
    return sums / (counts + SHRINK), counts


def detect_jpeg(rgb: np.ndarray) -> JpegEvidence:
    """Score an image in [0, 1] ((H, W) grey or (H, W, C)) for JPEG blocking on its (0, 0) grid."""
    luma = luma_255(rgb)
    tables = np.stack([ijg_table(q).reshape(-1) for q in QUALITIES])
    fits, scored = _periodicity(block_coefficients(luma), tables)
    best = int(np.argmax(fits))
    off_fit, _ = _periodicity(block_coefficients(luma, (BLOCK // 2, BLOCK // 2)), tables[best:best + 1])
    return JpegEvidence(int(QUALITIES[best]), float(fits[best]), float(off_fit[0]), int(scored[best]))

