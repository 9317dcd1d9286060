"""Training groups for the flow denoiser's final stage: the splitting's last round, as it runs.

The splitting (``flowrt.solve.splitting``) ends with one denoiser call whose estimate is the
restore. Its input is not a noisy photo: it is a data step's output (an upsampled or deconvolved
image with the operator's own residue), and its pilot is the previous round's estimate. The first
stage's tables were fitted on Gaussian noise, and there the Wiener pass runs instead; a final stage
fitted on exactly these rounds is what the flow adds to upscaling and deblurring.

Each crop of a clean photo is degraded by one of ``TASKS`` (chosen in turn), restored by
``flowrt.restore`` with the packaged flow denoiser, and the last round's input, pilot and std are
recorded by a denoiser wrapped around it; the groups are then made by
``flowrt.denoise.grouped.group_planes``, the very call that round's pass makes, with the clean crop's
groups at the same places as the target. Shards have ``flowrt.train.group_data``'s arrays, with
``clipped`` 0 (the target is the clean crop: the splitting does not undo a clipping) and
``pilot_graph`` = ``FINAL_PILOT``, which sends their fit to ``denoiser_final.onnx`` on export. Shards
are written atomically and named by their seed, so an interrupted run resumes.

    python -m flowrt.train.split_data --data ../shared/data/train-bsds ../shared/data/train --out SHARDS
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from flowrt.prior.folders import FINAL_PILOT

from .group_data import random_crop, read_photos, shard_arguments, write_seeded

log = logging.getLogger("flowrt.train.split_data")

# name -> (restore options, blur std in pixels, noise std 0-255) of each degradation; sr: Pillow
# bicubic down by the scale, as flowrt's downsampling operator models it.
TASKS: Dict[str, tuple] = {
    "sr2": (dict(scale=2, sigma=0.0), 0.0, 0.0),
    "sr3": (dict(scale=3, sigma=0.0), 0.0, 0.0),
    "deblur": (dict(blur="gaussian:1.6", sigma=2.0), 1.6, 2.0),
}
_RECORDER = "split-data-recorder"   # the registry name the recording denoiser is lent for a restore


class _LastRound:
    """A Denoiser that is the packaged flow denoiser, remembering its last final round."""
    name = _RECORDER

    def __init__(self, inner):
        self.inner = inner
        self.estimates_clipped_mean = inner.estimates_clipped_mean
        self.seen: Optional[tuple] = None

    def denoise(self, rgb, sigma, *, greyscale=False, coarse=False, pilot=None, final=False):
        if final and pilot is not None:
            self.seen = (rgb.copy(), pilot.copy(), float(sigma))
        return self.inner.denoise(rgb, sigma, greyscale=greyscale, coarse=coarse, pilot=pilot)


def degrade(clean: np.ndarray, task: str, rng: np.random.Generator) -> np.ndarray:
    """The observation of ``clean`` float32 (H, W, 3) in [0, 1] under ``task``: uint8."""
    from PIL import Image
    options, blur_std, noise = TASKS[task]
    pixels = np.round(clean * 255.0).astype(np.uint8)
    scale = options.get("scale", 1)
    if scale > 1:
        h, w = clean.shape[:2]
        return np.asarray(Image.fromarray(pixels).resize((w // scale, h // scale), Image.BICUBIC))
    from flowrt.numeric.chain import build_forward_model
    from flowrt.numeric.kernels import gaussian_kernel
    blurred = build_forward_model(clean, sigma=noise, blur=gaussian_kernel(blur_std)).apply(clean.transpose(2, 0, 1)[None])
    noisy = blurred[0].transpose(1, 2, 0) * 255.0 + noise * rng.standard_normal(clean.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def last_round(observed: np.ndarray, task: str, recorder: _LastRound) -> tuple:
    """(input, pilot, sigma) of the splitting's last round restoring ``observed`` under ``task``."""
    import flowrt
    from flowrt.denoise.base import DENOISERS
    recorder.seen = None
    DENOISERS[_RECORDER] = lambda: recorder
    try:
        flowrt.restore(observed, denoiser=_RECORDER, iters=0, **TASKS[task][0])   # the start is what is recorded
    finally:
        del DENOISERS[_RECORDER]
    if recorder.seen is None:
        raise RuntimeError(f"{task}: the restore ran no splitting")
    return recorder.seen


def crop_groups(clean: np.ndarray, task: str, keep: int, rng: np.random.Generator,
                recorder: _LastRound) -> Dict[str, np.ndarray]:
    """The channel-groups of ``keep`` random references of one crop's last round (arrays as in
    ``flowrt.train.group_data``), against the clean crop."""
    from flowrt.denoise import grouped as G
    from flowrt.denoise import kernels as K
    rgb, pilot, sigma = last_round(degrade(clean, task, rng), task, recorder)
    grouping = G.group_planes(G._planes(rgb, False), sigma, G._planes(pilot, False))
    d = K.dct_matrix()
    clean_coefs = [K.patch_dct(np.ascontiguousarray(p), d) for p in G._planes(clean, False)]
    refs = np.sort(rng.choice(len(grouping.counts), size=min(keep, len(grouping.counts)), replace=False))
    ys, xs, counts = grouping.ys[refs], grouping.xs[refs], grouping.counts[refs]
    parts: Dict[str, List[np.ndarray]] = {"y": [], "p": [], "x": [], "count": [], "channel": []}
    for channel in range(3):
        for key, coefs in (("y", grouping.coefs), ("p", grouping.pilot_coefs), ("x", clean_coefs)):
            parts[key].append(K.gather_groups(coefs[channel], ys, xs, counts, 0, len(refs)))
        parts["count"].append(counts.astype(np.int32))
        parts["channel"].append(np.full(len(refs), channel, np.int8))
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["sigma"] = np.full(len(out["count"]), sigma, np.float32)
    out["clipped"] = np.zeros(len(out["count"]), np.int8)
    return out


def write_shards(photos: List[np.ndarray], out: Path, first_seed: int, shards: int, crops: int, crop: int,
                 keep: int, tasks: Sequence[str], denoiser=None) -> None:
    """Shards ``first_seed ..`` into ``out``, skipping those present; crop i of a shard is degraded by
    tasks[i % len(tasks)]. ``denoiser``: the flow denoiser to record (default: the packaged one)."""
    if denoiser is None:
        from flowrt.denoise.flow import packaged_flow_denoiser
        denoiser = packaged_flow_denoiser()
    recorder = _LastRound(denoiser)

    def make(seed: int) -> Dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        parts = [crop_groups(random_crop(photos, rng, crop), tasks[i % len(tasks)], keep, rng, recorder)
                 for i in range(crops)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    write_seeded(out, first_seed, shards, make, FINAL_PILOT)


def main(argv=None) -> None:
    ap = shard_arguments(__doc__.splitlines()[0], shards=60, crops=6, crop=126, keep=60)   # crop: divisible by 2 and 3
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma list of " + ",".join(TASKS))
    args = ap.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        ap.error(f"--tasks takes {', '.join(TASKS)}; not {', '.join(unknown) or 'nothing'}")
    if any(args.crop % TASKS[t][0].get("scale", 1) for t in tasks):
        ap.error("--crop must be divisible by every task's scale")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    photos = read_photos(args.data, args.crop)
    log.info("%d photos", len(photos))
    write_shards(photos, Path(args.out), args.first_seed, args.shards, args.crops, args.crop, args.keep, tasks)


if __name__ == "__main__":
    main()
