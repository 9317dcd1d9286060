"""Fitting the group flow (``flowrt.prior.group_flow``): denoising score matching in closed form.

The flow's Tweedie estimate is x_hat = g y + b p, with (g, b) interpolated from table cells, so
minimising E||x_hat - x||^2 / sigma^2 is a least-squares problem. Each training coefficient is
shared among the (up to four) cells it interpolates between, with the interpolation weights
(kernel-weighted least squares: each cell solves its own 2x2 system), and the cell's normal
equations are sums over the data (``Stats``). Accumulating them is one pass of numba over the
shards; the tables follow in closed form, ridge-regularised towards the Wiener shrinkage (which a
cell with no data keeps). Statistics add up across shards, so training resumes exactly: the stats
file records which shards it holds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import numba
import numpy as np

from flowrt.denoise.flow import R_FLOOR, _axis   # the knot lookup the runtime uses, so fit and use agree
from flowrt.prior.group_flow import MAX_GAIN, TableConfig

FIELDS = 6   # per cell: sum w, w y^2, w y p, w p^2, w x y, w x p (y, p, x divided by sigma)


@numba.njit(nogil=True, cache=True)
def accumulate(y, p, x, count, channel, sigma, slots, stats, axes):  # pragma: no cover - compiled
    """Add a shard's channel-groups into stats (cells, FIELDS) float64.

    y, p, x (N, G, 64) float32; count (N,) int32; channel (N,) int; sigma (N,) [0, 1] units;
    slots (3, sizes, G, 64) int64; axes (r_min, r_max, r_bins, log sigma_min, log sigma_max,
    sigma_bins) float64."""
    r_min, r_max, r_bins = axes[0], axes[1], int(axes[2])
    ls_min, ls_max, s_bins = axes[3], axes[4], int(axes[5])
    for i in range(y.shape[0]):
        s = sigma[i]
        size = int(round(math.log2(count[i])))
        j0, wu = _axis(math.log(s * 255.0), ls_min, ls_max, s_bins)
        inv = 1.0 / s
        for m in range(count[i]):
            for d in range(64):
                yv, pv, xv = y[i, m, d] * inv, p[i, m, d] * inv, x[i, m, d] * inv
                i0, wr = _axis(math.log(pv * pv + R_FLOOR), r_min, r_max, r_bins)
                row = slots[channel[i], size, m, d] * s_bins + j0
                for a in range(2):
                    for b in range(2):
                        w = (wu if a else 1.0 - wu) * (wr if b else 1.0 - wr)
                        if w <= 0.0:
                            continue
                        c = (row + a) * r_bins + i0 + b
                        stats[c, 0] += w
                        stats[c, 1] += w * yv * yv
                        stats[c, 2] += w * yv * pv
                        stats[c, 3] += w * pv * pv
                        stats[c, 4] += w * xv * yv
                        stats[c, 5] += w * xv * pv


def axes_of(cfg: TableConfig) -> np.ndarray:
    return np.array([cfg.r_min, cfg.r_max, cfg.r_bins, math.log(cfg.sigma_min), math.log(cfg.sigma_max),
                     cfg.sigma_bins], np.float64)


def solve_tables(stats: np.ndarray, cfg: TableConfig, ridge: float) -> Tuple[np.ndarray, np.ndarray]:
    """(gain, weight) tables (slots, sigma_bins, r_bins) float32 from the cells' normal equations.

    Each cell minimises sum w (g y + b p - x)^2 + lam ((g - g_wiener)^2 + b^2), lam = ridge times
    the cell's mean y^2 (so ``ridge`` counts pseudo-observations); g is clipped to [0, MAX_GAIN]
    and b refitted for the clipped g."""
    n, syy, syp, spp, sxy, sxp = (stats[:, k] for k in range(FIELDS))
    q2 = np.exp(np.linspace(cfg.r_min, cfg.r_max, cfg.r_bins))
    g0 = np.broadcast_to(q2 / (1 + q2), (len(n) // cfg.r_bins, cfg.r_bins)).reshape(-1)
    lam = ridge * (syy / np.maximum(n, 1e-12) + 1e-3)
    a11, a12, a22 = syy + lam, syp, spp + lam
    r1, r2 = sxy + lam * g0, sxp
    det = a11 * a22 - a12 * a12
    g = (r1 * a22 - r2 * a12) / det
    b = (a11 * r2 - a12 * r1) / det
    clipped = (g < 0) | (g > MAX_GAIN)
    g = np.clip(g, 0.0, MAX_GAIN)
    b = np.where(clipped, (r2 - a12 * g) / a22, b)
    shape = (-1, cfg.sigma_bins, cfg.r_bins)
    return g.reshape(shape).astype(np.float32), b.reshape(shape).astype(np.float32)


@dataclass
class Stats:
    """The fit's state: the cells' sums, the names of the shards they hold, and their target
    ('clipped-mean' or 'clean': what the shards' x holds, ``flowrt.train.group_data``; None before
    the first shard), and their pilot ('' for the hard-thresholding pass, else the sha256 of the
    first-stage graph whose estimate was the pilot: a second stage's fit; None before the first shard)."""
    cfg: TableConfig
    sums: np.ndarray
    shards: Tuple[str, ...] = ()
    target: Optional[str] = None
    pilot_graph: Optional[str] = None

    @classmethod
    def empty(cls, cfg: TableConfig, slots: int) -> "Stats":
        return cls(cfg, np.zeros((slots * cfg.sigma_bins * cfg.r_bins, FIELDS), np.float64))


def shard_target(shard, path) -> str:
    """'clipped-mean' or 'clean': what a shard's x holds (its ``clipped`` flags; shards written before
    the flag hold the clean image)."""
    flags = np.unique(shard["clipped"]) if "clipped" in shard else np.zeros(1)
    if len(flags) != 1:
        raise SystemExit(f"{path}: mixes clipped-mean and clean targets")
    return "clipped-mean" if flags[0] == 1 else "clean"


def shard_pilot(shard) -> str:
    """'' or a first-stage graph's sha256: what made a shard's pilot (shards written before the
    field have hard-thresholding pilots)."""
    return str(shard["pilot_graph"]) if "pilot_graph" in shard else ""


def _check_same(stats: Stats, field: str, value: str, path) -> None:
    """One target and one pilot per fit: the first shard sets them, a differing one is refused."""
    if getattr(stats, field) is None:
        setattr(stats, field, value)
    elif getattr(stats, field) != value:
        what = {"target": "target", "pilot_graph": "pilot's first-stage graph"}[field]
        raise SystemExit(f"{path}: its {what} is {value or 'the hard-thresholding pass'}, the fit's "
                         f"{getattr(stats, field) or 'the hard-thresholding pass'} (one per fit)")


def add_shards(stats: Stats, folder, limit: int = 0, log=print) -> Stats:
    """Accumulate the shards of ``folder`` not yet in ``stats`` (the first ``limit`` by name when > 0)."""
    from pathlib import Path

    from flowrt.prior.group_flow import slot_index
    slots = slot_index(stats.cfg.group).numpy()
    axes = axes_of(stats.cfg)
    paths = sorted(Path(folder).glob("shard-*.npz"))
    if limit:
        paths = paths[:limit]
    done = set(stats.shards)
    for path in paths:
        if path.name in done:
            continue
        d = np.load(path)
        _check_same(stats, "target", shard_target(d, path), path)
        _check_same(stats, "pilot_graph", shard_pilot(d), path)
        accumulate(d["y"], d["p"], d["x"], d["count"], d["channel"].astype(np.int64), d["sigma"], slots,
                   stats.sums, axes)
        stats.shards = stats.shards + (path.name,)
        log(f"{path.name}: {len(d['count'])} channel-groups")
    return stats


def save_run(stats: Stats, ridge: float, out) -> None:
    """out/stats.npz (the sums: what resuming needs) and out/group_flow.npz (the fitted tables and
    their config: what ``flowrt.export.denoiser_export`` packages), each written atomically."""
    import json
    from pathlib import Path

    from flowrt.io.atomic import atomic_file
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"config": stats.cfg.to_dict(), "ridge": ridge, "shards": list(stats.shards),
                       "target": stats.target, "pilot_graph": stats.pilot_graph})
    with atomic_file(out / "stats.npz") as fh:
        np.savez_compressed(fh, sums=stats.sums, meta=np.array(meta))
    gain, weight = solve_tables(stats.sums, stats.cfg, ridge)
    with atomic_file(out / "group_flow.npz") as fh:
        np.savez_compressed(fh, gain=gain, weight=weight, meta=np.array(meta))


def load_stats(path) -> Stats:
    import json
    d = np.load(path)
    meta = json.loads(str(d["meta"]))
    before = "clean" if meta["shards"] else None   # fits before the fields: clean target, hard pilots
    return Stats(TableConfig(**meta["config"]), d["sums"], tuple(meta["shards"]), meta.get("target", before),
                 meta.get("pilot_graph", before and ""))


def main(argv=None) -> None:
    import argparse
    import time
    from pathlib import Path

    from flowrt.prior.group_flow import slot_index
    ap = argparse.ArgumentParser(description="Fit the group flow's tables to training shards (resumable).")
    ap.add_argument("--shards", required=True, help="folder of shards (python -m flowrt.train.group_data)")
    ap.add_argument("--out", required=True, help="run folder: stats.npz (resume state) and group_flow.npz")
    ap.add_argument("--limit", type=int, default=0, help="use the first N shards only (0: all)")
    ap.add_argument("--ridge", type=float, default=0.5, help="pseudo-observations pulling a cell to the Wiener gain")
    ap.add_argument("--r-bins", type=int, default=TableConfig.r_bins)
    ap.add_argument("--sigma-bins", type=int, default=TableConfig.sigma_bins)
    ap.add_argument("--sigma-range", type=float, nargs=2, default=(TableConfig.sigma_min, TableConfig.sigma_max),
                    metavar=("MIN", "MAX"), help="the outer sigma knots, 0-255 scale (a final stage's few "
                    "last-round stds: 1.5 6 with 3 bins)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if (out / "stats.npz").exists():
        stats = load_stats(out / "stats.npz")
        print(f"resuming from {out / 'stats.npz'}: {len(stats.shards)} shards")
    else:
        cfg = TableConfig(r_bins=args.r_bins, sigma_bins=args.sigma_bins, sigma_min=args.sigma_range[0],
                          sigma_max=args.sigma_range[1]).validate()
        stats = Stats.empty(cfg, int(slot_index(cfg.group).max()) + 1)
    started = time.process_time()
    add_shards(stats, args.shards, args.limit)
    save_run(stats, args.ridge, out)
    print(f"{len(stats.shards)} shards in {out}; {time.process_time() - started:.1f} CPU-s this leg")


if __name__ == "__main__":
    main()
