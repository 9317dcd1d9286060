"""The flow denoiser: the grouped denoiser's second pass done by the group flow's Tweedie estimate.

``flowrt.prior.group_flow.GroupFlow`` is a noise-conditional flow over groups of similar patches;
its exact score gives the minimum-MSE estimate of a clean group, x_hat = g y + b p, with (g, b)
read from tables (slot x sigma knots x r knots) by bilinear interpolation. The exported graph
(``denoiser.onnx`` in a model folder, verified against torch autograd on export) holds those
tables as initialisers; this module reads them from the graph and evaluates the same formula in a
numba kernel over the grouped denoiser's groups, because a gather-heavy graph run per coefficient
was far slower under ONNX Runtime than a fused kernel (``benchmarks/results/flow_denoiser/``).
``tests/test_flow_denoiser.py`` checks the kernel against ONNX Runtime running the graph.

torch-free and onnx-free: numpy and numba (``flowrt.prior.onnx_initializers`` reads the graph).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional, Tuple

import numba
import numpy as np

from flowrt.denoise import grouped
from flowrt.denoise import kernels as K
from flowrt.errors import ModelError
from flowrt.prior.folders import DENOISER_FILES, DENOISER_ONNX, FINAL_ONNX, REFINE_ONNX

R_FLOOR = math.exp(-8.0)   # the same constant as flowrt.prior.group_flow (checked by a test)
# The second stage's reference patches every this many pixels, not grouped.REF_STEP's 3: after the
# first stage's pilot, 4 lost nothing on val-photos crops at noise 25 in 60% of the time
# (benchmarks/results/flow_refine/README.md).
REFINE_REF_STEP = 4


@dataclass(frozen=True)
class GroupTables:
    """The flow's parameters: gain, weight (slots, sigma_bins, r_bins) float32; slots (3, sizes,
    G, 64) int64; axes (r_min, r_max, r_bins, log sigma_min, log sigma_max, sigma_bins) float64;
    target: what the tables were fitted to estimate, 'clipped-mean' (the noisy file's clipped mean,
    ``flowrt.train.group_data``) or 'clean' (graphs exported before the fit recorded it)."""
    gain: np.ndarray
    weight: np.ndarray
    slots: np.ndarray
    axes: np.ndarray
    target: str = "clean"

    @classmethod
    def from_graph(cls, path: Path) -> "GroupTables":
        """Read the tables and axes the exporter stored in ``denoiser.onnx``."""
        from flowrt.prior.onnx_initializers import read_initializers   # not onnx: its import costs a second
        found, meta = read_initializers(path, ("gain", "weight", "slots"))
        missing = [k for k in ("gain", "weight", "slots") if k not in found] + \
                  [k for k in ("axes",) if k not in meta]
        if missing:
            raise ModelError(f"{path}: not a group-flow denoiser graph (missing {', '.join(missing)})")
        axes = np.array([float(v) for v in meta["axes"].split(",")], np.float64)
        shape = (int(found["slots"].max()) + 1, int(axes[5]), int(axes[2]))
        gain = found["gain"].astype(np.float32).reshape(shape)
        weight = found["weight"].astype(np.float32).reshape(shape)
        return cls(gain, weight, found["slots"].astype(np.int64), axes, fit_target(meta.get("fit")))

    def at_sigma(self, sigma: float) -> Tuple[np.ndarray, np.ndarray]:
        """(gain, weight) (slots, r_bins) float32 interpolated to ``sigma`` ([0, 1] units) along
        the log-sigma knots: what one image's filtering reads, small enough to stay in cache."""
        knots = int(self.axes[5])
        u = (math.log(sigma * 255.0) - self.axes[3]) * ((knots - 1) / (self.axes[4] - self.axes[3]))
        u = min(max(u, 0.0), knots - 1.0)
        j0 = min(int(math.floor(u)), knots - 2)
        w = u - j0
        return tuple(np.ascontiguousarray(t[:, j0] * (1 - w) + t[:, j0 + 1] * w, np.float32)
                     for t in (self.gain, self.weight))

    def covers(self, sigma: float) -> bool:
        """Whether ``sigma`` ([0, 1] units) lies within the tables' sigma knots (a final stage's few
        last-round stds: outside them its cells never saw data, and the Wiener pass runs instead)."""
        log_sigma = math.log(max(sigma, 1e-12) * 255.0)
        return self.axes[3] - 1e-6 <= log_sigma <= self.axes[4] + 1e-6

    def filter(self, y: np.ndarray, p: np.ndarray, counts: np.ndarray, channel: int,
               sigma: float) -> Tuple[np.ndarray, np.ndarray]:
        """A ``grouped.GroupFilter``: (x_hat (n, G, 64), weight (n,)) for groups y, p (n, G, 64)."""
        gain, weight = self.at_sigma(float(sigma))
        return tweedie_groups(y, p, counts, channel, float(sigma), self.slots, gain, weight, self.axes)

    def filter_grouping(self, grouping: "grouped.Grouping", channel: int, r0: int, r1: int,
                        sigma: float) -> Tuple[np.ndarray, np.ndarray]:
        """A ``grouped.GroupFilter``: groups r0..r1-1 of ``grouping``'s channel estimated by
        ``filter`` and put back into patch DCTs, in one kernel that gathers as it goes (the
        separate gather, filter and inverse-Haar passes moved every group through memory three times)."""
        gain, weight = self.at_sigma(float(sigma))
        return tweedie_patches(grouping.coefs[channel], grouping.pilot_coefs[channel], grouping.ys, grouping.xs,
                               grouping.counts, r0, r1, channel, float(sigma), self.slots, gain, weight, self.axes)


def fit_target(fit_json: Optional[str]) -> str:
    """The fit's target from the graph's 'fit' metadata (``flowrt.train.group_fit.save_run``'s
    meta): 'clipped-mean' or 'clean' (also when the fit predates the field)."""
    import json
    try:
        target = json.loads(fit_json).get("target", "clean") if fit_json else "clean"
    except (ValueError, AttributeError):
        return "clean"
    return target if target in ("clipped-mean", "clean") else "clean"


class FlowDenoiser:
    """The ``Denoiser`` of the group flow: ``denoise`` is the grouped denoiser with the flow's
    Tweedie estimate as its second pass, and, when the model has a second stage (``refine``), that
    estimate is the pilot of one more matching and Tweedie pass with the second stage's tables
    (fitted on such pilots: ``flowrt.train.group_data --pilot-model``). ``coarse`` is the
    hard-thresholding pass alone, as for the grouped denoiser; with a ``pilot`` (the splitting's
    last rounds) the pass after it is the Wiener shrinkage, because the first stage's tables are
    fitted to hard-thresholding pilots: given a better pilot they lost 0.3 dB on val-photos
    (benchmarks/results/flow_denoiser/README.md). The splitting's last round (``final``, with its
    pilot) runs the ``final`` stage where the model has one and its sigma knots cover that round's
    std: tables fitted on such rounds (``flowrt.train.split_data``), whose input is a data step's
    output rather than a noisy photo."""
    name = "flow"

    def __init__(self, tables: GroupTables, refine: Optional[GroupTables] = None,
                 final: Optional[GroupTables] = None):
        self.tables = tables
        self.refine = refine
        self.final = final
        if refine is not None and refine.target != tables.target:
            raise ModelError(f"the flow denoiser's stages estimate different targets ({tables.target}, {refine.target})")
        self.estimates_clipped_mean = tables.target == "clipped-mean"

    @classmethod
    def from_model_dir(cls, folder: Path) -> "FlowDenoiser":
        path = Path(folder) / DENOISER_ONNX
        if not path.is_file():
            raise ModelError(f"the model in {folder} has no flow denoiser ({DENOISER_ONNX}); "
                             f"use --denoiser grouped, or export one with flowrt export")
        optional = [Path(folder) / name for name in (REFINE_ONNX, FINAL_ONNX)]
        refine, final = (GroupTables.from_graph(p) if p.is_file() else None for p in optional)
        return cls(GroupTables.from_graph(path), refine, final)

    def denoise(self, rgb: np.ndarray, sigma: float, *, greyscale: bool = False, coarse: bool = False,
                pilot: Optional[np.ndarray] = None, final: bool = False) -> np.ndarray:
        """float32 (H, W, 3) in [0, 1] from ``rgb`` (H, W, 3) in [0, 1] with noise std ``sigma``
        ([0, 1] units); the options mean what they mean for ``grouped.denoise_rgb`` and the
        ``Denoiser`` protocol."""
        if final and pilot is not None and not coarse and self.final is not None and self.final.covers(sigma):
            return grouped.denoise_rgb(rgb, sigma, greyscale=greyscale, pilot=pilot,
                                       group_filter=self.final.filter_grouping)
        learned = None if coarse or pilot is not None else self.tables.filter_grouping
        first = grouped.denoise_rgb(rgb, sigma, greyscale=greyscale, coarse=coarse, pilot=pilot, group_filter=learned)
        if learned is None or self.refine is None:
            return first
        return grouped.denoise_rgb(rgb, sigma, greyscale=greyscale, pilot=first,
                                   group_filter=self.refine.filter_grouping, ref_step=REFINE_REF_STEP)


@lru_cache(maxsize=1)
def packaged_flow_denoiser() -> FlowDenoiser:
    """The FlowDenoiser of the packaged default model folder (hash-checked), read once per process."""
    from flowrt.prior.folders import check_files, read_manifest, resolve_model_dir
    folder = resolve_model_dir(None)
    manifest = read_manifest(folder)
    check_files(folder, manifest, [name for name in DENOISER_FILES if name in manifest["files"]])
    return FlowDenoiser.from_model_dir(folder)


@numba.njit(nogil=True, cache=True, inline="always")
def _axis(v, lo, hi, knots):  # pragma: no cover - compiled
    t = (min(max(v, lo), hi) - lo) * ((knots - 1) / (hi - lo))
    i0 = min(int(math.floor(t)), knots - 2)
    return i0, t - i0


@numba.njit(nogil=True, cache=True, inline="always")
def _tweedie_group(yv, p, k, size, channel, inv_sigma, slots, gain, weight, axes):  # pragma: no cover
    """yv (G, 64) <- g y + b p over its first k members, (g, b) linear in r within each entry's slot;
    returns sum(g^2), whose inverse is the group's aggregation weight."""
    r_min, r_max, r_bins = axes[0], axes[1], int(axes[2])
    energy = 0.0
    for m in range(k):
        for d in range(64):
            pv = p[m, d] * inv_sigma
            i0, wr = _axis(math.log(pv * pv + R_FLOOR), r_min, r_max, r_bins)
            row = slots[channel, size, m, d]
            g = gain[row, i0] * (1 - wr) + gain[row, i0 + 1] * wr
            b = weight[row, i0] * (1 - wr) + weight[row, i0 + 1] * wr
            yv[m, d] = g * yv[m, d] + b * p[m, d]
            energy += g * g
    return energy


@numba.njit(parallel=True, nogil=True, cache=True)
def tweedie_groups(y, p, counts, channel, sigma, slots, gain, weight, axes):  # pragma: no cover - compiled
    """x_hat = g y + b p for groups y, p (n, G, 64) in the 3-D transform domain, with gain and
    weight (slots, r_bins) already at ``sigma`` (``GroupTables.at_sigma``), and 1 / sum(g^2) per
    group: the first two outputs of ``GroupFlow.forward``."""
    n, g_max = y.shape[0], y.shape[1]
    out = y.astype(np.float32)
    wts = np.zeros(n, np.float32)
    for i in numba.prange(n):
        size = int(round(math.log2(counts[i])))
        energy = _tweedie_group(out[i], p[i], counts[i], size, channel, 1.0 / sigma, slots, gain, weight, axes)
        out[i, counts[i]:] = 0.0
        wts[i] = 1.0 / max(energy, 1e-6)
    return out, wts


@numba.njit(parallel=True, nogil=True, cache=True)
def tweedie_patches(coef, pilot, ys, xs, counts, r0, r1, channel, sigma, slots, gain, weight,
                    axes):  # pragma: no cover - compiled
    """``tweedie_groups`` over groups r0..r1-1 gathered straight from the channel's patch DCTs
    (coef, pilot (H-7, W-7, 64)) and put back: (patches (r1-r0, G, 64), weight (r1-r0,)), what
    ``kernels.filter_groups`` returns for the Wiener pass."""
    g_max = ys.shape[1]
    out = np.zeros((r1 - r0, g_max, 64), np.float32)
    wts = np.zeros(r1 - r0, np.float32)
    for q in numba.prange(r1 - r0):
        r = r0 + q
        k = counts[r]
        yv = out[q]
        K._gather(yv, coef, ys[r], xs[r], k)
        p = np.empty((k, 64), np.float32)
        K._gather(p, pilot, ys[r], xs[r], k)
        size = int(round(math.log2(k)))
        energy = _tweedie_group(yv, p, k, size, channel, 1.0 / sigma, slots, gain, weight, axes)
        wts[q] = 1.0 / max(energy, 1e-6)
        K._haar(yv, k, True)
    return out, wts
