"""Tuning the group flow's tables through the aggregation: SGD on the restored image's error.

``flowrt.train.group_fit`` fits each table cell to the error of one group's estimate. The image a
restore returns is not one group's estimate but the weighted average of every group covering a
pixel (``grouped._filter_learned``): averaging removes much of an estimate's variance and none of
its bias, so the cells that are best for a lone group are not the best for the average. This stage
keeps the closed-form fit and tunes, by Adam on the error of the averaged image, two factors per
(slot, sigma knot): how far each cell's gain moves from the Wiener gain and how much of its pilot
weight is kept,

    g = g_wiener + alpha (g_fit - g_wiener),   b = beta b_fit,

so alpha = beta = 1 is the fit and alpha = beta = 0 the Wiener shrinkage. The estimate is still
x_hat = g y + b p, Tweedie's formula for the same affine flow (``flowrt.prior.group_flow``), and
the export verifies it as before. The forward pass here is the runtime's (gather, estimate, inverse
Haar, weighted put-back, Kaiser-windowed overlap-add) in torch, checked against the numba kernel by
``tests/test_group_tune.py``.

Training data: random crops of clean photos with fresh noise (uniform ``sigma`` range, rounded and
clipped to 8 bits), grouped by the runtime's ``group_planes``, the target being the clipped mean
(``flowrt.numeric.clipping``). A checkpoint (factors, Adam state, step) is written every
``--every`` steps; the crop sequence is a function of the seed and the step, so a run resumes
exactly. ``--steps 0 --init A`` tunes nothing and writes the blend at A of the fit given (the
shipped tables are A = 0.7 of the tuned ones, chosen on validation photos, where the tuned tables
overshoot: benchmarks/results/flow_refine/). ``--pilot-model`` serves a second stage's fit, whose
crops are grouped on the first stage's estimate as the runtime groups them.

    python -m flowrt.train.group_tune --fit runs/group_flow/group_flow.npz --data ../shared/data/train \
        ../shared/data/train-bsds --out runs/group_tune --steps 1200
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from flowrt.denoise import grouped as G
from flowrt.denoise import kernels as K
from flowrt.numeric.clipping import clipped_mean
from flowrt.prior.group_flow import MAX_GAIN, TableConfig, slot_index, table_lookup, wiener_tables
from flowrt.train.group_data import noisy_copy, random_crop

SIZES = (1, 2, 4, 8, 16, 32)


def haar_inverse(k: int) -> np.ndarray:
    """(k, k) float32: member rows from 3-D coefficient rows, the kernels' inverse Haar."""
    g = np.zeros((k, K.COEFS), np.float32)
    g[:k, :k] = np.eye(k, dtype=np.float32)
    if k > 1:
        K._haar(g, k, True)
    return g[:k, :k].copy()


def crop_example(clean: np.ndarray, sigma_255: float, rng: np.random.Generator,
                 pilot_filter=None) -> Dict[str, object]:
    """One training crop (float32 (H, W, 3) in [0, 1]) noised, grouped as a restore groups it, and
    its target: the clipped mean's opponent planes. pilot_filter: a first stage's group filter whose
    estimate is the pilot (a second stage's groups), as in ``group_data.crop_groups``."""
    import torch
    noisy = noisy_copy(clean, sigma_255, rng)
    sigma = sigma_255 / 255.0
    pilot = None
    if pilot_filter is not None:
        pilot = G._planes(G.denoise_rgb(noisy, sigma, group_filter=pilot_filter), False)
    grouping = G.group_planes(G._planes(noisy, False), sigma, pilot)
    n = len(grouping.counts)
    gather = lambda coefs: [torch.from_numpy(K.gather_groups(c, grouping.ys, grouping.xs, grouping.counts, 0, n))  # noqa: E731
                            for c in coefs]
    return {"y": gather(grouping.coefs), "p": gather(grouping.pilot_coefs), "sigma": sigma,
            "ys": torch.from_numpy(grouping.ys.astype(np.int64)), "xs": torch.from_numpy(grouping.xs.astype(np.int64)),
            "counts": torch.from_numpy(grouping.counts.astype(np.int64)), "shape": grouping.coefs[0].shape[:2],
            "target": [torch.from_numpy(t) for t in G._planes(clipped_mean(clean, sigma).astype(np.float32), False)]}


class AveragedEstimate:
    """The learned pass's image of one channel, differentiable in the tables (torch)."""

    def __init__(self, cfg: TableConfig):
        import torch
        self.cfg = cfg
        self.slots = slot_index(cfg.group)
        self.haar = {k: torch.from_numpy(haar_inverse(k)) for k in SIZES if k <= cfg.group}
        self.dct = torch.from_numpy(K.dct_matrix().astype(np.float32))
        window = torch.from_numpy(np.kaiser(K.PATCH, G.LEARNED_KAISER_BETA).astype(np.float32))
        self.window = (window[:, None] * window[None, :]).reshape(-1)

    def image(self, gain, weight, example: Dict[str, object], channel: int):
        """(image (H, W), covered (H, W) bool) of ``channel``: ``grouped._filter_learned`` with the
        tables (slots, sigma_bins, r_bins) ``gain`` and ``weight``."""
        import torch
        import torch.nn.functional as F
        cfg, y, p, counts, sigma = self.cfg, example["y"][channel], example["p"][channel], example["counts"], example["sigma"]
        hp, wp = example["shape"]
        n = len(counts)
        g, b = table_lookup(gain, weight, self.slots, cfg, p, counts, torch.full((n,), channel),
                            torch.full((n,), float(sigma)))
        g = torch.clamp(g, 0.0, MAX_GAIN)
        valid = (torch.arange(y.shape[1])[None, :, None] < counts[:, None, None]).float()
        estimate = (g * y + b * p) * valid
        group_weight = 1.0 / torch.clamp((g * g * valid).sum((1, 2)), min=1e-6)
        num, den = torch.zeros(hp * wp, K.COEFS), torch.zeros(hp * wp)
        for k, inverse in self.haar.items():
            chosen = (counts == k).nonzero()[:, 0]
            if len(chosen) == 0:
                continue
            members = torch.einsum("mn,rnd->rmd", inverse, estimate[chosen, :k]) * group_weight[chosen, None, None]
            at = (example["ys"][chosen, :k] * wp + example["xs"][chosen, :k]).reshape(-1)
            num = num.index_add(0, at, members.reshape(-1, K.COEFS))
            den = den.index_add(0, at, group_weight[chosen, None].expand(-1, k).reshape(-1))
        patches = torch.einsum("ki,nkm,mj->nij", self.dct, num.view(-1, K.PATCH, K.PATCH), self.dct)
        size_hw = (hp + K.PATCH - 1, wp + K.PATCH - 1)
        image = F.fold((patches.reshape(-1, K.COEFS) * self.window).T[None], size_hw, K.PATCH)[0, 0]
        cover = F.fold((den[:, None] * self.window[None]).T[None], size_hw, K.PATCH)[0, 0]
        return image / torch.clamp(cover, min=1e-12), cover > 0


def tuned_tables(alpha, beta, fit_gain, fit_weight, wiener_gain):
    """(gain, weight) (slots, sigma_bins, r_bins) from the factors (slots, sigma_bins)."""
    return wiener_gain + alpha[:, :, None] * (fit_gain - wiener_gain), beta[:, :, None] * fit_weight


def load_fit(path: Path) -> Tuple[TableConfig, dict, np.ndarray, np.ndarray]:
    fit = np.load(path)
    meta = json.loads(str(fit["meta"]))
    return TableConfig(**meta["config"]), meta, fit["gain"], fit["weight"]


def pilot_of(meta: dict, pilot_model, fit) -> object:
    """The first stage's group filter a second stage's fit needs (None for a first stage's): the
    one in ``pilot_model``, refused unless it is the graph the fit's shards were made with."""
    wanted = meta.get("pilot_graph") or ""
    if not wanted:
        if pilot_model:
            raise SystemExit(f"{fit}: a first stage's fit (hard-thresholding pilots) takes no --pilot-model")
        return None
    if not pilot_model:
        raise SystemExit(f"{fit}: a second stage's fit needs --pilot-model, the folder whose first stage made its pilots")
    from flowrt.train.group_data import first_stage
    pilot_filter, found = first_stage(Path(pilot_model))
    if found != wanted:
        raise SystemExit(f"{pilot_model}: its denoiser.onnx ({found[:12]}) is not the first stage the fit's "
                         f"shards were made with ({wanted[:12]})")
    return pilot_filter


@dataclass
class TuneState:
    """What a run carries from step to step and across a resume: the factors (slots, sigma_bins), their
    Adam state, their exponential moving averages (what is written out when ``ema`` > 0: Adam moves a
    factor by about the learning rate per update whatever its gradient's size, so rarely-informed
    factors random-walk, and the average damps that), the step and the losses."""
    alpha: "torch.Tensor"
    beta: "torch.Tensor"
    opt: "torch.optim.Optimizer"
    mean_alpha: "torch.Tensor"
    mean_beta: "torch.Tensor"
    step: int = 0
    losses: list = field(default_factory=list)

    @classmethod
    def start(cls, shape, init: float, lr: float, resume: Path) -> "TuneState":
        import torch
        alpha = torch.full(shape, init, requires_grad=True)
        beta = torch.full(shape, init, requires_grad=True)
        state = cls(alpha, beta, torch.optim.Adam([alpha, beta], lr=lr), alpha.detach().clone(), beta.detach().clone())
        if resume.exists():
            saved = torch.load(resume)
            with torch.no_grad():
                alpha.copy_(saved["alpha"])
                beta.copy_(saved["beta"])
            state.opt.load_state_dict(saved["opt"])
            state.mean_alpha = saved.get("mean_alpha", saved["alpha"]).clone()   # runs before the average
            state.mean_beta = saved.get("mean_beta", saved["beta"]).clone()
            state.step, state.losses = saved["step"], saved["losses"]
            print(f"resuming at step {state.step}")
        return state

    def update_average(self, ema: float) -> None:
        self.mean_alpha += (1.0 - ema) * (self.alpha.detach() - self.mean_alpha)
        self.mean_beta += (1.0 - ema) * (self.beta.detach() - self.mean_beta)

    def written(self, ema: float):
        """The factors a checkpoint's tables are made from."""
        return (self.mean_alpha, self.mean_beta) if ema > 0 else (self.alpha.detach(), self.beta.detach())


def _arguments(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit", required=True, help="the closed-form fit (group_fit's group_flow.npz)")
    ap.add_argument("--data", nargs="+", required=True, help="folders of clean photos")
    ap.add_argument("--out", required=True, help="run folder: tune.pt (resume state) and group_flow.npz (tuned)")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--ema", type=float, default=0.0,
                    help="write the factors' exponential moving average with this decay per step (0: the last factors)")
    ap.add_argument("--crop", type=int, default=80)
    ap.add_argument("--sigma", type=float, nargs=2, default=(5.0, 55.0), help="noise std range, 0-255")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--every", type=int, default=50, help="checkpoint every this many steps")
    ap.add_argument("--init", type=float, default=1.0,
                    help="both factors' starting value: 1 starts from the fit, 0 from the Wiener shrinkage; with "
                         "--steps 0 the tables are written at this blend, untuned")
    ap.add_argument("--pilot-model", help="for a second stage's fit: the model folder whose first stage made its "
                                          "shards' pilots (group_data --pilot-model)")
    args = ap.parse_args(argv)
    if not 0.0 <= args.ema < 1.0:
        raise SystemExit(f"--ema must be in [0, 1), got {args.ema}")
    return args


def main(argv=None) -> None:
    import torch
    args = _arguments(argv)
    torch.set_num_threads(1)
    from flowrt.train.group_data import read_photos
    cfg, meta, fit_gain, fit_weight = load_fit(Path(args.fit))
    if meta.get("target") != "clipped-mean":
        raise SystemExit(f"{args.fit}: tuning needs a fit to the clipped-mean target (group_data --target clipped-mean)")
    pilot_filter = pilot_of(meta, args.pilot_model, args.fit)
    tables = (torch.from_numpy(fit_gain), torch.from_numpy(fit_weight), wiener_tables(cfg)[0].float())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state = TuneState.start(tables[0].shape[:2], args.init, args.lr, out / "tune.pt")
    photos = read_photos(args.data, args.crop)
    model = AveragedEstimate(cfg)
    started = time.process_time()
    if args.steps == 0:   # no tuning: the tables at --init (a blend chosen on validation photos)
        _save(out, args, meta, state, tables)
    while state.step < args.steps:
        rng = np.random.default_rng([args.seed, state.step])   # the crop of step N is the same on a resume
        example = crop_example(random_crop(photos, rng, args.crop), float(rng.uniform(*args.sigma)), rng, pilot_filter)
        gain, weight = tuned_tables(state.alpha, state.beta, *tables)
        loss = 0.0
        for channel in range(3):
            image, covered = model.image(gain, weight, example, channel)
            loss = loss + ((image - example["target"][channel]) ** 2)[covered].mean() / example["sigma"] ** 2
        state.opt.zero_grad()
        loss.backward()
        state.opt.step()
        state.update_average(args.ema)
        state.step += 1
        state.losses.append(float(loss.detach()))
        if state.step % args.every == 0 or state.step == args.steps:
            _save(out, args, meta, state, tables)
            alpha, beta = state.written(args.ema)
            print(f"step {state.step}: mean loss of the last {args.every} {np.mean(state.losses[-args.every:]):.4f}; "
                  f"alpha {float(alpha.mean()):.3f} beta {float(beta.mean()):.3f}; "
                  f"{time.process_time() - started:.0f} CPU-s this leg", flush=True)


def _save(out: Path, args, meta, state: TuneState, tables) -> None:
    """tune.pt (what resuming needs) and group_flow.npz (the tuned tables, as group_fit writes them)."""
    import torch

    from flowrt.io.atomic import atomic_file
    with atomic_file(out / "tune.pt") as fh:
        torch.save({"alpha": state.alpha.detach(), "beta": state.beta.detach(), "opt": state.opt.state_dict(),
                    "mean_alpha": state.mean_alpha, "mean_beta": state.mean_beta, "step": state.step,
                    "losses": state.losses}, fh)
    gain, weight = tuned_tables(*state.written(args.ema), *tables)
    tune = {"fit": str(args.fit), "steps": state.step, "lr": args.lr, "crop": args.crop, "sigma": list(args.sigma),
            "seed": args.seed, "init": args.init}
    if args.ema:
        tune["ema"] = args.ema
    if "tune" in meta:   # tables tuned before (a blend of tuned tables): keep how they were made
        tune["before"] = meta["tune"]
    tuned = dict(meta, tune=tune)
    with atomic_file(out / "group_flow.npz") as fh:
        np.savez_compressed(fh, gain=gain.numpy().astype(np.float32), weight=weight.numpy().astype(np.float32),
                            meta=np.array(json.dumps(tuned)))


if __name__ == "__main__":
    main()
